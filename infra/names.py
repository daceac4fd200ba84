"""Names and ownership: one home for the sandbox-name rule, stack-scoped default names, and
the mark that says which project and stack own a platform object.

Pure and dependency-free, so the emulator (and anything else) can import the same rule.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

# Blaxel sandbox (and image) names, as the SDK's own rule says (blaxel/core/sandbox/names.py,
# `is_valid_sandbox_name`): lowercase letters and digits, single hyphens between them, at most
# 49 characters. Copied rather than imported so a preview never loads the SDK;
# tests/emulator/test_name_rule_contract.py pins that the two agree.
SANDBOX_NAME_MAX = 49
SANDBOX_NAME_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
SANDBOX_NAME_RULE = (
    "lowercase letters and digits, single hyphens between them, at most 49 characters"
)

# The ownership mark, as Blaxel labels and as Anthropic metadata (the same two keys).
PROJECT_KEY = "cma-project"
STACK_KEY = "cma-stack"


def sandbox_name_problem(name: str) -> str | None:
    """Why `name` cannot name a sandbox or image, or None (pure)."""
    valid = len(name) <= SANDBOX_NAME_MAX and SANDBOX_NAME_PATTERN.fullmatch(name)
    return None if valid else SANDBOX_NAME_RULE


def scoped_name(project: str, stack: str, kind: str) -> str:
    """`<project>-<stack>-<kind>` as a valid sandbox name; a hash keeps long ones unique."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{project}-{stack}".lower()).strip("-") or "stack"
    name = f"{slug}-{kind}"
    if len(name) <= SANDBOX_NAME_MAX:
        return name
    tag = hashlib.sha256(f"{project}/{stack}".encode()).hexdigest()[:6]
    head = slug[: SANDBOX_NAME_MAX - len(kind) - len(tag) - 2].rstrip("-")
    return f"{head}-{tag}-{kind}"


def suffixed_name(name: str, suffix: str) -> str:
    """`<name>-<suffix>` as a valid sandbox (or volume) name; a hash keeps long ones unique."""
    full = f"{name}-{suffix}"
    if len(full) <= SANDBOX_NAME_MAX:
        return full
    tag = hashlib.sha256(name.encode()).hexdigest()[:6]
    head = name[: SANDBOX_NAME_MAX - len(suffix) - len(tag) - 2].rstrip("-")
    return f"{head}-{tag}-{suffix}"


@dataclass(frozen=True)
class Owner:
    """The project and stack a platform object belongs to."""

    project: str
    stack: str

    def mark(self) -> dict[str, str]:
        """The labels / metadata entries that say so."""
        return {PROJECT_KEY: self.project, STACK_KEY: self.stack}

    def __str__(self) -> str:
        return f"stack {self.project}/{self.stack}"


def owner_of(marks: Mapping[str, object] | None) -> Owner | None:
    """Who marked an object as theirs, if anyone (pure)."""
    marks = marks or {}
    project, stack = marks.get(PROJECT_KEY), marks.get(STACK_KEY)
    if isinstance(project, str) and isinstance(stack, str):
        return Owner(project, stack)
    return None


class NotOurs(Exception):
    """An object of the wanted unique name exists and belongs to another stack or nobody."""


def refuse_foreign(kind: str, name: str, found: Owner | None, ours: Owner, resolve: str) -> NotOurs:
    """The error for taking over an object we do not own: names it, its owner and the fix."""
    owner = str(found) if found else "no stack (it carries no ownership mark)"
    return NotOurs(
        f"{kind} {name!r} already exists and belongs to {owner}, not {ours}; nothing was "
        f"changed. {resolve}"
    )
