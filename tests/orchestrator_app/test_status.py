"""`/status`, `/metrics` and `/ready`'s details are for the status token's holder only.

The app runs with its real clients pointed at dead loopback ports (nothing is contacted).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from orchestrator_app.app import create_app
from orchestrator_app.settings import Settings
from orchestrator_app.status import dispatcher_snapshot

TOKEN = "status-token-for-unit-tests-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(offline_settings: Settings) -> Iterator[TestClient]:
    settings = offline_settings.model_copy(update={"status_token": TOKEN})
    with TestClient(create_app(Settings.model_validate(settings.model_dump()))) as test_client:
        yield test_client


@pytest.mark.parametrize("path", ["/status", "/metrics"])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ],
    ids=["none", "wrong", "longer", "other-scheme", "no-scheme"],
)
def test_status_and_metrics_answer_401_and_reveal_nothing_without_the_token(
    client: TestClient, path: str, headers: dict[str, str]
) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", ["/status", "/metrics"])
def test_without_a_configured_token_nobody_gets_status_or_metrics(
    offline_settings: Settings, path: str
) -> None:
    with TestClient(create_app(offline_settings)) as client:
        assert client.get(path, headers={"Authorization": "Bearer "}).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer None"}).status_code == 401


def test_status_with_the_token_shows_the_environment_queue_and_workers(
    client: TestClient, offline_settings: Settings
) -> None:
    response = client.get("/status", headers=BEARER)
    assert response.status_code == 200
    body = response.json()
    assert body["environment_id"] == offline_settings.environment_id
    assert body["dispatching"] is True
    # The Anthropic API is a dead port here: the queue says so instead of failing the route.
    assert body["queue"] == {"error": "queue stats unavailable: APIConnectionError"}
    assert body["sessions_in_flight"] == []
    assert body["workers"] == []
    assert body["workers_by_state"] == {"starting": 0, "running": 0, "ending": 0}
    assert body["polled_unclaimed"] == 0
    assert body["counters"]["drains"] == {"total": 0.0}


def test_metrics_with_the_token_parse_as_prometheus_text(client: TestClient) -> None:
    response = client.get("/metrics", headers=BEARER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["cma_orchestrator_dispatch_latency_seconds"].type == "histogram"
    for counter in ("webhook_deliveries", "drains", "failures", "worker_sandboxes_deleted"):
        assert families[f"cma_orchestrator_{counter}"].type == "counter"
    for gauge in ("queue_depth", "queue_pending", "sessions_in_flight", "workers"):
        assert families[f"cma_orchestrator_{gauge}"].type == "gauge"
    states = {s.labels["state"] for s in families["cma_orchestrator_workers"].samples}
    assert states == {"starting", "running", "ending"}


def test_each_app_has_its_own_registry(offline_settings: Settings) -> None:
    with (
        TestClient(create_app(offline_settings)) as one,
        TestClient(create_app(offline_settings)) as two,
    ):
        first = one.app_state["services"].metrics
        first.drains.inc()
        assert first.registry is not two.app_state["services"].metrics.registry
        assert two.app_state["services"].metrics.totals()["drains"] == {"total": 0.0}


def test_ready_tells_an_anonymous_caller_only_not_ready(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "not_ready"}


def test_ready_names_the_problems_to_the_token_holder(
    client: TestClient, offline_settings: Settings
) -> None:
    response = client.get("/ready", headers=BEARER)
    assert response.status_code == 503
    problems = response.json()["problems"]
    assert f"Anthropic API unreachable at {offline_settings.anthropic_url}" in problems


def test_the_status_view_reads_the_dispatchers_public_snapshot() -> None:
    class Snapshotting:
        def snapshot(self) -> dict[str, object]:
            return {
                "in_flight": {"s_new": "dispatch", "s_turn": "dispatch", "s_gone": "end"},
                "workers": {
                    "s_run": {"sandbox": "w-run", "process": "p1", "work_id": "work_1"},
                    "s_turn": {"sandbox": "w-turn", "process": "p2", "work_id": "work_2"},
                },
                "polled_unclaimed": 2,
                "stats": {},
            }

    view = dispatcher_snapshot(Snapshotting())  # type: ignore[arg-type]
    assert view["sessions_in_flight"] == ["s_gone", "s_new", "s_turn"]
    assert view["polled_unclaimed"] == 2
    assert {w["session_id"]: (w["state"], w["sandbox"]) for w in view["workers"]} == {
        "s_gone": ("ending", None),
        "s_new": ("starting", None),
        "s_run": ("running", "w-run"),
        "s_turn": ("starting", "w-turn"),
    }
    assert view["workers_by_state"] == {"starting": 2, "running": 1, "ending": 1}
