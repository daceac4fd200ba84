"""The bench's reading of the machine: stolen CPU time and time spent waiting for a CPU (pure
parts)."""

import pytest

from bench.machine import Reading, cpu_times, cpu_wait_share, stalled_us, stolen_share

# The full line first, so that a reader taking the first total would be caught.
PRESSURE = """full avg10=0.00 avg60=0.00 avg300=0.00 total=2001146
some avg10=12.50 avg60=3.10 avg300=0.80 total=75819016
"""
STAT = """cpu  3090146 82568 256141 11512561 4306 0 19440 226220 0 0
cpu0 1545073 41284 128070 5756280 2153 0 9720 113110 0 0
intr 123
"""


def test_the_aggregate_cpu_line_is_read_and_not_a_single_cores() -> None:
    assert cpu_times(STAT) == [3090146, 82568, 256141, 11512561, 4306, 0, 19440, 226220, 0, 0]


def test_a_stat_without_an_aggregate_line_is_refused() -> None:
    with pytest.raises(ValueError, match="cpu line"):
        cpu_times("cpu0 1 2 3 4 5 6 7 8\n")


def test_the_stolen_share_is_steal_over_all_time_spent_between_the_reads() -> None:
    before = [100, 0, 50, 800, 0, 0, 0, 50, 7, 7]
    # 100 user, 50 system, 250 idle, 100 stolen; guest columns (already in user) left out.
    after = [200, 0, 100, 1050, 0, 0, 0, 150, 99, 99]
    assert stolen_share(before, after) == pytest.approx(100 / 500)


def test_no_share_without_two_reads_or_with_no_time_between_them() -> None:
    times = [1, 2, 3, 4, 5, 6, 7, 8]
    assert stolen_share(None, times) is None
    assert stolen_share(times, None) is None
    assert stolen_share(times, times) is None


def test_the_scheduling_table_prints_the_stolen_shares_next_to_the_answers() -> None:
    from bench.scheduling import rows_of

    raw = {
        "latencies": [1.0],
        "duplicates": 0,
        "unserved": 0,
        "webhook_latencies": [0.002],
        "webhook_bad": 0,
        "webhook_app_p99": 0.005,
        "rss_peak_kib": 1024,
        "webhook_idle_latencies": [0.001],
        "idle_stolen": 0.004,
        "stolen": 0.25,
        "control_stolen": None,
        "idle_cpu_waited": 0.01,
        "cpu_waited": 0.5,
        "control_cpu_waited": 0.125,
    }
    rows = {r.metric: r for r in rows_of({"webhook": raw}, 4, 2.0, 2, 10, 1)}
    stolen = next(r for m, r in rows.items() if m.startswith("CPU stolen"))
    assert stolen.value == "0.4 / 25.0 / n/a"
    assert stolen.metric.endswith("before the burst / during it / during the control")
    waited = next(r for m, r in rows.items() if m.startswith("time some task waited"))
    assert waited.value == "1.0 / 50.0 / 12.5"


def test_the_cpu_stall_total_is_the_some_lines_not_the_full_lines() -> None:
    assert stalled_us(PRESSURE) == 75819016


def test_a_pressure_file_without_a_some_total_is_refused() -> None:
    with pytest.raises(ValueError, match="some"):
        stalled_us("full avg10=0.00 avg60=0.00 avg300=0.00 total=5\n")


def test_the_cpu_wait_share_is_stalled_time_over_the_wall_time_between_the_readings() -> None:
    before = Reading(at=10.0, cpu=None, cpu_stalled_us=1_000_000)
    after = Reading(at=12.0, cpu=None, cpu_stalled_us=1_500_000)
    assert cpu_wait_share(before, after) == pytest.approx(0.25)


def test_no_cpu_wait_share_without_pressure_files_or_time_between_readings() -> None:
    with_psi = Reading(at=1.0, cpu=None, cpu_stalled_us=5)
    assert cpu_wait_share(Reading(0.0, None, None), with_psi) is None
    assert cpu_wait_share(with_psi, with_psi) is None
