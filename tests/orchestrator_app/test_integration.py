"""The orchestrator end to end: `python -m orchestrator_app` against the emulator.

A session created with the SDK fires a signed webhook; the orchestrator makes the session's
worker sandbox, claims the work, starts `python -m worker` (the pushed worker image) in it; the
worker serves the scripted agent's tool call through the SDK's EnvironmentWorker; once the
session's work ended, the orchestrator deletes the sandbox.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator.config import fast_timing
from emulator.faults import FaultRule
from emulator.server import EmulatorServer
from orchestrator_app.workers import worker_sandbox_name, worker_volume_name
from tests.orchestrator_app.conftest import make_signer, new_signing_secret, run_started
from tests.orchestrator_app.emulated import (
    Orchestrator,
    Stack,
    free_loopback_port,
    iter_known_secrets,
    make_stack,
    push_worker_image,
    sandbox_process_output,
    wait_for,
)

CONTRACT_ENV = {
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_ENVIRONMENT_ID",
    "ANTHROPIC_SESSION_ID",
    "ANTHROPIC_WORK_ID",
    "ANTHROPIC_WORK_SECRET",
}


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    server = EmulatorServer(timing=fast_timing()).start()
    server.emulator.anthropic.webhook_retry_delays = (0.05, 0.1, 0.2)
    try:
        yield server
    finally:
        pids = server.emulator.blaxel.running_pids()
        server.stop()
        survivors = kill_survivors(pids)
        assert not survivors, f"sandbox processes outlived the emulator: {survivors}"


@pytest.fixture(scope="module")
def worker_image_ref(emulator_server: EmulatorServer) -> str:
    return push_worker_image(emulator_server)


@pytest.fixture
def stack(
    emulator_server: EmulatorServer,
    worker_image_ref: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Stack]:
    """A fresh environment; every orchestrator it started is stopped, and its logs scanned."""
    made = make_stack(emulator_server, worker_image_ref, tmp_path, request.node.name[:40])
    try:
        yield made
    finally:
        made.close()
        made.client.close()
        emulator_server.emulator.faults.reset()
    logs = "\n".join(o.logs() for o in made.orchestrators) + sandbox_process_output(emulator_server)
    leaked = [s[:12] + "…" for s in iter_known_secrets(made) if s and s in logs]
    assert not leaked, f"secrets found in logs: {leaked}"


def kill_survivors(pids: list[int]) -> list[int]:
    """SIGKILL the processes of `pids` still alive (returned), so none outlives the tests."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        alive.append(pid)
    return alive


def tool_results(stack: Stack, session_id: str) -> list[str]:
    texts: list[str] = []
    for event in stack.events(session_id):
        if event.type == "user.tool_result":
            texts.extend(block.text for block in event.content if block.type == "text")
    return texts


def deleted(stack: Stack, session_id: str) -> bool:
    name = worker_sandbox_name(session_id)
    return any(d.name == name for d in stack.server.emulator.blaxel.deleted_sandboxes)


def test_a_session_is_served_by_one_worker_in_its_own_sandbox(stack: Stack) -> None:
    # The emulator is the module's: the earlier tests of this worker started workers too.
    earlier = len(stack.worker_starts())
    orchestrator = stack.orchestrator()
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo hello from the worker")

    results = wait_for(lambda: tool_results(stack, session_id), "the tool result in the session")
    assert results == ["hello from the worker"]
    starts = stack.worker_starts(session_id)
    assert len(starts) == 1, [(s.name, s.at) for s in starts]
    assert starts[0].working_dir == "/app"
    assert len(stack.worker_starts()) == earlier + 1
    assert orchestrator.logged("worker started", session_id=session_id)


def test_the_worker_process_gets_the_work_secret_and_no_other_credential(stack: Stack) -> None:
    stack.orchestrator()
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo checked")
    start = wait_for(lambda: stack.worker_starts(session_id), "the worker start")[0]
    names = set(start.env_names)
    assert names >= CONTRACT_ENV
    assert not {"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_ENVIRONMENT_KEY"} & names
    assert not [n for n in names if n.startswith(("ORCH_", "BL_"))]
    sandbox = stack.server.emulator.blaxel.get_sandbox(start.sandbox)
    spec_text = json.dumps(sandbox.spec)
    assert stack.environment_key not in spec_text
    assert stack.server.config.blaxel_api_key not in spec_text
    wait_for(lambda: tool_results(stack, session_id), "the tool result")


def test_the_next_turn_finds_the_files_of_the_last_one_in_the_same_sandbox(stack: Stack) -> None:
    orchestrator = stack.orchestrator()
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo kept-between-turns > note.txt && echo written")
    assert wait_for(lambda: tool_results(stack, session_id), "turn 1's result") == ["written"]
    wait_for(lambda: orchestrator.logged("work claimed", session_id=session_id), "the claim")
    blaxel = stack.server.emulator.blaxel
    name = worker_sandbox_name(session_id)
    first = blaxel.get_sandbox(name)
    # The worker exits once the session idles (max idle 1 s)...
    wait_for(lambda: not worker_running(stack, session_id), "the worker's idle exit")
    # ...and the sandbox outlives the old reap delay (60 s idle exit + 600 s) by far.
    blaxel.advance_clock(3600)
    stack.say(session_id, "bash: cat note.txt")
    results = wait_for(lambda: tool_results(stack, session_id)[1:], "turn 2's result")
    assert results == ["kept-between-turns"]
    assert blaxel.get_sandbox(name) is first
    assert len(stack.worker_starts(session_id)) == 2
    assert not deleted(stack, session_id)


def worker_running(stack: Stack, session_id: str) -> bool:
    sandbox = stack.server.emulator.blaxel.get_sandbox(worker_sandbox_name(session_id))
    return any(
        p.name.startswith("worker-") and p.status == "running" for p in sandbox.processes.list()
    )


def test_archiving_a_session_deletes_its_sandbox(stack: Stack) -> None:
    orchestrator = stack.orchestrator()
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo before the end")
    wait_for(lambda: tool_results(stack, session_id), "the tool result")
    stack.client.beta.sessions.archive(session_id)
    wait_for(lambda: deleted(stack, session_id), "the sandbox's deletion", timeout=20)
    # The emulator records the deletion before its answer reaches the orchestrator, which logs
    # after the answer: under load the line comes a moment later.
    wait_for(
        lambda: orchestrator.logged(
            "worker sandbox deleted", session_id=session_id, reason="session.status_terminated"
        ),
        "the logged deletion and its reason",
    )


def test_deleting_a_session_deletes_its_sandbox_and_volume(stack: Stack) -> None:
    stack.orchestrator(ORCH_WORKER_VOLUME_SIZE_MB="64")
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo kept")
    wait_for(lambda: tool_results(stack, session_id), "the tool result")
    volume = worker_volume_name(session_id)
    assert volume in stack.server.emulator.blaxel.volumes
    stack.client.beta.sessions.delete(session_id)
    wait_for(lambda: deleted(stack, session_id), "the sandbox's deletion", timeout=20)
    wait_for(
        lambda: volume not in stack.server.emulator.blaxel.volumes, "the volume's deletion", 20
    )


def test_an_active_session_keeps_its_worker_until_the_hard_cap(stack: Stack) -> None:
    stack.orchestrator(
        ORCH_WORKER_IDLE_TTL="5m", ORCH_WORKER_MAX_AGE="10m", ORCH_WORKER_MAX_IDLE_SECONDS="3600"
    )
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo active")
    wait_for(lambda: tool_results(stack, session_id), "the tool result")
    assert worker_running(stack, session_id)
    blaxel = stack.server.emulator.blaxel
    # Past the idle lifetime: the running (keepAlive) worker keeps the sandbox in use.
    blaxel.advance_clock(6 * 60)
    assert not deleted(stack, session_id)
    assert worker_running(stack, session_id)
    # Past the hard cap: Blaxel deletes it.
    blaxel.advance_clock(5 * 60)
    wait_for(lambda: deleted(stack, session_id), "the sandbox's deletion at the cap")


def test_twenty_duplicate_deliveries_start_one_worker(stack: Stack) -> None:
    orchestrator = stack.orchestrator()
    endpoint_id = stack.webhook_ids[-1]
    session_id = stack.create_session()

    def redeliver(_: int) -> None:
        from tests.orchestrator_app.emulated import console

        console(stack.server, "POST", f"/webhooks/{endpoint_id}/redeliver", json={})

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(redeliver, range(20)))
    wait_for(lambda: stack.worker_starts(session_id), "the worker start")
    deliveries = stack.server.emulator.anthropic.deliveries_for(session_id)
    wait_for(lambda: all(d.delivered for d in deliveries), "all 21 deliveries")
    assert len(deliveries) == 21
    stack.say(session_id, "bash: echo once")
    wait_for(lambda: tool_results(stack, session_id), "the tool result")
    assert len(stack.worker_starts(session_id)) == 1
    assert len([c for c in stack.claims(session_id)]) == 1
    assert orchestrator.logged("duplicate delivery ignored", session_id=session_id)


def test_a_session_of_another_environment_claims_nothing(stack: Stack) -> None:
    orchestrator = stack.orchestrator()
    other = stack.client.beta.environments.create(name="other-env", config={"type": "self_hosted"})
    session_id = stack.create_session(environment_id=other.id)
    wait_for(
        lambda: orchestrator.logged(
            "no claimable work for this session in this environment", session_id=session_id
        ),
        "the orchestrator to look for the session's work",
    )
    assert stack.claims(session_id) == []
    assert stack.worker_starts(session_id) == []
    work = stack.server.emulator.anthropic.live_work_for(session_id)
    assert [(w.environment_id, w.state, w.polled_at) for w in work] == [(other.id, "queued", None)]


def test_work_whose_webhook_never_arrived_is_served_by_recovery(stack: Stack) -> None:
    orchestrator = stack.orchestrator(
        webhook=False,
        ORCH_WEBHOOK_SIGNING_SECRET=new_signing_secret(),
        ORCH_RECOVERY_POLL_SECONDS="0.5",
    )
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo recovered")
    assert wait_for(
        lambda: tool_results(stack, session_id), "the recovered session's tool result"
    ) == ["recovered"]
    assert len(stack.worker_starts(session_id)) == 1
    assert not orchestrator.logged("run started", session_id=session_id)


def test_forged_and_stale_deliveries_dispatch_nothing(stack: Stack) -> None:
    secret = new_signing_secret()
    orchestrator = stack.orchestrator(webhook=False, ORCH_WEBHOOK_SIGNING_SECRET=secret)
    session_id = stack.create_session()

    forged = make_signer(new_signing_secret())(run_started(session_id))
    stale = make_signer(secret)(run_started(session_id), timestamp=time.time() - 600)
    for body, headers in (forged, stale):
        assert orchestrator.post("/webhook", content=body, headers=headers).status_code == 401
    assert stack.claims(session_id) == []
    assert orchestrator.logged(
        "webhook rejected", reason="signature rejected: No matching signature found"
    )

    # The same session with a good signature is served: the rejections were the signatures'.
    body, headers = make_signer(secret)(run_started(session_id))
    assert orchestrator.post("/webhook", content=body, headers=headers).status_code == 200
    stack.say(session_id, "bash: echo genuine")
    assert wait_for(lambda: tool_results(stack, session_id), "the tool result") == ["genuine"]


STATUS_TOKEN = "integration-status-token"


def ready_details(orchestrator: Orchestrator) -> httpx.Response:
    """`/ready` as the operator sees it (with the status token: the problems named)."""
    return httpx.get(
        orchestrator.url + "/ready",
        headers={"Authorization": f"Bearer {STATUS_TOKEN}"},
        trust_env=False,
        timeout=30,
    )


def test_ready_when_configured_and_reachable(stack: Stack) -> None:
    response = ready_details(stack.orchestrator(ORCH_STATUS_TOKEN=STATUS_TOKEN))
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "problems": []}


def test_ready_names_a_missing_environment_key(stack: Stack) -> None:
    orchestrator = stack.orchestrator(ORCH_ENVIRONMENT_KEY=None, ORCH_STATUS_TOKEN=STATUS_TOKEN)
    response = ready_details(orchestrator)
    assert response.status_code == 503
    assert response.json()["problems"] == ["environment key not set (ORCH_ENVIRONMENT_KEY)"]
    # To anyone else, on the public URL: not ready, and nothing more.
    assert orchestrator.get("/ready").json() == {"status": "not_ready"}


def test_ready_names_a_rejected_environment_key_and_an_unreachable_blaxel(stack: Stack) -> None:
    dead = f"http://127.0.0.1:{free_loopback_port()}/blaxel/v0"
    response = ready_details(
        stack.orchestrator(
            ORCH_ENVIRONMENT_KEY="sk-ant-oat01-not-a-real-key",
            ORCH_BLAXEL_BASE_URL=dead,
            ORCH_STATUS_TOKEN=STATUS_TOKEN,
        )
    )
    assert response.status_code == 503
    assert sorted(response.json()["problems"]) == sorted(
        ["environment key rejected by the Anthropic API", f"Blaxel API unreachable at {dead}"]
    )


def add_fault(stack: Stack, method: str, path_pattern: str, status: int, times: int) -> None:
    """The emulator's test control: fail the next `times` matching requests with `status`."""
    response = httpx.post(
        stack.server.config.public_base_url + "/_emulator/faults",
        json={"method": method, "path_pattern": path_pattern, "status": status, "times": times},
        trust_env=False,
    )
    response.raise_for_status()


def test_transient_blaxel_errors_are_retried(stack: Stack) -> None:
    orchestrator = stack.orchestrator()
    add_fault(stack, "POST", r"/blaxel/v0/sandboxes$", 503, times=2)
    add_fault(stack, "POST", r"/process$", 503, times=1)
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo despite errors")
    assert wait_for(lambda: tool_results(stack, session_id), "the tool result") == [
        "despite errors"
    ]
    assert len(stack.worker_starts(session_id)) == 1
    retried = [
        e["action"]
        for e in orchestrator.log_entries()
        if e["msg"] == "transient Blaxel error, retrying"
    ]
    assert [a.split(" ")[0] for a in retried] == ["create", "create", "start"]


def test_work_is_not_claimed_while_its_sandbox_cannot_be_made_ready(stack: Stack) -> None:
    orchestrator = stack.orchestrator(ORCH_RECOVERY_POLL_SECONDS="0.5", ORCH_START_RETRIES="1")
    # Both attempts of the first warm-up fail (the first try and its one retry).
    add_fault(stack, "POST", r"/blaxel/v0/sandboxes$", 500, times=2)
    session_id = stack.create_session()
    wait_for(
        lambda: orchestrator.logged("worker sandbox not ready", session_id=session_id),
        "the failed warm-up",
    )
    assert [
        w.acknowledged_at for w in stack.server.emulator.anthropic.live_work_for(session_id)
    ] == [None]
    assert stack.worker_starts(session_id) == []
    # The fault is spent: the recovery poll warms the sandbox, then claims and serves the work.
    stack.say(session_id, "bash: echo later")
    assert wait_for(lambda: tool_results(stack, session_id), "the tool result") == ["later"]


def test_claimed_work_whose_worker_cannot_start_is_not_stopped_and_is_served_later(
    stack: Stack,
) -> None:
    session_id = stack.create_session()
    # Aimed at this session's sandbox only; armed before any orchestrator sees the session.
    sandbox = worker_sandbox_name(session_id)
    add_fault(stack, "POST", rf"/{sandbox}/process$", 500, times=2)
    orchestrator = stack.orchestrator(
        webhook=False,
        ORCH_WEBHOOK_SIGNING_SECRET=new_signing_secret(),
        ORCH_START_RETRIES="1",
        ORCH_RECOVERY_POLL_SECONDS="0.5",
    )
    entry = wait_for(
        lambda: [
            e
            for e in orchestrator.log_entries()
            if e["msg"] == "worker start failed; the claimed work is left to be reclaimed"
        ],
        "the failed start",
    )[0]
    assert entry["session_id"] == session_id
    items = [i for i in stack.server.emulator.anthropic.work_items.values()]
    assert [i.state for i in items if i.session_id == session_id] == ["starting"]
    # Its lease lapses (no heartbeat ever came): the recovery poll claims and serves it.
    clock = stack.server.emulator.anthropic.clock
    clock.advance(301)
    try:
        stack.say(session_id, "bash: echo served after all")
        assert wait_for(lambda: tool_results(stack, session_id), "the tool result") == [
            "served after all"
        ]
    finally:
        clock.advance(-301)
    assert len(stack.worker_starts(session_id)) == 1


def test_a_sandbox_left_by_a_stopped_orchestrator_goes_once_its_session_ended(
    stack: Stack,
) -> None:
    first = stack.orchestrator()
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo before the restart")
    wait_for(lambda: tool_results(stack, session_id), "the tool result")
    first.stop()
    # The session ends while no orchestrator listens: its webhook is lost.
    stack.client.beta.sessions.archive(session_id)
    assert not deleted(stack, session_id)

    second = stack.orchestrator()
    wait_for(lambda: deleted(stack, session_id), "the janitor's deletion")
    assert second.logged("janitor: the session ended; deleting its sandbox", session_id=session_id)


def test_ready_names_a_rejected_blaxel_key(stack: Stack) -> None:
    response = ready_details(
        stack.orchestrator(ORCH_BLAXEL_API_KEY="bl-not-a-real-key", ORCH_STATUS_TOKEN=STATUS_TOKEN)
    )
    assert response.status_code == 503
    assert response.json()["problems"] == ["Blaxel API key or workspace rejected by the Blaxel API"]


def test_dispatch_works_without_the_signing_secret(stack: Stack) -> None:
    orchestrator = stack.orchestrator(
        webhook=False,
        ORCH_WEBHOOK_SIGNING_SECRET=None,
        ORCH_RECOVERY_POLL_SECONDS="0.5",
        ORCH_STATUS_TOKEN=STATUS_TOKEN,
    )
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo no secret needed")
    assert wait_for(lambda: tool_results(stack, session_id), "the tool result") == [
        "no secret needed"
    ]
    # In webhook mode the missing secret still keeps /ready from passing.
    response = ready_details(orchestrator)
    assert response.status_code == 503
    assert response.json()["problems"] == [
        "webhook signing secret not set (ORCH_WEBHOOK_SIGNING_SECRET)"
    ]


def test_the_worker_environment_holds_no_secret_value_of_the_orchestrator(stack: Stack) -> None:
    orchestrator = stack.orchestrator(ORCH_WORKER_MAX_IDLE_SECONDS="3600")
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo env checked")
    wait_for(lambda: tool_results(stack, session_id), "the tool result")
    sandbox = stack.server.emulator.blaxel.get_sandbox(worker_sandbox_name(session_id))
    [process] = [p for p in sandbox.processes.list() if p.name.startswith("worker-")]
    environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
    values = {v.split(b"=", 1)[1].decode() for v in environ if b"=" in v}
    secrets = [
        stack.environment_key,
        stack.server.config.blaxel_api_key,
        stack.server.config.anthropic_api_key,
        orchestrator.env["ORCH_WEBHOOK_SIGNING_SECRET"],
    ]
    assert not [s[:12] for s in secrets if any(s in v for v in values)]


def test_a_per_session_volume_is_mounted_when_configured(stack: Stack) -> None:
    stack.orchestrator(ORCH_WORKER_VOLUME_SIZE_MB="64")
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo kept")
    wait_for(lambda: tool_results(stack, session_id), "the tool result")
    volume = worker_volume_name(session_id)
    assert volume in stack.server.emulator.blaxel.volumes
    sandbox = stack.server.emulator.blaxel.get_sandbox(worker_sandbox_name(session_id))
    assert [v["name"] for v in sandbox.spec["volumes"]] == [volume]


def test_a_worker_start_whose_answer_was_lost_starts_one_worker(stack: Stack) -> None:
    session_id = stack.create_session()
    # The start is applied, then its answer dropped: the retry must find the running worker.
    stack.server.emulator.faults.add(
        FaultRule(
            "POST",
            r"/process$",
            502,
            1,
            action="drop_answer",
            sandbox=worker_sandbox_name(session_id),
        )
    )
    orchestrator = stack.orchestrator(
        webhook=False,
        ORCH_WEBHOOK_SIGNING_SECRET=new_signing_secret(),
        ORCH_RECOVERY_POLL_SECONDS="0.5",
    )
    stack.say(session_id, "bash: echo one worker")
    assert wait_for(lambda: tool_results(stack, session_id), "the tool result") == ["one worker"]
    assert len(stack.worker_starts(session_id)) == 1
    assert orchestrator.logged("worker started", session_id=session_id)


def test_an_item_whose_secret_has_no_sessions_token_is_stopped_with_the_reason(
    stack: Stack,
) -> None:
    stack.server.emulator.anthropic.set_work_secret_mode(stack.environment_id, "no_sessions_token")
    orchestrator = stack.orchestrator()
    session_id = stack.create_session()
    entry = wait_for(
        lambda: [
            e
            for e in orchestrator.log_entries()
            if e["msg"].startswith(
                "work item stopped: it cannot be served without a sessions token"
            )
            and e.get("session_id") == session_id
        ],
        "the logged stop",
    )[0]
    assert "sessions_token" in entry["reason"]
    assert stack.worker_starts(session_id) == []
    items = stack.server.emulator.anthropic.work_items.values()
    wait_for(
        lambda: [i.state for i in items if i.session_id == session_id] == ["stopped"], "the stop"
    )


# ---------------------------------------------------------------- poll mode (issue 18)


def poll_mode(stack: Stack, **overrides: str | None) -> Orchestrator:
    """A poll-mode orchestrator: no webhook registered, no signing secret, no recovery poll."""
    return stack.orchestrator(
        webhook=False, ORCH_DISPATCH_MODE="poll", ORCH_WEBHOOK_SIGNING_SECRET=None, **overrides
    )


def test_a_poll_mode_orchestrator_serves_a_session_with_no_webhook_delivery(stack: Stack) -> None:
    orchestrator = poll_mode(stack)
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo polled")
    assert wait_for(lambda: tool_results(stack, session_id), "the tool result") == ["polled"]
    assert stack.server.emulator.anthropic.deliveries_for(session_id) == []
    [start] = stack.worker_starts(session_id)
    created = stack.server.emulator.anthropic.sessions[session_id].created_at.timestamp()
    print(f"poll mode: session created -> worker started in {start.at - created:.3f} s")
    assert orchestrator.logged("worker started", session_id=session_id)


def test_two_items_for_one_session_in_poll_mode_start_one_worker(stack: Stack) -> None:
    session_id = stack.create_session()
    backend = stack.server.emulator.anthropic
    # The platform may queue duplicates for one session (DESIGN §3); the emulator has no route
    # for that, so its backend queues the second item before any orchestrator runs.
    newer = backend.enqueue_work(backend.sessions[session_id])
    orchestrator = poll_mode(stack)
    wait_for(
        lambda: orchestrator.logged(
            "work stopped", reason="an older duplicate of the session's work"
        ),
        "the older duplicate's stop",
    )
    stack.say(session_id, "bash: echo once")
    assert wait_for(lambda: tool_results(stack, session_id), "the tool result") == ["once"]
    assert len(stack.worker_starts(session_id)) == 1
    items = [i for i in backend.work_items.values() if i.session_id == session_id]
    assert [i.id for i in items if i.state == "stopped" and i.last_heartbeat is None] == [
        i.id for i in items if i is not newer
    ]
    assert newer.last_heartbeat is not None  # the newest is the one its worker served


def test_a_poll_mode_orchestrator_is_ready_without_a_signing_secret_and_has_no_webhook(
    stack: Stack,
) -> None:
    orchestrator = poll_mode(stack, ORCH_STATUS_TOKEN=STATUS_TOKEN)
    response = ready_details(orchestrator)
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "problems": []}
    body, headers = make_signer(new_signing_secret())(run_started("sesn_unknown"))
    assert orchestrator.post("/webhook", content=body, headers=headers).status_code == 404


def test_in_poll_mode_an_ended_sessions_sandbox_goes_with_no_end_event(stack: Stack) -> None:
    orchestrator = poll_mode(stack)  # the janitor every 0.5 s (the fixture's setting)
    session_id = stack.create_session()
    stack.say(session_id, "bash: echo before the end")
    wait_for(lambda: tool_results(stack, session_id), "the tool result")
    stack.client.beta.sessions.archive(session_id)
    wait_for(lambda: deleted(stack, session_id), "the janitor's deletion", timeout=20)
    assert orchestrator.logged(
        "janitor: the session ended; deleting its sandbox", session_id=session_id
    )


# ---------------------------------------------------------------- issue 13: the idle-exit race


def worker_processes(stack: Stack, session_id: str) -> list[Any]:
    sandbox = stack.server.emulator.blaxel.get_sandbox(worker_sandbox_name(session_id))
    return [p for p in sandbox.processes.list() if p.name.startswith("worker-")]


def stopped_then_frozen(item: Any, pid: int, timeout: float = 30.0) -> None:
    """As soon as `item` is stopped, freeze the process group `pid` (SIGSTOP)."""
    deadline = time.monotonic() + timeout
    while item.state != "stopped":
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the worker to stop its item")
        time.sleep(0.005)
    os.killpg(pid, signal.SIGSTOP)


def test_a_turn_that_races_the_workers_idle_exit_is_served_one_worker_at_a_time(
    stack: Stack,
) -> None:
    orchestrator = stack.orchestrator()  # the worker exits 1 s after its session idles
    session_id = stack.create_session()
    [item] = stack.server.emulator.anthropic.live_work_for(session_id)
    # The worker's idle exit force-stops its item, then the process ends. Widen that window:
    # the stop is applied but its answers are lost, so the exiting worker retries for a while.
    stack.server.emulator.faults.add(
        FaultRule("POST", rf"/work/{item.id}/stop$", 502, 3, action="drop_answer")
    )
    stack.say(session_id, "bash: echo turn one")
    assert wait_for(lambda: tool_results(stack, session_id), "turn 1's result") == ["turn one"]
    [first] = worker_processes(stack, session_id)
    # Caught in its exit (item stopped, process alive) and held there while the next turn comes.
    stopped_then_frozen(item, int(first.pid))
    try:
        stack.say(session_id, "bash: echo turn two")  # new work, a new run-started delivery
        wait_for(
            lambda: orchestrator.logged("stopping a superseded worker", worker_process=first.name),
            "the orchestrator to stop the exiting worker",
        )
        # The next worker waits for the old one's end: nothing runs beside it yet.
        assert first.running
        assert len(stack.worker_starts(session_id)) == 1
    finally:
        os.killpg(int(first.pid), signal.SIGCONT)  # its exit goes on
    assert wait_for(lambda: tool_results(stack, session_id)[1:], "turn 2's result") == ["turn two"]
    assert len(stack.worker_starts(session_id)) == 2
    [second] = [p for p in worker_processes(stack, session_id) if p is not first]
    assert first.completed_at is not None and first.completed_at <= second.started_at
