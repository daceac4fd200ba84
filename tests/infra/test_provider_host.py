"""In the dynamic provider host, exit skips the interpreter's teardown, keeping what an exit
must keep: the output written and the exit status."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

from infra.providers.base import PROVIDER_HOST_MODULE, is_provider_host
from scripts.engine import REPO_ROOT


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    # Buffered stdout (as in the host, whose stdout is a pipe), so an unflushed write would be lost.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
    )


def test_the_provider_host_is_recognised_by_its_main_module() -> None:
    spec = importlib.util.find_spec(PROVIDER_HOST_MODULE)
    assert spec is not None
    host_main = importlib.util.module_from_spec(spec)  # not executed: it would serve forever

    assert is_provider_host(host_main)
    assert not is_provider_host(sys.modules["__main__"])  # pytest, as the program's runner
    assert not is_provider_host(None)


def test_exit_skips_teardown_and_keeps_the_output() -> None:
    done = run_python(
        """
        import atexit
        from infra.providers.base import skip_teardown_at_exit
        atexit.register(print, "teardown")
        skip_teardown_at_exit()
        print("served", end="")
        """
    )
    assert (done.returncode, done.stdout) == (0, "served")


def test_exit_after_an_uncaught_exception_keeps_status_1() -> None:
    done = run_python(
        """
        from infra.providers.base import skip_teardown_at_exit
        skip_teardown_at_exit()
        raise RuntimeError("the server failed")
        """
    )
    assert done.returncode == 1
    assert "RuntimeError: the server failed" in done.stderr
