"""Small pure helpers shared by the Anthropic backend: ids, time, cursor pages."""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from emulator.anthropic.exceptions import InvalidRequestError

T = TypeVar("T")

_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZabcdefghijkmnopqrstuvwxyz"


def new_id(prefix: str) -> str:
    """An id in Anthropic's style: a prefix and 24 base-58-ish characters (`env_01…`)."""
    return prefix + "_01" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


def iso(moment: datetime) -> str:
    """RFC 3339 with microseconds and a `Z`, as the API writes timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Clock:
    """Wall time plus an offset tests can advance (lease TTLs, webhook timestamps)."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._last = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The emulated time; strictly increasing, so two heartbeats never share a stamp."""
        with self._lock:
            moment = datetime.now(UTC) + self._offset
            if moment <= self._last:
                moment = self._last + timedelta(microseconds=1)
            self._last = moment
            return moment

    def advance(self, seconds: float) -> None:
        """Move the emulated time; a negative step (e.g. to sign a stale webhook) goes back."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)
            if seconds < 0:
                self._last = datetime.min.replace(tzinfo=UTC)

    def reset(self) -> None:
        """Back to real time (the strictly-increasing guard forgets the advanced stamps)."""
        with self._lock:
            self._offset = timedelta()
            self._last = datetime.min.replace(tzinfo=UTC)


def _encode_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"page:{index}".encode()).decode().rstrip("=")


def _decode_cursor(page: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(page + "=" * (-len(page) % 4)).decode()
        prefix, _, index = raw.partition(":")
        if prefix != "page":
            raise ValueError(raw)
        return int(index)
    except ValueError as exc:
        raise InvalidRequestError(f"page: invalid pagination cursor {page!r}") from exc


def paginate(
    items: Sequence[T],
    *,
    limit: int | None,
    page: str | None,
    default_limit: int = 20,
    max_limit: int = 1000,
) -> tuple[list[T], str | None]:
    """One page of `items` and the opaque cursor of the next (None on the last page)."""
    size = default_limit if limit is None else limit
    if not 1 <= size <= max_limit:
        raise InvalidRequestError(f"limit: must be between 1 and {max_limit}, got {size}")
    start = _decode_cursor(page) if page else 0
    chunk = list(items[start : start + size])
    more = start + size < len(items)
    return chunk, _encode_cursor(start + size) if more else None


def previous_page(page: str | None, *, limit: int | None, default_limit: int = 20) -> str | None:
    """The cursor of the page before `page` (None on the first page): two-way cursor lists."""
    if not page:
        return None
    start = _decode_cursor(page)
    if start <= 0:
        return None
    size = default_limit if limit is None else limit
    return _encode_cursor(max(0, start - size))
