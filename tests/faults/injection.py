"""Fault injection by step: fail the n-th request of a kind, wherever it comes in a run.

`StepInjector` replaces the emulator's `FaultInjector` (the fault middleware asks whichever
injector `emulator.faults` holds); it records every request as a `Step` (method, path with
run-specific names folded, occurrence) so that a clean run lists the steps, and a later run
fails exactly one of them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from emulator.faults import FaultInjector, FaultRule
from emulator.server import EmulatorServer

# Ids and names that differ between runs or between the two images, folded to one token.
_FOLD = [
    (re.compile(r"\b(env|agent|sesn|work|wevt|whep)_[0-9A-Za-z]+"), r"{\1}"),
    (re.compile(r"cma-(worker|orchestrator)-image"), "{image}"),
    # The server's revision goes up at every restart; the steps of a restart stay the same.
    (re.compile(r"orchestrator-r\d+"), "orchestrator-r{n}"),
]


def fold(path: str) -> str:
    for pattern, replacement in _FOLD:
        path = pattern.sub(replacement, path)
    return path


@dataclass(frozen=True)
class Step:
    method: str
    path: str  # folded
    occurrence: int  # 1 for the first request of this method and folded path

    def __str__(self) -> str:
        return f"{self.method} {self.path} #{self.occurrence}"


class StepInjector(FaultInjector):
    """Records each request as a Step; fails the armed one once with `status`."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Step] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self.armed: Step | None = None
        self.status = 400
        self.fired = False

    def arm(self, step: Step | None, status: int = 400) -> None:
        with self._lock:
            self.seen, self._counts = [], Counter()
            self.armed, self.status, self.fired = step, status, False

    def take(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            key = (method.upper(), fold(path))
            self._counts[key] += 1
            step = Step(*key, self._counts[key])
            self.seen.append(step)
            if step == self.armed and not self.fired:
                self.fired = True
                self.injected += 1
                return FaultRule(method=method, path_pattern=".*", status=self.status, hits=1)
        return super().take(method, path)


def install(server: EmulatorServer) -> StepInjector:
    injector = StepInjector()
    server.emulator.faults = injector
    return injector
