"""Run one CMA session against a deployed stack and check a worker sandbox served its tool call.

    pulumi stack output --json --show-secrets | python examples/run_session.py

Reads the stack's outputs on stdin (or `--outputs FILE`); credentials from the usual environment
variables (ANTHROPIC_API_KEY, BL_API_KEY, BL_WORKSPACE), so it works unchanged against the real
platforms (`dev` stack) and the emulator (`local` stack). Prints a short transcript and
`EXAMPLE: PASS`, or `EXAMPLE: FAIL: <why>` and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")

import anthropic

# A self-hosted worker posts its tool results as `user.tool_result` events.
TOOL_RESULT_TYPES = ("user.tool_result", "agent.tool_result")
# Plain enough for a real model; the emulator's scripted agent runs what follows "bash:".
EXPECTED_OUTPUT = "hello from the worker"
PROMPT = f"Use your bash tool once.\nbash: echo {EXPECTED_OUTPUT} > hello.txt && cat hello.txt"


class ExampleFailed(Exception):
    """The session did not go as a served session should."""


def follow_until_idle(
    client: anthropic.Anthropic, session_id: str, timeout_s: float
) -> list[dict[str, Any]]:
    """All events of the session once it has gone idle after our message (polling the list)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = [e.model_dump() for e in client.beta.sessions.events.list(session_id, limit=1000)]
        types = [e["type"] for e in events]
        if "agent.message" in types and types[-1] in (
            "session.status_idle",
            "session.status_terminated",
        ):
            return events
        if "session.error" in types:
            raise ExampleFailed(f"session error: {events[types.index('session.error')]}")
        time.sleep(0.5)
    raise ExampleFailed(f"session {session_id} did not go idle within {timeout_s:.0f}s")


def transcript_line(event: dict[str, Any]) -> str | None:
    kind = event["type"]
    if kind in ("user.message", "agent.message"):
        text = " ".join(b.get("text", "") for b in event.get("content") or [])
        return f"{kind:>18}: {text.strip()}"
    if kind == "agent.tool_use":
        return f"{kind:>18}: {event.get('name')} {json.dumps(event.get('input'))}"
    if kind in TOOL_RESULT_TYPES:
        content = event.get("content") or []
        text = " ".join(b.get("text", "") for b in content if isinstance(b, dict))
        return f"{kind:>18}: {text.strip()[:200]}"
    if kind.startswith("session.status"):
        return f"{kind:>18}"
    return None


def served_by_worker_sandbox(outputs: dict[str, Any], session_id: str) -> str:
    """The name of this stack's worker sandbox that served the session (checked in Blaxel)."""
    from blaxel.core.client.client import client as blaxel_client
    from blaxel.core.sandbox import SyncSandboxInstance

    blaxel_client.with_base_url(outputs["blaxel_base_url"])
    for sandbox in SyncSandboxInstance.list(limit=100).auto_paging_iter():
        labels = sandbox.metadata.labels if sandbox.metadata else None
        label_map = labels.to_dict() if labels is not None and hasattr(labels, "to_dict") else {}
        if label_map.get("cma-session-id") == session_id:
            return str(sandbox.metadata.name)
    raise ExampleFailed(f"no worker sandbox labelled cma-session-id={session_id} in the workspace")


def run(outputs: dict[str, Any], timeout_s: float) -> None:
    client = anthropic.Anthropic(base_url=outputs.get("anthropic_base_url") or None)
    session = client.beta.sessions.create(
        agent=outputs["agent_id"], environment_id=outputs["environment_id"]
    )
    print(
        f"session {session.id} (agent {outputs['agent_id']}, environment {outputs['environment_id']})"
    )
    client.beta.sessions.events.send(
        session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": PROMPT}]}]
    )
    events = follow_until_idle(client, session.id, timeout_s)
    for event in events:
        line = transcript_line(event)
        if line:
            print(line)
    results = [e for e in events if e["type"] in TOOL_RESULT_TYPES]
    if not any(e["type"] == "agent.tool_use" for e in events) or not results:
        raise ExampleFailed("the agent's tool call was not executed")
    if any(e.get("is_error") for e in results):
        raise ExampleFailed("a tool call failed in the worker")
    if not any(EXPECTED_OUTPUT in json.dumps(e.get("content")) for e in results):
        raise ExampleFailed(f"no tool result shows {EXPECTED_OUTPUT!r}")
    print(f"served by worker sandbox {served_by_worker_sandbox(outputs, session.id)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=argparse.FileType("r"), default=sys.stdin)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    outputs = json.load(args.outputs)
    try:
        run(outputs, args.timeout)
    except (ExampleFailed, anthropic.APIError) as exc:
        print(f"EXAMPLE: FAIL: {exc}")
        return 1
    print("EXAMPLE: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
