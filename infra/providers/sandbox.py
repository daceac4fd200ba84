"""The orchestrator sandbox and its public preview: one resource, so the URL lives with it.

The sandbox is updated in place on every change except its name: a new sandbox would mean a
new preview URL and silently orphan the webhook registered on the old one. It has no max-age
TTL for the same reason. Deleting it takes the public preview down first.
"""

from __future__ import annotations

import hashlib
import json
import re
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
from infra.clients.errors import NotFound, error_for_status
from infra.providers.base import (
    BLAXEL_CREDENTIAL_FIELDS,
    PortableProvider,
    Props,
    blaxel_credentials,
    check_with,
    field_diff,
    pick,
    with_defaults,
    with_secret_outputs,
)

SANDBOX_NAME_PATTERN = re.compile(r"[a-z0-9]([a-z0-9-]{0,47}[a-z0-9])?")
FIELDS = (
    "sandbox_name",
    "image",
    "image_digest",
    "region",
    "memory_mb",
    "port",
    "preview_name",
    "labels",
)
# Only a new name replaces the sandbox (and so its URL); all else is updated in place.
REPLACE_FIELDS = ("sandbox_name",)
DIGEST_LABEL = "cma-blaxel/image-digest"


class SandboxProps(Props):
    """Inputs of the orchestrator sandbox."""

    sandbox_name: str
    image: str
    image_digest: str = ""
    region: str | None = None
    memory_mb: int = 4096
    port: int = 8000  # not 80, 443 or 8080: Blaxel reserves them (docs "Sandboxes/Ports")
    preview_name: str = "public"
    labels: dict[str, str] = {}


def sandbox_payload(props: dict[str, Any]) -> dict[str, Any]:
    """The sandbox body: image, memory, one HTTP port, no expiration policy (pure)."""
    p = SandboxProps.model_validate(props)
    labels = dict(p.labels)
    if p.image_digest:
        # Label values are short; the digest's head is enough to make a new push a new spec.
        labels[DIGEST_LABEL] = p.image_digest.removeprefix("sha256:")[:12]
    spec: dict[str, Any] = {
        "runtime": {
            "image": p.image,
            "memory": p.memory_mb,
            "ports": [{"name": "http", "target": p.port, "protocol": "HTTP"}],
        },
        "lifecycle": {"expirationPolicies": []},
    }
    if p.region:
        spec["region"] = p.region
    return {"metadata": {"name": p.sandbox_name, "labels": labels}, "spec": spec}


def preview_payload(props: dict[str, Any]) -> dict[str, Any]:
    """The public preview of the sandbox's port, with no expiry (pure)."""
    p = SandboxProps.model_validate(props)
    return {"metadata": {"name": p.preview_name}, "spec": {"port": p.port, "public": True}}


def normalise_url(url: str) -> str:
    """An absolute preview URL from any form Blaxel answers, without a trailing slash (pure).

    `host/path`, `//host/path`, `https://…` and `http://…` are all seen (docs/platform-contract.md,
    "preview URL"); a scheme-less URL gets https, except on loopback (the emulator serves
    plain http there).
    """
    url = url.strip()
    if "://" not in url:
        rest = url.removeprefix("//")
        host = rest.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        scheme = "http" if host in _LOOPBACK_HOSTS or host.startswith("127.") else "https"
        url = f"{scheme}://{rest}"
    return url.rstrip("/")


_LOOPBACK_HOSTS = ("localhost", "::1")


def preview_url(preview: dict[str, Any]) -> str | None:
    """The normalised URL of a preview as the API returns it, if it has one yet."""
    url = (preview.get("spec") or {}).get("url")
    return normalise_url(url) if url else None


def preview_matches(preview: dict[str, Any], props: dict[str, Any]) -> bool:
    """Whether an existing preview is the public one on our port (pure)."""
    spec = preview.get("spec") or {}
    return spec.get("port") == SandboxProps.model_validate(props).port and bool(spec.get("public"))


def find_preview(previews: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The preview called `name` (pure)."""
    return next((p for p in previews if (p.get("metadata") or {}).get("name") == name), None)


def sandbox_outputs(props: dict[str, Any], live: dict[str, Any], url: str) -> dict[str, Any]:
    """State: inputs, credentials (secret), the preview URL and the sandbox API URL."""
    return {
        **pick(props, BLAXEL_CREDENTIAL_FIELDS),
        **pick(SandboxProps.model_validate(props).model_dump(), FIELDS),
        "url": url,
        "sandbox_url": (live.get("metadata") or {}).get("url"),
        "spec_digest": spec_digest(props),
    }


def spec_digest(props: dict[str, Any]) -> str:
    """A digest of the sandbox spec: the server restarts whenever the sandbox was updated (pure)."""
    body = json.dumps(sandbox_payload(props), sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def validate_sandbox_name(name: str) -> str | None:
    """Why `name` cannot name a sandbox, or None (pure)."""
    if not SANDBOX_NAME_PATTERN.fullmatch(name):
        return "lowercase letters, digits and hyphens, at most 49 characters"
    return None


def _ensure_preview(creds: bl.BlaxelCredentials, props: dict[str, Any]) -> str:
    p = SandboxProps.model_validate(props)
    previews = bl.list_previews(creds, p.sandbox_name)
    current = find_preview(previews, p.preview_name)
    if current is not None and not preview_matches(current, props):
        bl.delete_preview(creds, p.sandbox_name, p.preview_name)  # changed behind our back
        current = None
    if current is None:
        current = bl.create_preview(creds, p.sandbox_name, preview_payload(props))
    url = preview_url(current)
    if url is None:
        current = find_preview(bl.list_previews(creds, p.sandbox_name), p.preview_name) or {}
        url = preview_url(current)
    if url is None:
        raise error_for_status(None, f"preview {p.preview_name} of {p.sandbox_name} has no URL")
    return url


class SandboxProvider(PortableProvider):
    """Upserts the sandbox by name, then its public preview."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> Any:
        result = check_with(SandboxProps, news)
        name = news.get("sandbox_name")
        if isinstance(name, str) and (why := validate_sandbox_name(name)):
            result.failures.append(CheckFailure("sandbox_name", why))
        return result

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        wanted = {**news, **pick(with_defaults(SandboxProps, news), FIELDS)}
        return field_diff(olds, wanted, (*FIELDS, *BLAXEL_CREDENTIAL_FIELDS), REPLACE_FIELDS)

    def _upsert(self, props: dict[str, Any]) -> dict[str, Any]:
        creds = blaxel_credentials(props)
        payload = sandbox_payload(props)
        name = payload["metadata"]["name"]
        try:
            bl.get_sandbox_by_name(creds, name)
            bl.update_sandbox_spec(creds, name, payload)
        except NotFound:
            bl.create_sandbox_from_spec(creds, payload)
        live = bl.wait_sandbox_deployed(creds, name)
        return sandbox_outputs(props, live, _ensure_preview(creds, props))

    def create(self, props: dict[str, Any]) -> CreateResult:
        # Upsert by name: a sandbox left by an earlier failed run is adopted, not duplicated.
        return CreateResult(props["sandbox_name"], self._upsert(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        outs = self._upsert(news)
        old_preview = olds.get("preview_name")
        wanted = SandboxProps.model_validate(news)
        if old_preview and old_preview != wanted.preview_name:
            bl.delete_preview(blaxel_credentials(news), wanted.sandbox_name, str(old_preview))
        return UpdateResult(outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        creds = blaxel_credentials(props)
        try:
            live = bl.get_sandbox_by_name(creds, id_)
            previews = bl.list_previews(creds, id_)
        except NotFound:
            return ReadResult("", {})
        runtime = (live.get("spec") or {}).get("runtime") or {}
        current = {
            **props,
            "sandbox_name": id_,
            "image": runtime.get("image", props.get("image")),
            "memory_mb": runtime.get("memory", props.get("memory_mb")),
        }
        preview = find_preview(previews, str(props.get("preview_name") or "public"))
        url = preview_url(preview) if preview else None
        return ReadResult(id_, sandbox_outputs(current, live, url or ""))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        creds = blaxel_credentials(props)
        try:
            previews = bl.list_previews(creds, id_)
        except NotFound:
            previews = []
        for preview in previews:  # the public endpoint goes first
            name = (preview.get("metadata") or {}).get("name")
            if name:
                bl.delete_preview(creds, id_, name)
        bl.delete_sandbox_by_name(creds, id_)


class OrchestratorSandbox(Resource):
    """The orchestrator's sandbox; `url` is its public preview URL (stable across updates)."""

    url: pulumi.Output[str]
    sandbox_url: pulumi.Output[str]
    sandbox_name: pulumi.Output[str]
    spec_digest: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        props: dict[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            SandboxProvider(),
            resource_name,
            {**props, "url": None, "sandbox_url": None, "spec_digest": None},
            with_secret_outputs(opts, "blaxel_api_key"),
        )
