"""The webhook endpoint for `session.status_run_started`, pointing at `<preview url>/webhook`.

Mode `console`: workspace webhooks are registered only in the Console; this resource makes no
call, outputs the URL to register and passes on the signing secret from secret config.
Mode `api`: the endpoint is created through the SDK's endpoint-management API and the
signing secret it returns once flows on as a secret output.
"""

from __future__ import annotations

from typing import Any, Literal

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from infra.providers.base import CmaProvider, CmaResource, Props

SESSION_EVENTS = ["session.status_run_started"]
CONSOLE_ID_PREFIX = "console:"


class WebhookProps(Props):
    """Inputs of a webhook endpoint."""

    mode: Literal["console", "api"]
    url: str
    events: list[str] = list(SESSION_EVENTS)
    label: str = "cma-blaxel orchestrator"
    signing_secret: str | None = None  # console mode: from secret config


def webhook_url(preview_url: str) -> str:
    """Where the orchestrator takes webhooks (pure)."""
    return preview_url.rstrip("/") + "/webhook"


def webhook_payload(p: WebhookProps) -> dict[str, Any]:
    """The endpoint-management create / update body (pure)."""
    return {"url": p.url, "enabled_events": list(p.events), "name": p.label}


def webhook_outputs(p: WebhookProps, secret: str | None, endpoint_id: str | None) -> dict[str, Any]:
    """State: inputs, the signing secret (secret) and the endpoint id (api mode) (pure)."""
    return {**p.model_dump(), "signing_secret": secret or "", "endpoint_id": endpoint_id or ""}


class WebhookProvider(CmaProvider):
    """Console mode: no calls. API mode: organization webhook endpoints."""

    props_model = WebhookProps
    # Switching modes means another kind of registration: replace.
    replace_fields = ("mode",)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        if news.get("mode") != "console":
            # In api mode the secret is the endpoint's, an output: not compared.
            news = {**news, "signing_secret": olds.get("signing_secret")}
        return super().diff(id_, olds, news)

    def create(self, props: dict[str, Any]) -> CreateResult:
        from infra.clients import anthropic as api

        p: WebhookProps = self.validated(props)
        if p.mode == "console":
            return CreateResult(
                CONSOLE_ID_PREFIX + p.url, webhook_outputs(p, p.signing_secret, None)
            )
        creds = self.anthropic()
        existing = api.find_webhook_by_url(creds, p.url)
        if existing is None:
            created = api.create_webhook(creds, webhook_payload(p))
            endpoint_id, secret = created["id"], created["signing_secret"]
        else:
            # Adopt it; its secret was shown once to a run that failed: get a new one.
            endpoint_id = existing["id"]
            api.update_webhook(creds, endpoint_id, webhook_payload(p))
            secret = api.regenerate_webhook_secret(creds, endpoint_id)
        return CreateResult(endpoint_id, webhook_outputs(p, secret, endpoint_id))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from infra.clients import anthropic as api

        p: WebhookProps = self.validated(news)
        if p.mode == "console":
            return UpdateResult(webhook_outputs(p, p.signing_secret, None))
        api.update_webhook(self.anthropic(), id_, webhook_payload(p))
        return UpdateResult(webhook_outputs(p, olds.get("signing_secret"), id_))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from infra.clients import anthropic as api
        from infra.clients.errors import NotFound

        if id_.startswith(CONSOLE_ID_PREFIX):
            return ReadResult(id_, props)
        try:
            live = api.get_webhook(self.anthropic(), id_)
        except NotFound:
            return ReadResult("", {})
        p: WebhookProps = self.validated(
            {
                **props,
                "url": live.get("url", props.get("url")),
                "events": live.get("enabled_events", props.get("events")),
                "label": live.get("name", props.get("label")),
            }
        )
        outs = webhook_outputs(p, props.get("signing_secret"), id_)
        return ReadResult(id_, outs, inputs=p.model_dump())

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from infra.clients import anthropic as api

        if id_.startswith(CONSOLE_ID_PREFIX):
            return  # registered by hand in the Console; next_steps says to remove it
        api.delete_webhook(self.anthropic(), id_)


class WebhookEndpoint(CmaResource, module="cma", name="WebhookEndpoint"):
    """The registration of the orchestrator's webhook URL; `signing_secret` is secret."""

    provider_class = WebhookProvider
    output_names = ("endpoint_id",)
    secret_output_names = ("signing_secret",)

    url: pulumi.Output[str]
    signing_secret: pulumi.Output[str]
    endpoint_id: pulumi.Output[str]
