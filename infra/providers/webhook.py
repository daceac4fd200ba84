"""The webhook endpoint for `session.status_run_started`, pointing at `<preview url>/webhook`.

Mode `console`: workspace webhooks are registered only in the Console; this resource makes no
call, outputs the URL to register and passes on the signing secret from secret config.
Mode `api`: the endpoint is created through the SDK's endpoint-management API and the
signing secret it returns once flows on as a secret output.
"""

from __future__ import annotations

from typing import Any, Literal

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from infra.clients import anthropic as api
from infra.clients.errors import NotFound
from infra.providers.base import (
    ANTHROPIC_CREDENTIAL_FIELDS,
    PortableProvider,
    Props,
    anthropic_credentials,
    check_with,
    field_diff,
    pick,
    with_defaults,
    with_secret_outputs,
)

FIELDS = ("mode", "url", "events", "label", "signing_secret")
# Switching modes means another kind of registration: replace.
REPLACE_FIELDS = ("mode",)
CONSOLE_ID_PREFIX = "console:"


class WebhookProps(Props):
    """Inputs of a webhook endpoint."""

    mode: Literal["console", "api"]
    url: str
    events: list[str] = list(api.SESSION_EVENTS)
    label: str = "cma-blaxel orchestrator"
    signing_secret: str | None = None  # console mode: from secret config


def webhook_url(preview_url: str) -> str:
    """Where the orchestrator takes webhooks (pure)."""
    return preview_url.rstrip("/") + "/webhook"


def webhook_payload(props: dict[str, Any]) -> dict[str, Any]:
    """The endpoint-management create / update body (pure)."""
    p = WebhookProps.model_validate(props)
    return {"url": p.url, "enabled_events": list(p.events), "name": p.label}


def webhook_outputs(
    props: dict[str, Any], secret: str | None, endpoint_id: str | None
) -> dict[str, Any]:
    """State: inputs, credentials and signing secret (both secret), endpoint id (api mode)."""
    p = WebhookProps.model_validate(props)
    return {
        **pick(props, ANTHROPIC_CREDENTIAL_FIELDS),
        **pick(p.model_dump(), FIELDS),
        "signing_secret": secret or "",
        "endpoint_id": endpoint_id or "",
    }


class WebhookProvider(PortableProvider):
    """Console mode: no calls. API mode: organization webhook endpoints."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> Any:
        return check_with(WebhookProps, news)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        fields = FIELDS if news.get("mode") == "console" else FIELDS[:-1]
        wanted = {**news, **pick(with_defaults(WebhookProps, news), fields)}
        return field_diff(olds, wanted, (*fields, *ANTHROPIC_CREDENTIAL_FIELDS), REPLACE_FIELDS)

    def create(self, props: dict[str, Any]) -> CreateResult:
        p = WebhookProps.model_validate(props)
        if p.mode == "console":
            return CreateResult(
                CONSOLE_ID_PREFIX + p.url, webhook_outputs(props, p.signing_secret, None)
            )
        creds = anthropic_credentials(props)
        existing = api.find_webhook_by_url(creds, p.url)
        if existing is None:
            created = api.create_webhook(creds, webhook_payload(props))
            endpoint_id, secret = created["id"], created["signing_secret"]
        else:
            # Adopt it; its secret was shown once to a run that failed: get a new one.
            endpoint_id = existing["id"]
            api.update_webhook(creds, endpoint_id, webhook_payload(props))
            secret = api.regenerate_webhook_secret(creds, endpoint_id)
        return CreateResult(endpoint_id, webhook_outputs(props, secret, endpoint_id))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        p = WebhookProps.model_validate(news)
        if p.mode == "console":
            return UpdateResult(webhook_outputs(news, p.signing_secret, None))
        api.update_webhook(anthropic_credentials(news), id_, webhook_payload(news))
        return UpdateResult(webhook_outputs(news, olds.get("signing_secret"), id_))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if id_.startswith(CONSOLE_ID_PREFIX):
            return ReadResult(id_, props)
        try:
            live = api.get_webhook(anthropic_credentials(props), id_)
        except NotFound:
            return ReadResult("", {})
        return ReadResult(id_, {**props, "url": live.get("url", props.get("url"))})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        if id_.startswith(CONSOLE_ID_PREFIX):
            return  # registered by hand in the Console; next_steps says to remove it
        api.delete_webhook(anthropic_credentials(props), id_)


class WebhookEndpoint(Resource):
    """The registration of the orchestrator's webhook URL; `signing_secret` is secret."""

    url: pulumi.Output[str]
    signing_secret: pulumi.Output[str]
    endpoint_id: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        props: dict[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            WebhookProvider(),
            resource_name,
            {**props, "endpoint_id": None},
            with_secret_outputs(opts, "anthropic_api_key", "signing_secret"),
        )
