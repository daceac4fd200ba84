"""Environments through the SDK: CRUD, archive, refusals with Anthropic's errors."""

from __future__ import annotations

import anthropic
import pytest
from anthropic.types.beta import BetaEnvironment, BetaEnvironmentDeleteResponse
from anthropic.types.beta.beta_environment_archived_error import BetaEnvironmentArchivedError
from anthropic.types.beta.beta_invalid_config_type_change_error import (
    BetaInvalidConfigTypeChangeError,
)

from tests.emulator.anthropic.helpers import agent, self_hosted_environment, session, strict


def test_environment_round_trip_parses_into_the_sdk_models(client: anthropic.Anthropic) -> None:
    created = client.beta.environments.create(
        name="workers",
        config={"type": "self_hosted"},
        description="blaxel",
        metadata={"stack": "dev"},
    )
    strict(BetaEnvironment, created)
    assert created.id.startswith("env_")
    assert created.config.type == "self_hosted"

    fetched = client.beta.environments.retrieve(created.id)
    assert fetched.model_dump() == created.model_dump()

    updated = client.beta.environments.update(
        created.id, name="renamed", metadata={"stack": None, "team": "infra"}
    )
    assert (updated.name, updated.metadata, updated.description) == (
        "renamed",
        {"team": "infra"},
        "blaxel",
    )
    assert [e.id for e in client.beta.environments.list()] == [created.id]


def test_changing_the_config_type_is_refused(client: anthropic.Anthropic) -> None:
    environment = self_hosted_environment(client)
    with pytest.raises(BetaInvalidConfigTypeChangeError) as caught:
        client.beta.environments.update(environment.id, config={"type": "cloud"})
    assert caught.value.status_code == 400
    assert caught.value.api_message == (
        "config.type: cannot change from 'self_hosted' to 'cloud'; create a new environment instead"
    )


def test_delete_is_refused_while_a_session_references_the_environment(
    client: anthropic.Anthropic,
) -> None:
    environment = self_hosted_environment(client)
    session(client, environment.id, agent(client).id)
    with pytest.raises(anthropic.ConflictError) as caught:
        client.beta.environments.delete(environment.id)
    assert caught.value.status_code == 409
    assert caught.value.api_message == (
        f"Environment {environment.id} is referenced by 1 session(s) and cannot be deleted; archive it instead"
    )
    archived = client.beta.environments.archive(environment.id)
    assert archived.archived_at is not None
    assert client.beta.environments.list().data == []
    assert [e.id for e in client.beta.environments.list(include_archived=True)] == [environment.id]


def test_an_archived_environment_cannot_be_updated_or_used(client: anthropic.Anthropic) -> None:
    environment = self_hosted_environment(client)
    client.beta.environments.archive(environment.id)
    with pytest.raises(BetaEnvironmentArchivedError) as caught:
        client.beta.environments.update(environment.id, name="again")
    assert (
        caught.value.api_message
        == f"Environment {environment.id} is archived and cannot be modified"
    )
    with pytest.raises(BetaEnvironmentArchivedError):
        session(client, environment.id, agent(client).id)


def test_delete_then_retrieve_is_not_found(client: anthropic.Anthropic) -> None:
    environment = self_hosted_environment(client)
    deleted = client.beta.environments.delete(environment.id)
    strict(BetaEnvironmentDeleteResponse, deleted)
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.beta.environments.retrieve(environment.id)
    assert caught.value.status_code == 404
    assert caught.value.api_message == f"Environment {environment.id} not found"


def test_an_empty_name_is_refused_naming_the_field(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.beta.environments.create(name=" ")
    assert caught.value.api_message == "name: must be a non-empty string"
