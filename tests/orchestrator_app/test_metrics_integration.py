"""`/metrics` and `/status` of a real orchestrator process while it serves a session (emulator).

The counters must move because a session was served: a webhook accepted, drains run, a worker
started (one dispatch-latency observation), and `/status` lists that session's worker sandbox.
"""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from orchestrator_app.workers import worker_sandbox_name
from tests.orchestrator_app.emulated import Orchestrator, Stack, wait_for
from tests.orchestrator_app.test_integration import (  # the module's emulator and image
    emulator_server,
    stack,
    tool_results,
    worker_image_ref,
)

__all__ = ["emulator_server", "stack", "worker_image_ref"]

TOKEN = "metrics-integration-token"


def authorized_get(orchestrator: Orchestrator, path: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return httpx.get(orchestrator.url + path, headers=headers, trust_env=False, timeout=30)


def samples(orchestrator: Orchestrator) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = authorized_get(orchestrator, "/metrics")
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_counters_move_when_a_session_is_served(stack: Stack) -> None:
    orchestrator = stack.orchestrator(ORCH_STATUS_TOKEN=TOKEN)
    assert orchestrator.get("/metrics").status_code == 401
    before = samples(orchestrator)
    assert value(before, "cma_orchestrator_dispatch_latency_seconds_count") == 0

    session_id = stack.create_session()
    stack.say(session_id, "bash: echo measured")
    wait_for(lambda: tool_results(stack, session_id), "the tool result in the session")
    after = wait_for(
        lambda: (
            found
            if value(
                found := samples(orchestrator), "cma_orchestrator_dispatch_latency_seconds_count"
            )
            else None
        ),
        "a dispatch latency observation",
    )

    assert (
        value(after, "cma_orchestrator_webhook_deliveries_total", outcome="accepted", status="200")
        >= 1
    )
    assert value(after, "cma_orchestrator_drains_total") >= 1
    assert value(after, "cma_orchestrator_dispatch_latency_seconds_count") == 1
    latency = value(after, "cma_orchestrator_dispatch_latency_seconds_sum")
    assert 0 <= latency < 60


def test_status_lists_the_sessions_worker_sandbox_and_the_queue(stack: Stack) -> None:
    orchestrator = stack.orchestrator(ORCH_STATUS_TOKEN=TOKEN, ORCH_WORKER_IDLE_DELETE_SECONDS="60")
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo listed")
    wait_for(lambda: tool_results(stack, session_id), "the tool result in the session")

    status = authorized_get(orchestrator, "/status").json()
    assert status["environment_id"] == stack.environment_id
    assert status["queue"]["depth"] == 0
    [worker] = [w for w in status["workers"] if w["session_id"] == session_id]
    assert worker["sandbox"] == worker_sandbox_name(session_id)
    assert worker["state"] in ("running", "idle")
    assert status["counters"]["webhook_deliveries"]["accepted,200"] >= 1
