"""The table's expectations: exact requirements fail the run, targets are only marked."""

import pytest

from bench.stats import Row, as_json, parse_expect, render_table, verdict


def test_an_exact_requirement_is_met_only_by_its_value() -> None:
    assert Row("g", "duplicates", 0, expect="= 0").ok is True
    assert Row("g", "duplicates", 1, expect="= 0").ok is False


def test_a_target_bound_is_met_at_or_below_it_in_the_rows_unit() -> None:
    assert Row("g", "p95 / floor", 1.2, "x", expect="≤ 1.2x").ok is True
    assert Row("g", "p95 / floor", 1.21, "x", expect="≤ 1.2x").ok is False
    assert Row("g", "p99", 9.5, "ms", expect="≤ 10 ms").ok is True
    assert Row("g", "p99", 31.0, "ms", expect="<= 10ms").ok is False


def test_a_missing_figure_meets_no_expectation() -> None:
    assert Row("g", "p95 / floor", None, "x", expect="≤ 1.2x").ok is False
    assert Row("g", "informative", None).ok is None


def test_an_expect_in_another_unit_or_shape_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"'≤ 10 ms'.*'s'"):
        parse_expect("≤ 10 ms", "s")
    with pytest.raises(ValueError, match=r"'about 3'"):
        parse_expect("about 3", "")


def test_only_missed_requirements_fail_targets_are_marked_missed() -> None:
    assert verdict(Row("g", "dups", 2, expect="= 0")) == "= 0 FAILED"
    assert verdict(Row("g", "ratio", 2.0, "x", expect="≤ 1.5x")) == "≤ 1.5x missed"
    assert verdict(Row("g", "ratio", 1.0, "x", expect="≤ 1.5x")) == "≤ 1.5x ok"
    assert Row("g", "dups", 2, expect="= 0").required
    assert not Row("g", "ratio", 2.0, "x", expect="≤ 1.5x").required


def test_table_and_json_carry_the_expect_column() -> None:
    rows = [Row("g", "ratio", 2.0, "x", expect="≤ 1.5x"), Row("g", "dups", 0, expect="= 0")]
    table = render_table(rows)
    assert "expect" in table.splitlines()[0]
    assert "≤ 1.5x missed" in table and "= 0 ok" in table
    data = as_json(rows, {"command": "x"})
    assert [(r["expect"], r["ok"], r["required"]) for r in data["rows"]] == [
        ("≤ 1.5x", False, False),
        ("= 0", True, True),
    ]
