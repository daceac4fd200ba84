"""The Pulumi program: read the config, build the stack, export its outputs."""

import sys
from pathlib import Path

# The engine runs this file with infra/ as the program directory; the packages it imports
# (infra, worker, orchestrator_app) live at the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from infra.components.stack import CmaBlaxelStack, CmaBlaxelStackArgs
from infra.config import ConfigError, read_stack_config

try:
    config = read_stack_config()
except ConfigError as exc:
    # The message names every bad key and what it allows; a traceback would only bury it.
    raise pulumi.RunError(str(exc)) from None

stack = CmaBlaxelStack("cma", CmaBlaxelStackArgs.from_config(config))
for name, value in stack.outputs.items():
    pulumi.export(name, value)
