"""`python -m bench`: every benchmark against the emulator on loopback; a table and JSON.

Figures are ratios and counts measured side by side in one run (the machines are noisy).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# The suite's guard: any connection to a non-loopback address raises, telemetry is off.
import tests.conftest  # noqa: F401
from bench import dispatch, pulumi_side, scheduling, webhooks
from bench.stats import Row, as_json, render_table
from emulator.config import Timing
from emulator.server import EmulatorServer
from tests.orchestrator_app.emulated import push_worker_image

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
# The largest burst that finishes in 1 to 2 minutes on 2 cores (each worker is a real process).
DEFAULT_SESSIONS = 100
# Scheduling mode: light stand-in workers, so the 200 fit the machine.
DEFAULT_SCHEDULING_SESSIONS = 200
PARTS = ("scheduling", "dispatch", "webhooks", "pulumi")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--sessions",
        type=int,
        default=DEFAULT_SESSIONS,
        help="sessions created at once for the end-to-end burst (default %(default)s)",
    )
    parser.add_argument(
        "--scheduling-sessions",
        type=int,
        default=DEFAULT_SCHEDULING_SESSIONS,
        help="sessions created at once in scheduling mode (default %(default)s)",
    )
    parser.add_argument(
        "--create-seconds",
        type=float,
        default=Timing().sandbox_deploy_s,
        help="scheduling mode: the emulator's sandbox creation time (default %(default)s s)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=scheduling.default_concurrency(),
        help="scheduling mode: the orchestrator's max_concurrent_starts (default %(default)s)",
    )
    parser.add_argument(
        "--dispatch-mode",
        choices=scheduling.MODES,
        action="append",
        help="scheduling mode: the orchestrator's dispatch modes to burst (repeatable; "
        "default both, side by side)",
    )
    parser.add_argument("--rate", type=float, default=200.0, help="webhook requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="webhook load duration")
    parser.add_argument("--previews", type=int, default=3, help="timed previews of each program")
    parser.add_argument(
        "--only",
        choices=PARTS,
        action="append",
        help="run only these benchmarks (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    return parser.parse_args(argv)


def orchestrator_benchmarks(args: argparse.Namespace, tmp: Path, wanted: set[str]) -> list[Row]:
    """Each part on an emulator of its own. Scheduling's runs its sandbox processes and its own
    threads niced (see `scheduling.SANDBOX_NICENESS`); in the dispatch part the real workers
    compete with the orchestrator for the CPU as they come (end to end)."""
    rows: list[Row] = []
    if "scheduling" in wanted:
        with EmulatorServer(
            data_dir=tmp / "scheduling",
            sandbox_niceness=scheduling.SANDBOX_NICENESS,
            server_niceness=scheduling.EMULATOR_NICENESS,
        ) as server:
            rows += scheduling.run(
                server,
                tmp,
                args.scheduling_sessions,
                args.create_seconds,
                args.concurrency,
                args.rate,
                args.seconds,
                tuple(args.dispatch_mode or scheduling.MODES),
            )
    if not wanted & {"dispatch", "webhooks"}:
        return rows
    if "dispatch" in wanted:
        with EmulatorServer(data_dir=tmp / "dispatch") as server:
            rows += dispatch.run(server, push_worker_image(server), tmp, sorted({1, args.sessions}))
    if "webhooks" in wanted:
        # An emulator of its own: nothing the dispatch part left (sessions, sandboxes, their
        # processes) is in the way of these figures.
        with EmulatorServer(data_dir=tmp / "webhooks") as server:
            rows += webhooks.run(server, push_worker_image(server), tmp, args.rate, args.seconds)
    return rows


def timed(name: str, run: Callable[[], list[Row]]) -> list[Row]:
    print(f"bench: {name}…", file=sys.stderr, flush=True)
    start = time.perf_counter()
    rows = run()
    print(f"bench: {name} took {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    wanted = set(args.only or PARTS)
    # force: importing the Blaxel SDK already set the root logger to INFO with its own handler
    # (`blaxel/core/common/logger.py`, `init_logger`), which then printed every request of the
    # Anthropic SDK's client (`httpx2`) above the table.
    logging.basicConfig(level=logging.WARNING, force=True)
    os.environ["DO_NOT_TRACK"] = "1"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="cma-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        if wanted & {"scheduling", "dispatch", "webhooks"}:
            rows += timed("orchestrator", lambda: orchestrator_benchmarks(args, tmp / "o", wanted))
        if "pulumi" in wanted:
            rows += timed("pulumi", lambda: pulumi_side.run(tmp / "p", args.previews))
    meta = {
        "command": "python -m bench " + " ".join(argv),
        "sessions": args.sessions,
        "scheduling_sessions": args.scheduling_sessions,
        "create_seconds": args.create_seconds,
        "concurrency": args.concurrency,
        "dispatch_modes": list(args.dispatch_mode or scheduling.MODES),
        "rate": args.rate,
        "seconds": args.seconds,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(render_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(as_json(rows, meta), indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0 if all(r.ok is not False for r in rows if r.required) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
