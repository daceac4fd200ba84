import socket
import subprocess
import sys

import pytest

from tests.conftest import NonLoopbackConnectionError, _violations, is_loopback


def test_loopback_addresses_are_allowed() -> None:
    assert is_loopback(("127.0.0.1", 80))
    assert is_loopback(("::1", 80, 0, 0))
    assert is_loopback(("localhost", 80))
    assert is_loopback("/tmp/some.sock")


def test_other_addresses_are_not_loopback() -> None:
    assert not is_loopback(("10.0.0.1", 80))
    assert not is_loopback(("93.184.216.34", 443))
    assert not is_loopback(("api.blaxel.ai", 443))


def test_connecting_to_a_public_address_is_blocked_and_recorded() -> None:
    before = len(_violations)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
        pytest.raises(NonLoopbackConnectionError),
    ):
        sock.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed, never contacted
    assert len(_violations) == before + 1
    del _violations[before:]  # this test made it on purpose; don't fail it at teardown


def test_subprocesses_trust_only_a_ca_that_signs_no_tls_peer() -> None:
    """A TLS connection that slipped past the guards fails verification in any subprocess."""
    trusted = subprocess.run(
        [
            sys.executable,
            "-c",
            "import httpx; print([dict(c['subject'][0])['commonName']"
            " for c in httpx.create_ssl_context().get_ca_certs()])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert trusted.strip() == "['cma-blaxel tests: signs no TLS peer']"
