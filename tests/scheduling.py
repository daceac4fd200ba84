"""Slowest tests first, so the run does not end waiting on one worker's long test.

pytest-xdist hands tests out in collection order, and the suite's long tests (whole `up`s on
the real engine, 1-3 minutes each) sit in the middle and the end of that order: a worker that
draws one late keeps running it while the others are idle. Each worker reorders its collection
identically (the controller requires the same collection on every worker): the tests the
recorded durations in `tests/durations.json` call slow come first, longest first; the rest keep
pytest's order, which keeps each module's fixtures together. `scripts/test` also makes xdist
hand tests out one at a time (`--maxschedchunk 1`): its default first hands each worker a
quarter of its share in one consecutive block, which would give one worker every slow test.

`pytest --record-durations` rewrites the file from the run (each test's setup + call +
teardown), merged over the entries of tests it did not run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

DURATIONS_FILE = Path(__file__).with_name("durations.json")

# A test this long (seconds) or longer is scheduled ahead of the rest.
SLOW = 2.0
# What a test not in the file is expected to take: an engine test runs `up` at least once.
UNKNOWN_ENGINE_TEST = 60.0
UNKNOWN_TEST = 0.0
# Tests shorter than this are left out of the file: their order does not matter.
RECORDED_MIN = 1.0


def load_durations(path: Path = DURATIONS_FILE) -> dict[str, float]:
    if not path.exists():
        return {}
    return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}


def expected_seconds(item: pytest.Item, durations: Mapping[str, float]) -> float:
    if item.nodeid in durations:
        return durations[item.nodeid]
    return UNKNOWN_ENGINE_TEST if item.get_closest_marker("engine") else UNKNOWN_TEST


def slowest_first(items: list[pytest.Item], durations: Mapping[str, float]) -> list[pytest.Item]:
    """The slow items, longest first (ties in collection order), then the rest in order."""
    expected = {item.nodeid: expected_seconds(item, durations) for item in items}
    slow = [item for item in items if expected[item.nodeid] >= SLOW]
    slow.sort(key=lambda item: -expected[item.nodeid])  # stable: ties keep collection order
    rest = [item for item in items if expected[item.nodeid] < SLOW]
    return slow + rest


def merged_durations(
    old: Mapping[str, float], measured: Mapping[str, float], ran: Iterable[str]
) -> dict[str, float]:
    """The measured durations of the tests that ran, the old entries of those that did not."""
    ran = set(ran)
    merged = {k: v for k, v in old.items() if k not in ran}
    merged.update({k: round(v, 1) for k, v in measured.items() if v >= RECORDED_MIN})
    return dict(sorted(merged.items()))


def write_durations(durations: Mapping[str, float], path: Path = DURATIONS_FILE) -> None:
    path.write_text(json.dumps(durations, indent=1, sort_keys=True) + "\n")
