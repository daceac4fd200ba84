"""Suite-wide guards: only loopback is ever contacted, no SDK phones home, and a test that leaks
an open socket fails itself. Also the run's order: slowest tests first (tests/scheduling.py)."""

from __future__ import annotations

import gc
import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import scheduling

# Subprocesses (the Pulumi engine, sandbox processes of the emulator) inherit these:
# telemetry off, and any HTTP(S) request to a non-loopback host goes to a dead proxy.
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PULUMI_SKIP_UPDATE_CHECK"] = "true"
os.environ["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "true"
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
    os.environ[_name] = "http://127.0.0.1:9"
for _name in ("NO_PROXY", "no_proxy"):
    os.environ[_name] = "127.0.0.1,localhost,::1"
# Nothing in the tests speaks TLS (the emulator and every server are plain HTTP on loopback), so
# Python and Go clients trust one CA that signs nothing: a TLS connection that slipped past the
# guards fails verification, and each client's SSL context loads one certificate instead of the
# whole bundle (3.5 ms of CPU instead of 50, and 50 again per proxy variable above; the SDKs
# make a client per call: an e2e `up` test's user CPU went from 41 s to 37.7 s).
NO_TLS_PEER_CA = Path(__file__).with_name("no_tls_peer_ca.pem")
os.environ["SSL_CERT_FILE"] = str(NO_TLS_PEER_CA)
os.environ.pop("SSL_CERT_DIR", None)

_violations: list[str] = []
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NonLoopbackConnectionError(ConnectionRefusedError):
    """A test tried to reach an address outside the loopback range."""


def is_loopback(address: Any) -> bool:
    """True for loopback IPs, 'localhost' and unix sockets (anything that is not (host, port))."""
    if not isinstance(address, tuple):
        return True
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _guard(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address):
        _violations.append(repr(address))
        raise NonLoopbackConnectionError(f"non-loopback connection blocked in tests: {address!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _guard(self, address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _guard(self, address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]


@pytest.fixture(autouse=True)
def _fail_on_non_loopback_connection() -> Iterator[None]:
    """Fail the test that made a non-loopback connection, even if a library swallowed the error."""
    start = len(_violations)
    yield
    made = _violations[start:]
    if made:
        pytest.fail(f"test tried to contact non-loopback addresses: {made}")


def pytest_collection_finish(session: pytest.Session) -> None:
    """What the imports of the collected modules made lives for the whole run: set it aside
    (gc.freeze), so that the collection after each test below looks only at what tests made
    (0.14 s a collection over the SDKs' and pydantic's objects; microseconds without them)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _leaks_fail_the_test_that_made_them() -> Iterator[None]:
    """Collect garbage after each test, its other fixtures torn down: an unclosed socket or
    transport then warns (an error here) in the teardown of the test that dropped it, not at
    whatever later moment the collector happens to run, in some other test of that worker."""
    yield
    gc.collect()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-durations",
        action="store_true",
        help=f"rewrite {scheduling.DURATIONS_FILE.name} from this run's test durations",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Only under xdist: alone, pytest's own order (module by module) is the fastest.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items[:] = scheduling.slowest_first(items, scheduling.load_durations())


_measured: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Runs in the controller too, for every worker's reports: setup, call and teardown add up.
    _measured[report.nodeid] = _measured.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    if session.config.getoption("record_durations") and not os.environ.get("PYTEST_XDIST_WORKER"):
        old = scheduling.load_durations()
        scheduling.write_durations(scheduling.merged_durations(old, _measured, _measured))
