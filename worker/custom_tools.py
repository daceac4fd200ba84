"""Custom tools in the worker: the user's module of SDK tool functions, served beside the toolset.

The stack bakes the module named by `cma:customToolsModule` into the image and sets
`CMA_CUSTOM_TOOLS` to where it lies, relative to the working dir the worker runs in. It is a
`.py` file, or a package directory for tools split over several files (which import each
other relatively: `from .helpers import x`). Its tools are the module-level objects the SDK's
decorators made (`@beta_tool` / `@beta_async_tool`): their name, description and input schema are what the
stack declares on the agents, and the `EnvironmentWorker` answers an `agent.custom_tool_use`
of that name by running the function (its session runner looks tools up by name and answers
with a `user.custom_tool_result`, anthropic `lib/tools/_beta_session_runner.py`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from anthropic.lib.tools import BetaAsyncFunctionTool, BetaFunctionTool

if TYPE_CHECKING:
    from anthropic.lib.tools.agent_toolset import AgentToolContext

CUSTOM_TOOLS_ENV = "CMA_CUSTOM_TOOLS"
MODULE_NAME = "cma_custom_tools"
# The agent toolset's tool names: a custom tool of one of them would shadow the built-in.
BUILTIN_NAMES = frozenset(
    ("bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search")
)
FunctionTool = BetaFunctionTool[Any] | BetaAsyncFunctionTool[Any]


class CustomToolsError(Exception):
    """The custom-tools module cannot be loaded, or its tools are not usable."""


def load_module(path: Path) -> ModuleType:
    """Import the file or package at `path` under a fixed name (its own imports work)."""
    init = path / "__init__.py" if path.is_dir() else path
    if not init.is_file() or init.suffix != ".py":
        raise CustomToolsError(f"{path}: not a Python file or a package with __init__.py")
    locations = [str(path)] if path.is_dir() else None
    spec = importlib.util.spec_from_file_location(
        MODULE_NAME, init, submodule_search_locations=locations
    )
    if spec is None or spec.loader is None:
        raise CustomToolsError(f"{path}: cannot be imported")
    # A module loaded earlier under the same name (another path) must not lend its submodules.
    for name in [n for n in sys.modules if n == MODULE_NAME or n.startswith(MODULE_NAME + ".")]:
        del sys.modules[name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module  # pydantic resolves the functions' annotations through it
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: report what it raised, with the file
        sys.modules.pop(MODULE_NAME, None)
        raise CustomToolsError(f"{path}: importing it raised {exc!r}") from exc
    return module


def tools_of(module: ModuleType) -> list[FunctionTool]:
    """The module's tool objects in definition order; names unique and not built-in ones."""
    tools: list[FunctionTool] = []
    for value in vars(module).values():
        if isinstance(value, BetaFunctionTool | BetaAsyncFunctionTool) and value not in tools:
            tools.append(value)
    names = [tool.name for tool in tools]
    if not tools:
        raise CustomToolsError(
            f"{module.__file__}: no tools (decorate functions with anthropic's @beta_tool)"
        )
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise CustomToolsError(f"{module.__file__}: tool names used twice: {duplicates}")
    if shadowing := sorted(set(names) & BUILTIN_NAMES):
        raise CustomToolsError(f"{module.__file__}: names of built-in tools: {shadowing}")
    return tools


def load_tools(path: Path) -> list[FunctionTool]:
    """The tools of the module at `path`."""
    return tools_of(load_module(path))


def with_toolset(custom: Sequence[FunctionTool]) -> Callable[[AgentToolContext], list[Any]]:
    """A per-session tools factory: the agent toolset bound to the session, then `custom`."""
    from anthropic.lib.tools.agent_toolset import beta_agent_toolset_20260401

    def tools(env: AgentToolContext) -> list[Any]:
        return [*beta_agent_toolset_20260401(env), *custom]

    return tools


def worker_tools(
    environ: Mapping[str, str] | os._Environ[str],
) -> Callable[[AgentToolContext], list[Any]]:
    """The worker's tools: the toolset, plus the custom tools when `CMA_CUSTOM_TOOLS` names them."""
    where = environ.get(CUSTOM_TOOLS_ENV)
    return with_toolset(load_tools(Path(where)) if where else [])
