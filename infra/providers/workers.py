"""The stack's worker sandboxes and volumes, made by the orchestrator at run time: nothing to
create, and at destroy (after the server is down, so it starts no more) each one labelled
`cma-role=worker` and `cma-environment-id=<this stack's environment>` is deleted (the
orchestrator's labelling contract, docs/contracts.md); nothing else in the workspace is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pulumi.dynamic import CreateResult, ReadResult

from infra.providers.base import CmaProvider, CmaResource, Props

ROLE_LABEL, ROLE_WORKER = "cma-role", "worker"
ENVIRONMENT_LABEL = "cma-environment-id"


class WorkerCleanupProps(Props):
    """Whose workers: the environment they serve."""

    environment_id: str


def labels_of(item: dict[str, Any]) -> dict[str, Any]:
    return dict((item.get("metadata") or {}).get("labels") or {})


def stack_workers(items: Iterable[dict[str, Any]], environment_id: str) -> list[str]:
    """Names of the items labelled as workers of `environment_id` (pure)."""
    names = []
    for item in items:
        labels = labels_of(item)
        if (
            labels.get(ROLE_LABEL) == ROLE_WORKER
            and labels.get(ENVIRONMENT_LABEL) == environment_id
        ):
            name = (item.get("metadata") or {}).get("name")
            if name:
                names.append(str(name))
    return names


class WorkerCleanupProvider(CmaProvider):
    """Deletes the stack's worker sandboxes, then their volumes, at destroy."""

    props_model = WorkerCleanupProps

    def create(self, props: dict[str, Any]) -> CreateResult:
        p: WorkerCleanupProps = self.validated(props)
        return CreateResult(f"workers-of-{p.environment_id}", p.model_dump())

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props, inputs=self.validated(props).model_dump())

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        from infra.clients import blaxel as bl

        p: WorkerCleanupProps = self.validated(props)
        creds = self.blaxel()
        for name in stack_workers(bl.list_sandboxes(creds), p.environment_id):
            bl.delete_sandbox_by_name(creds, name)
        # A volume is detached once its sandbox is gone.
        for name in stack_workers(bl.list_volumes(creds), p.environment_id):
            bl.delete_volume_by_name(creds, name)


class WorkerCleanup(CmaResource, module="cma", name="WorkerCleanup"):
    """Removes the stack's worker sandboxes and volumes when the stack is destroyed."""

    provider_class = WorkerCleanupProvider
