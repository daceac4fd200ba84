"""The status command's pure parts: which sandboxes are this stack's workers, the table, drift."""

from __future__ import annotations

from typing import Any

from infra.status import render, worker_rows


def sandbox(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "status": "DEPLOYED"}


def test_only_worker_sandboxes_of_this_environment_are_listed() -> None:
    rows = worker_rows(
        [
            sandbox(
                "w-b",
                **{"cma-role": "worker", "cma-environment-id": "env_1", "cma-session-id": "s_b"},
            ),
            sandbox(
                "w-other",
                **{"cma-role": "worker", "cma-environment-id": "env_2", "cma-session-id": "s_x"},
            ),
            sandbox("orchestrator", **{"cma-role": "orchestrator", "cma-environment-id": "env_1"}),
            sandbox("unlabelled"),
            sandbox(
                "w-a",
                **{"cma-role": "worker", "cma-environment-id": "env_1", "cma-session-id": "s_a"},
            ),
        ],
        "env_1",
    )
    assert [(r["sandbox"], r["session_id"], r["state"]) for r in rows] == [
        ("w-a", "s_a", "DEPLOYED"),
        ("w-b", "s_b", "DEPLOYED"),
    ]


def test_the_table_shows_each_section_and_an_unreadable_one_says_why() -> None:
    report = {
        "environment": {"id": "env_1", "name": "e", "archived_at": None},
        "agent": {
            "id": "agent_1",
            "name": "a",
            "model": "m",
            "version": 3,
            "stack_version": 2,
            "drifted": True,
        },
        "queue": {"error": "APIConnectionError: Connection error."},
        "workers": [
            {"sandbox": "w-a", "session_id": "s_a", "state": "DEPLOYED", "created_at": None}
        ],
        "orchestrator": {"error": "no status_token output"},
    }
    table = render(report).splitlines()
    assert "  drifted        True" in table
    assert "  error: APIConnectionError: Connection error." in table
    assert "workers (1)" in table
    assert any(line.split() == ["w-a", "s_a", "DEPLOYED", "-"] for line in table)
    assert table[-1] == "  error: no status_token output"
