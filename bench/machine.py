"""What the machine itself took from the processes during a measurement: CPU time stolen by the
hypervisor (Linux `/proc/stat`, the `steal` column).

Why: these machines are virtual, and a stolen slice stalls every process at once, whatever it
runs. In one scheduling run the orchestrator's and the load's own watchdog threads were both
late by 15-360 ms at the same moments while neither process used a core, and the webhook
answers' p99 went from 14 ms to 2.9 s between two runs of the same code. The share of the
machine's CPU time stolen during a load is printed next to its answers, so that a p99 can be
read against it.
"""

from __future__ import annotations

from pathlib import Path

PROC_STAT = Path("/proc/stat")
# /proc/stat's `cpu` line: user nice system idle iowait irq softirq steal guest guest_nice.
STEAL_COLUMN = 7


def cpu_times(stat_text: str) -> list[int]:
    """The machine-wide `cpu` line's counters, in clock ticks (pure)."""
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            return [int(value) for value in fields[1:]]
    raise ValueError("no aggregate cpu line in /proc/stat")


def read_cpu_times() -> list[int] | None:
    """The machine's CPU counters now; None where there is no /proc/stat."""
    try:
        return cpu_times(PROC_STAT.read_text())
    except (OSError, ValueError):
        return None


def stolen_share(before: list[int] | None, after: list[int] | None) -> float | None:
    """The share (0-1) of the machine's CPU time stolen between two reads (pure). Guest time is
    already counted in user time, so the first eight columns are the total."""
    if before is None or after is None or min(len(before), len(after)) <= STEAL_COLUMN:
        return None
    first = slice(STEAL_COLUMN + 1)
    spent = [b - a for a, b in zip(before[first], after[first], strict=True)]
    total = sum(spent)
    return spent[STEAL_COLUMN] / total if total > 0 else None
