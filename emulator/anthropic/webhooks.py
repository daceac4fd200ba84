"""Webhooks: endpoint registries (Console workspace endpoints, organization API endpoints),
Standard Webhooks signing, and the delivery loop with retries and backoff.

A delivery is one message to one endpoint; every attempt is re-signed with a fresh
`webhook-timestamp` and keeps the same `webhook-id`, as Standard Webhooks senders do.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
from typing import Any
from urllib.parse import urlparse

import httpx

from emulator.anthropic.common import iso, new_id
from emulator.anthropic.exceptions import InvalidRequestError, NotFoundError
from emulator.anthropic.records import ORGANIZATION_ID, WORKSPACE_ID, Delivery, WebhookEndpoint
from emulator.anthropic.state import BackendState

log = logging.getLogger(__name__)

RUN_STARTED = "session.status_run_started"
# The session events this emulator sends (a workspace endpoint may subscribe to any).
WORKSPACE_EVENTS = (
    RUN_STARTED,
    "session.created",
    "session.status_idled",
    "session.status_terminated",
    "session.deleted",
)
# Only what the SDK's organization endpoint API lists (types/beta/organization/
# webhook_create_params.py): no `session.*` event; those go to Console-registered workspace
# endpoints only (DESIGN §2).
ORGANIZATION_EVENTS = (
    "external_key.failed",
    "external_key.recovered",
    "user_profile.enforcement_action_opened",
    "user_profile.enforcement_action_resolved",
    "user_profile.program_status_updated",
)
MAX_ORGANIZATION_ENDPOINTS = 32
# Seconds before each retry: quick at first, then ~9 minutes in all, as a real sender keeps
# trying a receiver that is down for a while (tests shorten it on the backend).
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0)


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>` keyed by the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": "Anthropic-Webhooks/1.0 (emulator)",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }


def event_body(event_id: str, event_type: str, session_id: str, created_at: str) -> str:
    """The JSON a receiver gets; it names the session, organization and workspace, not the environment."""
    payload = {
        "type": "event",
        "id": event_id,
        "created_at": created_at,
        "data": {
            "type": event_type,
            "id": session_id,
            "organization_id": ORGANIZATION_ID,
            "workspace_id": WORKSPACE_ID,
        },
    }
    return json.dumps(payload, separators=(",", ":"))


def _check_url(url: Any, schemes: tuple[str, ...] = ("http", "https")) -> str:
    parsed = urlparse(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in schemes or not parsed.netloc:
        kind = "an https" if schemes == ("https",) else "an absolute http(s)"
        raise InvalidRequestError(f"url: must be {kind} URL, got {url!r}")
    return str(url)


def _check_organization_url(url: Any) -> str:
    """The organization API delivers over HTTPS only (DESIGN §3)."""
    return _check_url(url, ("https",))


def _check_events(events: Any, allowed: tuple[str, ...], field: str) -> list[str]:
    if not isinstance(events, list) or not events:
        raise InvalidRequestError(f"{field}: must list at least one event type")
    unknown = [e for e in events if e not in allowed]
    if unknown:
        raise InvalidRequestError(f"{field}: unknown event type(s) {unknown}")
    return list(dict.fromkeys(events))


class WebhookOps(BackendState):
    """register/list/delete/redeliver (Console), the organization webhooks API, and delivery."""

    webhook_retry_delays: tuple[float, ...] = RETRY_DELAYS
    _http: httpx.AsyncClient | None = None
    _delivery_tasks: set[asyncio.Task[None]]
    _unsent: list[Delivery]

    # -- Console: workspace endpoints --------------------------------------------------

    def register_workspace_webhook(self, url: Any, events: Any) -> dict[str, Any]:
        """Register an endpoint; the `whsec_` secret is in this answer and no other."""
        now = self.clock.now()
        endpoint = WebhookEndpoint(
            id=new_id("whep"),
            kind="workspace",
            url=_check_url(url),
            events=_check_events(events, WORKSPACE_EVENTS, "events"),
            secret=self._issue(new_signing_secret()),
            created_at=now,
            updated_at=now,
        )
        with self._lock:
            self.webhook_endpoints[endpoint.id] = endpoint
        return {"id": endpoint.id, "url": endpoint.url, "secret": endpoint.secret}

    def list_workspace_webhooks(self) -> dict[str, Any]:
        with self._lock:
            rows = [
                e.console_view() for e in self.webhook_endpoints.values() if e.kind == "workspace"
            ]
        return {"data": rows}

    def _endpoint(self, endpoint_id: str, kind: str) -> WebhookEndpoint:
        endpoint = self.webhook_endpoints.get(endpoint_id)
        if endpoint is None or endpoint.kind != kind:
            raise NotFoundError(f"Webhook endpoint {endpoint_id} not found")
        return endpoint

    def delete_workspace_webhook(self, endpoint_id: str) -> dict[str, Any]:
        with self._lock:
            self._endpoint(endpoint_id, "workspace")
            del self.webhook_endpoints[endpoint_id]
        return {"id": endpoint_id, "type": "webhook_endpoint_deleted"}

    def redeliver_webhook(self, endpoint_id: str, event_id: str | None = None) -> dict[str, Any]:
        """Send a past message again with the same `webhook-id` (a forced duplicate)."""
        with self._lock:
            endpoint = self.webhook_endpoints.get(endpoint_id)
            if endpoint is None:
                raise NotFoundError(f"Webhook endpoint {endpoint_id} not found")
            past = [
                d
                for d in self.deliveries
                if d.endpoint_id == endpoint_id and (event_id is None or d.webhook_id == event_id)
            ]
            if not past:
                raise NotFoundError(
                    f"No delivery {event_id} to endpoint {endpoint_id}"
                    if event_id
                    else f"Endpoint {endpoint_id} has no delivery to repeat"
                )
            last = past[-1]
            again = Delivery(
                endpoint_id,
                endpoint.url,
                last.webhook_id,
                last.event_type,
                last.session_id,
                last.body,
                forced=True,
            )
            self.deliveries.append(again)
        self._dispatch(again)
        return {"endpoint_id": endpoint_id, "event_id": again.webhook_id, "forced": True}

    # -- organization webhooks API -----------------------------------------------------

    def create_organization_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        endpoint = WebhookEndpoint(
            id=new_id("whep"),
            kind="organization",
            url=_check_organization_url(body.get("url")),
            events=_check_events(body.get("enabled_events"), ORGANIZATION_EVENTS, "enabled_events"),
            secret=self._issue(new_signing_secret()),
            created_at=now,
            updated_at=now,
            name=body.get("name") or "",
            description=body.get("description") or "",
        )
        with self._lock:
            count = sum(1 for e in self.webhook_endpoints.values() if e.kind == "organization")
            if count >= MAX_ORGANIZATION_ENDPOINTS:
                raise InvalidRequestError(
                    f"An organization can have at most {MAX_ORGANIZATION_ENDPOINTS} webhook endpoints"
                )
            self.webhook_endpoints[endpoint.id] = endpoint
        return {**endpoint.to_api(), "signing_secret": endpoint.secret}

    def retrieve_organization_webhook(self, endpoint_id: str) -> dict[str, Any]:
        with self._lock:
            return self._endpoint(endpoint_id, "organization").to_api()

    def update_organization_webhook(self, endpoint_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            endpoint = self._endpoint(endpoint_id, "organization")
            if body.get("url") is not None:
                endpoint.url = _check_organization_url(body["url"])
            if body.get("enabled_events"):
                endpoint.events = _check_events(
                    body["enabled_events"], ORGANIZATION_EVENTS, "enabled_events"
                )
            if body.get("state") is not None:
                if body["state"] not in ("enabled", "disabled"):
                    raise InvalidRequestError("state: must be 'enabled' or 'disabled'")
                endpoint.state = body["state"]
            for key in ("name", "description"):
                if body.get(key) is not None:
                    setattr(endpoint, key, body[key])
            endpoint.updated_at = self.clock.now()
            return endpoint.to_api()

    def list_organization_webhooks(self) -> dict[str, Any]:
        with self._lock:
            rows = [e.to_api() for e in self.webhook_endpoints.values() if e.kind == "organization"]
        return {
            "data": rows,
            "has_more": False,
            "first_id": rows[0]["id"] if rows else None,
            "last_id": rows[-1]["id"] if rows else None,
        }

    def delete_organization_webhook(self, endpoint_id: str) -> dict[str, Any]:
        with self._lock:
            self._endpoint(endpoint_id, "organization")
            del self.webhook_endpoints[endpoint_id]
        return {"id": endpoint_id, "type": "webhook_endpoint_deleted"}

    def regenerate_signing_secret(self, endpoint_id: str) -> dict[str, Any]:
        with self._lock:
            endpoint = self._endpoint(endpoint_id, "organization")
            endpoint.secret = self._issue(new_signing_secret())
            endpoint.updated_at = self.clock.now()
            return {"signing_secret": endpoint.secret}

    # -- publishing and delivery -------------------------------------------------------

    def publish_webhook_event(self, event_type: str, session_id: str) -> list[Delivery]:
        """Queue `event_type` for every enabled endpoint subscribed to it."""
        event_id = new_id("wevt")
        body = event_body(event_id, event_type, session_id, iso(self.clock.now()))
        with self._lock:
            made = [
                Delivery(e.id, e.url, event_id, event_type, session_id, body)
                for e in self.webhook_endpoints.values()
                if e.state == "enabled" and event_type in e.events
            ]
            self.deliveries.extend(made)
        for delivery in made:
            self._dispatch(delivery)
        return made

    def _dispatch(self, delivery: Delivery) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self._unsent.append(delivery)  # sent when the backend starts
            return
        loop.call_soon_threadsafe(self._spawn_delivery, delivery)

    def _spawn_delivery(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(delivery))
        self._delivery_tasks.add(task)
        task.add_done_callback(self._delivery_tasks.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            for delay in (0.0, *self.webhook_retry_delays):
                if delay:
                    await asyncio.sleep(delay)
                if await self._attempt(delivery):
                    return
            delivery.given_up = True
        except asyncio.CancelledError:
            raise
        except Exception:  # a background task's top: record and log, never crash the loop
            log.exception("webhook delivery to %s failed", delivery.url)
            delivery.given_up = True

    async def _attempt(self, delivery: Delivery) -> bool:
        """One signed POST; True once the receiver answered 2xx (or the endpoint is gone)."""
        with self._lock:
            endpoint = self.webhook_endpoints.get(delivery.endpoint_id)
            secret = endpoint.secret if endpoint and endpoint.state == "enabled" else None
        if secret is None or self._http is None:
            delivery.given_up = True
            return True
        timestamp = int(self.clock.now().timestamp())
        headers = signed_headers(secret, delivery.webhook_id, timestamp, delivery.body)
        try:
            response = await self._http.post(delivery.url, content=delivery.body, headers=headers)
        except httpx.HTTPError as exc:
            delivery.attempts.append(type(exc).__name__)
            return False
        delivery.attempts.append(str(response.status_code))
        if 200 <= response.status_code < 300:
            delivery.delivered = True
            self.notify()
            return True
        return False
