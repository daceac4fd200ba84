"""Signing-secret rotation (issue 18) and webhook outcomes in the metrics.

While a previous secret is configured, deliveries signed with it or with the current one are
both accepted; a third secret is refused. Every answer is counted by outcome and status.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook
from starlette.testclient import TestClient

from orchestrator_app.app import create_app
from orchestrator_app.settings import Settings
from tests.orchestrator_app.conftest import (
    after_handovers,
    make_signer,
    new_signing_secret,
    run_started,
)


@pytest.fixture
def previous_secret() -> str:
    return new_signing_secret()


@pytest.fixture
def rotating(offline_settings: Settings, previous_secret: str) -> Iterator[TestClient]:
    """An app holding the current secret and, during the rotation, the previous one."""
    values = offline_settings.model_dump()
    values["webhook_signing_secret_previous"] = previous_secret
    values["webhook_signing_secret"] = offline_settings.webhook_signing_secret
    with TestClient(create_app(Settings.model_validate(values))) as client:
        yield client


def deliveries(client: TestClient) -> dict[str, float]:
    return client.app_state["services"].metrics.totals().get("webhook_deliveries", {})


def test_deliveries_signed_with_the_current_or_the_previous_secret_are_both_accepted(
    rotating: TestClient, signing_secret: str, previous_secret: str
) -> None:
    for n, secret in enumerate((signing_secret, previous_secret, signing_secret)):
        body, headers = make_signer(secret)(run_started(f"sesn_{n}"))
        response = rotating.post("/webhook", content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "accepted"}


def test_a_delivery_signed_with_a_third_secret_is_refused_during_a_rotation(
    rotating: TestClient,
) -> None:
    body, headers = make_signer(new_signing_secret())(run_started("sesn_1"))
    response = rotating.post("/webhook", content=body, headers=headers)
    assert response.status_code == 401
    assert after_handovers(rotating.app_state["services"]).dispatcher.stats.accepted == 0


def test_a_multi_signature_header_with_one_known_secret_is_accepted(
    offline_settings: Settings, signing_secret: str
) -> None:
    # Standard Webhooks: a sender mid-rotation signs with both keys, space-separated.
    body = (
        '{"id":"wevt_1","type":"event","data":{"type":"session.status_run_started","id":"sesn_1"}}'
    )
    now = datetime.now(tz=UTC)
    signatures = " ".join(
        Webhook(s).sign("msg_multi", now, body) for s in (new_signing_secret(), signing_secret)
    )
    headers = {
        "webhook-id": "msg_multi",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }
    with TestClient(create_app(offline_settings)) as client:
        response = client.post("/webhook", content=body.encode(), headers=headers)
    assert response.status_code == 200, response.text


def test_without_a_previous_secret_only_the_current_one_is_accepted(
    offline_settings: Settings, previous_secret: str
) -> None:
    with TestClient(create_app(offline_settings)) as client:
        body, headers = make_signer(previous_secret)(run_started("sesn_1"))
        assert client.post("/webhook", content=body, headers=headers).status_code == 401


def test_webhook_answers_are_counted_by_outcome_and_status(
    rotating: TestClient, signing_secret: str
) -> None:
    sign = make_signer(signing_secret)
    body, headers = sign(run_started("sesn_1"), webhook_id="msg_1")
    rotating.post("/webhook", content=body, headers=headers)
    rotating.post("/webhook", content=body, headers=headers)  # the same delivery again
    other, other_headers = sign({"id": "e", "type": "event", "data": {"type": "agent.updated"}})
    rotating.post("/webhook", content=other, headers=other_headers)
    forged, forged_headers = make_signer(new_signing_secret())(run_started("sesn_2"))
    rotating.post("/webhook", content=forged, headers=forged_headers)
    bad, bad_headers = sign("not json")
    rotating.post("/webhook", content=bad, headers=bad_headers)

    assert deliveries(rotating) == {
        "accepted,200": 1.0,
        "duplicate,200": 1.0,
        "ignored,200": 1.0,
        "rejected,401": 1.0,
        "malformed,400": 1.0,
    }


def test_the_previous_secret_is_redacted_from_logs_like_any_secret(
    offline_settings: Settings, previous_secret: str
) -> None:
    values = {**offline_settings.model_dump(), "webhook_signing_secret_previous": previous_secret}
    values["webhook_signing_secret"] = offline_settings.webhook_signing_secret
    values["status_token"] = "tok-123456"
    settings = Settings.model_validate(values)
    assert previous_secret in settings.secret_values()
    assert "tok-123456" in settings.secret_values()


def test_a_previous_secret_that_is_not_a_signing_key_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="webhook_signing_secret_previous") as caught:
        Settings.model_validate({"webhook_signing_secret_previous": "not base64 !!"})
    assert "whsec_" in str(caught.value)
