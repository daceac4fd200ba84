"""Pushing a sandbox image: the SDK's ImageInstance upload flow, with a wait that cannot stall.

`ImageInstance.build_sync` accepts DEPLOYED only after it has *seen* another status; when the
one poll that would have seen BUILDING/DEPLOYING fails, it polls a finished image until its
15-minute timeout. So the push uses the SDK's own steps (prepare, zip, ask for the upload URL,
upload) and waits here: DEPLOYED counts once another status was seen, or the image ref moved,
or it has stayed DEPLOYED for a grace period (then the same content was pushed again, or the
build finished between two polls).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

from blaxel.core.image import ImageInstance
from blaxel.core.image.image import _check_upload_response, _signed_build_metadata

from infra.clients.blaxel import BlaxelCredentials, _connect, _mapped, get_sandbox_by_name
from infra.clients.errors import (
    NotFound,
    Retryable,
    error_for_status,
    poll_delays,
    with_retries,
)

SETTLED_GRACE_S = 20.0


def push_image(
    creds: BlaxelCredentials,
    name: str,
    image: ImageInstance,
    memory_mb: int,
    labels: dict[str, str] | None = None,
    timeout_s: float = 900.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Upload `image` as sandbox image `name` and wait for its build; returns the sandbox.
    `labels` go on the build sandbox (the ownership mark)."""
    before = _current_ref(creds, name)
    with_retries(lambda: _upload(creds, name, image, memory_mb, labels or {}))
    return wait_image_built(creds, name, before, timeout_s, sleep)


def _current_ref(creds: BlaxelCredentials, name: str) -> str | None:
    try:
        return image_ref_of(get_sandbox_by_name(creds, name))
    except NotFound:
        return None


def image_ref_of(sandbox: dict[str, Any]) -> str | None:
    """The image a sandbox runs, as its spec names it (pure)."""
    return ((sandbox.get("spec") or {}).get("runtime") or {}).get("image")


def _upload(
    creds: BlaxelCredentials,
    name: str,
    image: ImageInstance,
    memory_mb: int,
    labels: dict[str, str],
) -> None:
    # The SDK's build_sync steps, minus its wait (see the module docstring); private helpers of
    # the pinned SDK (blaxel 0.4.24).
    _connect(creds)
    build_dir = image._prepare_for_sandbox("latest").write_temp()
    try:
        archive = image._create_zip(build_dir)
        payload = image._create_sandbox_payload(name, memory_mb, {})
        # Plain sandbox labels, not build labels (those are signed into the upload).
        for key, value in labels.items():
            payload.metadata.labels[key] = value  # type: ignore[index,union-attr]
        with _mapped(f"push image {name}"):
            response, upload_url = image._create_sandbox_with_upload_sync(payload)
        status = int(response.status_code)
        if status >= 400:
            raise error_for_status(status, f"Blaxel push image {name}: HTTP {status}")
        try:
            url = _check_upload_response(response, upload_url)
            metadata, _ = _signed_build_metadata(url, response, {})
            with _mapped(f"upload image {name}"):
                image._upload_zip_sync(url, archive, metadata)
        except RuntimeError as exc:  # the SDK's "no upload URL" / "upload failed"
            raise error_for_status(None, f"Blaxel push image {name}: {exc}") from exc
    finally:
        shutil.rmtree(build_dir.parent, ignore_errors=True)


class BuildWatch:
    """Decides, poll by poll, whether a pushed image is built (pure state machine)."""

    def __init__(self, ref_before: str | None, grace_s: float = SETTLED_GRACE_S) -> None:
        self.ref_before = ref_before
        self.grace_s = grace_s
        self.seen_other = False
        self.deployed_since: float | None = None

    def done(self, status: str | None, ref: str | None, now: float) -> bool:
        """True once the build is over; raises on FAILED."""
        if status == "FAILED":
            raise error_for_status(400, "Blaxel image build failed")
        if status != "DEPLOYED":
            self.seen_other = self.seen_other or status is not None
            self.deployed_since = None
            return False
        if self.seen_other or (ref is not None and ref != self.ref_before):
            return True
        if self.deployed_since is None:
            self.deployed_since = now
        return now - self.deployed_since >= self.grace_s


def wait_image_built(
    creds: BlaxelCredentials,
    name: str,
    ref_before: str | None,
    timeout_s: float,
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    """Poll the image's sandbox until BuildWatch says it is built; a failed poll is retried."""
    watch = BuildWatch(ref_before)
    deadline = time.monotonic() + timeout_s
    delays = poll_delays(cap=0.5)
    while True:
        try:
            sandbox = get_sandbox_by_name(creds, name)
            if watch.done(sandbox.get("status"), image_ref_of(sandbox), time.monotonic()):
                return sandbox
        except (NotFound, Retryable):
            pass  # not visible yet, or a poll failed: the next one decides
        if time.monotonic() > deadline:
            raise error_for_status(None, f"Blaxel image {name} not built after {timeout_s:.0f}s")
        sleep(next(delays))
