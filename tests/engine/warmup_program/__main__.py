"""A program without resources that asks for the dynamic provider host early, then waits to see
the engine start it: nothing else here would make the engine load that provider."""

import os
import time
from pathlib import Path

import pulumi

from infra.provider_warmup import start_dynamic_provider_host

WAIT_S = 30.0


def parent_of(pid: int) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ")".
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        pid = parent_of(pid)
        if pid == ancestor:
            return True
    return False


def provider_host_running(engine: int) -> bool:
    """A `pulumi.dynamic` process started by this program's engine (others run in parallel)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"pulumi.dynamic" in argv and descends_from(int(entry.name), engine):
                return True
        except (OSError, ValueError):
            continue  # gone meanwhile
    return False


engine = parent_of(os.getppid())  # the program <- the language host <- the CLI
start_dynamic_provider_host()
deadline = time.monotonic() + WAIT_S
while not (started := provider_host_running(engine)) and time.monotonic() < deadline:
    time.sleep(0.05)
pulumi.export("providerHostStarted", started)
