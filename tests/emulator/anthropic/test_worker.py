"""A whole session served by the SDK's own worker, with only the per-item secret."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import anthropic
from anthropic.lib.environments import EnvironmentWorker

from tests.emulator.anthropic.conftest import AnthropicServer
from tests.emulator.anthropic.helpers import agent, self_hosted_environment, session


async def _claim(emulator: AnthropicServer, environment_id: str, key: str) -> list[object]:
    """The orchestrator's shape: drain the queue with the SDK poller, leave `stop` to the worker."""
    async with anthropic.AsyncAnthropic(api_key="unused", base_url=emulator.base_url) as sdk:
        return [
            item
            async for item in sdk.beta.environments.work.poller(
                environment_id=environment_id,
                environment_key=key,
                worker_id="orchestrator-1",
                block_ms=None,
                drain=True,
                auto_stop=False,
            )
        ]


async def _serve(
    emulator: AnthropicServer,
    workdir: Path,
    *,
    work_id: str,
    environment_id: str,
    session_id: str,
    secret: str,
) -> None:
    """The worker's shape: no API key, no environment key; the work secret carries it."""
    async with anthropic.AsyncAnthropic(
        api_key=None, auth_token="placeholder", base_url=emulator.base_url
    ) as sdk:
        worker = EnvironmentWorker(sdk, workdir=workdir, max_idle=0.2)
        await worker.handle_item(
            work_id=work_id,
            environment_id=environment_id,
            session_id=session_id,
            work_secret=secret,
        )


def test_the_sdk_worker_serves_a_whole_session_with_the_work_secret(
    client: anthropic.Anthropic, emulator: AnthropicServer, tmp_path: Path
) -> None:
    environment = self_hosted_environment(client)
    key = emulator.environment_key(environment.id)
    created = session(
        client,
        environment.id,
        agent(client).id,
        message="write greeting.txt: hi\nbash: echo hello > hello.txt && cat greeting.txt hello.txt",
    )

    (item,) = asyncio.run(_claim(emulator, environment.id, key))
    assert emulator.backend.work_items[item.id].state == "starting"  # type: ignore[attr-defined]
    asyncio.run(
        _serve(
            emulator,
            tmp_path,
            work_id=item.id,  # type: ignore[attr-defined]
            environment_id=environment.id,
            session_id=created.id,
            secret=item.secret,  # type: ignore[attr-defined]
        )
    )

    assert (tmp_path / "greeting.txt").read_text() == "hi"
    assert (tmp_path / "hello.txt").read_text() == "hello\n"
    events: list[Any] = list(client.beta.sessions.events.list(created.id))
    results = [e for e in events if e.type == "user.tool_result"]
    assert [r.is_error for r in results] == [False, False]
    assert "hihello" in results[1].content[0].text
    assert events[-2].type == "agent.message"
    assert events[-2].content[0].text.startswith("Done. write (ok)")
    assert (events[-1].type, events[-1].stop_reason.type) == ("session.status_idle", "end_turn")
    work = emulator.backend.work_items[item.id]  # type: ignore[attr-defined]
    assert work.state == "stopped" and work.last_heartbeat is not None
    assert emulator.backend.workers_for(created.id) == ["orchestrator-1"]


async def _run_until_served(
    emulator: AnthropicServer, workdir: Path, environment_id: str, key: str, session_id: str
) -> None:
    """The long-running shape: `EnvironmentWorker.run` polls with the key until we cancel it."""
    async with anthropic.AsyncAnthropic(
        api_key=None, auth_token="placeholder", base_url=emulator.base_url
    ) as sdk:
        worker = sdk.beta.environments.work.worker(
            environment_id=environment_id,
            environment_key=key,
            workdir=workdir,
            max_idle=0.1,
            worker_id="daemon-1",
        )
        task = asyncio.create_task(worker.run())
        while not any(w.state == "stopped" for w in emulator.backend.work_items.values()):
            await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_the_sdk_worker_daemon_claims_and_serves_queued_work(
    client: anthropic.Anthropic, emulator: AnthropicServer, tmp_path: Path
) -> None:
    environment = self_hosted_environment(client)
    key = emulator.environment_key(environment.id)
    created = session(
        client, environment.id, agent(client).id, message="bash: echo served > out.txt"
    )
    asyncio.run(_run_until_served(emulator, tmp_path, environment.id, key, created.id))
    assert (tmp_path / "out.txt").read_text() == "served\n"
    assert emulator.backend.workers_for(created.id) == ["daemon-1"]
    types = [e.type for e in client.beta.sessions.events.list(created.id)]
    assert types[-2:] == ["agent.message", "session.status_idle"]


def test_the_sdk_worker_runs_an_asked_call_once_it_is_confirmed(
    client: anthropic.Anthropic, emulator: AnthropicServer, tmp_path: Path
) -> None:
    environment = self_hosted_environment(client)
    key = emulator.environment_key(environment.id)
    asking = client.beta.agents.create(
        name="careful",
        model="claude-sonnet-4-6",
        tools=[
            {
                "type": "agent_toolset_20260401",
                "default_config": {"permission_policy": {"type": "always_ask"}},
            }
        ],
    )
    created = session(client, environment.id, asking.id, message="bash: echo confirmed > c.txt")
    (call,) = [
        e for e in client.beta.sessions.events.list(created.id) if e.type == "agent.tool_use"
    ]
    client.beta.sessions.events.send(
        created.id,
        events=[{"type": "user.tool_confirmation", "tool_use_id": call.id, "result": "allow"}],
    )
    (item,) = asyncio.run(_claim(emulator, environment.id, key))
    asyncio.run(
        _serve(
            emulator,
            tmp_path,
            work_id=item.id,  # type: ignore[attr-defined]
            environment_id=environment.id,
            session_id=created.id,
            secret=item.secret,  # type: ignore[attr-defined]
        )
    )
    assert (tmp_path / "c.txt").read_text() == "confirmed\n"
    assert _types_of(client, created.id)[-2:] == ["agent.message", "session.status_idle"]


def _types_of(client: anthropic.Anthropic, session_id: str) -> list[str]:
    return [e.type for e in client.beta.sessions.events.list(session_id)]
