"""The client error tree and its retry policy."""

from __future__ import annotations

import pytest

from infra.clients.errors import (
    Conflict,
    Invalid,
    NotFound,
    RateLimited,
    Transient,
    Unauthorized,
    backoff_delays,
    error_for_status,
    poll_delays,
    with_retries,
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(404, NotFound), (409, Conflict), (429, RateLimited), (401, Unauthorized), (403, Unauthorized),
     (400, Invalid), (422, Invalid), (500, Transient), (503, Transient), (None, Transient)],
)  # fmt: skip
def test_status_maps_to_its_exception(status: int | None, kind: type) -> None:
    assert type(error_for_status(status, "m")) is kind


def test_backoff_grows_and_is_capped() -> None:
    assert backoff_delays(5, base=1, cap=3) == [1, 2, 3, 3]


def test_transient_failures_are_retried_until_success() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Transient("down")
        return "ok"

    assert with_retries(flaky, attempts=5, sleep=lambda _: None) == "ok"
    assert len(calls) == 3


def test_not_found_is_never_retried() -> None:
    calls = []

    def gone() -> None:
        calls.append(1)
        raise NotFound("gone")

    with pytest.raises(NotFound):
        with_retries(gone, attempts=5, sleep=lambda _: None)
    assert len(calls) == 1


def test_the_last_transient_failure_propagates() -> None:
    with pytest.raises(RateLimited):
        with_retries(
            lambda: (_ for _ in ()).throw(RateLimited("slow")), attempts=3, sleep=lambda _: None
        )


def test_a_wait_polls_soon_at_first_then_at_its_cap() -> None:
    delays = poll_delays(cap=0.5)
    first = [next(delays) for _ in range(6)]
    assert first == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    assert next(poll_delays(cap=0.02)) == 0.02  # never above the cap
