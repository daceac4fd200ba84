"""The exception tree every provider sees, whatever platform or SDK raised.

    ClientError                  any failure of a platform call
    ├── NotFound                 404: the thing is gone (deletes treat it as success)
    ├── Conflict                 409: exists already / still in use
    ├── Invalid                  400, 422: the request is wrong; retrying will not help
    ├── Unauthorized             401, 403: credentials are missing or wrong
    └── Retryable                worth another try
        ├── RateLimited          429
        └── Transient            5xx, connection failures, timeouts

`with_retries` retries only `Retryable`; everything else surfaces at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


class ClientError(Exception):
    """A platform call failed; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(ClientError):
    """The resource does not exist (any more)."""


class Conflict(ClientError):
    """The resource exists already, or is still in use."""


class Invalid(ClientError):
    """The platform rejected the request as malformed."""


class Unauthorized(ClientError):
    """The credentials were refused."""


class Retryable(ClientError):
    """A failure that may pass on a later try."""


class RateLimited(Retryable):
    """The platform asked us to slow down."""


class Transient(Retryable):
    """A server error, a dropped connection or a timeout."""


def error_for_status(status: int | None, message: str) -> ClientError:
    """The exception class for an HTTP status (None: no response at all, i.e. transient)."""
    if status is None or status >= 500 or status == 408:
        return Transient(message, status)
    kind: type[ClientError] = {
        404: NotFound,
        409: Conflict,
        429: RateLimited,
        401: Unauthorized,
        403: Unauthorized,
    }.get(status, Invalid)
    return kind(message, status)


def backoff_delays(attempts: int, base: float = 0.25, cap: float = 4.0) -> list[float]:
    """Sleep times between `attempts` tries: exponential, capped (pure, for tests)."""
    return [min(cap, base * 2**n) for n in range(max(0, attempts - 1))]


def poll_delays(cap: float, first: float = 0.05, factor: float = 2.0) -> Iterator[float]:
    """Sleep times between the polls of a wait: short at first, so a state reached at once
    (a fast platform, the emulator's test timing) ends the wait at once, then `cap` (pure)."""
    delay = min(first, cap)
    while True:
        yield delay
        delay = min(cap, delay * factor)


def with_retries(
    call: Callable[[], T],
    attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `call`, retrying `Retryable` failures with backoff; the last failure propagates."""
    delays = backoff_delays(attempts)
    for delay in delays:
        try:
            return call()
        except Retryable:
            sleep(delay)
    return call()
