"""The scheduling mode's model floor and its stand-in worker's pure parts."""

import base64
import json
from pathlib import Path

import pytest

from bench.scheduling import (
    answer_buckets,
    bucket_quantile,
    default_concurrency,
    model_floor,
    ratio,
)
from bench.standin_worker.__main__ import sessions_token
from bench.stats import percentile
from orchestrator_app.settings import Settings


def test_the_floor_is_sessions_over_concurrency_times_creation() -> None:
    assert model_floor(200, 8, 2.0) == 50.0
    assert model_floor(1, 8, 2.0) == 0.25


def test_the_floor_refuses_an_impossible_setup() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        model_floor(200, 0, 2.0)


def test_the_default_concurrency_is_the_orchestrators_own() -> None:
    assert default_concurrency() == Settings().max_concurrent_starts


def test_a_ratio_without_a_figure_is_none() -> None:
    assert ratio(None, 50.0) is None
    assert ratio(60.0, 0.0) is None
    assert ratio(60.0, 50.0) == 1.2


def test_the_standin_reads_the_sessions_token_from_a_work_secret_with_or_without_padding() -> None:
    secret = base64.urlsafe_b64encode(json.dumps({"sessions_token": "tok_abc"}).encode()).decode()
    assert sessions_token(secret) == "tok_abc"
    assert sessions_token(secret.rstrip("=")) == "tok_abc"


def test_the_load_writes_one_closing_post_with_the_bodys_length() -> None:
    from bench.load import request_bytes

    raw = request_bytes("127.0.0.1", 8000, "/webhook", b'{"a": 1}', {"webhook-id": "msg_1"})
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /webhook HTTP/1.1\r\n")
    assert b"Content-Length: 8" in head and b"Connection: close" in head
    assert b"webhook-id: msg_1" in head and body == b'{"a": 1}'


def test_the_load_reads_the_status_of_an_answer_and_zero_of_garbage() -> None:
    from bench.load import status_of

    assert status_of(b"HTTP/1.1 200 OK\r\n") == 200
    assert status_of(b"HTTP/1.1 401 Unauthorized\r\n") == 401
    assert status_of(b"") == 0
    assert status_of(b"garbage here\r\n") == 0


def raw(latencies: list[float], duplicates: int = 0, unserved: int = 0) -> dict[str, object]:
    return {
        "latencies": latencies,
        "duplicates": duplicates,
        "unserved": unserved,
        "webhook_latencies": [0.002, 0.004],
        "webhook_idle_latencies": [0.001, 0.003],
        "webhook_bad": 0,
        "rss_peak_kib": 51200,
    }


def test_the_table_shows_each_latency_figure_for_both_modes_side_by_side() -> None:
    from bench.scheduling import rows_of

    rows = rows_of(
        {"webhook": raw([1.0, 2.0, 3.0]), "poll": raw([0.5, 1.5], unserved=1)}, 4, 2.0, 2, 10, 1
    )
    metrics = [r.metric for r in rows]
    p50 = metrics.index("work queued (run-started sent)→worker started p50 [webhook]")
    assert metrics[p50 + 1] == "work queued (run-started sent)→worker started p50 [poll]"
    by_metric = {r.metric: r for r in rows}
    assert by_metric["work queued (run-started sent)→worker started p95 [poll]"].value == 1.5
    assert by_metric["work queued (run-started sent)→worker started p95 [webhook]"].value == 3.0
    assert by_metric["sessions not served [poll]"].ok is False
    assert by_metric["sessions not served [webhook]"].ok is True
    # Webhook answers are measured only where there is an endpoint; memory in both modes.
    assert {"answer p99", "RSS peak [webhook]", "RSS peak [poll]"} <= set(metrics)
    idle = by_metric["answer p99 with nothing to dispatch (same load, before the burst)"]
    idle_p99 = percentile([0.001, 0.003], 99)
    assert idle_p99 is not None and idle.value == pytest.approx(idle_p99 * 1000)
    poll_only = [r.metric for r in rows_of({"poll": raw([0.5])}, 4, 2.0, 2, 10, 1)]
    assert not [m for m in poll_only if m.startswith("answer")]
    assert "RSS peak [poll]" in poll_only


def test_a_small_poll_mode_burst_produces_the_poll_rows(tmp_path: Path) -> None:
    # The webhook mode's burst is the one the bench had before; the pure test above pins that
    # both modes' rows sit side by side. Only the poll burst runs here (it is the new one).
    from bench.scheduling import run
    from emulator.config import fast_timing
    from emulator.server import EmulatorServer

    with EmulatorServer(timing=fast_timing(), data_dir=tmp_path / "emulator") as server:
        rows = run(server, tmp_path, 2, 0.05, 2, rate=5, seconds=1, modes=("poll",))
    by_metric = {r.metric: r for r in rows}
    p95 = by_metric["work queued (run-started sent)→worker started p95 [poll]"].value
    assert isinstance(p95, float) and p95 > 0
    assert by_metric["sessions not served [poll]"].value == 0
    assert by_metric["duplicate workers [poll]"].value == 0
    assert not [r for r in rows if "[webhook]" in r.metric]


def test_the_apps_answer_quantile_comes_from_the_buckets_counted_between_two_reads() -> None:
    def text(counts: dict[str, int]) -> str:
        return "\n".join(
            f'cma_orchestrator_webhook_answer_seconds_bucket{{le="{le}",status="200"}} {n}.0'
            for le, n in counts.items()
        )

    before = answer_buckets(text({"0.005": 10, "0.01": 10, "0.1": 10, "+Inf": 10}))
    # 100 answers between the reads: 98 under 5 ms, one more under 10 ms, the last under 0.1 s.
    after = answer_buckets(text({"0.005": 108, "0.01": 109, "0.1": 110, "+Inf": 110}))
    assert bucket_quantile(before, after, 0.99) == 0.01
    assert bucket_quantile(before, after, 0.5) == 0.005
    assert bucket_quantile(after, after, 0.99) is None  # nothing answered in between


def test_the_control_sets_the_answer_p99_against_an_orchestrator_with_nothing_to_dispatch() -> None:
    from bench.scheduling import rows_of

    control = {
        "webhook_control_latencies": [0.001, 0.002],
        "webhook_control_bad": 0,
        "webhook_control_unserved": 1,
    }
    rows = rows_of({"webhook": {**raw([1.0]), **control}}, 4, 2.0, 2, 10, 1)
    by_metric = {r.metric: r for r in rows}
    main, other = percentile([0.002, 0.004], 99), percentile([0.001, 0.002], 99)
    assert main is not None and other is not None
    assert by_metric["answer p99 / control's"].value == pytest.approx(main / other)
    # A control that did not serve its own burst is no control: the run says so.
    assert by_metric["control: answers other than 200, sessions not served"].ok is False
    assert "answer p99 / control's" not in {
        r.metric for r in rows_of({"webhook": raw([1.0])}, 4, 2.0, 2, 10, 1)
    }
