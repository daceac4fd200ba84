"""Fault injection shared by both platforms: make the next N matching requests fail or stall.

Tests and the fault suite add rules through `POST /_emulator/faults` (or `FaultInjector.add`
in-process); each rule matches a method and a path regex (and, with `sandbox`, only requests
about that one sandbox) and, `times` times, optionally after `delay_s`:
- `action="fail"` answers `status` with the platform's error shape (rendered by the caller);
- `action="drop_answer"` lets the request through (its state change happens) and then closes
  the connection instead of answering, as a lost response does.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

ACTIONS = ("fail", "drop_answer")


@dataclass
class FaultRule:
    """Fail the next `times` requests whose method and path match."""

    method: str  # "*" for any
    path_pattern: str  # re.search against the request path
    status: int = 500
    times: int = 1
    delay_s: float = 0.0
    action: str = "fail"
    sandbox: str = ""  # only requests about this sandbox (control plane, its API, previews)
    hits: int = 0
    _regex: re.Pattern[str] = field(init=False, repr=False)
    _sandbox_regex: re.Pattern[str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {self.action!r}")
        self._regex = re.compile(self.path_pattern)
        self._sandbox_regex = (
            re.compile(rf"/(sandboxes|previews)/{re.escape(self.sandbox)}(/|$)")
            if self.sandbox
            else None
        )

    def matches(self, method: str, path: str) -> bool:
        return (
            self.hits < self.times
            and self.method in ("*", method.upper())
            and self._regex.search(path) is not None
            and (self._sandbox_regex is None or self._sandbox_regex.search(path) is not None)
        )


class FaultInjector:
    """The active fault rules; thread-safe because tests add rules from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self.injected = 0  # faults answered so far (for the fault suite's report)

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first rule that matches this request, counted as used; None if none does."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    self.injected += 1
                    return rule
        return None

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()
            self.injected = 0
