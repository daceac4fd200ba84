"""A sandbox image pushed from a build context; its identity is the context's content digest.

The digest is computed by the program (preview time, no network) and is the only field whose
change means a new push: an unchanged directory shows no diff and pushes nothing. The build
context is stored relative to the package root (`infra.images.PACKAGE_ROOT`), so state is
the same from any checkout or install.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CreateResult, ReadResult, UpdateResult

from infra.names import sandbox_name_problem
from infra.providers.base import CmaProvider, CmaResource, Props


class ImageProps(Props):
    """Inputs of an image."""

    image_name: str
    factory: str
    context_dir: str  # relative to the package root
    digest: str
    memory_mb: int = 4096
    # The worker image's extension (infra.worker_image), paths relative to the project root.
    extension: dict[str, Any] | None = None


def image_ref(live: dict[str, Any], name: str) -> str:
    """The ref a sandbox spec uses for the pushed image (pure)."""
    runtime = (live.get("spec") or {}).get("runtime") or {}
    return str(runtime.get("image") or f"{name}:latest")


def latest_image_ref(name: str) -> str:
    """The ref that gives each *new* sandbox the image's newest deployed version (pure).

    Blaxel resolves `:latest` (the default tag) when a sandbox is created, and a sandbox keeps
    the version it was created with (docs.blaxel.ai, knowledge base "Ensure sandboxes use the
    latest deployed image"); a workspace's own image is named `sandbox/<name>` (Blaxel's CMA
    cookbook, blaxel-ai/cma-blaxel-sandbox orchestrator/app.py: `sandbox/cma-worker:latest`).
    The orchestrator is given this ref, known at preview from the name alone, so a new worker
    image reaches new workers without a change to the orchestrator's settings.
    """
    return f"sandbox/{name}:latest"


def image_outputs(p: ImageProps, ref: str) -> dict[str, Any]:
    """State: inputs and the image ref (pure)."""
    return {**p.model_dump(), "image": ref}


class ImageProvider(CmaProvider):
    """Pushes the image through the SDK's ImageInstance upload flow."""

    props_model = ImageProps
    # Another name is another image.
    replace_fields = ("image_name",)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        result = super().check(olds, news)
        name = news.get("image_name")
        if isinstance(name, str) and (why := sandbox_name_problem(name)):
            result.failures.append(CheckFailure("image_name", why))
        return result

    def _push(self, p: ImageProps) -> dict[str, Any]:
        from infra.clients.blaxel_images import push_image
        from infra.images import as_instance, load_image

        if p.extension:
            from pathlib import Path

            from infra.worker_image import WorkerImageConfig, build_worker_image

            # The provider runs in the project directory, as the program does.
            config = WorkerImageConfig.model_validate(p.extension)
            image = build_worker_image(config, Path.cwd())
        else:
            image = load_image(p.factory, p.context_dir)
        live = push_image(self.blaxel(), p.image_name, as_instance(image), p.memory_mb)
        return image_outputs(p, image_ref(live, p.image_name))

    def create(self, props: dict[str, Any]) -> CreateResult:
        # A push is an upsert on the name, so a retry after a failed push converges.
        p: ImageProps = self.validated(props)
        return CreateResult(p.image_name, self._push(p))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        p: ImageProps = self.validated(news)
        if olds.get("digest") == p.digest and olds.get("image"):
            # Only settings changed: the pushed content is the same.
            return UpdateResult(image_outputs(p, str(olds["image"])))
        return UpdateResult(self._push(p))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from infra.clients import blaxel as bl
        from infra.clients.errors import NotFound

        try:
            live = bl.get_sandbox_by_name(self.blaxel(), id_)
        except NotFound:
            return ReadResult("", {})
        p: ImageProps = self.validated({**props, "image_name": id_})
        outs = image_outputs(p, image_ref(live, id_))
        return ReadResult(id_, outs, inputs=p.model_dump())

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from infra.clients import blaxel as bl

        creds = self.blaxel()
        bl.delete_sandbox_by_name(creds, id_)
        bl.delete_image_by_name(creds, id_)


class SandboxImage(CmaResource, module="cma", name="SandboxImage"):
    """A Blaxel sandbox image; `image` is the ref to put in a sandbox spec."""

    provider_class = ImageProvider
    output_names = ("image",)

    image: pulumi.Output[str]
    digest: pulumi.Output[str]
