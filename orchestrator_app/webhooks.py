"""`POST /webhook`: verify (Standard Webhooks, through the SDK), record, answer; dispatch later.

The handler does no network I/O and never waits for dispatch: it checks the signature, answers
a `webhook-id` it has already accepted as a duplicate, hands the session id over to the
dispatcher on its own loop (`DispatchLoop.call`; the dispatcher ignores a session already in
flight) and answers 200. Acted on:
`session.status_run_started` (dispatch) and `session.status_terminated` / `session.deleted`
(delete the session's worker sandbox); any other signed event is acknowledged and ignored.

Rotation (issue 18): while `ORCH_WEBHOOK_SIGNING_SECRET_PREVIOUS` is set, a delivery signed with
either secret is accepted, so the Console's new secret and `pulumi up` may land in any order
without a refused delivery. A sender that signs with both at once (the Standard Webhooks
multi-signature header, `v1,<a> v1,<b>`) is accepted by the library as is. Every answer is
counted in the metrics by outcome and status.

In poll mode (`ORCH_DISPATCH_MODE=poll`) no endpoint exists: `/webhook` answers 404 as an
unknown path does, whatever is sent.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anthropic import AsyncAnthropic
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from orchestrator_app.errors import (
    MalformedWebhook,
    NotConfigured,
    PayloadTooLarge,
    WebhookRejected,
)

log = logging.getLogger(__name__)

SEEN_WEBHOOKS_MAX = 10_000
RUN_STARTED = "session.status_run_started"
# Events after which a session never comes back: its worker sandbox goes.
SESSION_ENDED = ("session.status_terminated", "session.deleted")


@dataclass(frozen=True)
class WebhookEvent:
    """The parts of a verified delivery the orchestrator uses."""

    webhook_id: str
    event_type: str
    object_id: str | None


class SeenDeliveries:
    """The ids of the last `limit` accepted deliveries: a redelivery of one is a duplicate."""

    def __init__(self, limit: int = SEEN_WEBHOOKS_MAX) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first(self, webhook_id: str) -> bool:
        """True the first time an id is offered (and remember it), False after."""
        if webhook_id in self._ids:
            return False
        self._ids[webhook_id] = None
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)
        return True


def _field(node: Any, name: str) -> Any:
    # The SDK builds events leniently: a known type is a model, an unknown one may stay a dict.
    return node.get(name) if isinstance(node, Mapping) else getattr(node, name, None)


def check_signing_secret(secret: str) -> None:
    """NotConfigured when the secret cannot be a Standard Webhooks key (empty, not base64)."""
    try:
        Webhook(secret)
    except Exception as exc:
        raise NotConfigured("webhook signing secret is not a valid whsec_ key") from exc


def _unwrap(client: AsyncAnthropic, text: str, headers: dict[str, str], secrets: list[str]) -> Any:
    """The SDK's verified event, trying each secret in turn; the last refusal otherwise."""
    refusal: WebhookVerificationError | None = None
    for secret in secrets:
        try:
            return client.beta.webhooks.unwrap(text, headers=headers, key=secret)
        except WebhookVerificationError as exc:
            refusal = exc  # maybe signed with the other secret
    assert refusal is not None
    raise refusal


def verify_event(
    client: AsyncAnthropic, body: bytes, headers: Mapping[str, str], secret: str | list[str]
) -> WebhookEvent:
    """Verify a delivery with the SDK (against any of the secrets) and read it;
    WebhookRejected / MalformedWebhook otherwise."""
    secrets = [secret] if isinstance(secret, str) else secret
    if not secrets:
        raise NotConfigured("webhook signing secret not set (ORCH_WEBHOOK_SIGNING_SECRET)")
    for candidate in secrets:
        check_signing_secret(candidate)
    # A body that is not UTF-8 cannot carry a valid signature over its text: let it fail there.
    text = body.decode("utf-8", errors="replace")
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        event = _unwrap(client, text, lowered, secrets)
    except WebhookVerificationError as exc:
        raise WebhookRejected(f"signature rejected: {exc}") from exc
    except json.JSONDecodeError as exc:
        # Parsing happens only once the signature matched.
        raise MalformedWebhook("body is not JSON") from exc
    except (ValueError, TypeError) as exc:
        # A signature header that is not `v1,<base64>` fails inside the check.
        raise WebhookRejected("signature header malformed") from exc
    data = _field(event, "data")
    event_type = _field(data, "type")
    if not isinstance(event_type, str):
        raise MalformedWebhook("event has no data.type")
    object_id = _field(data, "id")
    if event_type in (RUN_STARTED, *SESSION_ENDED) and not (
        isinstance(object_id, str) and object_id
    ):
        raise MalformedWebhook(f"{event_type} event has no data.id")
    return WebhookEvent(
        lowered["webhook-id"], event_type, object_id if isinstance(object_id, str) else None
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (PayloadTooLarge) as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(f"body exceeds {limit} bytes")
    return bytes(body)


# How each refusal is counted (the app maps the same classes to these statuses).
_REFUSALS: dict[type[Exception], tuple[str, str]] = {
    WebhookRejected: ("rejected", "401"),
    MalformedWebhook: ("malformed", "400"),
    PayloadTooLarge: ("too_large", "413"),
    NotConfigured: ("not_configured", "503"),
}


async def receive(request: Request) -> JSONResponse:
    """The webhook route: 200 fast, dispatch in the background; every answer counted."""
    if request.state.services.settings.dispatch_mode == "poll":
        raise HTTPException(404)  # nothing is delivered to a polling orchestrator
    metrics = request.state.services.metrics
    # Timed from the whole body's arrival: how fast the sender sends is not the app's time.
    started = time.perf_counter()
    try:
        body = await _body(request)
        started = time.perf_counter()
        answer = _answer(request, body)
    except tuple(_REFUSALS) as exc:
        outcome = next(v for k, v in _REFUSALS.items() if isinstance(exc, k))
        metrics.webhook_deliveries.labels(*outcome).inc()
        metrics.webhook_answer_seconds.labels(outcome[1]).observe(time.perf_counter() - started)
        raise
    metrics.webhook_deliveries.labels(answer["status"], "200").inc()
    metrics.webhook_answer_seconds.labels("200").observe(time.perf_counter() - started)
    return JSONResponse(answer)


async def _body(request: Request) -> bytes:
    settings = request.state.services.settings
    if settings.webhook_signing_secret is None:
        raise NotConfigured("webhook signing secret not set (ORCH_WEBHOOK_SIGNING_SECRET)")
    return await read_body(request, settings.webhook_max_body_bytes)


def _answer(request: Request, body: bytes) -> dict[str, str]:
    """Verify the delivery, hand it to the dispatch loop, say what became of it (no I/O)."""
    services = request.state.services
    secrets = services.settings.signing_secrets()
    event = verify_event(services.anthropic, body, request.headers, secrets)
    if event.event_type not in (RUN_STARTED, *SESSION_ENDED):
        log.info(
            "event ignored", extra={"event_type": event.event_type, "webhook_id": event.webhook_id}
        )
        return {"status": "ignored", "type": event.event_type}
    if services.not_dispatching:
        # Signed and valid, but we cannot claim anything yet: 503 lets the sender retry later.
        raise NotConfigured("dispatch disabled: " + "; ".join(services.not_dispatching))
    assert event.object_id is not None
    if event.event_type in SESSION_ENDED:
        # Another environment's session too (workspace webhooks fire for all): the cleanup
        # deletes only a sandbox labelled with this environment.
        services.dispatch.call(services.dispatcher.session_ended, event.object_id, event.event_type)
        log.info(
            "session ended",
            extra={"session_id": event.object_id, "event_type": event.event_type},
        )
        return {"status": "accepted"}
    if not services.deliveries.first(event.webhook_id):
        log.info(
            "duplicate delivery ignored",
            extra={"session_id": event.object_id, "webhook_id": event.webhook_id},
        )
        return {"status": "duplicate"}
    services.dispatch.call(services.dispatcher.notify, event.object_id)
    log.info("run started", extra={"session_id": event.object_id, "webhook_id": event.webhook_id})
    return {"status": "accepted"}
