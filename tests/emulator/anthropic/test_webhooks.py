"""Webhooks: Standard Webhooks signatures the SDK verifies, retries, forced duplicates,
the Console stand-in and the organization webhooks API."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import pytest
from anthropic.types.beta.organization import (
    BetaNewOrganizationWebhookEndpoint,
    BetaOrganizationWebhookEndpoint,
)
from standardwebhooks.webhooks import WebhookVerificationError

from tests.emulator.anthropic.conftest import AnthropicServer
from tests.emulator.anthropic.helpers import (
    agent,
    self_hosted_environment,
    session,
    strict,
    wait_until,
)

RUN_STARTED = "session.status_run_started"


def _register(emulator: AnthropicServer, name: str) -> dict[str, str]:
    response = emulator.console(
        "POST", "/webhooks", json={"url": emulator.receiver_url(name), "events": [RUN_STARTED]}
    )
    response.raise_for_status()
    return dict(response.json())


def _start_session(client: anthropic.Anthropic) -> str:
    return session(client, self_hosted_environment(client).id, agent(client).id).id


def test_a_delivered_run_started_event_verifies_with_the_sdk(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    endpoint = _register(emulator, "orchestrator")
    assert endpoint["secret"].startswith("whsec_")
    session_id = _start_session(client)
    receiver = emulator.receivers["orchestrator"]
    headers, body = wait_until(lambda: receiver.requests)[0]
    event: Any = client.beta.webhooks.unwrap(body, headers=headers, key=endpoint["secret"])
    assert (event.type, event.data.type, event.data.id) == ("event", RUN_STARTED, session_id)
    assert event.data.workspace_id.startswith("wrkspc_")
    assert "environment" not in json.loads(body)["data"]


def test_a_forged_or_stale_signature_does_not_verify(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    endpoint = _register(emulator, "orchestrator")
    _start_session(client)
    headers, body = wait_until(lambda: emulator.receivers["orchestrator"].requests)[0]
    with pytest.raises(WebhookVerificationError):
        client.beta.webhooks.unwrap(
            body.replace("sesn_", "sesn_X"), headers=headers, key=endpoint["secret"]
        )
    with pytest.raises(WebhookVerificationError):
        client.beta.webhooks.unwrap(
            body, headers=headers, key=_register(emulator, "other")["secret"]
        )

    emulator.backend.clock.advance(-600)  # the next delivery is signed ten minutes in the past
    _start_session(client)
    stale_headers, stale_body = wait_until(lambda: emulator.receivers["orchestrator"].requests[1:])[
        0
    ]
    assert int(stale_headers["webhook-timestamp"]) < time.time() - 500
    with pytest.raises(WebhookVerificationError, match="too old"):
        client.beta.webhooks.unwrap(stale_body, headers=stale_headers, key=endpoint["secret"])


def test_a_failing_receiver_is_retried_with_the_same_webhook_id(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    endpoint = _register(emulator, "flaky")
    emulator.receivers["flaky"].statuses = [500, 503]
    session_id = _start_session(client)
    (delivery,) = emulator.backend.deliveries_for(session_id)
    wait_until(lambda: delivery.delivered)
    assert delivery.attempts == ["500", "503", "200"]
    requests = emulator.receivers["flaky"].requests
    assert len({h["webhook-id"] for h, _ in requests}) == 1
    client.beta.webhooks.unwrap(requests[-1][1], headers=requests[-1][0], key=endpoint["secret"])


def test_the_console_can_force_a_duplicate_delivery(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    endpoint = _register(emulator, "orchestrator")
    _start_session(client)
    receiver = emulator.receivers["orchestrator"]
    wait_until(lambda: receiver.requests)
    response = emulator.console("POST", f"/webhooks/{endpoint['id']}/redeliver", json={})
    assert response.status_code == 200
    wait_until(lambda: len(receiver.requests) == 2)
    (first_headers, first_body), (second_headers, second_body) = receiver.requests
    assert first_headers["webhook-id"] == second_headers["webhook-id"]
    assert first_body == second_body


def test_the_console_lists_endpoints_without_secrets_and_deletes_them(
    emulator: AnthropicServer,
) -> None:
    endpoint = _register(emulator, "orchestrator")
    listed = emulator.console("GET", "/webhooks").json()
    assert listed == {
        "data": [{"id": endpoint["id"], "url": endpoint["url"], "events": [RUN_STARTED]}]
    }
    assert emulator.console("DELETE", f"/webhooks/{endpoint['id']}").status_code == 200
    again = emulator.console("DELETE", f"/webhooks/{endpoint['id']}")
    assert again.status_code == 404
    assert again.json()["error"] == {
        "type": "not_found_error",
        "message": f"Webhook endpoint {endpoint['id']} not found",
    }


def test_the_console_refuses_an_unknown_event_type(emulator: AnthropicServer) -> None:
    response = emulator.console(
        "POST", "/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["nope"]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "events: unknown event type(s) ['nope']"


def test_the_console_mints_keys_only_for_self_hosted_environments(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    cloud = client.beta.environments.create(name="cloud")
    response = emulator.console("POST", f"/environments/{cloud.id}/keys")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        f"Environment {cloud.id} is not self-hosted; only self-hosted environments have keys"
    )
    assert emulator.console("POST", "/environments/env_missing/keys").status_code == 404


def test_the_organization_webhooks_api_shows_the_secret_once(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    hooks = client.beta.organization.webhooks
    created = hooks.create(
        url="https://ops.example/hooks", enabled_events=["external_key.failed"], name="ops"
    )
    strict(BetaNewOrganizationWebhookEndpoint, created)
    assert created.signing_secret.startswith("whsec_")
    fetched = hooks.retrieve(created.id)
    strict(BetaOrganizationWebhookEndpoint, fetched)
    assert "signing_secret" not in fetched.model_dump()
    rotated = hooks.regenerate_signing_secret(created.id)
    assert rotated.signing_secret not in ("", created.signing_secret)
    assert hooks.update(created.id, state="disabled").state == "disabled"
    assert [h.id for h in hooks.list()] == [created.id]
    assert hooks.delete(created.id).type == "webhook_endpoint_deleted"
    with pytest.raises(anthropic.NotFoundError) as caught:
        hooks.retrieve(created.id)
    assert caught.value.api_message == f"Webhook endpoint {created.id} not found"


def test_the_organization_api_refuses_session_events(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    """docs/platform-contract.md A12: its event list has no `session.*` event (DESIGN §2)."""
    with pytest.raises(anthropic.BadRequestError, match="unknown event type"):
        client.beta.organization.webhooks.create(
            url="https://orch.example/webhook",
            enabled_events=[RUN_STARTED],  # type: ignore[list-item]
        )


def test_the_organization_api_refuses_plain_http(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    with pytest.raises(anthropic.BadRequestError, match="must be an https URL"):
        client.beta.organization.webhooks.create(
            url=emulator.receiver_url("org"), enabled_events=["external_key.failed"]
        )


def test_the_organization_api_does_not_exist_without_its_beta_header(
    client: anthropic.Anthropic,
) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.beta.organization.webhooks.list(
            extra_headers={"anthropic-beta": "managed-agents-2026-04-01"}
        )
    assert caught.value.api_message == "Not found"


def test_redelivery_can_name_an_earlier_event(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    endpoint = _register(emulator, "orchestrator")
    first, _second = _start_session(client), _start_session(client)
    receiver = emulator.receivers["orchestrator"]
    wait_until(lambda: len(receiver.requests) == 2)
    (earlier,) = emulator.backend.deliveries_for(first)
    response = emulator.console(
        "POST", f"/webhooks/{endpoint['id']}/redeliver", json={"event_id": earlier.webhook_id}
    )
    assert response.json() == {
        "endpoint_id": endpoint["id"],
        "event_id": earlier.webhook_id,
        "forced": True,
    }
    wait_until(lambda: len(receiver.requests) == 3)
    headers, body = receiver.requests[2]
    assert headers["webhook-id"] == earlier.webhook_id
    assert (
        client.beta.webhooks.unwrap(body, headers=headers, key=endpoint["secret"]).data.id == first
    )
    missing = emulator.console(
        "POST", f"/webhooks/{endpoint['id']}/redeliver", json={"event_id": "wevt_nope"}
    )
    assert missing.status_code == 404
    assert (
        missing.json()["error"]["message"] == f"No delivery wevt_nope to endpoint {endpoint['id']}"
    )


def test_deleting_an_endpoint_ends_its_retries(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    endpoint = _register(emulator, "down")
    emulator.receivers["down"].statuses = [500] * 10
    emulator.backend.webhook_retry_delays = (0.2, 0.2, 0.2, 0.2)
    session_id = _start_session(client)
    (delivery,) = emulator.backend.deliveries_for(session_id)
    wait_until(lambda: delivery.attempts)
    emulator.console("DELETE", f"/webhooks/{endpoint['id']}")
    wait_until(lambda: delivery.given_up)
    assert not delivery.delivered
    assert len(delivery.attempts) < 5


def test_an_endpoint_gets_every_session_event_it_subscribed_to(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    events = [
        "session.created",
        RUN_STARTED,
        "session.status_idled",
        "session.status_terminated",
        "session.deleted",
    ]
    response = emulator.console(
        "POST", "/webhooks", json={"url": emulator.receiver_url("all"), "events": events}
    )
    secret = response.json()["secret"]
    created = session(
        client, self_hosted_environment(client).id, agent(client).id, message="say: hi"
    )
    client.beta.sessions.archive(created.id)
    client.beta.sessions.delete(created.id)
    receiver = emulator.receivers["all"]
    wait_until(lambda: len(receiver.requests) == 5)
    received: list[Any] = [
        client.beta.webhooks.unwrap(b, headers=h, key=secret) for h, b in receiver.requests
    ]
    assert sorted(e.data.type for e in received) == sorted(events)
    assert {e.data.id for e in received} == {created.id}
