"""The two sandbox images: the worker's and the orchestrator's, pushed from their packages."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.images import choose_factory, image_digest, load_image
from infra.providers.image import SandboxImage


@dataclass(frozen=True)
class ImageSpec:
    """An image: its name, its ImageInstance factory ("module:function") and build context."""

    image_name: str
    factory: str
    context_dir: str  # relative to the package root (infra.images.PACKAGE_ROOT)
    memory_mb: int = 4096

    def resolved(self) -> ImageSpec:
        """The default factory while the package has none of its own."""
        return ImageSpec(
            self.image_name, choose_factory(self.factory), self.context_dir, self.memory_mb
        )


@dataclass
class SandboxImagesArgs:
    """Both images (credentials come from the stack config)."""

    worker: ImageSpec
    orchestrator: ImageSpec


def image_props(spec: ImageSpec) -> dict[str, object]:
    """Provider inputs of an image; the digest is computed here, from local files only."""
    spec = spec.resolved()
    digest = image_digest(load_image(spec.factory, spec.context_dir))
    return {
        "image_name": spec.image_name,
        "factory": spec.factory,
        "context_dir": spec.context_dir,
        "digest": digest,
        "memory_mb": spec.memory_mb,
    }


class SandboxImages(pulumi.ComponentResource):
    """Pushes both images; each push happens only when its content digest changes."""

    worker_image: pulumi.Output[str]
    orchestrator_image: pulumi.Output[str]
    orchestrator_digest: pulumi.Output[str]

    def __init__(
        self, name: str, args: SandboxImagesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cma:images:SandboxImages", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.worker = SandboxImage(f"{name}-worker", image_props(args.worker), child)
        self.orchestrator = SandboxImage(
            f"{name}-orchestrator", image_props(args.orchestrator), child
        )
        self.worker_image = self.worker.image
        self.orchestrator_image = self.orchestrator.image
        self.orchestrator_digest = self.orchestrator.digest
        self.register_outputs(
            {"worker_image": self.worker_image, "orchestrator_image": self.orchestrator_image}
        )
