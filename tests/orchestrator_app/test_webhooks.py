"""The webhook route with the SDK's signature check, through a Starlette TestClient.

The app runs with its real clients pointed at dead loopback ports: accepted events reach the
dispatcher (counted in its stats), and nothing is ever contacted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from orchestrator_app.app import create_app
from orchestrator_app.settings import Settings
from orchestrator_app.webhooks import SeenDeliveries
from tests.orchestrator_app.conftest import (
    SignFn,
    after_handovers,
    make_signer,
    new_signing_secret,
    run_started,
)


@pytest.fixture
def client(offline_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(offline_settings)) as test_client:
        yield test_client


def accepted(client: TestClient) -> int:
    """Run-started events the dispatcher took (once the deliveries handed over have run)."""
    return int(after_handovers(client.app_state["services"]).dispatcher.stats.accepted)


def test_a_signed_run_started_event_is_accepted_for_dispatch(
    client: TestClient, sign: SignFn
) -> None:
    body, headers = sign(run_started("sesn_1"))
    response = client.post("/webhook", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    assert accepted(client) == 1


def test_a_replayed_delivery_with_the_same_webhook_id_dispatches_nothing_more(
    client: TestClient, sign: SignFn
) -> None:
    body, headers = sign(run_started("sesn_1"), webhook_id="msg_same")
    assert client.post("/webhook", content=body, headers=headers).json()["status"] == "accepted"
    for _ in range(19):
        again = client.post("/webhook", content=body, headers=headers)
        assert again.status_code == 200
        assert again.json() == {"status": "duplicate"}
    assert accepted(client) == 1


def test_a_webhook_id_is_seen_once_and_forgotten_past_the_limit() -> None:
    seen = SeenDeliveries(limit=2)
    assert [seen.first("msg_1"), seen.first("msg_1")] == [True, False]
    seen.first("msg_2")
    seen.first("msg_3")
    assert seen.first("msg_1") is True


def test_a_forged_signature_is_rejected_with_401(client: TestClient) -> None:
    forge = make_signer(new_signing_secret())
    body, headers = forge(run_started("sesn_1"))
    response = client.post("/webhook", content=body, headers=headers)
    assert response.status_code == 401
    assert "No matching signature" in response.json()["message"]
    assert accepted(client) == 0


def test_a_stale_signature_is_rejected_with_401(client: TestClient, sign: SignFn) -> None:
    body, headers = sign(run_started("sesn_1"), timestamp=time.time() - 6 * 60)
    response = client.post("/webhook", content=body, headers=headers)
    assert response.status_code == 401
    assert "too old" in response.json()["message"]
    assert accepted(client) == 0


def test_a_tampered_body_is_rejected_with_401(client: TestClient, sign: SignFn) -> None:
    body, headers = sign(run_started("sesn_1"))
    tampered = body.replace(b"sesn_1", b"sesn_2")
    assert client.post("/webhook", content=tampered, headers=headers).status_code == 401
    assert accepted(client) == 0


def test_missing_signature_headers_are_rejected_with_401(client: TestClient, sign: SignFn) -> None:
    body, headers = sign(run_started("sesn_1"))
    del headers["webhook-signature"]
    response = client.post("/webhook", content=body, headers=headers)
    assert response.status_code == 401
    assert accepted(client) == 0


def test_a_garbled_signature_header_is_rejected_with_401(client: TestClient, sign: SignFn) -> None:
    body, headers = sign(run_started("sesn_1"))
    headers["webhook-signature"] = "nonsense"
    assert client.post("/webhook", content=body, headers=headers).status_code == 401


def test_a_signed_body_that_is_not_json_is_rejected_with_400(
    client: TestClient, sign: SignFn
) -> None:
    body, headers = sign("this is not json")
    response = client.post("/webhook", content=body, headers=headers)
    assert response.status_code == 400
    assert accepted(client) == 0


def test_a_signed_event_without_a_type_is_rejected_with_400(
    client: TestClient, sign: SignFn
) -> None:
    body, headers = sign({"id": "wevt_1", "type": "event", "data": {"id": "sesn_1"}})
    assert client.post("/webhook", content=body, headers=headers).status_code == 400


def test_a_run_started_event_without_a_session_id_is_rejected_with_400(
    client: TestClient, sign: SignFn
) -> None:
    event = run_started("sesn_1")
    del event["data"]["id"]
    body, headers = sign(event)
    assert client.post("/webhook", content=body, headers=headers).status_code == 400


def test_other_event_types_are_acknowledged_and_ignored(client: TestClient, sign: SignFn) -> None:
    event = run_started("sesn_1")
    event["data"]["type"] = "session.status_idled"
    body, headers = sign(event)
    response = client.post("/webhook", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "type": "session.status_idled"}
    assert accepted(client) == 0


@pytest.mark.parametrize("event_type", ["session.status_terminated", "session.deleted"])
def test_a_session_end_event_hands_the_session_to_its_cleanup(
    client: TestClient, sign: SignFn, event_type: str
) -> None:
    dispatcher = client.app_state["services"].dispatcher
    ended: list[tuple[str, str]] = []
    dispatcher.session_ended = lambda session_id, reason: ended.append((session_id, reason))
    event = run_started("sesn_ended")
    event["data"]["type"] = event_type
    body, headers = sign(event)
    response = client.post("/webhook", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    after_handovers(client.app_state["services"])
    assert ended == [("sesn_ended", event_type)]
    assert accepted(client) == 0


def test_without_a_signing_secret_the_webhook_answers_503(
    offline_settings: Settings, sign: SignFn
) -> None:
    settings = offline_settings.model_copy(update={"webhook_signing_secret": None})
    with TestClient(create_app(settings)) as client:
        body, headers = sign(run_started("sesn_1"))
        response = client.post("/webhook", content=body, headers=headers)
    assert response.status_code == 503
    assert "signing secret not set" in response.json()["message"]


def test_without_an_environment_key_a_valid_event_answers_503_naming_it(
    offline_settings: Settings, sign: SignFn
) -> None:
    settings = offline_settings.model_copy(update={"environment_key": None})
    with TestClient(create_app(settings)) as client:
        body, headers = sign(run_started("sesn_1"))
        response = client.post("/webhook", content=body, headers=headers)
    assert response.status_code == 503
    assert "environment key not set" in response.json()["message"]


def test_a_signed_body_that_is_json_but_not_an_event_is_rejected_with_400(
    client: TestClient, sign: SignFn
) -> None:
    body, headers = sign("[1, 2, 3]")
    assert client.post("/webhook", content=body, headers=headers).status_code == 400
    assert accepted(client) == 0


def test_no_secret_reaches_a_log_record(
    offline_settings: Settings, sign: SignFn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    forge = make_signer(new_signing_secret())
    with TestClient(create_app(offline_settings)) as client:
        for body, headers in (sign(run_started("sesn_1")), forge(run_started("sesn_2"))):
            client.post("/webhook", content=body, headers=headers)
        client.get("/ready")
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "run started" in text
    for secret in offline_settings.secret_values():
        assert secret not in text
        assert secret.removeprefix("whsec_") not in text


def test_an_oversized_body_is_refused_with_413_even_when_signed(
    client: TestClient, sign: SignFn
) -> None:
    event = {**run_started("sesn_1"), "padding": "x" * (2 * 1024 * 1024)}
    body, headers = sign(event)
    response = client.post("/webhook", content=body, headers=headers)
    assert response.status_code == 413
    assert accepted(client) == 0


def test_an_oversized_body_without_a_length_is_refused_while_streaming(
    client: TestClient, sign: SignFn
) -> None:
    body, headers = sign({**run_started("sesn_1"), "padding": "x" * (512 * 1024)})

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = client.post("/webhook", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert accepted(client) == 0
