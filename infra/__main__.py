"""The Pulumi program: read the config, build the stack, export its outputs."""

import sys
from pathlib import Path

# The engine runs this file with infra/ as the program directory; the packages it imports
# (infra, worker, orchestrator_app) live at the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from infra.components.stack import CmaBlaxelStack, CmaBlaxelStackArgs
from infra.config import read_stack_config

stack = CmaBlaxelStack("cma", CmaBlaxelStackArgs.from_config(read_stack_config()))
for name, value in stack.outputs.items():
    pulumi.export(name, value)
