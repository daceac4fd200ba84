"""The two sandbox images: the worker's and the orchestrator's, pushed from their packages."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pulumi

from infra.images import choose_factory, image_digest, load_image
from infra.names import Owner
from infra.providers.image import SandboxImage, latest_image_ref
from infra.worker_image import WorkerImageConfig, build_worker_image


@dataclass(frozen=True)
class ImageSpec:
    """An image: its name, its ImageInstance factory ("module:function") and build context."""

    image_name: str
    factory: str
    context_dir: str  # relative to the package root (infra.images.PACKAGE_ROOT)
    memory_mb: int = 4096
    # The config key that sets the name, named in the error when another stack has it.
    name_key: str = ""
    # The worker's `cma:workerImage` / `cma:customToolsModule` (a WorkerImageConfig dump,
    # paths relative to the project root), when set.
    extension: dict[str, Any] | None = None

    def resolved(self) -> ImageSpec:
        """The default factory while the package has none of its own."""
        return replace(self, factory=choose_factory(self.factory))

    @property
    def prebuilt(self) -> str | None:
        """A prebuilt image reference to use as is (nothing is built or pushed)."""
        return (self.extension or {}).get("image")


@dataclass
class SandboxImagesArgs:
    """Both images (credentials come from the stack config)."""

    worker: ImageSpec
    orchestrator: ImageSpec
    # The stack that marks them as its own (None: unmarked, as before ownership marks).
    owner: Owner | None = None


def image_props(spec: ImageSpec, owner: Owner | None = None) -> dict[str, object]:
    """Provider inputs of an image; the digest is computed here, from local files only."""
    spec = spec.resolved()
    if spec.extension:
        image = build_worker_image(WorkerImageConfig.model_validate(spec.extension), Path.cwd())
    else:
        image = load_image(spec.factory, spec.context_dir)
    props: dict[str, object] = {
        "image_name": spec.image_name,
        "factory": spec.factory,
        "context_dir": spec.context_dir,
        "digest": image_digest(image),
        "memory_mb": spec.memory_mb,
    }
    if owner is not None:
        props["owner"] = {"project": owner.project, "stack": owner.stack}
        props["name_key"] = spec.name_key
    if spec.extension:
        props["extension"] = spec.extension
    return props


class SandboxImages(pulumi.ComponentResource):
    """Pushes both images; each push happens only when its content digest changes."""

    worker_image: pulumi.Output[str]  # the pushed version's ref
    # What worker sandboxes are created from: the newest deployed version (or the prebuilt
    # ref); unchanged by a push, so a new worker image changes no orchestrator setting.
    worker_image_for_sandboxes: pulumi.Output[str]
    orchestrator_image: pulumi.Output[str]
    orchestrator_digest: pulumi.Output[str]

    def __init__(
        self, name: str, args: SandboxImagesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cma:images:SandboxImages", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.worker: SandboxImage | None = None
        if args.worker.prebuilt:
            self.worker_image = pulumi.Output.from_input(args.worker.prebuilt)
            self.worker_image_for_sandboxes = self.worker_image
        else:
            self.worker = SandboxImage(
                f"{name}-worker", image_props(args.worker, args.owner), child
            )
            self.worker_image = self.worker.image
            self.worker_image_for_sandboxes = pulumi.Output.from_input(
                latest_image_ref(args.worker.image_name)
            )
        self.orchestrator = SandboxImage(
            f"{name}-orchestrator", image_props(args.orchestrator, args.owner), child
        )
        self.orchestrator_image = self.orchestrator.image
        self.orchestrator_digest = self.orchestrator.digest
        self.register_outputs(
            {"worker_image": self.worker_image, "orchestrator_image": self.orchestrator_image}
        )
