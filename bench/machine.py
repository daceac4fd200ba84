"""What the machine itself took from the processes during a measurement: CPU time stolen by the
hypervisor (Linux `/proc/stat`, the `steal` column), and the time runnable tasks waited for a
core (Linux PSI, `/proc/pressure/cpu`).

Why: these machines are virtual, and a stolen slice stalls every process at once, whatever it
runs. In one scheduling run the orchestrator's and the load's own watchdog threads were both
late by 15-360 ms at the same moments while neither process used a core, and the webhook
answers' p99 went from 14 ms to 2.9 s between two runs of the same code. The share of the
machine's CPU time stolen during a load is printed next to its answers, so that a p99 can be
read against it.

Steal stayed at 0.0-0.1 % in the runs since, while the answers' tails did not: in those tails the
load sent on schedule (5 ms apart) and the answers came back together, tens of ms late, with the
machine's cores busy and tasks queued for them. The kernel counts that queueing: PSI's `some`
line is the time in which at least one runnable task was not running for want of a CPU
(docs.kernel.org, accounting/psi.rst: "some ... total=" in microseconds). Its share of the load's
wall time is printed next to the steal.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

PROC_STAT = Path("/proc/stat")
CPU_PRESSURE = Path("/proc/pressure/cpu")
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


def stalled_us(pressure_text: str) -> int:
    """The `some` line's total of a /proc/pressure file: microseconds in which at least one task
    waited for the resource (pure)."""
    for line in pressure_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "some":
            for field in fields[1:]:
                key, _, value = field.partition("=")
                if key == "total":
                    return int(value)
    raise ValueError("no 'some ... total=' line in the pressure file")


class Reading(NamedTuple):
    """The machine's counters at one moment; a counter the kernel does not offer is None."""

    at: float  # time.monotonic(), s
    cpu: list[int] | None
    cpu_stalled_us: int | None


def read_machine() -> Reading:
    """The machine's counters now (no /proc/pressure on kernels built without PSI)."""
    try:
        stalled: int | None = stalled_us(CPU_PRESSURE.read_text())
    except (OSError, ValueError):
        stalled = None
    return Reading(time.monotonic(), read_cpu_times(), stalled)


def cpu_wait_share(before: Reading, after: Reading) -> float | None:
    """The share (0-1) of the wall time between two readings in which some runnable task waited
    for a CPU (pure)."""
    if before.cpu_stalled_us is None or after.cpu_stalled_us is None or after.at <= before.at:
        return None
    return (after.cpu_stalled_us - before.cpu_stalled_us) / 1e6 / (after.at - before.at)


def machine_shares(before: Reading, after: Reading) -> dict[str, float | None]:
    """What the machine took between two readings: `stolen` and `cpu_waited` shares (pure)."""
    return {
        "stolen": stolen_share(before.cpu, after.cpu),
        "cpu_waited": cpu_wait_share(before, after),
    }
