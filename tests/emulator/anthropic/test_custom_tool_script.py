"""The scripted agent's custom tools, through the SDK: a call for a declared tool, its result
answered only by a `user.custom_tool_result`, refusals for undeclared tools and bad input."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types.beta.sessions import BetaManagedAgentsSessionEvent
from pydantic import TypeAdapter

from tests.emulator.anthropic.helpers import agent, self_hosted_environment, session

LOOKUP = {
    "type": "custom",
    "name": "lookup_order",
    "description": "Look up an order by id.",
    "input_schema": {
        "type": "object",
        "properties": {"order_id": {"type": "string"}},
        "required": ["order_id"],
    },
}


def _message(text: str) -> dict[str, Any]:
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def _events(client: anthropic.Anthropic, session_id: str) -> list[Any]:
    return list(client.beta.sessions.events.list(session_id))


def _last_text(client: anthropic.Anthropic, session_id: str) -> str:
    messages = [e for e in _events(client, session_id) if e.type == "agent.message"]
    return str(messages[-1].content[0].text)


@pytest.fixture
def custom_session(client: anthropic.Anthropic) -> str:
    created = client.beta.agents.create(
        name="with-tool",
        model="claude-sonnet-4-6",
        tools=[{"type": "agent_toolset_20260401"}, LOOKUP],  # type: ignore[list-item]
    )
    return session(client, self_hosted_environment(client).id, created.id).id


def test_a_declared_custom_tool_is_called_and_its_result_ends_the_turn(
    client: anthropic.Anthropic, custom_session: str
) -> None:
    client.beta.sessions.events.send(
        custom_session,
        events=[_message('custom lookup_order: {"order_id": "A1"}')],  # type: ignore[list-item]
    )
    events = _events(client, custom_session)
    call, idle = events[-2], events[-1]
    TypeAdapter(BetaManagedAgentsSessionEvent).validate_python(call.model_dump(mode="json"))
    assert (call.type, call.name, call.input) == (
        "agent.custom_tool_use",
        "lookup_order",
        {"order_id": "A1"},
    )
    assert idle.stop_reason.type == "requires_action"
    assert idle.stop_reason.event_ids == [call.id]
    client.beta.sessions.events.send(
        custom_session,
        events=[
            {
                "type": "user.custom_tool_result",
                "custom_tool_use_id": call.id,
                "content": [{"type": "text", "text": "A1 shipped"}],
            }
        ],
    )
    assert _last_text(client, custom_session) == "Done. lookup_order (ok): A1 shipped"
    assert _events(client, custom_session)[-1].stop_reason.type == "end_turn"


def test_a_builtin_tool_result_cannot_answer_a_custom_call(
    client: anthropic.Anthropic, custom_session: str
) -> None:
    client.beta.sessions.events.send(
        custom_session,
        events=[_message('custom lookup_order: {"order_id": "A1"}')],  # type: ignore[list-item]
    )
    call = _events(client, custom_session)[-2]
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.beta.sessions.events.send(
            custom_session,
            events=[
                {
                    "type": "user.tool_result",
                    "tool_use_id": call.id,
                    "content": [{"type": "text", "text": "wrong kind"}],
                }
            ],
        )
    assert caught.value.api_message == (
        f"events.tool_use_id: {call.id!r} names no open tool call of session {custom_session}"
    )


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        ('custom lookup_order: {"id": "A1"}', "lookup_order needs order_id."),
        ("custom lookup_order: not json", "lookup_order takes a JSON object."),
        ('custom refund: {"order_id": "A1"}', "I have no custom tool refund."),
    ],
)
def test_the_agent_does_not_call_a_custom_tool_it_cannot(
    client: anthropic.Anthropic, custom_session: str, line: str, answer: str
) -> None:
    client.beta.sessions.events.send(custom_session, events=[_message(line)])  # type: ignore[list-item]
    assert not [e for e in _events(client, custom_session) if e.type == "agent.custom_tool_use"]
    assert _last_text(client, custom_session) == answer


def test_an_agent_without_custom_tools_calls_none(client: anthropic.Anthropic) -> None:
    plain = session(client, self_hosted_environment(client).id, agent(client).id)
    client.beta.sessions.events.send(
        plain.id,
        events=[_message('custom lookup_order: {"order_id": "A1"}')],  # type: ignore[list-item]
    )
    assert _last_text(client, plain.id) == "I have no custom tool lookup_order."
