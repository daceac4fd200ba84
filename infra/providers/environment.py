"""The self-hosted CMA environment (`env_…`): created, updated in place, deleted or archived."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from infra.names import owner_of, refuse_foreign
from infra.providers.base import CmaProvider, CmaResource, OwnedProps

IMPORT_HINT = (
    "Set {name_key} to another name, or take it over with "
    "`pulumi config set cma:importEnvironmentId {id}` (or scripts/import-stack)."
)


class EnvironmentProps(OwnedProps):
    """Inputs of an environment."""

    name: str
    description: str | None = None
    metadata: dict[str, str] = {}
    adopt_id: str | None = None  # an existing environment to take over (explicit import)


def environment_payload(p: EnvironmentProps) -> dict[str, Any]:
    """The create / update body: always self-hosted, marked with its owner (pure)."""
    metadata = dict(p.metadata)
    if p.owner:
        metadata.update(p.owner.mark())
    body: dict[str, Any] = {
        "name": p.name,
        "config": {"type": "self_hosted"},
        "metadata": metadata,
    }
    if p.description is not None:
        body["description"] = p.description
    return body


def environment_outputs(p: EnvironmentProps, live: dict[str, Any]) -> dict[str, Any]:
    """State: what the platform holds for each diffed field, plus the live id (pure)."""
    marks = set(p.owner.mark()) if p.owner else set()
    metadata = {k: v for k, v in (live.get("metadata") or {}).items() if k not in marks}
    found = owner_of(live.get("metadata"))
    return {
        **p.model_dump(),
        "name": live["name"],
        "description": live.get("description"),
        "metadata": metadata,
        "owner": {"project": found.project, "stack": found.stack} if found else None,
        "environment_id": live["id"],
    }


def environment_needs_update(live: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Whether an adopted environment differs from what we want (pure)."""
    return any(live.get(k) != payload.get(k) for k in ("name", "description", "metadata"))


class EnvironmentProvider(CmaProvider):
    """CRUD for `env_…` through the Anthropic client."""

    props_model = EnvironmentProps
    not_diffed = frozenset({"adopt_id", "name_key"})

    def create(self, props: dict[str, Any]) -> CreateResult:
        from infra.clients import anthropic as api

        creds = self.anthropic()
        p: EnvironmentProps = self.validated(props)
        payload = environment_payload(p)
        if p.adopt_id:  # asked for explicitly: taken over whoever marked it
            live: dict[str, Any] | None = api.get_environment(creds, p.adopt_id)
        else:
            live = api.find_environment_by_name(creds, p.name)
            # Only our own (left by an earlier run that failed after creating it) is adopted.
            if live is not None and p.owner and owner_of(live.get("metadata")) != p.owner:
                hint = IMPORT_HINT.format(name_key=p.name_key or "the name", id=live["id"])
                raise refuse_foreign(
                    "environment", p.name, owner_of(live.get("metadata")), p.owner, hint
                )
        if live is None:
            live = api.create_environment(creds, payload)
        elif environment_needs_update(live, payload):
            live = api.update_environment(creds, live["id"], payload)
        return CreateResult(live["id"], environment_outputs(p, live))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from infra.clients import anthropic as api
        from infra.clients.errors import NotFound

        p: EnvironmentProps = self.validated(props)
        try:
            live = api.get_environment(self.anthropic(), id_)
        except NotFound:
            return ReadResult("", {})
        outs = environment_outputs(p, live)
        return ReadResult(id_, outs, inputs={k: outs[k] for k in EnvironmentProps.model_fields})

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from infra.clients import anthropic as api

        p: EnvironmentProps = self.validated(news)
        live = api.update_environment(self.anthropic(), id_, environment_payload(p))
        return UpdateResult(environment_outputs(p, live))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from infra.clients import anthropic as api

        api.delete_environment(self.anthropic(), id_)


class SelfHostedEnvironment(CmaResource, module="cma", name="Environment"):
    """A self-hosted CMA environment; `environment_id` is its `env_…` id."""

    provider_class = EnvironmentProvider
    output_names = ("environment_id",)

    environment_id: pulumi.Output[str]
    name: pulumi.Output[str]
