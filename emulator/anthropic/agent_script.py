"""The scripted agent: turns a user message into tool calls, and tool results into a reply.

Pure: `react(history, event)` returns the events the agent emits (type + fields, no
ids or timestamps), so the backend stamps and appends them.

A user message is read line by line; these directives pick the tool calls:
    bash: <command>                  → agent.tool_use bash {"command": ...}
    write <path>: <content>          → agent.tool_use write {"file_path", "content"} (`\\n` = newline)
    say: <text>                      → no tool call; the agent answers <text>
    custom <name>: <json object>     → agent.custom_tool_use <name> {...}
Without any directive the agent runs `DEFAULT_COMMAND` with bash.

A custom tool is called only when the agent declares it (a `custom` entry of its `tools`)
and the input holds every key its input schema requires; else the agent answers why not.
Custom tools are not governed by permission policies (docs "managed-agents/permission-
policies"), and only a `user.custom_tool_result` answers their call.

Each call is followed by `session.status_idle` (`requires_action`, naming the open calls).
Once every call is answered (`user.tool_result`, or a `deny` confirmation) the agent
replies `Done. <tool> (ok|error|denied): <result text>; ...` and goes idle (`end_turn`).
A tool under an `always_ask` policy is called with `evaluated_permission: ask` and waits
for a `user.tool_confirmation`; a disabled tool is never called.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

DEFAULT_COMMAND = "echo hello > hello.txt && cat hello.txt"
_WRITE = re.compile(r"^write\s+(\S+):\s?(.*)$")
_CUSTOM = re.compile(r"^custom\s+(\S+):\s?(.*)$")
# A planned call's kind: a built-in tool, or a custom one (`CUSTOM` prefixes its name).
CUSTOM = "custom:"

Emitted = dict[str, Any]


def text_of(content: Any) -> str:
    """The concatenated text blocks of an event's content."""
    if not isinstance(content, list):
        return ""
    return "\n".join(
        b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
    )


def plan(message: str) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """(tool calls, direct answer) for a user message."""
    calls: list[tuple[str, dict[str, Any]]] = []
    answer: str | None = None
    for line in message.splitlines():
        line = line.strip()
        if line.startswith("bash:"):
            calls.append(("bash", {"command": line.removeprefix("bash:").strip()}))
        elif match := _WRITE.match(line):
            content = match.group(2).replace("\\n", "\n")
            calls.append(("write", {"file_path": match.group(1), "content": content}))
        elif match := _CUSTOM.match(line):
            try:
                tool_input = json.loads(match.group(2) or "{}")
            except json.JSONDecodeError:
                tool_input = None
            calls.append((CUSTOM + match.group(1), tool_input))
        elif line.startswith("say:"):
            answer = line.removeprefix("say:").strip()
    if not calls and answer is None:
        calls.append(("bash", {"command": DEFAULT_COMMAND}))
    return calls, answer


def _reply(text: str) -> list[Emitted]:
    return [
        {"type": "agent.message", "content": [{"type": "text", "text": text}]},
        {"type": "session.status_idle", "stop_reason": {"type": "end_turn"}},
    ]


def tool_permissions(tools: list[dict[str, Any]]) -> dict[str, str]:
    """`evaluated_permission` per built-in tool from the agent's toolset policies:
    `always_ask` → `ask` (the call waits for a `user.tool_confirmation`), disabled → `deny`."""
    permissions: dict[str, str] = {}
    for tool in tools:
        if tool.get("type") != "agent_toolset_20260401":
            continue
        default = tool["default_config"]
        configs = {c["name"]: c for c in tool.get("configs") or []}
        for name in ("bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search"):
            config = configs.get(name, default)
            if not config["enabled"]:
                permissions[name] = "deny"
            elif config["permission_policy"]["type"] == "always_ask":
                permissions[name] = "ask"
            else:
                permissions[name] = "allow"
    return permissions


def custom_tools(tools: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The agent's custom tools by name."""
    return {t["name"]: t for t in tools if t.get("type") == "custom"}


def _custom_refusal(name: str, tool_input: Any, declared: Mapping[str, Any]) -> str | None:
    """Why the agent will not call custom tool `name` with `tool_input`, or None."""
    if name not in declared:
        return f"I have no custom tool {name}."
    if not isinstance(tool_input, dict):
        return f"{name} takes a JSON object."
    required = declared[name].get("input_schema", {}).get("required") or []
    if missing := [key for key in required if key not in tool_input]:
        return f"{name} needs {', '.join(missing)}."
    return None


def _call_event(name: str, tool_input: Any, permissions: Mapping[str, str]) -> Emitted:
    if name.startswith(CUSTOM):
        return {"type": "agent.custom_tool_use", "name": name[len(CUSTOM) :], "input": tool_input}
    return {
        "type": "agent.tool_use",
        "name": name,
        "input": tool_input,
        "evaluated_permission": permissions.get(name, "allow"),
    }


def open_tool_calls(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The agent's tool calls that no result, denial or interrupt has answered yet."""
    answered: set[str] = set()
    calls: list[dict[str, Any]] = []
    for event in history:
        kind = event["type"]
        if kind in ("agent.tool_use", "agent.custom_tool_use"):
            calls.append(event)
        elif (
            kind == "user.tool_confirmation" and event.get("result") == "deny"
        ) or kind == "user.tool_result":
            answered.add(event["tool_use_id"])
        elif kind == "user.custom_tool_result":
            answered.add(event["custom_tool_use_id"])
        elif kind == "user.interrupt":
            answered.update(call["id"] for call in calls)
    return [call for call in calls if call["id"] not in answered]


def open_call_ids(history: list[dict[str, Any]], result_type: str) -> set[str]:
    """The open calls a result of `result_type` may answer: a `user.tool_result` answers an
    `agent.tool_use`, a `user.custom_tool_result` an `agent.custom_tool_use`."""
    call_type = (
        "agent.custom_tool_use" if result_type == "user.custom_tool_result" else ("agent.tool_use")
    )
    return {call["id"] for call in open_tool_calls(history) if call["type"] == call_type}


def _summary(history: list[dict[str, Any]], call_ids: list[str]) -> str:
    results = {
        e.get("tool_use_id") or e.get("custom_tool_use_id"): e
        for e in history
        if e["type"] in ("user.tool_result", "user.custom_tool_result")
    }
    calls = {
        e["id"]: e for e in history if e["type"] in ("agent.tool_use", "agent.custom_tool_use")
    }
    denied = {
        e["tool_use_id"]
        for e in history
        if e["type"] == "user.tool_confirmation" and e.get("result") == "deny"
    }
    parts = []
    for call_id in call_ids:
        result = results.get(call_id, {})
        status = "denied" if call_id in denied else "error" if result.get("is_error") else "ok"
        parts.append(
            f"{calls[call_id]['name']} ({status}): {text_of(result.get('content')).strip()}"
        )
    return "Done. " + "; ".join(parts)


def react(
    history: list[dict[str, Any]],
    event: dict[str, Any],
    permissions: dict[str, str] | None = None,
    declared_custom: Mapping[str, Any] | None = None,
) -> list[Emitted]:
    """What the agent emits after `event` was appended to `history` (which includes it).

    `permissions` (from `tool_permissions`) marks calls that need a user confirmation
    (`ask`); the agent does not call a tool it may not use (`deny`). `declared_custom`
    (from `custom_tools`) are the custom tools the agent may call.
    """
    permissions = permissions or {}
    kind = event["type"]
    if kind == "user.message":
        planned, answer = plan(text_of(event.get("content")))
        refusals = [
            refusal
            for name, args in planned
            if name.startswith(CUSTOM)
            and (refusal := _custom_refusal(name[len(CUSTOM) :], args, declared_custom or {}))
        ]
        calls = [
            (name, args)
            for name, args in planned
            if name.startswith(CUSTOM) or permissions.get(name) != "deny"
        ]
        emitted: list[Emitted] = [{"type": "session.status_running"}]
        if refusals:  # a model that cannot make a call it planned says so instead
            return emitted + _reply(" ".join(refusals))
        if not calls:
            refused = sorted({name for name, _ in planned})
            return emitted + _reply(answer or f"I may not use {', '.join(refused)}.")
        emitted += [_call_event(name, tool_input, permissions) for name, tool_input in calls]
        # The ids are stamped later; `requires_action` names them through this marker.
        emitted.append({"type": "session.status_idle", "stop_reason": {"type": "requires_action"}})
        return emitted
    if kind == "user.tool_confirmation" and event.get("result") == "allow":
        return []  # the call runs now, and its result continues the turn
    if kind in ("user.tool_result", "user.custom_tool_result", "user.tool_confirmation"):
        if open_tool_calls(history):
            return []
        turn = _last_turn_calls(history)
        return [{"type": "session.status_running"}, *_reply(_summary(history, turn))]
    if kind == "user.interrupt":
        return [{"type": "session.status_idle", "stop_reason": {"type": "end_turn"}}]
    return []


def _last_turn_calls(history: list[dict[str, Any]]) -> list[str]:
    """The tool-call ids of the latest user message's turn."""
    ids: list[str] = []
    for event in reversed(history):
        if event["type"] == "user.message":
            break
        if event["type"] in ("agent.tool_use", "agent.custom_tool_use"):
            ids.append(event["id"])
    return list(reversed(ids))
