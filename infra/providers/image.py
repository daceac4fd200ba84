"""A sandbox image pushed from a build context; its identity is the context's content digest.

The digest is computed by the program (preview time, no network) and is the only field whose
change means a new push: an unchanged directory shows no diff and pushes nothing.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CreateResult,
    ReadResult,
    Resource,
    UpdateResult,
)

from infra.clients import blaxel as bl
from infra.clients.blaxel_images import push_image
from infra.clients.errors import NotFound
from infra.images import load_image
from infra.providers.base import (
    BLAXEL_CREDENTIAL_FIELDS,
    PortableProvider,
    Props,
    blaxel_credentials,
    check_with,
    field_diff,
    pick,
    with_secret_outputs,
)
from infra.providers.sandbox import SANDBOX_NAME_PATTERN

FIELDS = ("image_name", "factory", "context_dir", "digest", "memory_mb")
# What forces a replacement: another name is another image.
REPLACE_FIELDS = ("image_name",)


class ImageProps(Props):
    """Inputs of an image."""

    image_name: str
    factory: str
    context_dir: str
    digest: str
    memory_mb: int = 4096


def image_ref(live: dict[str, Any], name: str) -> str:
    """The ref a sandbox spec uses for the pushed image (pure)."""
    runtime = (live.get("spec") or {}).get("runtime") or {}
    return str(runtime.get("image") or f"{name}:latest")


def image_outputs(props: dict[str, Any], ref: str) -> dict[str, Any]:
    """State: inputs, credentials (secret) and the image ref."""
    return {**pick(props, BLAXEL_CREDENTIAL_FIELDS), **pick(props, FIELDS), "image": ref}


def validate_image_name(name: str) -> str | None:
    """Why `name` cannot name a sandbox image, or None (pure)."""
    if not SANDBOX_NAME_PATTERN.fullmatch(name):
        return "lowercase letters, digits and hyphens, at most 49 characters"
    return None


class ImageProvider(PortableProvider):
    """Pushes the image through the SDK's ImageInstance upload flow."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> Any:
        result = check_with(ImageProps, news)
        name = news.get("image_name")
        if isinstance(name, str) and (why := validate_image_name(name)):
            result.failures.append(CheckFailure("image_name", why))
        return result

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        return field_diff(olds, news, (*FIELDS, *BLAXEL_CREDENTIAL_FIELDS), REPLACE_FIELDS)

    def _push(self, props: dict[str, Any]) -> dict[str, Any]:
        p = ImageProps.model_validate(props)
        image = load_image(p.factory, p.context_dir)
        live = push_image(blaxel_credentials(props), p.image_name, image, p.memory_mb)
        return image_outputs(props, image_ref(live, p.image_name))

    def create(self, props: dict[str, Any]) -> CreateResult:
        # A push is an upsert on the name, so a retry after a failed push converges.
        return CreateResult(props["image_name"], self._push(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if olds.get("digest") == news.get("digest") and olds.get("image"):
            # Only settings or credentials changed: the pushed content is the same.
            return UpdateResult({**image_outputs(news, str(olds["image"]))})
        return UpdateResult(self._push(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            bl.get_sandbox_by_name(blaxel_credentials(props), id_)
        except NotFound:
            return ReadResult("", {})
        return ReadResult(id_, {**props, "image_name": id_})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        creds = blaxel_credentials(props)
        bl.delete_sandbox_by_name(creds, id_)
        bl.delete_image_by_name(creds, id_)


class SandboxImage(Resource):
    """A Blaxel sandbox image; `image` is the ref to put in a sandbox spec."""

    image: pulumi.Output[str]
    digest: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        props: dict[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            ImageProvider(),
            resource_name,
            {**props, "image": None},
            with_secret_outputs(opts, "blaxel_api_key"),
        )
