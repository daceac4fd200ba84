"""The strict Anthropic contract (docs/platform-contract.md): each test cites the row it pins."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import anthropic
import pytest

from tests.emulator.anthropic.conftest import AnthropicServer
from tests.emulator.anthropic.helpers import (
    agent,
    self_hosted_environment,
    session,
    sessions_token,
    wait_until,
)

RUN_STARTED = "session.status_run_started"


@pytest.fixture
def pollable_delay(emulator: AnthropicServer) -> Iterator[None]:
    """A realistic gap between a work item's creation and its pollability."""
    emulator.config.timing.update(work_pollable_delay_s=0.4)
    yield
    emulator.config.timing.update(work_pollable_delay_s=0)


def _raw_headers(emulator: AnthropicServer) -> dict[str, str]:
    """What the SDK sends, for reading raw JSON (fields the Python SDK's models hide)."""
    return {
        "x-api-key": emulator.config.anthropic_api_key,
        "anthropic-beta": "managed-agents-2026-04-01",
    }


def _register(emulator: AnthropicServer, name: str) -> None:
    response = emulator.console(
        "POST", "/webhooks", json={"url": emulator.receiver_url(name), "events": [RUN_STARTED]}
    )
    response.raise_for_status()


def _message(text: str) -> list[dict[str, object]]:
    return [{"type": "user.message", "content": [{"type": "text", "text": text}]}]


def _run_starts(emulator: AnthropicServer, name: str, session_id: str) -> int:
    bodies = [json.loads(body) for _, body in emulator.receivers[name].requests]
    return sum(
        1 for b in bodies if b["data"]["type"] == RUN_STARTED and b["data"]["id"] == session_id
    )


def test_run_started_fires_at_every_transition_to_running(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    """Row "run-started per turn": platform.claude.com/docs/managed-agents/webhooks."""
    _register(emulator, "hooks")
    environment = self_hosted_environment(client)
    session_id = session(client, environment.id, agent(client).id, "say: one").id
    wait_until(lambda: _run_starts(emulator, "hooks", session_id) == 1)

    client.beta.sessions.events.send(session_id, events=_message("say: two"))  # type: ignore[arg-type]
    client.beta.sessions.events.send(session_id, events=_message("say: three"))  # type: ignore[arg-type]

    wait_until(lambda: _run_starts(emulator, "hooks", session_id) == 3)
    time.sleep(0.1)
    assert _run_starts(emulator, "hooks", session_id) == 3


def test_a_new_item_is_not_pollable_at_once(
    client: anthropic.Anthropic,
    emulator: AnthropicServer,
    bearer_client: object,
    pollable_delay: None,
) -> None:
    """Row "delivery before pollability": one empty poll right after a delivery is not final."""
    environment = self_hosted_environment(client)
    worker = bearer_client(emulator.environment_key(environment.id))  # type: ignore[operator]
    session(client, environment.id, agent(client).id)

    early = worker.beta.environments.work.poll(environment.id, block_ms=10)
    late = worker.beta.environments.work.poll(environment.id, block_ms=999)

    assert early is None
    assert late is not None


def test_a_long_poll_wakes_when_the_item_turns_pollable(
    client: anthropic.Anthropic,
    emulator: AnthropicServer,
    bearer_client: object,
    pollable_delay: None,
) -> None:
    environment = self_hosted_environment(client)
    worker = bearer_client(emulator.environment_key(environment.id))  # type: ignore[operator]
    session(client, environment.id, agent(client).id)

    started = time.monotonic()
    item = worker.beta.environments.work.poll(environment.id, block_ms=999)

    assert item is not None
    assert 0.3 < time.monotonic() - started < 0.95


def _poll_secret(
    client: anthropic.Anthropic, emulator: AnthropicServer, bearer_client: object, mode: str
) -> str | None:
    environment = self_hosted_environment(client)
    emulator.backend.set_work_secret_mode(environment.id, mode)
    worker = bearer_client(emulator.environment_key(environment.id))  # type: ignore[operator]
    session(client, environment.id, agent(client).id)
    item = wait_until(lambda: worker.beta.environments.work.poll(environment.id, block_ms=50))
    return item.secret  # type: ignore[no-any-return]


def test_a_work_secret_may_be_absent(
    client: anthropic.Anthropic, emulator: AnthropicServer, bearer_client: object
) -> None:
    """Row "work secret optional": the SDK types `secret` optional ("may be populated")."""
    assert _poll_secret(client, emulator, bearer_client, "absent") is None


def test_a_work_secret_may_carry_no_sessions_token(
    client: anthropic.Anthropic, emulator: AnthropicServer, bearer_client: object
) -> None:
    secret = _poll_secret(client, emulator, bearer_client, "no_sessions_token")

    assert secret is not None
    with pytest.raises(KeyError):
        sessions_token(secret)


def test_a_sessions_token_expires_on_the_emulator_clock(
    client: anthropic.Anthropic, emulator: AnthropicServer, bearer_client: object
) -> None:
    """Row "work secret short-lived": about an hour (DESIGN §3)."""
    secret = _poll_secret(client, emulator, bearer_client, "full")
    assert secret is not None
    token_client = bearer_client(sessions_token(secret))  # type: ignore[operator]
    session_id = next(iter(emulator.backend.sessions))

    token_client.beta.sessions.retrieve(session_id)
    emulator.backend.clock.advance(emulator.config.work_secret_ttl_s + 1)

    with pytest.raises(anthropic.AuthenticationError, match="sessions token expired"):
        token_client.beta.sessions.retrieve(session_id)


def test_an_unknown_secret_mode_is_refused(
    emulator: AnthropicServer, client: anthropic.Anthropic
) -> None:
    environment = self_hosted_environment(client)

    with pytest.raises(Exception, match="mode: must be one of full, no_sessions_token, absent"):
        emulator.backend.set_work_secret_mode(environment.id, "sometimes")


def test_a_session_shows_its_budget_and_null_without_one(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    """Row "session budget": typed required-nullable by the TypeScript and Go SDKs."""
    environment = self_hosted_environment(client)
    coder = agent(client)
    budget = {"type": "limit", "max_list_cost": {"amount": "5.00", "currency": "USD"}}
    with_budget = client.beta.sessions.create(
        agent=coder.id,
        environment_id=environment.id,
        budget=budget,  # type: ignore[arg-type]
    )
    without = session(client, environment.id, coder.id)

    raw = emulator.http.get(
        f"{emulator.base_url}/v1/sessions/{without.id}",
        headers=_raw_headers(emulator),
    ).json()

    assert with_budget.budget is not None
    assert with_budget.budget.max_list_cost.amount == "5.00"
    assert "budget" in raw and raw["budget"] is None


def test_a_budget_cannot_be_added_after_creation(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    created = session(client, self_hosted_environment(client).id, agent(client).id)

    with pytest.raises(anthropic.BadRequestError, match="cannot be added"):
        client.beta.sessions.update(
            created.id,
            budget={"type": "limit", "max_list_cost": {"amount": "1", "currency": "USD"}},  # type: ignore[arg-type]
        )


def test_an_idle_event_carries_stop_details_as_null(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    """Row "idle stop_details": required-nullable in the TypeScript and Go SDKs."""
    created = session(client, self_hosted_environment(client).id, agent(client).id, "say: hi")

    raw = emulator.http.get(
        f"{emulator.base_url}/v1/sessions/{created.id}/events",
        headers=_raw_headers(emulator),
    ).json()["data"]

    idles = [e for e in raw if e["type"] == "session.status_idle"]
    assert idles and all("stop_details" in e and e["stop_details"] is None for e in idles)


def test_the_session_list_is_a_two_way_cursor_page_with_every_filter(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    """Row "sessions.list": `prev_page`, `agent_version`, `created_at[...]` filters."""
    environment = self_hosted_environment(client)
    coder = agent(client)
    first = session(client, environment.id, coder.id)
    client.beta.agents.update(coder.id, version=coder.version, description="v2")
    second = client.beta.sessions.create(
        agent={"type": "agent", "id": coder.id, "version": 2},  # type: ignore[arg-type]
        environment_id=environment.id,
    )
    headers = _raw_headers(emulator)
    url = f"{emulator.base_url}/v1/sessions"

    page_one = emulator.http.get(url, params={"limit": 1}, headers=headers).json()
    page_two = emulator.http.get(
        url, params={"limit": 1, "page": page_one["next_page"]}, headers=headers
    ).json()
    by_version = client.beta.sessions.list(agent_id=coder.id, agent_version=1)
    after_first = client.beta.sessions.list(created_at_gt=first.created_at)

    assert page_one["prev_page"] is None
    assert page_two["prev_page"] is not None
    assert [s.id for s in by_version.data] == [first.id]
    assert [s.id for s in after_first.data] == [second.id]


def test_an_agent_metadata_empty_string_is_kept_and_null_deletes(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    """Row "agent metadata": SDK agent_update_params, "to null to delete it"."""
    created = client.beta.agents.create(
        name="m", model="claude-sonnet-4-6", metadata={"a": "1", "b": "2"}
    )

    updated = client.beta.agents.update(
        created.id, version=created.version, metadata={"a": "", "b": None}
    )

    assert updated.metadata == {"a": ""}


_SERVER = {"type": "url", "name": "docs", "url": "https://mcp.example/sse"}


@pytest.mark.parametrize(
    ("servers", "tools", "message"),
    [
        ([_SERVER, _SERVER], [{"type": "mcp_toolset", "mcp_server_name": "docs"}], "duplicate"),
        ([_SERVER], [{"type": "agent_toolset_20260401"}], "not referenced"),
        ([], [{"type": "mcp_toolset", "mcp_server_name": "docs"}], "name no server"),
    ],
)
def test_mcp_server_references_are_checked(
    client: anthropic.Anthropic,
    emulator: AnthropicServer,
    servers: list[dict[str, str]],
    tools: list[dict[str, str]],
    message: str,
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=message):
        client.beta.agents.create(
            name="mcp",
            model="claude-sonnet-4-6",
            mcp_servers=servers,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
        )


def test_a_declared_and_used_mcp_server_is_accepted(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    created = client.beta.agents.create(
        name="mcp",
        model="claude-sonnet-4-6",
        mcp_servers=[_SERVER],  # type: ignore[list-item]
        tools=[{"type": "mcp_toolset", "mcp_server_name": "docs"}],
    )

    assert [s.name for s in created.mcp_servers] == ["docs"]


def _claimed(
    client: anthropic.Anthropic, emulator: AnthropicServer, bearer_client: object, message: str
) -> tuple[anthropic.Anthropic, str, str, str]:
    environment = self_hosted_environment(client)
    worker = bearer_client(emulator.environment_key(environment.id))  # type: ignore[operator]
    session_id = session(client, environment.id, agent(client).id, message).id
    item = wait_until(lambda: worker.beta.environments.work.poll(environment.id, block_ms=50))
    worker.beta.environments.work.ack(item.id, environment_id=environment.id)
    return worker, environment.id, session_id, item.id


def test_an_item_stopped_before_its_first_heartbeat_strands_the_session(
    client: anthropic.Anthropic, emulator: AnthropicServer, bearer_client: object
) -> None:
    """Row "stop before first heartbeat": anthropic-sdk-python#1779, #1786."""
    worker, environment_id, session_id, work_id = _claimed(
        client, emulator, bearer_client, "bash: echo hi"
    )

    worker.beta.environments.work.stop(work_id, environment_id=environment_id, force=True)
    client.beta.sessions.events.send(session_id, events=_message("bash: echo again"))  # type: ignore[arg-type]
    later = worker.beta.environments.work.poll(environment_id, block_ms=100)

    assert later is None
    assert client.beta.sessions.retrieve(session_id).status == "idle"
    assert emulator.backend.sessions[session_id].stranded


def test_an_item_stopped_after_a_heartbeat_does_not_strand_the_session(
    client: anthropic.Anthropic, emulator: AnthropicServer, bearer_client: object
) -> None:
    worker, environment_id, session_id, work_id = _claimed(
        client, emulator, bearer_client, "bash: echo hi"
    )
    worker.beta.environments.work.heartbeat(
        work_id, environment_id=environment_id, expected_last_heartbeat="NO_HEARTBEAT"
    )

    worker.beta.environments.work.stop(work_id, environment_id=environment_id, force=True)

    assert not emulator.backend.sessions[session_id].stranded


def test_a_non_force_stop_sticks_in_stopping_and_blocks_the_next_work(
    client: anthropic.Anthropic, emulator: AnthropicServer, bearer_client: object
) -> None:
    """Row "non-force stop" (DESIGN §3)."""
    worker, environment_id, session_id, work_id = _claimed(
        client, emulator, bearer_client, "say: hi"
    )
    worker.beta.environments.work.heartbeat(
        work_id, environment_id=environment_id, expected_last_heartbeat="NO_HEARTBEAT"
    )

    stopped = worker.beta.environments.work.stop(work_id, environment_id=environment_id)
    client.beta.sessions.events.send(session_id, events=_message("say: again"))  # type: ignore[arg-type]
    next_poll = worker.beta.environments.work.poll(environment_id, block_ms=100)

    assert stopped.state == "stopping"
    assert next_poll is None
    assert emulator.backend.work_items[work_id].state == "stopping"


def test_memory_stores_serve_the_sessions_token_of_an_attached_session_only(
    client: anthropic.Anthropic, emulator: AnthropicServer, bearer_client: object
) -> None:
    """Row "memory stores": the sessions token is accepted, the environment key refused
    (SDK lib/environments/_worker.py:704)."""
    store = client.beta.memory_stores.create(name="notes")
    client.beta.memory_stores.memories.create(store.id, path="/a.md", content="alpha")
    environment = self_hosted_environment(client)
    key = emulator.environment_key(environment.id)
    client.beta.sessions.create(
        agent=agent(client).id,
        environment_id=environment.id,
        resources=[{"type": "memory_store", "memory_store_id": store.id}],  # type: ignore[list-item]
    )
    worker = bearer_client(key)  # type: ignore[operator]
    item = wait_until(lambda: worker.beta.environments.work.poll(environment.id, block_ms=50))
    as_item = bearer_client(sessions_token(item.secret))  # type: ignore[operator]

    listed = as_item.beta.memory_stores.memories.list(store.id)
    memory = listed.data[0]
    updated = as_item.beta.memory_stores.memories.update(
        memory.id, memory_store_id=store.id, content="beta"
    )
    with pytest.raises(anthropic.PermissionDeniedError):
        worker.beta.memory_stores.memories.list(store.id)

    assert [m.path for m in listed.data] == ["/a.md"]
    assert updated.content == "beta"
    assert updated.content_sha256 != memory.content_sha256


def test_a_stale_memory_update_is_refused(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    store = client.beta.memory_stores.create(name="notes")
    memory = client.beta.memory_stores.memories.create(store.id, path="/a.md", content="alpha")

    with pytest.raises(anthropic.APIStatusError) as caught:
        client.beta.memory_stores.memories.update(
            memory.id,
            memory_store_id=store.id,
            content="x",
            precondition={"type": "content_sha256", "content_sha256": "0" * 64},  # type: ignore[typeddict-unknown-key]
        )

    assert caught.value.status_code == 412


def test_archiving_a_session_delivers_status_terminated(
    client: anthropic.Anthropic, emulator: AnthropicServer
) -> None:
    """Row A2: `session.status_terminated` fires when a session is archived (webhooks docs)."""
    response = emulator.console(
        "POST",
        "/webhooks",
        json={"url": emulator.receiver_url("ends"), "events": ["session.status_terminated"]},
    )
    response.raise_for_status()
    created = session(client, self_hosted_environment(client).id, agent(client).id)

    client.beta.sessions.archive(created.id)

    def terminated() -> list[str]:
        bodies = [json.loads(body) for _, body in emulator.receivers["ends"].requests]
        return [b["data"]["id"] for b in bodies if b["data"]["type"] == "session.status_terminated"]

    assert wait_until(terminated) == [created.id]
