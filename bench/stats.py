"""Pure helpers: percentiles, the result rows and the printed table."""

from __future__ import annotations

import math
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
    expect: str = ""  # e.g. "= 0"; empty when the figure is informative only

    @property
    def ok(self) -> bool | None:
        """Whether the figure meets `expect` (None when nothing is expected of it)."""
        if not self.expect:
            return None
        return self.value == float(self.expect.removeprefix("= "))


def fmt(value: float | int | str | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def render_table(rows: Sequence[Row]) -> str:
    """A plain-text table, one row per figure, with a check mark where a value is required."""
    header = ("group", "metric", "value", "unit", "required")
    lines = [
        (
            r.group,
            r.metric,
            fmt(r.value),
            r.unit,
            "" if r.ok is None else f"{r.expect} {'ok' if r.ok else 'FAILED'}",
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
    return {"meta": meta, "rows": [{**asdict(r), "ok": r.ok} for r in rows]}
