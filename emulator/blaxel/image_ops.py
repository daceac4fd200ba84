"""Image push: the sandbox that waits for its upload, the upload URL, and the build."""

from __future__ import annotations

import asyncio
import logging
import time

from emulator.blaxel.exceptions import BadRequest, Forbidden
from emulator.blaxel.images import Image
from emulator.blaxel.records import ImagePush, Sandbox
from emulator.blaxel.sandbox_ops import SandboxOps

logger = logging.getLogger(__name__)


class ImageOps(SandboxOps):
    """upload_url, push_image (and the build it starts)."""

    def upload_url(self, sandbox: Sandbox) -> str:
        return self._public("uploads", sandbox.name) + f"?token={sandbox.upload_token}"

    def push_image(self, name: str, token: str, archive: bytes) -> None:
        """Receive the zipped build context at the upload URL; the build then runs on its own."""
        with self._lock:
            sandbox = self.sandboxes.get(name)
            if sandbox is None or not token or sandbox.upload_token != token:
                raise Forbidden("upload URL is invalid or expired", code="FORBIDDEN")
            sandbox.upload_token = None
            self.image_pushes.append(ImagePush(name, len(archive), time.time()))
        try:
            image = self.images.push(name, archive)
        except BadRequest:
            logger.info("blaxel emulator: build context for %s rejected", name)
            with self._lock:
                sandbox.status = "FAILED"
            return
        with self._lock:
            sandbox.status = "BUILDING"
        self._spawn(self._finish_build(sandbox, image))

    async def _finish_build(self, sandbox: Sandbox, image: Image) -> None:
        await asyncio.sleep(self.timing.image_build_step_s)
        with self._lock:
            if sandbox.status != "BUILDING":
                return
            sandbox.status = "DEPLOYING"
        await asyncio.sleep(self.timing.image_build_step_s)
        with self._lock:
            if sandbox.status != "DEPLOYING" or self.sandboxes.get(sandbox.name) is not sandbox:
                return  # deleted, replaced or reset meanwhile
            sandbox.spec["runtime"]["image"] = image.ref
            self.images.deployed(image)
            sandbox.processes.kill_all()
            self._provision(sandbox, deploy_s=0)
