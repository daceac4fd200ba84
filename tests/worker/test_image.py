from __future__ import annotations

from pathlib import Path

import pytest

from infra.image_recipe import ImageRecipe
from orchestrator_app.image import orchestrator_image, runtime_pins
from worker.image import pinned, worker_image

ROOT = Path(__file__).resolve().parents[2]


def test_worker_image_installs_the_anthropic_pin_of_requirements_txt() -> None:
    expected = pinned((ROOT / "requirements.txt").read_text(), "anthropic", extras=False)
    image = worker_image()
    assert isinstance(image, ImageRecipe)
    assert f"pip install --no-cache-dir {expected}" in image.dockerfile


def test_worker_image_has_agent_tools_the_package_a_workdir_and_no_telemetry() -> None:
    dockerfile = worker_image(max_idle_seconds=5).dockerfile
    for tool in ("git", "ripgrep", "jq", "nodejs"):
        assert tool in dockerfile
    assert "WORKDIR /app" in dockerfile
    assert "COPY worker /app/worker" in dockerfile
    assert 'ENV DO_NOT_TRACK="1"' in dockerfile
    assert 'ENV CMA_WORKER_MAX_IDLE="5"' in dockerfile


def test_pins_come_from_the_requirements_file_given(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("anthropic[webhooks]==9.9.9  # comment\npytest==1.0\n")
    assert "anthropic==9.9.9" in worker_image(requirements_path=requirements).dockerfile
    with pytest.raises(KeyError, match="blaxel"):
        orchestrator_image(requirements_path=requirements)


def test_orchestrator_image_installs_every_runtime_pin_and_bundles_the_app() -> None:
    pins = runtime_pins((ROOT / "requirements.txt").read_text())
    dockerfile = orchestrator_image().dockerfile
    for pin in pins:
        assert f"'{pin}'" in dockerfile
    assert "pulumi" not in dockerfile
    assert "COPY orchestrator_app /app/orchestrator_app" in dockerfile
    assert "WORKDIR /app" in dockerfile
    assert 'ENV DO_NOT_TRACK="1"' in dockerfile
