"""One sandbox-name rule: the emulator, the product and the SDK give the same verdicts.

The rule's home is Blaxel's own SDK (`blaxel/core/sandbox/names.py`: lowercase letters and
digits, single hyphens between them, at most 49 characters). The emulator refuses what the
control plane refuses; the product must accept exactly the names the platform accepts.
"""

from __future__ import annotations

import pytest
from blaxel.core.sandbox.names import is_valid_sandbox_name

from emulator.blaxel.exceptions import BadRequest
from emulator.blaxel.specs import validate_sandbox_name
from infra.names import sandbox_name_problem as product_sandbox_name_problem
from orchestrator_app.workers import worker_sandbox_name, worker_volume_name

NAMES = [
    "a", "orch", "my-sandbox-1", "a" * 49, "a" * 50, "a--b", "-a", "a-", "A", "a_b", "a.b",
    "1h30m", "", "w-" + "x" * 47,
]  # fmt: skip


def _emulator_accepts(name: str) -> bool:
    try:
        validate_sandbox_name(name)
    except BadRequest:
        return False
    return True


@pytest.mark.parametrize("name", NAMES)
def test_the_emulator_accepts_exactly_the_names_blaxel_accepts(name: str) -> None:
    assert _emulator_accepts(name) == is_valid_sandbox_name(name)


@pytest.mark.parametrize("session_id", ["sesn_01AbC", "sesn_" + "Z" * 60, "sesn_a__b"])
def test_worker_sandbox_and_volume_names_are_valid_blaxel_names(session_id: str) -> None:
    assert is_valid_sandbox_name(worker_sandbox_name(session_id))
    assert is_valid_sandbox_name(worker_volume_name(session_id))


@pytest.mark.parametrize("name", NAMES)
def test_the_product_accepts_exactly_the_names_blaxel_accepts(name: str) -> None:
    assert (product_sandbox_name_problem(name) is None) == is_valid_sandbox_name(name)
