from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_invalid_settings_end_the_process_with_2_naming_the_variable() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env.update({"ORCH_WORKER_MAX_AGE": "1m", "ORCH_ENVIRONMENT_KEY": "sk-ant-oat01-do-not-print"})
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator_app"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    entry = json.loads(result.stderr.strip().splitlines()[-1])
    assert entry["msg"] == "invalid settings"
    assert any(p.startswith("ORCH_WORKER_MAX_AGE:") for p in entry["problems"])
    assert "sk-ant-oat01-do-not-print" not in result.stderr


def test_a_bad_dispatch_mode_and_poll_block_end_the_process_naming_both_variables() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env.update({"ORCH_DISPATCH_MODE": "push", "ORCH_POLL_BLOCK_MS": "1000"})
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator_app"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    problems = json.loads(result.stderr.strip().splitlines()[-1])["problems"]
    assert [p.split(":")[0] for p in problems] == ["ORCH_DISPATCH_MODE", "ORCH_POLL_BLOCK_MS"]
    assert "'webhook' or 'poll'" in problems[0] and "999" in problems[1]
