from __future__ import annotations

from starlette.testclient import TestClient

from orchestrator_app.app import create_app
from orchestrator_app.settings import Settings


def test_health_answers_even_with_nothing_configured() -> None:
    with TestClient(create_app(Settings())) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


STATUS_TOKEN = "unit-status-token"
BEARER = {"Authorization": f"Bearer {STATUS_TOKEN}"}


def test_ready_names_each_missing_setting_to_the_status_token_holder() -> None:
    with TestClient(create_app(Settings.model_validate({"status_token": STATUS_TOKEN}))) as client:
        response = client.get("/ready", headers=BEARER)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert "environment key not set (ORCH_ENVIRONMENT_KEY)" in body["problems"]
    assert "worker image not set (ORCH_WORKER_IMAGE)" in body["problems"]


def test_ready_reports_unreachable_apis(offline_settings: Settings) -> None:
    settings = Settings.model_validate(
        {**offline_settings.model_dump(), "status_token": STATUS_TOKEN}
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/ready", headers=BEARER)
    assert response.status_code == 503
    problems = response.json()["problems"]
    assert f"Anthropic API unreachable at {offline_settings.anthropic_url}" in problems
    assert f"Blaxel API unreachable at {offline_settings.blaxel_url}" in problems
    assert len(problems) == 2


def test_the_app_leaves_the_blaxel_sdk_configuration_as_it_found_it(
    offline_settings: Settings,
) -> None:
    from blaxel.core.client.client import client as blaxel_client
    from blaxel.core.common.settings import settings as blaxel_settings

    before = (blaxel_client._base_url, blaxel_settings.auth)
    with TestClient(create_app(offline_settings)) as client:
        assert blaxel_client._base_url == offline_settings.blaxel_url
        client.get("/health")
    assert (blaxel_client._base_url, blaxel_settings.auth) == before
