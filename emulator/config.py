"""What an emulator instance is told at start: where it is reachable and which credentials it accepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Mount points, fixed so that every client knows where to point its SDK.
ANTHROPIC_PREFIX = ""  # the SDK appends /v1/...
CONSOLE_PREFIX = "/_console"
BLAXEL_PREFIX = "/blaxel"  # control plane at /blaxel/v0; sandbox APIs and previews below it
CONTROL_PREFIX = "/_emulator"  # reset, fault injection, inspection: tests only


@dataclass
class Timing:
    """How long the platforms take; realistic by default, shortened by test fixtures.

    Shared (and mutable) at run time: `POST /_emulator/timing` changes it for both backends.
    """

    sandbox_deploy_s: float = 2.0  # a created sandbox stays DEPLOYING this long
    sandbox_delete_s: float = 1.0  # a deleted sandbox stays DELETING this long
    image_build_step_s: float = 1.0  # a pushed image spends this in BUILDING, then DEPLOYING
    standby_after_s: float = 15.0  # idle (no keepAlive process, no call) before standby
    work_pollable_delay_s: float = 0.2  # run-started may be delivered before its item polls
    process_restart_s: float = 1.0  # pause before a failed restartOnFailure process reruns

    def update(self, **values: float) -> None:
        """Change some durations; ValueError naming an unknown or negative one."""
        for name, value in values.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown timing {name!r}")
            if float(value) < 0:
                raise ValueError(f"timing {name!r} must be >= 0")
        for name, value in values.items():
            setattr(self, name, float(value))


def fast_timing() -> Timing:
    """Short durations for test suites: every state still happens, only quicker."""
    return Timing(
        sandbox_deploy_s=0.05,
        sandbox_delete_s=0.05,
        image_build_step_s=0.05,
        standby_after_s=15.0,
        work_pollable_delay_s=0.05,
        process_restart_s=0.05,
    )


# How the control plane writes a preview's `spec.url` (docs/platform-contract.md row B2): the
# real platform answers without a scheme, and protocol-relative `//host/...` is seen too.
PREVIEW_URL_FORMS = ("scheme_less", "protocol_relative")


def check_preview_url_form(form: str) -> str:
    """`form` if it is one of PREVIEW_URL_FORMS; ValueError naming the setting otherwise."""
    if form not in PREVIEW_URL_FORMS:
        raise ValueError(f"preview_url_form must be one of {', '.join(PREVIEW_URL_FORMS)}")
    return form


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
    timing: Timing = field(default_factory=Timing)
    work_secret_ttl_s: float = 3600.0  # a sessions token's life, on the emulator clock
    regions: tuple[str, ...] = ("us-pdx-1", "eu-lon-1", "us-was-1")
    preview_url_form: str = "scheme_less"  # the backend's starting PREVIEW_URL_FORMS entry
    # The niceness (0-19) every sandbox process runs at. On the platform a sandbox is a machine
    # of its own: its processes never take the CPU of the process that started them. Here they
    # share this machine's cores; a benchmark raises this so that the process it measures (an
    # orchestrator under 200 workers starting) keeps the CPU it would have had.
    sandbox_niceness: int = 0
    # The niceness (0-19) of the server's own thread and of the threads it starts (on Linux a
    # thread's niceness is its own: setpriority(2), NOTES), for the same reason: the emulator
    # stands for the platforms' machines, not for a neighbour of the process a benchmark times.
    server_niceness: int = 0

    def __post_init__(self) -> None:
        check_preview_url_form(self.preview_url_form)
        for name in ("sandbox_niceness", "server_niceness"):
            if not 0 <= getattr(self, name) <= 19:
                raise ValueError(f"{name} must be between 0 and 19")

    @property
    def anthropic_base_url(self) -> str:
        return self.public_base_url + ANTHROPIC_PREFIX

    @property
    def blaxel_base_url(self) -> str:
        return self.public_base_url + BLAXEL_PREFIX + "/v0"

    @property
    def console_url(self) -> str:
        return self.public_base_url + CONSOLE_PREFIX
