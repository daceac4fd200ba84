"""Credentials: API key by either header, 401 in Anthropic's shape, the beta header required."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import pytest

from tests.emulator.anthropic.conftest import AnthropicServer


def x_api_key_client(emulator: AnthropicServer, key: str) -> anthropic.Anthropic:
    """A client that sends the key the way older clients do: `x-api-key`, no Authorization."""
    return anthropic.Anthropic(
        api_key=None,
        base_url=emulator.base_url,
        max_retries=0,
        default_headers={"x-api-key": key, "Authorization": anthropic.Omit()},  # type: ignore[dict-item]
        http_client=emulator.sdk_http,
    )


def test_the_api_key_works_in_the_x_api_key_header(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    created = client.beta.environments.create(name="a")  # this client sends Authorization: Bearer
    older = x_api_key_client(emulator, emulator.config.anthropic_api_key)
    assert older.beta.environments.retrieve(created.id).id == created.id


def test_a_wrong_x_api_key_is_401_in_anthropics_error_shape(emulator: AnthropicServer) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        x_api_key_client(emulator, "sk-ant-wrong").beta.environments.list()
    assert caught.value.status_code == 401
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }


def test_a_wrong_bearer_token_is_401(bearer_client: Callable[[str], anthropic.Anthropic]) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        bearer_client("sk-ant-oat01-forged").beta.environments.list()
    assert caught.value.status_code == 401
    assert caught.value.api_message == "invalid bearer token"


def test_a_missing_credential_is_401(emulator: AnthropicServer) -> None:
    # No SDK client sends nothing at all, so this one request is plain HTTP.
    response = emulator.http.get(
        emulator.base_url + "/v1/environments?beta=true",
        headers={"anthropic-beta": "managed-agents-2026-04-01"},
    )
    assert response.status_code == 401
    assert response.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "x-api-key header is required"},
    }


def test_the_managed_agents_beta_header_is_required(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.beta.environments.list(extra_headers={"anthropic-beta": "some-other-beta"})
    assert caught.value.api_message == (
        "This endpoint is in beta: requests must send the anthropic-beta header managed-agents-2026-04-01"
    )
