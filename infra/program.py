"""The Pulumi program: read the config, build the stack, export its outputs.

Run by the project's `__main__.py` (Pulumi.yaml `main` is the project root, so the program
and the dynamic provider host both import `infra` from the project, with no path tricks).
A user's own program can call `main()` too, or build `CmaBlaxelStack` itself.
"""

from __future__ import annotations

import pulumi

from infra.components.stack import CmaBlaxelStack, CmaBlaxelStackArgs
from infra.config import ConfigError, read_stack_config


def main() -> CmaBlaxelStack:
    try:
        config = read_stack_config()
    except ConfigError as exc:
        # The message names every bad key and what it allows; a traceback would only bury it.
        raise pulumi.RunError(str(exc)) from None
    stack = CmaBlaxelStack("cma", CmaBlaxelStackArgs.from_config(config))
    for name, value in stack.outputs.items():
        pulumi.export(name, value)
    return stack
