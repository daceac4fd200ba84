"""The self-hosted CMA environment (`env_…`): created, updated in place, deleted or archived."""

from __future__ import annotations

from typing import Any

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
    with_secret_outputs,
)

FIELDS = ("name", "description", "metadata")


class EnvironmentProps(Props):
    """Inputs of an environment."""

    name: str
    description: str | None = None
    metadata: dict[str, str] = {}
    adopt_id: str | None = None  # an existing environment to take over instead of creating


def environment_payload(props: dict[str, Any]) -> dict[str, Any]:
    """The create body: always self-hosted (pure)."""
    p = EnvironmentProps.model_validate(props)
    body: dict[str, Any] = {
        "name": p.name,
        "config": {"type": "self_hosted"},
        "metadata": dict(p.metadata),
    }
    if p.description is not None:
        body["description"] = p.description
    return body


def environment_outputs(props: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """State after a call: our inputs (credentials included, secret) plus the live id."""
    return {
        **pick(props, ANTHROPIC_CREDENTIAL_FIELDS),
        "name": live["name"],
        "description": live.get("description"),
        "metadata": dict(live.get("metadata") or {}),
        "environment_id": live["id"],
    }


def environment_needs_update(live: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Whether an adopted environment differs from what we want (pure)."""
    return any(live.get(k) != payload.get(k) for k in ("name", "description", "metadata"))


class EnvironmentProvider(PortableProvider):
    """CRUD for `env_…` through the Anthropic client."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> Any:
        return check_with(EnvironmentProps, news)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        try:
            wanted = {**news, **pick(EnvironmentProps.model_validate(news).model_dump(), FIELDS)}
        except ValueError:
            wanted = news
        return field_diff(olds, wanted, (*FIELDS, *ANTHROPIC_CREDENTIAL_FIELDS))

    def create(self, props: dict[str, Any]) -> CreateResult:
        creds = anthropic_credentials(props)
        payload = environment_payload(props)
        adopt_id = EnvironmentProps.model_validate(props).adopt_id
        # Adopt the one asked for, or one left by an earlier run that failed after creating it.
        if adopt_id:
            live: dict[str, Any] | None = api.get_environment(creds, adopt_id)
        else:
            live = api.find_environment_by_name(creds, payload["name"])
        if live is None:
            live = api.create_environment(creds, payload)
        elif environment_needs_update(live, payload):
            live = api.update_environment(creds, live["id"], payload)
        return CreateResult(live["id"], environment_outputs(props, live))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            live = api.get_environment(anthropic_credentials(props), id_)
        except NotFound:
            return ReadResult("", {})
        return ReadResult(id_, environment_outputs(props, live))

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        live = api.update_environment(anthropic_credentials(news), id_, environment_payload(news))
        return UpdateResult(environment_outputs(news, live))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        api.delete_environment(anthropic_credentials(props), id_)


class SelfHostedEnvironment(Resource):
    """A self-hosted CMA environment; `environment_id` is its `env_…` id."""

    environment_id: pulumi.Output[str]
    name: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        props: dict[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            EnvironmentProvider(),
            resource_name,
            {**props, "environment_id": None},
            with_secret_outputs(opts, "anthropic_api_key"),
        )
