"""`/metrics`, `/status` and `python -m infra.status` around a real orchestrator process (emulator).

The counters must move because a session was served: a webhook accepted, drains run, a worker
started (one dispatch-latency observation); `/status` lists that session's worker sandbox, and
so does the status command, read from the platform with the stack's outputs. And mid-rotation
of the signing secret, with both secrets held, no delivery of either endpoint is refused.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from orchestrator_app.workers import worker_sandbox_name
from tests.orchestrator_app.emulated import (
    ROOT,
    Orchestrator,
    Stack,
    free_loopback_port,
    wait_for,
)
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
    # Each answer's own time is observed too, by status.
    answered = value(after, "cma_orchestrator_webhook_answer_seconds_count", status="200")
    assert answered >= value(
        after, "cma_orchestrator_webhook_deliveries_total", outcome="accepted", status="200"
    )
    assert value(after, "cma_orchestrator_dispatch_latency_seconds_count") == 1
    latency = value(after, "cma_orchestrator_dispatch_latency_seconds_sum")
    assert 0 <= latency < 60


def test_status_lists_the_sessions_worker_sandbox_and_the_queue(stack: Stack) -> None:
    orchestrator = stack.orchestrator(ORCH_STATUS_TOKEN=TOKEN)
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


def run_status_command(stack: Stack, outputs: dict[str, Any], *flags: str) -> str:
    config = stack.server.config
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "BL_"))},
        "ANTHROPIC_API_KEY": config.anthropic_api_key,
        "BL_API_KEY": config.blaxel_api_key,
        "BL_WORKSPACE": config.blaxel_workspace,
    }
    done = subprocess.run(
        [sys.executable, "-m", "infra.status", *flags],
        input=json.dumps(outputs),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_status_command_prints_the_stacks_workers_after_a_session(stack: Stack) -> None:
    orchestrator = stack.orchestrator(ORCH_STATUS_TOKEN=TOKEN)
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo status")
    wait_for(lambda: tool_results(stack, session_id), "the tool result in the session")
    config = stack.server.config
    outputs = {
        "environment_id": stack.environment_id,
        "agent_id": stack.agent_id,
        "agent_version": 1,
        "anthropic_base_url": config.anthropic_base_url,
        "blaxel_base_url": config.blaxel_base_url,
        "orchestrator_url": orchestrator.url,
        "status_token": TOKEN,
    }

    report = json.loads(run_status_command(stack, outputs, "--json"))
    sandbox = worker_sandbox_name(session_id)
    assert [(w["sandbox"], w["session_id"]) for w in report["workers"]] == [(sandbox, session_id)]
    assert report["workers"][0]["state"] == "DEPLOYED"
    assert report["environment"]["id"] == stack.environment_id
    assert report["agent"]["version"] == 1 and report["agent"]["drifted"] is False
    assert report["queue"]["depth"] == 0
    assert report["orchestrator"]["environment_id"] == stack.environment_id

    table = run_status_command(stack, outputs)
    [row] = [line for line in table.splitlines() if sandbox in line and "DEPLOYED" in line]
    assert session_id in row
    # One run-started per turn step of the session (how many is the emulator's to say).
    assert re.search(r"^  webhook_deliveries: accepted,200=[1-9]", table, re.MULTILINE)


def test_mid_rotation_deliveries_of_the_old_and_the_new_endpoint_are_all_accepted(
    stack: Stack,
) -> None:
    # README's rotation, step 4: the old and the new Console webhook both deliver to the URL,
    # and the orchestrator holds the new secret and the previous one.
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}/webhook"
    old_endpoint, old_secret = stack.register_webhook(url)
    new_endpoint, new_secret = stack.register_webhook(url)
    env = stack.orchestrator_env(
        port,
        ORCH_WEBHOOK_SIGNING_SECRET=new_secret,
        ORCH_WEBHOOK_SIGNING_SECRET_PREVIOUS=old_secret,
        ORCH_STATUS_TOKEN=TOKEN,
    )
    orchestrator = Orchestrator(port, env, stack.tmp / "orchestrator-rotation.log")
    stack.orchestrators.append(orchestrator)
    orchestrator.start()

    sessions = [stack.create_session() for _ in range(3)]
    for session_id in sessions:
        stack.say(session_id, "bash: echo rotated")
    for session_id in sessions:
        wait_for(functools.partial(tool_results, stack, session_id), f"the result of {session_id}")

    def all_answered() -> list[Any] | None:
        found = [d for d in stack.server.emulator.anthropic.deliveries if d.url == url]
        return found if found and all(d.delivered for d in found) else None

    deliveries = wait_for(all_answered, "every delivery answered")

    assert {d.endpoint_id for d in deliveries} == {old_endpoint, new_endpoint}
    # Every answer the orchestrator gave was 200: none refused (a transport hiccup under load,
    # e.g. a read timeout, is retried by the sender and is no refusal).
    answers = [a for d in deliveries for a in d.attempts if a.isdigit()]
    assert answers and set(answers) == {"200"}, [d.attempts for d in deliveries]
    assert all(d.attempts[-1] == "200" for d in deliveries)
    for session_id in sessions:
        assert len(stack.worker_starts(session_id)) == 1
    found = samples(orchestrator)
    assert (
        value(found, "cma_orchestrator_webhook_deliveries_total", outcome="rejected", status="401")
        == 0
    )
