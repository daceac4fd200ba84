"""What an emulator instance is told at start: where it is reachable and which credentials it accepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Mount points, fixed so that every client knows where to point its SDK.
ANTHROPIC_PREFIX = ""  # the SDK appends /v1/...
CONSOLE_PREFIX = "/_console"
BLAXEL_PREFIX = "/blaxel"  # control plane at /blaxel/v0; sandbox APIs and previews below it
CONTROL_PREFIX = "/_emulator"  # reset, fault injection, inspection: tests only


@dataclass(frozen=True)
class EmulatorConfig:
    """Credentials the emulator accepts and where it keeps sandbox files and images."""

    public_base_url: str  # e.g. http://127.0.0.1:41234 (no trailing slash)
    data_dir: Path
    anthropic_api_key: str = "sk-ant-api03-emulator"
    blaxel_api_key: str = "bl-emulator-key"
    blaxel_workspace: str = "local"
    # Python for sandbox processes: images are build contexts run as local processes.
    sandbox_path_prefix: tuple[str, ...] = field(default_factory=tuple)

    @property
    def anthropic_base_url(self) -> str:
        return self.public_base_url + ANTHROPIC_PREFIX

    @property
    def blaxel_base_url(self) -> str:
        return self.public_base_url + BLAXEL_PREFIX + "/v0"

    @property
    def console_url(self) -> str:
        return self.public_base_url + CONSOLE_PREFIX
