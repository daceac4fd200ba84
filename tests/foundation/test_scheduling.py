"""The suite's order under xdist: slowest first from the recorded durations (tests/scheduling.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from tests import scheduling


@dataclass
class FakeItem:
    nodeid: str
    markers: set[str] = field(default_factory=set)

    def get_closest_marker(self, name: str) -> Any:
        return name if name in self.markers else None


def order(items: list[FakeItem], durations: dict[str, float]) -> list[str]:
    ordered = scheduling.slowest_first(cast(list[pytest.Item], items), durations)
    return [item.nodeid for item in ordered]


def test_slow_tests_come_first_longest_first_and_the_rest_keep_collection_order() -> None:
    items = [FakeItem(n) for n in ("a1", "a2", "b1", "b2", "c1")]
    durations = {"a2": 30.0, "b2": 120.0, "c1": 1.5, "a1": 0.2}
    assert order(items, durations) == ["b2", "a2", "a1", "b1", "c1"]


def test_an_unrecorded_engine_test_is_scheduled_as_slow_and_an_unrecorded_other_test_is_not() -> (
    None
):
    items = [FakeItem("fast"), FakeItem("new_up", {"engine"}), FakeItem("known")]
    assert order(items, {"known": 90.0}) == ["known", "new_up", "fast"]


def test_equally_slow_tests_keep_their_collection_order() -> None:
    items = [FakeItem(n) for n in ("x", "y", "z")]
    assert order(items, {"x": 5.0, "y": 5.0, "z": 5.0}) == ["x", "y", "z"]


def test_recording_keeps_entries_of_tests_that_did_not_run_and_drops_tests_now_fast() -> None:
    old = {"not_run": 40.0, "now_fast": 30.0, "slower": 5.0}
    measured = {"now_fast": 0.3, "slower": 12.34, "new": 3.0}
    merged = scheduling.merged_durations(old, measured, ran=measured)
    assert merged == {"new": 3.0, "not_run": 40.0, "slower": 12.3}


def test_recorded_durations_round_trip_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "durations.json"
    scheduling.write_durations({"b": 2.0, "a": 61.5}, path)
    assert scheduling.load_durations(path) == {"a": 61.5, "b": 2.0}
    assert scheduling.load_durations(tmp_path / "missing.json") == {}


def test_the_committed_durations_name_only_tests_that_exist() -> None:
    """A renamed test would keep a stale entry and lose its place at the front."""
    root = Path(__file__).parents[2]
    for nodeid in scheduling.load_durations():
        path = root / nodeid.split("::")[0]
        assert path.exists(), f"{nodeid}: no such file"
        assert "[" not in nodeid or nodeid.endswith("]"), f"{nodeid}: a cut parameter id"
        name = nodeid.split("::")[-1].split("[")[0]
        assert f"def {name}(" in path.read_text(), f"{nodeid}: no such test"
