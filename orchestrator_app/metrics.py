"""The orchestrator's Prometheus metrics, in a registry of its own per app instance.

Counters and the latency histogram move where things happen (a one-line hook at each place:
`metrics.drains.inc()`); the gauges (queue depth, sessions in flight, workers by state) are set
from a snapshot just before each scrape, so they are never stale. Not the library's global
registry: two apps in one process (tests) must not share or collide.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WORKER_STATES = ("starting", "running", "ending")
# From a queued work item to its worker process started: sandbox warm-up dominates (seconds).
ANSWER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    """Every metric of one orchestrator app; `render()` is the `/metrics` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.webhook_deliveries = Counter(
            "cma_orchestrator_webhook_deliveries",
            "Webhook deliveries answered, by outcome and HTTP status.",
            ["outcome", "status"],
            registry=r,
        )
        # Time spent answering a delivery inside the app (from the route being called to its
        # answer): set against the sender's measured latency, it tells the orchestrator's own
        # share from the network's and the machine's.
        self.webhook_answer_seconds = Histogram(
            "cma_orchestrator_webhook_answer_seconds",
            "Time the app took to answer a webhook delivery, by HTTP status.",
            ["status"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.drains = Counter(
            "cma_orchestrator_drains", "Drains of the work queue run.", registry=r
        )
        self.failures = Counter(
            "cma_orchestrator_failures", "Dispatch failures, by reason.", ["reason"], registry=r
        )
        self.dispatch_latency = Histogram(
            "cma_orchestrator_dispatch_latency_seconds",
            "From a work item's creation to its worker process started.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sandboxes_deleted = Counter(
            "cma_orchestrator_worker_sandboxes_deleted", "Worker sandboxes deleted.", registry=r
        )
        self.queue_depth = Gauge(
            "cma_orchestrator_queue_depth", "Work items waiting to be picked up.", registry=r
        )
        self.queue_pending = Gauge(
            "cma_orchestrator_queue_pending", "Work items polled but not acknowledged.", registry=r
        )
        self.sessions_in_flight = Gauge(
            "cma_orchestrator_sessions_in_flight",
            "Sessions with a dispatch or end task in flight right now.",
            registry=r,
        )
        self.workers = Gauge(
            "cma_orchestrator_workers", "Worker sandboxes tracked, by state.", ["state"], registry=r
        )
        for state in WORKER_STATES:
            self.workers.labels(state).set(0)

    def observe_dispatch(self, work_created_at: str, now: float | None = None) -> None:
        """A worker started for an item created at `work_created_at` (RFC 3339)."""
        created = datetime.fromisoformat(work_created_at.replace("Z", "+00:00")).timestamp()
        # Clocks of two machines: never a negative latency.
        self.dispatch_latency.observe(max(0.0, (time.time() if now is None else now) - created))

    def set_gauges(
        self, in_flight: int, workers_by_state: Mapping[str, int], queue: Mapping[str, object]
    ) -> None:
        """The point-in-time values, from a status snapshot (queue may be an error: left as is)."""
        self.sessions_in_flight.set(in_flight)
        for state in WORKER_STATES:
            self.workers.labels(state).set(workers_by_state.get(state, 0))
        depth, pending = queue.get("depth"), queue.get("pending")
        if isinstance(depth, int) and isinstance(pending, int):
            self.queue_depth.set(depth)
            self.queue_pending.set(pending)

    def totals(self) -> dict[str, dict[str, float]]:
        """Counter totals by label (e.g. {"failures": {"sandbox_not_ready": 1.0}}), for /status."""
        out: dict[str, dict[str, float]] = {}
        for family in self.registry.collect():
            if family.type not in ("counter", "histogram"):
                continue
            name = family.name.removeprefix("cma_orchestrator_")
            for sample in family.samples:
                if sample.name.endswith(("_created", "_bucket")):
                    continue
                key = ",".join(sample.labels.values()) or sample.name.rsplit("_", 1)[-1]
                out.setdefault(name, {})[key] = sample.value
        return out

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
