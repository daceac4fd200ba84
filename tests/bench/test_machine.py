"""The bench's reading of the machine's stolen CPU time (pure parts)."""

import pytest

from bench.machine import cpu_times, stolen_share

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
    }
    rows = {r.metric: r for r in rows_of({"webhook": raw}, 4, 2.0, 2, 10, 1)}
    stolen = next(r for m, r in rows.items() if m.startswith("CPU stolen"))
    assert stolen.value == "0.4 / 25.0 / n/a"
    assert stolen.metric.endswith("before the burst / during it / during the control")
