"""Malformed, oversized, unsigned, forged, replayed and stale webhook bodies against a running
orchestrator (`python -m orchestrator_app`) whose environment has queued work: each is rejected
and nothing is dispatched; then one genuine delivery is served, so the rejections were real."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from tests.faults.conftest import FaultReport
from tests.orchestrator_app.conftest import make_signer, new_signing_secret, run_started
from tests.orchestrator_app.emulated import Orchestrator, Stack, wait_for

Body = tuple[bytes, dict[str, str]]
OVERSIZED = 2 * 1024 * 1024  # far beyond any event (a run-started event is ~250 bytes)


def bad_inputs(secret: str, session_id: str) -> dict[str, tuple[Body, int]]:
    """Each bad delivery about `session_id`, and the status it must get."""
    sign = make_signer(secret)
    forge = make_signer(new_signing_secret())
    event = run_started(session_id)
    good_body, good_headers = sign(event)
    padded = {**event, "padding": "x" * OVERSIZED}
    no_id = {**event, "data": {**event["data"], "id": None}}
    numeric_id = {**event, "data": {**event["data"], "id": 12345}}
    no_type = {**event, "data": {"id": session_id}}
    return {
        "unsigned": ((json.dumps(event).encode(), {"content-type": "application/json"}), 401),
        "forged": (forge(event), 401),
        "stale (10 min old)": (sign(event, timestamp=time.time() - 600), 401),
        "from the future (10 min ahead)": (sign(event, timestamp=time.time() + 600), 401),
        "tampered body": (
            (good_body.replace(session_id.encode(), b"sesn_other"), good_headers),
            401,
        ),
        "garbled signature": ((good_body, {**good_headers, "webhook-signature": "v1,%%%"}), 401),
        "signature of another id": ((good_body, {**good_headers, "webhook-id": "msg_x"}), 401),
        "empty body, unsigned": ((b"", {}), 401),
        "not UTF-8, unsigned": ((b"\xff\xfe\x00garbage", {"webhook-id": "msg_1"}), 401),
        "oversized, forged": (forge(padded), 413),
        "signed, not JSON": (sign("this is not json"), 400),
        "signed, JSON but not an event": (sign("[1, 2, 3]"), 400),
        "signed, no data.type": (sign(no_type), 400),
        "signed, no session id": (sign(no_id), 400),
        "signed, session id not a string": (sign(numeric_id), 400),
    }


def post_all(
    stack: Stack, post: Callable[..., object], cases: dict[str, tuple[Body, int]]
) -> list[str]:
    wrong = []
    for name, ((body, headers), status) in cases.items():
        response = post("/webhook", content=body, headers=headers)
        got = getattr(response, "status_code", None)
        if got != status:
            wrong.append(f"{name}: {got} (want {status})")
    return wrong


def orchestrator_with_queued_work(stack: Stack) -> tuple[Orchestrator, str, str]:
    """An orchestrator with its own signing secret (the emulator does not deliver to it), and a
    session with queued work in its environment: (orchestrator, secret, session id)."""
    secret = new_signing_secret()
    orchestrator = stack.orchestrator(webhook=False, ORCH_WEBHOOK_SIGNING_SECRET=secret)
    return orchestrator, secret, stack.create_session()


def test_bad_webhook_bodies_are_rejected_and_dispatch_nothing(
    stack: Stack, fault_report: FaultReport
) -> None:
    orchestrator, secret, session_id = orchestrator_with_queued_work(stack)
    cases = bad_inputs(secret, session_id)
    fault_report.bad_inputs_tried += len(cases)

    assert post_all(stack, orchestrator.post, cases) == []
    assert orchestrator.get("/health").status_code == 200
    assert stack.claims(session_id) == []
    assert stack.worker_starts(session_id) == []

    # The genuine delivery is served: the rejections above were the inputs', not a broken setup.
    body, headers = make_signer(secret)(run_started(session_id))
    assert orchestrator.post("/webhook", content=body, headers=headers).status_code == 200
    wait_for(lambda: stack.worker_starts(session_id), "the genuine delivery's worker")


def test_a_replayed_delivery_starts_no_second_worker(
    stack: Stack, fault_report: FaultReport
) -> None:
    orchestrator, secret, session_id = orchestrator_with_queued_work(stack)
    body, headers = make_signer(secret)(run_started(session_id))
    assert orchestrator.post("/webhook", content=body, headers=headers).status_code == 200
    wait_for(lambda: stack.worker_starts(session_id), "the worker")

    replays = 10
    fault_report.bad_inputs_tried += replays
    for _ in range(replays):
        answer = orchestrator.post("/webhook", content=body, headers=headers)
        assert answer.status_code == 200
        assert answer.json() == {"status": "duplicate"}
    time.sleep(1.0)  # a second start would follow the replays closely
    duplicates = len(stack.worker_starts(session_id)) - 1
    fault_report.duplicate_workers += max(0, duplicates)
    assert duplicates == 0
    assert len(stack.claims(session_id)) == 1


def test_a_signed_but_oversized_body_is_refused_and_dispatches_nothing(
    stack: Stack, fault_report: FaultReport
) -> None:
    orchestrator, secret, session_id = orchestrator_with_queued_work(stack)
    fault_report.bad_inputs_tried += 1
    padded = {**run_started(session_id), "padding": "x" * OVERSIZED}
    body, headers = make_signer(secret)(padded)
    answer = orchestrator.post("/webhook", content=body, headers=headers)
    time.sleep(1.0)  # a dispatch would claim within this
    assert (answer.status_code, stack.claims(session_id)) == (413, [])
