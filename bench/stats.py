"""Pure helpers: percentiles, the result rows and the printed table."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile of `values` (None when there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Row:
    """One figure of the run: what, its value, its unit, and what it must be (if anything)."""

    group: str
    metric: str
    value: float | int | str | None
    unit: str = ""
    # "= 0" (a requirement: the exit code fails without it), "≤ 1.5x" / "≤ 10 ms" (a target,
    # in the row's unit); empty when the figure is informative only.
    expect: str = ""

    @property
    def required(self) -> bool:
        """Whether a miss fails the run (counts that must be exact), not only a target."""
        return self.expect.startswith("=")

    @property
    def ok(self) -> bool | None:
        """Whether the figure meets `expect` (None when nothing is expected of it)."""
        if not self.expect:
            return None
        op, bound = parse_expect(self.expect, self.unit)
        if not isinstance(self.value, int | float):
            return False  # no figure (n/a) meets a requirement or a target
        return self.value == bound if op == "=" else self.value <= bound


_EXPECT = re.compile(r"^(=|≤|<=)\s*([0-9]+(?:\.[0-9]+)?)\s*(\S*)$")


def parse_expect(expect: str, unit: str) -> tuple[str, float]:
    """("=" or "≤", bound) of an expect such as "= 0" or "≤ 1.5x"; its unit must be the row's."""
    match = _EXPECT.match(expect.strip())
    if not match:
        raise ValueError(f"expect {expect!r}: not '= N' or '≤ N[unit]'")
    op, bound, suffix = match.groups()
    if suffix and suffix != unit:
        raise ValueError(f"expect {expect!r}: unit {suffix!r} is not the row's {unit!r}")
    return ("=" if op == "=" else "≤"), float(bound)


def verdict(row: Row) -> str:
    """The table's last column: the expectation and whether it is met."""
    if row.ok is None:
        return ""
    if row.ok:
        return f"{row.expect} ok"
    return f"{row.expect} {'FAILED' if row.required else 'missed'}"


def fmt(value: float | int | str | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def render_table(rows: Sequence[Row]) -> str:
    """A plain-text table, one row per figure, with a check mark where a value is required."""
    header = ("group", "metric", "value", "unit", "expect")
    lines = [
        (
            r.group,
            r.metric,
            fmt(r.value),
            r.unit,
            verdict(r),
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=True)]
    out = []
    for i, line in enumerate([header, *lines]):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def as_json(rows: Sequence[Row], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "meta": meta,
        "rows": [{**asdict(r), "ok": r.ok, "required": r.required} for r in rows],
    }
