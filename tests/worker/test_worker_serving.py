"""`python -m worker` against the emulated CMA: it serves one claimed item on its secret alone,
and SIGTERM ends it cleanly (the item is stopped, exit 0)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest
from anthropic.types.beta.environments import BetaSelfHostedWork

from emulator.config import fast_timing
from emulator.server import EmulatorServer
from tests.orchestrator_app.emulated import ROOT, Stack, make_stack, wait_for


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with EmulatorServer(timing=fast_timing()) as server:
        made = make_stack(server, worker_image="", tmp=tmp_path, name="worker-test")
        try:
            yield made
        finally:
            made.client.close()


def claim(stack: Stack) -> tuple[str, str, str]:
    """Create a session and claim its work with the environment key: (session, work id, secret)."""
    session_id = stack.create_session()
    with anthropic.Anthropic(
        base_url=stack.server.config.anthropic_base_url, auth_token=stack.environment_key
    ) as client:
        work = client.beta.environments.work
        item: BetaSelfHostedWork = wait_for(lambda: work.poll(stack.environment_id), "queued work")
        work.ack(item.id, environment_id=stack.environment_id)
    assert item.secret
    return session_id, item.id, item.secret


def start_worker(stack: Stack, tmp_path: Path, session_id: str, work_id: str, secret: str):
    app = tmp_path / "app"
    app.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "ANTHROPIC_BASE_URL": stack.server.config.anthropic_base_url,
        "ANTHROPIC_ENVIRONMENT_ID": stack.environment_id,
        "ANTHROPIC_SESSION_ID": session_id,
        "ANTHROPIC_WORK_ID": work_id,
        "ANTHROPIC_WORK_SECRET": secret,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "worker"],
        cwd=app,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def work_state(stack: Stack, work_id: str) -> str:
    return str(stack.server.emulator.anthropic.work_items[work_id].state)


def test_the_worker_runs_tools_in_the_workspace_beside_its_working_dir(
    stack: Stack, tmp_path: Path
) -> None:
    session_id, work_id, secret = claim(stack)
    worker = start_worker(stack, tmp_path, session_id, work_id, secret)
    try:
        stack.say(session_id, "write note.txt: written by the worker")
        wait_for(lambda: (tmp_path / "workspace" / "note.txt").exists(), "the file the tool wrote")
        assert (tmp_path / "workspace" / "note.txt").read_text() == "written by the worker"
        assert not (tmp_path / "app" / "note.txt").exists()
    finally:
        worker.terminate()
        worker.communicate(timeout=30)


def test_sigterm_ends_the_worker_cleanly_and_stops_its_item(stack: Stack, tmp_path: Path) -> None:
    session_id, work_id, secret = claim(stack)
    worker = start_worker(stack, tmp_path, session_id, work_id, secret)
    try:
        wait_for(lambda: work_state(stack, work_id) == "active", "the worker's first heartbeat")
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, stderr
    assert "stopped by signal" in stderr
    assert work_state(stack, work_id) == "stopped"
    assert secret not in stderr
