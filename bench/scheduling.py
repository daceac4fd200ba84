"""Scheduling mode: the orchestrator's dispatch of a burst, apart from the machine's CPU.

The emulator's sandbox creation takes a set time (its `sandbox_deploy_s` timing, set through
`POST /_emulator/timing`) and the worker image's `python -m worker` is a stdlib-only stand-in
(`bench/standin_worker`), so 200 workers starting cost the two cores next to nothing. With
`max_concurrent_starts` sandboxes made at a time, the last of N sessions cannot have its worker
before N / concurrency * creation time: the model floor the percentiles are set against.

The same burst runs once per dispatch mode (issue 18), each on its own environment and
orchestrator with the same sessions count and timing: `webhook` (run-started deliveries
trigger drains) and `poll` (no endpoint; the orchestrator long-polls its queue). Latency is
counted from the session's creation, when its work is queued and its run-started sent, so the
two modes' rows compare directly. During the webhook burst, valid signed webhooks arrive at a
fixed rate (open loop), and the same load runs once before it, with nothing to dispatch (what
the machine alone costs the answers); in both, the orchestrator's RSS is sampled: webhook
answers and memory under dispatch load. The emulator runs the stand-ins at
`SANDBOX_NICENESS` and its own threads at `EMULATOR_NICENESS`, so that neither takes the
orchestrator's CPU as they could not on the platform. Last, the control (`control_burst`): the
same burst again while the load goes to an orchestrator with nothing to dispatch, so that the
answers' p99 is set against what the machine leaves any process during such a burst.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.dispatch import release_workers, tally
from bench.machine import machine_shares, read_machine
from bench.stats import Row, percentile
from bench.webhooks import load_answers, rss_kib, start_load
from emulator.server import EmulatorServer
from orchestrator_app.settings import Settings
from tests.orchestrator_app.emulated import Stack, make_stack, push_worker_image

STANDIN_DIR = Path(__file__).resolve().parent / "standin_worker"
MODES = ("webhook", "poll")
# The emulator's sandbox processes (the 200 stand-ins) run at this niceness: on Blaxel each is
# in a sandbox of its own, and here their start-ups (8 interpreters every 2 s) took both cores
# from the orchestrator, the webhook answers' p99 following the run queue's spikes (measured:
# 31 ms at niceness 0, 10-13 ms at 19, same code).
SANDBOX_NICENESS = 19
# The emulator's own threads (both platforms' APIs, for 200 sandboxes and their processes) run
# at this niceness, for the same reason: they stand for Anthropic's and Blaxel's machines.
EMULATOR_NICENESS = 10


def default_concurrency() -> int:
    """The orchestrator's own default `max_concurrent_starts` (its settings)."""
    return int(Settings.model_fields["max_concurrent_starts"].default)


def model_floor(sessions: int, concurrency: int, creation_s: float) -> float:
    """The earliest the last of `sessions` can be served: sessions / concurrency * creation."""
    if sessions < 1 or concurrency < 1 or creation_s < 0:
        raise ValueError("sessions and concurrency must be >= 1, creation time >= 0")
    return sessions / concurrency * creation_s


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


ANSWER_BUCKET = re.compile(
    r'^cma_orchestrator_webhook_answer_seconds_bucket\{le="([^"]+)",status="200"\} (\S+)$'
)


def answer_buckets(metrics_text: str) -> dict[float, float]:
    """The app's own answer-time histogram for 200s, cumulative count by bound (pure)."""
    found: dict[float, float] = {}
    for line in metrics_text.splitlines():
        if match := ANSWER_BUCKET.match(line):
            found[float(match.group(1))] = float(match.group(2))
    return found


def bucket_quantile(
    before: dict[float, float], after: dict[float, float], q: float
) -> float | None:
    """The smallest bucket bound under which a fraction `q` of the answers counted between two
    reads fell: the quantile, rounded up to the histogram's resolution (pure)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    for bound, count in zip(bounds, counts, strict=True):
        if count >= q * counts[-1]:
            return bound
    return None


def read_answer_buckets(url: str, token: str) -> dict[float, float]:
    response = httpx.get(
        url + "/metrics", headers={"Authorization": f"Bearer {token}"}, trust_env=False
    )
    response.raise_for_status()
    return answer_buckets(response.text)


def push_standin_image(server: EmulatorServer, hold_s: float) -> str:
    """The bench worker image: only the stand-in at /app/worker, pushed with the SDK."""
    from blaxel.core.image import ImageInstance

    image = (
        ImageInstance.from_registry("python:3.13-slim-bookworm")
        .workdir("/app")
        .add_local_dir(str(STANDIN_DIR), "/app/worker", context_name="worker")
        .env(PYTHONUNBUFFERED="1", CMA_BENCH_WORKER_HOLD=f"{hold_s:g}")
    )
    return push_worker_image(server, image)


def set_timing(server: EmulatorServer, **values: float) -> dict[str, float]:
    """Change the emulator's timing; returns the durations now in force."""
    url = server.config.public_base_url + "/_emulator/timing"
    response = httpx.post(url, json=values, trust_env=False)
    response.raise_for_status()
    return dict(response.json())


class RssSampler:
    """The peak resident set of a process, sampled every `every` seconds in a thread."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every = pid, every
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
            except (OSError, RuntimeError):
                return  # the process is gone
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def load_result(
    load: subprocess.Popen[str], timeout: float, expected: int
) -> tuple[list[float], int]:
    """The load's answer latencies and how many answers were not 200 (all of them, with no
    latency, when the load has not finished within `timeout`)."""
    answers = load_answers(load, timeout)
    if answers is None:
        return [], expected
    latencies, statuses = answers
    return latencies, len(latencies) - statuses.get(200, 0)


def idle_load(
    load: tuple[str, str], rate: float, seconds: float
) -> tuple[list[float], dict[str, float | None]]:
    """The load with nothing to dispatch: its answer latencies and what the machine took
    meanwhile (`machine_shares`)."""
    before = read_machine()
    latencies, _ = load_result(start_load(*load, rate, seconds), seconds + 60, int(rate * seconds))
    return latencies, machine_shares(before, read_machine())


def burst(
    stack: Stack, n: int, timeout: float, load: tuple[str, str, float, float] | None
) -> dict[str, Any]:
    """Create `n` sessions at once, offer the webhook load (if any) while they dispatch, wait
    for every worker (or `timeout`); raw figures."""
    orchestrator = stack.orchestrators[-1]
    assert orchestrator.process is not None
    latencies: list[float] = []
    bad = 0
    with ThreadPoolExecutor(max_workers=min(n, 32)) as pool:
        creating = [pool.submit(stack.create_session) for _ in range(n)]
        # The load starts once the first session exists, so it overlaps the dispatch.
        creating[0].result()
        token = orchestrator.env.get("ORCH_STATUS_TOKEN", "")
        buckets_before = read_answer_buckets(orchestrator.url, token) if load else {}
        with RssSampler(orchestrator.process.pid) as rss:
            machine_before = read_machine()
            loader = start_load(*load) if load is not None else None
            sessions = [c.result() for c in creating]
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if all(stack.worker_starts(s) for s in sessions):
                    break
                time.sleep(0.2)
            if loader is not None and load is not None:
                _, _, rate, seconds = load
                latencies, bad = load_result(loader, seconds + 60, int(rate * seconds))
            machine = machine_shares(machine_before, read_machine())
            buckets_after = read_answer_buckets(orchestrator.url, token) if load else {}
            time.sleep(1.0)  # a duplicate start would land just after the first
    served, duplicates, unserved = tally(stack, sessions)
    release_workers(stack, sessions)
    return {
        "latencies": served,
        "duplicates": duplicates,
        "unserved": unserved,
        "webhook_latencies": latencies,
        "webhook_bad": bad,
        "webhook_app_p99": bucket_quantile(buckets_before, buckets_after, 0.99),
        **machine,  # stolen, cpu_waited
        "rss_peak_kib": rss.peak_kib,
    }


def default_janitor_interval() -> str:
    """The orchestrator's own janitor interval (60 s), which the test stack shortens to 0.5 s:
    a pass every 0.5 s over 200 sandboxes is the suite's speed-up, not a deployment's load."""
    return f"{Settings.model_fields['janitor_interval_seconds'].default:g}"


def burst_in_mode(
    server: EmulatorServer,
    image: str,
    tmp: Path,
    mode: str,
    sessions: int,
    concurrency: int,
    timeout: float,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """One burst on a fresh environment and orchestrator dispatching in `mode`."""
    stack = make_stack(server, image, tmp, f"bench-scheduling-{mode}-{sessions}")
    try:
        if mode == "poll":
            stack.orchestrator(
                webhook=False,
                ORCH_DISPATCH_MODE="poll",
                ORCH_MAX_CONCURRENT_STARTS=str(concurrency),
                ORCH_JANITOR_INTERVAL_SECONDS=default_janitor_interval(),
            )
            return burst(stack, sessions, timeout, None)
        orchestrator = stack.orchestrator(
            ORCH_MAX_CONCURRENT_STARTS=str(concurrency),
            ORCH_JANITOR_INTERVAL_SECONDS=default_janitor_interval(),
            ORCH_STATUS_TOKEN=secrets.token_urlsafe(24),  # to read its /metrics
        )
        load = (orchestrator.url + "/webhook", orchestrator.env["ORCH_WEBHOOK_SIGNING_SECRET"])
        # The same load first with nothing to dispatch: what the machine alone costs the answers.
        idle, idle_machine = idle_load(load, rate, seconds)
        raw = burst(stack, sessions, timeout, (*load, rate, seconds))
    finally:
        stack.close()
        stack.client.close()
    control = control_burst(server, image, tmp, sessions, concurrency, timeout, rate, seconds)
    before = {f"idle_{key}": share for key, share in idle_machine.items()}
    return {**raw, "webhook_idle_latencies": idle, **before, **control}


def control_burst(
    server: EmulatorServer,
    image: str,
    tmp: Path,
    sessions: int,
    concurrency: int,
    timeout: float,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """The control: the same burst again, on a fresh environment and orchestrator, while the
    same load goes to another orchestrator with nothing to dispatch (its environment's queue is
    empty). Its answers meet the same machine (the burst's API calls, sandboxes and processes)
    without dispatch in their own process: what is left of the p99 that dispatch does not
    cost."""
    stack = make_stack(server, image, tmp, f"bench-scheduling-dispatching-{sessions}")
    idle = make_stack(server, image, tmp, f"bench-scheduling-control-{sessions}")
    try:
        starts, janitor = str(concurrency), default_janitor_interval()
        listener = idle.orchestrator(
            ORCH_MAX_CONCURRENT_STARTS=starts, ORCH_JANITOR_INTERVAL_SECONDS=janitor
        )
        stack.orchestrator(
            ORCH_MAX_CONCURRENT_STARTS=starts,
            ORCH_JANITOR_INTERVAL_SECONDS=janitor,
            ORCH_STATUS_TOKEN=secrets.token_urlsafe(24),  # burst() reads its /metrics
        )
        load = (listener.url + "/webhook", listener.env["ORCH_WEBHOOK_SIGNING_SECRET"])
        raw = burst(stack, sessions, timeout, (*load, rate, seconds))
    finally:
        for each in (stack, idle):
            each.close()
            each.client.close()
    return {
        "webhook_control_latencies": raw["webhook_latencies"],
        "webhook_control_bad": raw["webhook_bad"],
        "webhook_control_unserved": raw["unserved"],
        "control_stolen": raw["stolen"],
        "control_cpu_waited": raw["cpu_waited"],
    }


def run(
    server: EmulatorServer,
    tmp: Path,
    sessions: int,
    creation_s: float,
    concurrency: int,
    rate: float,
    seconds: float,
    modes: tuple[str, ...] = MODES,
) -> list[Row]:
    floor = model_floor(sessions, concurrency, creation_s)
    timeout = 60 + 3 * floor
    image = push_standin_image(server, hold_s=timeout + 30)
    before = set_timing(server, sandbox_deploy_s=creation_s)
    raws: dict[str, dict[str, Any]] = {}
    try:
        for mode in modes:
            raws[mode] = burst_in_mode(
                server, image, tmp, mode, sessions, concurrency, timeout, rate, seconds
            )
    finally:
        set_timing(server, sandbox_deploy_s=before["sandbox_deploy_s"])
    return rows_of(raws, sessions, creation_s, concurrency, rate, seconds)


def rows_of(
    raws: dict[str, dict[str, Any]],
    sessions: int,
    creation_s: float,
    concurrency: int,
    rate: float,
    seconds: float,
) -> list[Row]:
    """The table's rows: each latency figure once per mode, side by side (pure)."""
    floor = model_floor(sessions, concurrency, creation_s)
    group = f"scheduling N={sessions} (create {creation_s:g} s, {concurrency} at a time)"
    p50 = {m: percentile(r["latencies"], 50) for m, r in raws.items()}
    p95 = {m: percentile(r["latencies"], 95) for m, r in raws.items()}
    queued = "work queued (run-started sent)→worker started"

    def per_mode(m: str) -> list[Row]:
        raw = raws[m]
        return [
            Row(group, f"{queued} p50 [{m}]", p50[m], "s"),
            Row(group, f"{queued} p95 [{m}]", p95[m], "s"),
            Row(group, f"p95 / model floor [{m}]", ratio(p95[m], floor), "x", "≤ 1.2x"),
            Row(group, f"p50 / p95 [{m}]", ratio(p50[m], p95[m]), "x", "≤ 0.6x"),
            Row(group, f"duplicate workers [{m}]", raw["duplicates"], expect="= 0"),
            Row(group, f"sessions not served [{m}]", raw["unserved"], expect="= 0"),
        ]

    # Figure by figure, the modes next to each other.
    by_mode = [per_mode(m) for m in raws]
    rows = [Row(group, "model floor: sessions / concurrency * creation", floor, "s")]
    rows += [row for same_figure in zip(*by_mode, strict=True) for row in same_figure]
    if "webhook" in raws:
        raw = raws["webhook"]
        under = f"webhook valid ({rate:g} req/s for {seconds:g} s) while N={sessions} dispatch"
        idle = raw.get("webhook_idle_latencies", [])
        rows += [
            Row(under, "answer p50", _ms(percentile(raw["webhook_latencies"], 50)), "ms"),
            Row(
                under, "answer p99", _ms(percentile(raw["webhook_latencies"], 99)), "ms", "≤ 10 ms"
            ),
            Row(under, "answers other than 200", raw["webhook_bad"], expect="= 0"),
            Row(
                under,
                "answer p99 with nothing to dispatch (same load, before the burst)",
                _ms(percentile(idle, 99)),
                "ms",
            ),
            Row(
                under,
                "answer p99 inside the app (its histogram's bucket bound)",
                _ms(raw.get("webhook_app_p99")),
                "ms",
            ),
        ]
        loads = "before the burst / during it" + (
            " / during the control" if "control_stolen" in raw else ""
        )
        rows += [
            Row(
                under,
                f"CPU stolen by the hypervisor during the load: {loads}",
                _shares(raw, "stolen"),
                "%",
            ),
            Row(
                under,
                f"time some task waited for a CPU (PSI) during the load: {loads}",
                _shares(raw, "cpu_waited"),
                "%",
            ),
        ]
        if "webhook_control_latencies" in raw:
            control = raw["webhook_control_latencies"]
            rows += [
                Row(
                    under,
                    "control: answer p99 of an orchestrator with nothing to dispatch, "
                    "during the same burst again",
                    _ms(percentile(control, 99)),
                    "ms",
                ),
                Row(
                    under,
                    "answer p99 / control's",
                    ratio(percentile(raw["webhook_latencies"], 99), percentile(control, 99)),
                    "x",
                ),
                Row(
                    under,
                    "control: answers other than 200, sessions not served",
                    raw["webhook_control_bad"] + raw["webhook_control_unserved"],
                    expect="= 0",
                ),
            ]
    rows += [
        Row(
            f"orchestrator while N={sessions} in flight",
            f"RSS peak [{mode}]",
            round(raw["rss_peak_kib"] / 1024, 1),
            "MiB",
            expect="≤ 150 MiB",
        )
        for mode, raw in raws.items()
    ]
    return rows


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _shares(raw: dict[str, Any], key: str) -> str:
    """`key`'s share during the idle load, the burst's and the control's, as "a / b / c" %."""
    keys = (f"idle_{key}", key, f"control_{key}")
    return " / ".join(_percent(raw.get(k)) for k in keys if k in raw)


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.1f}"
