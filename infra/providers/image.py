"""A sandbox image pushed from a build context; its identity is the context's content digest.

The digest is computed by the program (preview time, no network) and is the only field whose
change means a new push: an unchanged directory shows no diff and pushes nothing. The build
context is stored relative to the package root (`infra.images.PACKAGE_ROOT`), so state is
the same from any checkout or install.

Ownership: the image object has no labels in the API (SDK `core/client/models/image_metadata.py`),
so the mark goes on the sandbox the push creates or updates by the image's name (the build
sandbox, whose spec names the built version). A push over a build sandbox another stack marked,
or an unmarked one at create, is refused; destroy leaves another stack's image alone.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CreateResult, ReadResult, UpdateResult

from infra.names import Owner, owner_of, refuse_foreign, sandbox_name_problem
from infra.providers.base import CmaProvider, CmaResource, OwnedProps


class ImageProps(OwnedProps):
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
    # The mark is checked against the live build sandbox and set by each push: a stack whose
    # images predate marks shows no diff, and gets them with its next push.
    not_diffed = frozenset({"owner", "name_key"})
    # Another name is another image.
    replace_fields = ("image_name",)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        result = super().check(olds, news)
        name = news.get("image_name")
        if isinstance(name, str) and (why := sandbox_name_problem(name)):
            result.failures.append(CheckFailure("image_name", why))
        return result

    def _push(self, p: ImageProps, creating: bool) -> dict[str, Any]:
        from infra.clients.blaxel_images import push_image
        from infra.images import as_instance, load_image

        self._refuse_foreign(p, creating)
        if p.extension:
            from pathlib import Path

            from infra.worker_image import WorkerImageConfig, build_worker_image

            # The provider runs in the project directory, as the program does.
            config = WorkerImageConfig.model_validate(p.extension)
            image = build_worker_image(config, Path.cwd())
        else:
            image = load_image(p.factory, p.context_dir)
        marks = p.owner.mark() if p.owner else {}
        live = push_image(self.blaxel(), p.image_name, as_instance(image), p.memory_mb, marks)
        return image_outputs(p, image_ref(live, p.image_name))

    def _refuse_foreign(self, p: ImageProps, creating: bool) -> None:
        """NotOurs when the name's build sandbox is another stack's (or, at create, nobody's)."""
        if p.owner is None:
            return  # an unmarked stack (providers used directly) claims nothing
        found = self._live_owner(p.image_name)
        if found is _ABSENT:
            return
        owner = found if isinstance(found, Owner) else None
        if owner == p.owner or (owner is None and not creating):
            return  # ours, or ours from before marks (in our state already)
        hint = f"Set {p.name_key or 'the image name'} to a name of this stack's own."
        raise refuse_foreign("image", p.image_name, owner, p.owner, hint)

    def _live_owner(self, name: str) -> Owner | object | None:
        """The owner marked on the image's build sandbox; `_ABSENT` when there is none."""
        from infra.clients import blaxel as bl
        from infra.clients.errors import NotFound

        try:
            live = bl.get_sandbox_by_name(self.blaxel(), name)
        except NotFound:
            return _ABSENT
        return owner_of((live.get("metadata") or {}).get("labels"))

    def create(self, props: dict[str, Any]) -> CreateResult:
        # A push is an upsert on the name, so a retry after a failed push converges.
        p: ImageProps = self.validated(props)
        return CreateResult(p.image_name, self._push(p, creating=True))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        p: ImageProps = self.validated(news)
        if olds.get("digest") == p.digest and olds.get("image"):
            # Only settings changed: the pushed content is the same.
            return UpdateResult(image_outputs(p, str(olds["image"])))
        return UpdateResult(self._push(p, creating=False))

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

        p: ImageProps = self.validated({**props, "image_name": id_})
        found = self._live_owner(id_)
        if p.owner and isinstance(found, Owner) and found != p.owner:
            pulumi.log.warn(f"image {id_!r} now belongs to {found}: left as it is")
            return
        creds = self.blaxel()
        bl.delete_sandbox_by_name(creds, id_)
        bl.delete_image_by_name(creds, id_)


# No build sandbox of that name (distinct from None: one that carries no mark).
_ABSENT = object()


class SandboxImage(CmaResource, module="cma", name="SandboxImage"):
    """A Blaxel sandbox image; `image` is the ref to put in a sandbox spec."""

    provider_class = ImageProvider
    output_names = ("image",)

    image: pulumi.Output[str]
    digest: pulumi.Output[str]
