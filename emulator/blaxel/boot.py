"""What a sandbox runs as it starts: its image's ENTRYPOINT (then CMD).

Blaxel runs a custom image's entrypoint when the sandbox boots (and again whenever it rebuilds
the sandbox). The entrypoint must start the sandbox API, `/usr/local/bin/sandbox-api`, which
the SDK's image builder copies into every image and makes the default entrypoint (SDK
`core/image/image.py:953-967`, `_prepare_for_sandbox`); a custom one starts it, waits for it,
then may start processes through it on 127.0.0.1:8080 (docs knowledge-base "resolving sandbox
creation issues": "The script must start sandbox-api, wait for it to become available, and
then start other processes through the /process API").

The emulator *is* the sandbox API, so an entrypoint that only runs `sandbox-api` runs nothing
here. Any other runs as the sandbox's boot process: not in the process list (as PID 1 is not),
killed with the sandbox's processes, and told where its sandbox's local API is in
`SANDBOX_API_URL` (on Blaxel that is 127.0.0.1:8080; the emulator's processes share the host's
loopback, so each sandbox's local API is a URL of its own). No `sandbox-api` file exists here.
"""

from __future__ import annotations

from pathlib import Path

from emulator.blaxel.files import sandbox_path
from emulator.blaxel.images import Layout

SANDBOX_API_PATH = "/usr/local/bin/sandbox-api"
LOCAL_API_VARIABLE = "SANDBOX_API_URL"


def boot_command(layout: Layout) -> list[str] | None:
    """The argv to run at boot, or None when the image starts only the sandbox API (pure)."""
    argv = layout.start_command
    if not argv or argv[0] == SANDBOX_API_PATH:
        return None
    return argv


def host_argv(argv: list[str], root: Path) -> list[str]:
    """Absolute paths of files the image holds, as their place in the sandbox's folder."""
    mapped = []
    for word in argv:
        inside = sandbox_path(root, word) if word.startswith("/") else None
        mapped.append(str(inside) if inside is not None and inside.exists() else word)
    return mapped
