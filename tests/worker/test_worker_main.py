from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from worker.__main__ import REQUIRED, max_idle, missing_env, workspace_dir

ROOT = Path(__file__).resolve().parents[2]


def _run_worker(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`python -m worker` in `<tmp>/app`, so its workspace (`<tmp>/workspace`) stays in tmp."""
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    base = {"PATH": os.environ["PATH"], "DO_NOT_TRACK": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "worker"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=app,
    )


def test_missing_env_names_every_unset_contract_variable() -> None:
    assert missing_env({}) == [*REQUIRED, "ANTHROPIC_WORK_SECRET or ANTHROPIC_ENVIRONMENT_KEY"]
    coordinates = {name: "x" for name in REQUIRED}
    assert missing_env({**coordinates, "ANTHROPIC_WORK_SECRET": "s"}) == []
    assert missing_env({**coordinates, "ANTHROPIC_ENVIRONMENT_KEY": "k"}) == []


def test_the_workspace_sits_beside_the_working_dir() -> None:
    assert workspace_dir(Path("/app")) == Path("/workspace")


def test_max_idle_defaults_to_the_sdk_default_and_reads_the_image_setting() -> None:
    assert max_idle({}) == 60.0
    assert max_idle({"CMA_WORKER_MAX_IDLE": "2.5"}) == 2.5
    assert max_idle({"CMA_WORKER_MAX_IDLE": "soon"}) == 60.0


def test_worker_without_its_environment_exits_2_naming_what_is_missing(tmp_path: Path) -> None:
    result = _run_worker({}, tmp_path)
    assert result.returncode == 2
    entry = json.loads(result.stderr.strip().splitlines()[-1])
    assert "ANTHROPIC_WORK_SECRET" in entry["msg"]


def test_worker_that_cannot_serve_exits_1_with_a_reason_and_without_its_secret(
    tmp_path: Path,
) -> None:
    # A secret that carries no sessions token: the SDK refuses to serve (no environment key either).
    secret = base64.urlsafe_b64encode(json.dumps({"other": "x" * 24}).encode()).decode()
    env = {
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "ANTHROPIC_ENVIRONMENT_ID": "env_1",
        "ANTHROPIC_SESSION_ID": "sesn_1",
        "ANTHROPIC_WORK_ID": "work_1",
        "ANTHROPIC_WORK_SECRET": secret,
    }
    result = _run_worker(env, tmp_path)
    assert result.returncode == 1
    assert "serving failed" in result.stderr
    assert "sessions token" in result.stderr
    assert secret not in result.stderr + result.stdout


def test_secret_values_include_the_tokens_inside_the_work_secret() -> None:
    from worker.__main__ import secret_values

    secret = (
        base64.urlsafe_b64encode(
            json.dumps({"sessions_token": "sk-ant-sst01-abcdefgh", "n": 1}).encode()
        )
        .decode()
        .rstrip("=")
    )
    assert secret_values(secret) == [secret, "sk-ant-sst01-abcdefgh"]
    assert secret_values("not base64 json!") == ["not base64 json!"]
