"""The scripted agent: turns a user message into tool calls, and tool results into a reply.

Pure: `react(history, event)` returns the events the agent emits (type + fields, no
ids or timestamps), so the backend stamps and appends them.

A user message is read line by line; these directives pick the tool calls:
    bash: <command>                  → agent.tool_use bash {"command": ...}
    write <path>: <content>          → agent.tool_use write {"file_path", "content"} (`\\n` = newline)
    say: <text>                      → no tool call; the agent answers <text>
Without any directive the agent runs `DEFAULT_COMMAND` with bash.

Each call is followed by `session.status_idle` (`requires_action`, naming the open calls).
Once every call is answered (`user.tool_result`, or a `deny` confirmation) the agent
replies `Done. <tool> (ok|error|denied): <result text>; ...` and goes idle (`end_turn`).
A tool under an `always_ask` policy is called with `evaluated_permission: ask` and waits
for a `user.tool_confirmation`; a disabled tool is never called.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_COMMAND = "echo hello > hello.txt && cat hello.txt"
_WRITE = re.compile(r"^write\s+(\S+):\s?(.*)$")

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
    history: list[dict[str, Any]], event: dict[str, Any], permissions: dict[str, str] | None = None
) -> list[Emitted]:
    """What the agent emits after `event` was appended to `history` (which includes it).

    `permissions` (from `tool_permissions`) marks calls that need a user confirmation
    (`ask`); the agent does not call a tool it may not use (`deny`).
    """
    permissions = permissions or {}
    kind = event["type"]
    if kind == "user.message":
        planned, answer = plan(text_of(event.get("content")))
        calls = [(name, args) for name, args in planned if permissions.get(name) != "deny"]
        emitted: list[Emitted] = [{"type": "session.status_running"}]
        if not calls:
            refused = sorted({name for name, _ in planned})
            return emitted + _reply(answer or f"I may not use {', '.join(refused)}.")
        emitted += [
            {
                "type": "agent.tool_use",
                "name": name,
                "input": tool_input,
                "evaluated_permission": permissions.get(name, "allow"),
            }
            for name, tool_input in calls
        ]
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
