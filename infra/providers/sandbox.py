"""The orchestrator sandbox and its public preview: one resource, so the URL lives with it.

The sandbox is updated in place on every change except its name: a new sandbox would mean a
new preview URL and silently orphan the webhook registered on the old one. It has no max-age
TTL for the same reason. Deleting it takes the public preview down first.

Its state volume (when named) holds what the orchestrator needs to come back by itself after
Blaxel rebuilds the sandbox (orchestrator_app/boot.py): volumes survive the sandbox (SDK
`client/api/volumes/create_volume.py`, "Volumes survive sandbox deletion and can be
reattached"). It is created before the sandbox and deleted after it.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CheckFailure, CreateResult, ReadResult, UpdateResult

from infra.names import owner_of, refuse_foreign, sandbox_name_problem
from infra.providers.base import CmaProvider, CmaResource, OwnedProps

if TYPE_CHECKING:
    from infra.clients.blaxel import BlaxelCredentials

DIGEST_LABEL = "cma-blaxel/image-digest"
DIGEST_LABEL_LENGTH = 12
IMPORT_HINT = (
    "Set {name_key} to another name, or take it over with "
    "`pulumi config set blaxel:importOrchestratorSandbox true` (or scripts/import-stack)."
)


class SandboxProps(OwnedProps):
    """Inputs of the orchestrator sandbox."""

    sandbox_name: str
    image: str
    image_digest: str = ""
    region: str | None = None
    memory_mb: int = 4096
    port: int = 8000  # not 80, 443 or 8080: Blaxel reserves them (docs "Sandboxes/Ports")
    preview_name: str = "public"  # "": no public preview (poll mode)
    labels: dict[str, str] = {}
    adopt: bool = False  # take over a sandbox of this name that is not marked as ours
    state_volume: str = ""  # "": none (older stacks, until their next `up`)
    # The saved server start request on it: removed before an update that redeploys the
    # sandbox, so the boot that follows starts no stale server (the server resource restarts
    # and saves its own after every redeploy).
    state_file: str = ""
    state_mount_path: str = "/app/state"
    state_volume_mb: int = 512
    deploy_timeout_s: float = 300.0  # from customTimeouts


def sandbox_labels(p: SandboxProps) -> dict[str, str]:
    """The labels we set: the user's, the owner mark and the image digest's head (pure)."""
    labels = dict(p.labels)
    if p.owner:
        labels.update(p.owner.mark())
    if p.image_digest:
        # Label values are short; the digest's head is enough to make a new push a new spec.
        labels[DIGEST_LABEL] = digest_head(p.image_digest)
    return labels


def digest_head(digest: str) -> str:
    return digest.removeprefix("sha256:")[:DIGEST_LABEL_LENGTH]


def sandbox_spec(p: SandboxProps) -> dict[str, Any]:
    """The sandbox spec: image, memory, one HTTP port, no expiration policy (pure)."""
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
    if p.state_volume:
        spec["volumes"] = [
            {"name": p.state_volume, "mountPath": p.state_mount_path, "readOnly": False}
        ]
    return spec


def volume_payload(p: SandboxProps) -> dict[str, Any]:
    """The state volume's create body: in the sandbox's region, marked with its owner (pure)."""
    spec: dict[str, Any] = {"size": p.state_volume_mb}
    if p.region:
        spec["region"] = p.region
    labels = {**p.labels, **(p.owner.mark() if p.owner else {})}
    return {"metadata": {"name": p.state_volume, "labels": labels}, "spec": spec}


def sandbox_payload(p: SandboxProps) -> dict[str, Any]:
    """The sandbox body (pure)."""
    return {
        "metadata": {"name": p.sandbox_name, "labels": sandbox_labels(p)},
        "spec": sandbox_spec(p),
    }


def preview_payload(p: SandboxProps) -> dict[str, Any]:
    """The public preview of the sandbox's port, with no expiry (pure)."""
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


def preview_matches(preview: dict[str, Any], p: SandboxProps) -> bool:
    """Whether an existing preview is the public one on our port (pure)."""
    spec = preview.get("spec") or {}
    return spec.get("port") == p.port and bool(spec.get("public"))


def find_preview(previews: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The preview called `name` (pure)."""
    return next((p for p in previews if (p.get("metadata") or {}).get("name") == name), None)


def redeploys(p: SandboxProps) -> dict[str, Any]:
    """What redeploys the sandbox when it changes: spec and image; labels and owner marks
    are metadata and restart nothing (pure)."""
    return {"spec": sandbox_spec(p), "image": digest_head(p.image_digest)}


def spec_digest(p: SandboxProps) -> str:
    """A digest of `redeploys`: the server restarts when it changed (pure)."""
    body = json.dumps(redeploys(p), sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def sandbox_outputs(p: SandboxProps, live: dict[str, Any], url: str) -> dict[str, Any]:
    """State: inputs, the preview URL, the sandbox API URL and the spec digest (pure)."""
    return {
        **p.model_dump(),
        "url": url,
        "sandbox_url": (live.get("metadata") or {}).get("url"),
        "spec_digest": spec_digest(p),
    }


def live_props(
    p: SandboxProps, live: dict[str, Any], previews: list[dict[str, Any]]
) -> SandboxProps:
    """The inputs that describe the live sandbox, for a refresh to show drift (pure)."""
    spec = live.get("spec") or {}
    runtime = spec.get("runtime") or {}
    ports = runtime.get("ports") or []
    labels = dict((live.get("metadata") or {}).get("labels") or {})
    head = labels.pop(DIGEST_LABEL, "")
    found = owner_of(labels)
    for key in p.owner.mark() if p.owner else {}:
        labels.pop(key, None)
    return p.model_copy(
        update={
            "image": runtime.get("image", p.image),
            "image_digest": p.image_digest if head == digest_head(p.image_digest) else head,
            "region": spec.get("region", p.region),
            "memory_mb": runtime.get("memory", p.memory_mb),
            "port": ports[0].get("target", p.port) if ports else p.port,
            "preview_name": live_preview_name(p, previews),
            "labels": labels,
            "owner": found,
            "state_volume": live_state_volume(p, spec),
        }
    )


def live_state_volume(p: SandboxProps, spec: dict[str, Any]) -> str:
    """The volume mounted where the state volume belongs, as found ("" when none) (pure)."""
    for attachment in spec.get("volumes") or []:
        if attachment.get("mountPath") == p.state_mount_path:
            return str(attachment.get("name") or "")
    return ""


def live_preview_name(p: SandboxProps, previews: list[dict[str, Any]]) -> str:
    """The public preview as found: ours ("" when gone or changed behind our back, so `up`
    recreates it); with none declared (poll mode), any public one, so `up` takes it down
    (pure)."""
    if p.preview_name:
        preview = find_preview(previews, p.preview_name)
        return p.preview_name if preview and preview_matches(preview, p) else ""
    public = [x for x in previews if (x.get("spec") or {}).get("public")]
    return str((public[0].get("metadata") or {}).get("name") or "") if public else ""


def _ensure_volume(creds: BlaxelCredentials, p: SandboxProps) -> None:
    """Create the state volume unless it exists; one of another owner is refused."""
    from infra.clients import blaxel as bl
    from infra.clients.errors import NotFound

    try:
        live = bl.get_volume_by_name(creds, p.state_volume)
    except NotFound:
        bl.create_volume_from_spec(creds, volume_payload(p))
        return
    found = owner_of((live.get("metadata") or {}).get("labels"))
    if p.owner and not p.adopt and found != p.owner:
        raise refuse_foreign("volume", p.state_volume, found, p.owner, "")


def _ensure_preview(creds: BlaxelCredentials, p: SandboxProps) -> str:
    from infra.clients import blaxel as bl
    from infra.clients.errors import error_for_status

    previews = bl.list_previews(creds, p.sandbox_name)
    current = find_preview(previews, p.preview_name)
    if current is not None and not preview_matches(current, p):
        bl.delete_preview(creds, p.sandbox_name, p.preview_name)  # changed behind our back
        current = None
    if current is None:
        current = bl.create_preview(creds, p.sandbox_name, preview_payload(p))
    url = preview_url(current)
    if url is None:
        current = find_preview(bl.list_previews(creds, p.sandbox_name), p.preview_name) or {}
        url = preview_url(current)
    if url is None:
        raise error_for_status(None, f"preview {p.preview_name} of {p.sandbox_name} has no URL")
    return url


class SandboxProvider(CmaProvider):
    """Upserts the sandbox by name (ours only), then its public preview."""

    props_model = SandboxProps
    not_diffed = frozenset({"adopt", "name_key", "deploy_timeout_s"})
    # Only a new name replaces the sandbox (and so its URL); all else is updated in place.
    replace_fields = ("sandbox_name",)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        result = super().check(olds, news)
        name = news.get("sandbox_name")
        if isinstance(name, str) and (why := sandbox_name_problem(name)):
            result.failures.append(CheckFailure("sandbox_name", why))
        return result

    def _upsert(self, p: SandboxProps, creating: bool, redeploying: bool = True) -> dict[str, Any]:
        from infra.clients import blaxel as bl
        from infra.clients.errors import NotFound

        creds = self.blaxel()
        payload = sandbox_payload(p)
        try:
            live = bl.get_sandbox_by_name(creds, p.sandbox_name)
        except NotFound:
            if p.state_volume:
                _ensure_volume(creds, p)
            bl.create_sandbox_from_spec(creds, payload)
        else:
            found = owner_of((live.get("metadata") or {}).get("labels"))
            if creating and p.owner and not p.adopt and found != p.owner:
                hint = IMPORT_HINT.format(name_key=p.name_key or "the name")
                raise refuse_foreign("sandbox", p.sandbox_name, found, p.owner, hint)
            if p.state_volume:  # the sandbox is ours (or taken over): so is its volume
                _ensure_volume(creds, p)
            if redeploying and p.state_file:
                bl.remove_file(creds, p.sandbox_name, p.state_file)
            bl.update_sandbox_spec(creds, p.sandbox_name, payload)
        live = bl.wait_sandbox_deployed(creds, p.sandbox_name, timeout_s=p.deploy_timeout_s)
        url = _ensure_preview(creds, p) if p.preview_name else ""
        return sandbox_outputs(p, live, url)

    def create(self, props: dict[str, Any]) -> CreateResult:
        # Upsert by name: our sandbox left by an earlier failed run is adopted, not duplicated.
        p: SandboxProps = self.validated(props)
        return CreateResult(p.sandbox_name, self._upsert(p, creating=True))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from infra.clients import blaxel as bl

        p: SandboxProps = self.validated(news)
        try:
            old = self.validated(olds)
        except ValueError:
            old = None
        same = bool(old and olds.get("spec_digest") and redeploys(old) == redeploys(p))
        outs = self._upsert(p, creating=False, redeploying=not same)
        if same:
            # Nothing that redeploys the sandbox changed: the server keeps running as it is.
            outs["spec_digest"] = olds["spec_digest"]
        old_preview = olds.get("preview_name")
        if old_preview and old_preview != p.preview_name:
            bl.delete_preview(self.blaxel(), p.sandbox_name, str(old_preview))
        return UpdateResult(outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from infra.clients import blaxel as bl
        from infra.clients.errors import NotFound

        creds = self.blaxel()
        try:
            live = bl.get_sandbox_by_name(creds, id_)
            previews = bl.list_previews(creds, id_)
        except NotFound:
            return ReadResult("", {})
        p: SandboxProps = self.validated({**props, "sandbox_name": id_})
        current = live_props(p, live, previews)
        preview = find_preview(previews, p.preview_name) if p.preview_name else None
        # A missing preview keeps the last URL (never ""), so dependents stay valid until
        # the next `up` recreates it.
        url = (preview_url(preview) if preview else None) or str(props.get("url") or "")
        if not p.preview_name:
            url = ""
        outs = sandbox_outputs(current, live, url)
        outs["spec_digest"] = props.get("spec_digest") or outs["spec_digest"]
        return ReadResult(id_, outs, inputs=current.model_dump())

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from infra.clients import blaxel as bl
        from infra.clients.errors import NotFound

        creds = self.blaxel()
        try:
            previews = bl.list_previews(creds, id_)
        except NotFound:
            previews = []
        for preview in previews:  # the public endpoint goes first
            name = (preview.get("metadata") or {}).get("name")
            if name:
                bl.delete_preview(creds, id_, name)
        bl.delete_sandbox_by_name(creds, id_)  # waits until it is gone: the volume is free
        if props.get("state_volume"):
            bl.delete_volume_by_name(creds, str(props["state_volume"]))


class OrchestratorSandbox(CmaResource, module="cma", name="OrchestratorSandbox"):
    """The orchestrator's sandbox; `url` is its public preview URL (stable across updates)."""

    provider_class = SandboxProvider
    output_names = ("url", "sandbox_url", "spec_digest")

    url: pulumi.Output[str]
    sandbox_url: pulumi.Output[str]
    sandbox_name: pulumi.Output[str]
    spec_digest: pulumi.Output[str]
