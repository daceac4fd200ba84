"""Webhook answer latency at a fixed offered load, for valid signed and for forged deliveries.

Open loop: request i is sent at start + i/rate whatever the earlier ones are doing, so a slow
answer cannot slow the offered load down. The deliveries name sessions that do not exist, so
the orchestrator's dispatch finds no queued work in its environment and starts no worker. The
load is `bench.load`, in a process of its own (`start_load`), here and in the scheduling part:
sent from the bench's own process, its queue showed in its latencies (measured: forged
deliveries at 0.5-3 s p50 after the dispatch part had run in that process, 3 ms otherwise).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

from bench.stats import Row, percentile
from emulator.server import EmulatorServer
from tests.orchestrator_app.conftest import make_signer, new_signing_secret, run_started
from tests.orchestrator_app.emulated import ROOT, make_stack

Delivery = tuple[bytes, dict[str, str]]


def rss_kib(pid: int) -> int:
    """Resident set size of a process, in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def deliveries(secret: str, count: int) -> list[Delivery]:
    """`count` run-started deliveries signed with `secret`, each with its own id and session."""
    sign = make_signer(secret)
    return [sign(run_started("sesn_bench" + secrets.token_hex(8))) for _ in range(count)]


def start_load(url: str, secret: str, rate: float, seconds: float) -> subprocess.Popen[str]:
    """`bench.load` in its own process: run-started deliveries signed with `secret` (unknown
    sessions, so no worker) at `rate` for `seconds`; the secret goes on its stdin, never on a
    command line."""
    load = subprocess.Popen(
        [sys.executable, "-m", "bench.load", url, f"{rate:g}", f"{seconds:g}"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert load.stdin is not None
    load.stdin.write(secret + "\n")
    load.stdin.flush()  # left open: communicate() closes it
    return load


def load_answers(
    load: subprocess.Popen[str], timeout: float
) -> tuple[list[float], dict[int, int]] | None:
    """The load's answer latencies (s) and a count per status code, or None (the load killed)
    when it has not finished within `timeout`."""
    try:
        out, _ = load.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        load.kill()
        load.wait()
        return None
    if load.returncode != 0:
        raise RuntimeError(f"bench.load exited {load.returncode}")
    data = json.loads(out)
    return data["latencies"], {int(k): v for k, v in data["statuses"].items()}


def rows_for(kind: str, latencies: list[float], statuses: dict[int, int], ok: int) -> list[Row]:
    group = f"webhook {kind}"
    return [
        Row(group, "answer p50", percentile(latencies, 50), "s"),
        Row(group, "answer p99", percentile(latencies, 99), "s"),
        Row(group, f"answers other than {ok}", len(latencies) - statuses.get(ok, 0), expect="= 0"),
    ]


def run(
    server: EmulatorServer, worker_image: str, tmp: Path, rate: float, seconds: float
) -> list[Row]:
    stack = make_stack(server, worker_image, tmp, "bench-webhooks")
    secret = new_signing_secret()
    try:
        orchestrator = stack.orchestrator(webhook=False, ORCH_WEBHOOK_SIGNING_SECRET=secret)
        assert orchestrator.process is not None
        pid = orchestrator.process.pid
        workers_before = len(stack.worker_starts())
        rss_before = rss_kib(pid)
        url = orchestrator.url + "/webhook"
        # Forged: signed with a secret the orchestrator does not hold.
        answers = [
            load_answers(start_load(url, signed_with, rate, seconds), seconds + 60)
            for signed_with in (secret, new_signing_secret())
        ]
        rss_after = rss_kib(pid)
        workers = len(stack.worker_starts()) - workers_before
    finally:
        stack.close()
        stack.client.close()
    load = f"{rate:g} req/s for {seconds:g} s"
    unfinished: tuple[list[float], dict[int, int]] = ([], {0: int(rate * seconds)})
    (valid_lat, valid_status), (forged_lat, forged_status) = (a or unfinished for a in answers)
    return [
        *rows_for(f"valid ({load})", valid_lat, valid_status, 200),
        *rows_for(f"forged ({load})", forged_lat, forged_status, 401),
        Row("webhook load", "orchestrator RSS before", round(rss_before / 1024, 1), "MiB"),
        Row("webhook load", "orchestrator RSS after", round(rss_after / 1024, 1), "MiB"),
        Row("webhook load", "workers started by the load", workers, expect="= 0"),
    ]
