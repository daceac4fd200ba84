"""Sessions and events through the SDK: the scripted agent's turns, the SSE stream, refusals."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types.beta import BetaManagedAgentsSession
from anthropic.types.beta.sessions import (
    BetaManagedAgentsSendSessionEvents,
    BetaManagedAgentsSessionEvent,
)
from pydantic import TypeAdapter

from tests.emulator.anthropic.conftest import AnthropicServer
from tests.emulator.anthropic.helpers import agent, self_hosted_environment, session, strict


def _message(text: str) -> dict[str, object]:
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def _types(client: anthropic.Anthropic, session_id: str) -> list[str]:
    return [e.type for e in client.beta.sessions.events.list(session_id)]


@pytest.fixture
def env_and_agent(client: anthropic.Anthropic) -> tuple[str, str]:
    return self_hosted_environment(client).id, agent(client).id


def test_create_queues_work_and_embeds_the_agent_version(
    client: anthropic.Anthropic, emulator: AnthropicServer, env_and_agent: tuple[str, str]
) -> None:
    environment_id, agent_id = env_and_agent
    created = session(client, environment_id, agent_id)
    strict(BetaManagedAgentsSession, created)
    assert (created.status, created.agent.id, created.agent.version) == ("idle", agent_id, 1)
    assert client.beta.sessions.retrieve(created.id).environment_id == environment_id
    stats = client.beta.environments.work.stats(environment_id)
    assert stats.depth == 1


def test_a_user_message_becomes_a_bash_call_that_requires_action(
    client: anthropic.Anthropic, env_and_agent: tuple[str, str]
) -> None:
    created = session(client, *env_and_agent)
    sent = client.beta.sessions.events.send(created.id, events=[_message("do the thing")])  # type: ignore[list-item]
    strict(BetaManagedAgentsSendSessionEvents, sent)
    events: list[Any] = list(client.beta.sessions.events.list(created.id))
    assert [e.type for e in events] == [
        "user.message",
        "session.status_running",
        "agent.tool_use",
        "session.status_idle",
    ]
    tool_use, idle = events[2], events[3]
    assert (tool_use.name, tool_use.input) == (
        "bash",
        {"command": "echo hello > hello.txt && cat hello.txt"},
    )
    assert (idle.stop_reason.type, idle.stop_reason.event_ids) == ("requires_action", [tool_use.id])
    assert client.beta.sessions.retrieve(created.id).status == "idle"


def test_tool_results_lead_to_a_reply_and_an_idle_end_turn(
    client: anthropic.Anthropic, env_and_agent: tuple[str, str]
) -> None:
    created = session(client, *env_and_agent, message="bash: ls\nwrite notes.txt: a\\nb")
    calls: list[Any] = [
        e for e in client.beta.sessions.events.list(created.id) if e.type == "agent.tool_use"
    ]
    assert [(c.name, c.input) for c in calls] == [
        ("bash", {"command": "ls"}),
        ("write", {"file_path": "notes.txt", "content": "a\nb"}),
    ]
    client.beta.sessions.events.send(
        created.id,
        events=[
            {
                "type": "user.tool_result",
                "tool_use_id": calls[0].id,
                "content": [{"type": "text", "text": "x"}],
            }
        ],
    )
    assert _types(client, created.id)[-1] == "user.tool_result"  # still waiting for the write
    client.beta.sessions.events.send(
        created.id,
        events=[{"type": "user.tool_result", "tool_use_id": calls[1].id, "is_error": True}],
    )
    events: list[Any] = client.beta.sessions.events.list(created.id, order="desc", limit=2).data
    idle, reply = events
    assert reply.type == "agent.message"
    assert reply.content[0].text == "Done. bash (ok): x; write (error): "
    assert (idle.type, idle.stop_reason.type) == ("session.status_idle", "end_turn")


def test_a_result_for_no_open_tool_call_is_refused(
    client: anthropic.Anthropic, env_and_agent: tuple[str, str]
) -> None:
    created = session(client, *env_and_agent)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.beta.sessions.events.send(
            created.id, events=[{"type": "user.tool_result", "tool_use_id": "sevt_nope"}]
        )
    assert caught.value.api_message == (
        f"events.tool_use_id: 'sevt_nope' names no open tool call of session {created.id}"
    )


def test_the_stream_delivers_events_that_happen_after_it_opens(
    client: anthropic.Anthropic, env_and_agent: tuple[str, str]
) -> None:
    created = session(client, *env_and_agent, message="say: before")
    with client.beta.sessions.events.stream(created.id) as stream:
        client.beta.sessions.events.send(created.id, events=[_message("say: after")])  # type: ignore[list-item]
        seen: list[Any] = []
        for event in stream:
            seen.append(event)
            if event.type == "session.status_idle":
                break
    assert [e.type for e in seen] == [
        "user.message",
        "session.status_running",
        "agent.message",
        "session.status_idle",
    ]
    assert seen[2].content[0].text == "after"


def test_the_stream_ends_when_the_session_is_archived(
    client: anthropic.Anthropic, env_and_agent: tuple[str, str]
) -> None:
    created = session(client, *env_and_agent)
    with client.beta.sessions.events.stream(created.id) as stream:
        archived = client.beta.sessions.archive(created.id)
        assert [e.type for e in stream] == ["session.status_terminated"]
    assert archived.status == "terminated"
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.beta.sessions.events.send(created.id, events=[_message("late")])  # type: ignore[list-item]
    assert caught.value.api_message == f"Session {created.id} is terminated and accepts no events"


def test_a_dormant_session_is_queued_again_by_a_new_message(
    client: anthropic.Anthropic, emulator: AnthropicServer, env_and_agent: tuple[str, str]
) -> None:
    environment_id, agent_id = env_and_agent
    created = session(client, environment_id, agent_id)
    (item,) = [w for w in emulator.backend.work_items.values() if w.session_id == created.id]
    client.beta.environments.work.stop(item.id, environment_id=environment_id, force=True)
    client.beta.sessions.events.send(created.id, events=[_message("say: hi")])  # type: ignore[list-item]
    live = emulator.backend.live_work_for(created.id)
    assert len(live) == 1 and live[0].id != item.id


def test_list_filters_and_deletes(
    client: anthropic.Anthropic, env_and_agent: tuple[str, str]
) -> None:
    first = session(client, *env_and_agent)
    second = session(client, *env_and_agent, message="say: x")
    assert [s.id for s in client.beta.sessions.list()] == [second.id, first.id]
    assert [s.id for s in client.beta.sessions.list(order="asc", limit=1)] == [first.id, second.id]
    assert client.beta.sessions.delete(first.id).type == "session_deleted"
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.beta.sessions.retrieve(first.id)
    assert caught.value.api_message == f"Session {first.id} not found"
    only = client.beta.sessions.events.list(second.id, types=["agent.message", "user.message"])
    assert [e.type for e in only] == ["user.message", "agent.message"]


def test_agent_overrides_apply_to_the_session_only(
    client: anthropic.Anthropic, env_and_agent: tuple[str, str]
) -> None:
    environment_id, agent_id = env_and_agent
    created = client.beta.sessions.create(
        agent={
            "type": "agent_with_overrides",
            "id": agent_id,
            "system": "Only here.",
            "model": "claude-opus-4-7",
        },
        environment_id=environment_id,
    )
    strict(BetaManagedAgentsSession, created)
    assert (created.agent.system, created.agent.model.id) == ("Only here.", "claude-opus-4-7")
    assert client.beta.agents.retrieve(agent_id).system is None


def test_update_patches_metadata_and_title(
    client: anthropic.Anthropic, env_and_agent: tuple[str, str]
) -> None:
    created = client.beta.sessions.create(
        agent=env_and_agent[1], environment_id=env_and_agent[0], metadata={"a": "1", "b": "2"}
    )
    updated = client.beta.sessions.update(created.id, title="demo", metadata={"a": None, "c": "3"})
    assert (updated.title, updated.metadata) == ("demo", {"b": "2", "c": "3"})


def test_an_unknown_path_is_a_404_in_anthropics_shape(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.get("/v1/nothing/here", cast_to=object)
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "Not found: GET /v1/nothing/here"},
    }


def test_every_event_of_a_turn_validates_strictly(
    client: anthropic.Anthropic, env_and_agent: tuple[str, str]
) -> None:
    created = session(client, *env_and_agent, message="bash: true")
    (call,) = [
        e for e in client.beta.sessions.events.list(created.id) if e.type == "agent.tool_use"
    ]
    client.beta.sessions.events.send(
        created.id,
        events=[
            {
                "type": "user.tool_result",
                "tool_use_id": call.id,
                "content": [{"type": "text", "text": "ok"}],
            }
        ],
    )
    raw = client.beta.sessions.events.with_raw_response.list(created.id).http_response.json()
    adapter = TypeAdapter(BetaManagedAgentsSessionEvent)
    kinds = [type(adapter.validate_python(event)).__name__ for event in raw["data"]]
    assert kinds == [
        "BetaManagedAgentsUserMessageEvent",
        "BetaManagedAgentsSessionStatusRunningEvent",
        "BetaManagedAgentsAgentToolUseEvent",
        "BetaManagedAgentsSessionStatusIdleEvent",
        "BetaManagedAgentsUserToolResultEvent",
        "BetaManagedAgentsSessionStatusRunningEvent",
        "BetaManagedAgentsAgentMessageEvent",
        "BetaManagedAgentsSessionStatusIdleEvent",
    ]


def test_closing_the_streams_ends_an_open_one(
    client: anthropic.Anthropic, emulator: AnthropicServer, env_and_agent: tuple[str, str]
) -> None:
    created = session(client, *env_and_agent)
    with client.beta.sessions.events.stream(created.id) as stream:
        emulator.backend.close_streams()
        assert list(stream) == []


def _asking_agent(client: anthropic.Anthropic) -> str:
    toolset = {
        "type": "agent_toolset_20260401",
        "default_config": {"permission_policy": {"type": "always_ask"}},
    }
    return client.beta.agents.create(name="careful", model="claude-sonnet-4-6", tools=[toolset]).id  # type: ignore[list-item]


def test_an_always_ask_tool_waits_for_a_confirmation_and_a_denial_ends_the_turn(
    client: anthropic.Anthropic, env_and_agent: tuple[str, str]
) -> None:
    created = session(
        client, env_and_agent[0], _asking_agent(client), message="bash: rm -rf /tmp/x"
    )
    (call,) = [
        e for e in client.beta.sessions.events.list(created.id) if e.type == "agent.tool_use"
    ]
    assert call.evaluated_permission == "ask"
    client.beta.sessions.events.send(
        created.id,
        events=[{"type": "user.tool_confirmation", "tool_use_id": call.id, "result": "deny"}],
    )
    events: list[Any] = client.beta.sessions.events.list(created.id, order="desc", limit=2).data
    idle, reply = events
    assert reply.content[0].text == "Done. bash (denied): "
    assert idle.stop_reason.type == "end_turn"
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.beta.sessions.events.send(
            created.id,
            events=[{"type": "user.tool_confirmation", "tool_use_id": call.id, "result": "allow"}],
        )
    assert caught.value.api_message == (
        f"events.tool_use_id: {call.id!r} names no tool call of session {created.id} awaiting confirmation"
    )


def test_the_agent_does_not_call_a_disabled_tool(
    client: anthropic.Anthropic, env_and_agent: tuple[str, str]
) -> None:
    agent_id = client.beta.agents.create(
        name="no-bash",
        model="claude-sonnet-4-6",
        tools=[{"type": "agent_toolset_20260401", "configs": [{"name": "bash", "enabled": False}]}],
    ).id
    muted = session(client, env_and_agent[0], agent_id, message="bash: ls")
    assert _types(client, muted.id) == [
        "user.message",
        "session.status_running",
        "agent.message",
        "session.status_idle",
    ]
    reply: Any = client.beta.sessions.events.list(muted.id, types=["agent.message"]).data[0]
    assert reply.content[0].text == "I may not use bash."


def test_a_bad_initial_event_leaves_no_session_behind(
    client: anthropic.Anthropic, emulator: AnthropicServer, env_and_agent: tuple[str, str]
) -> None:
    environment_id, agent_id = env_and_agent
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.beta.sessions.create(
            agent=agent_id,
            environment_id=environment_id,
            initial_events=[{"type": "user.message", "content": "not a list"}],  # type: ignore[typeddict-item]
        )
    assert (
        caught.value.api_message == "events.content: a user.message needs a list of content blocks"
    )
    assert emulator.backend.live_resources()["sessions"] == []
    assert emulator.backend.live_resources()["work"] == []


def test_a_batch_with_a_bad_event_is_refused_whole(
    client: anthropic.Anthropic, env_and_agent: tuple[str, str]
) -> None:
    created = session(client, *env_and_agent)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.beta.sessions.events.send(
            created.id,
            events=[_message("say: first"), {"type": "agent.message"}],  # type: ignore[list-item, typeddict-item]
        )
    assert caught.value.api_message == "events.type: unsupported event type 'agent.message'"
    assert _types(client, created.id) == []
