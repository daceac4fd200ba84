"""The orchestrator's own HTTP endpoints (`/health`, `/ready`), reached through its preview URL.

Not a platform API, so plain httpx; failures still map to the client error tree.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from infra.clients.errors import Transient, error_for_status, poll_delays
from infra.clients.tls import shared_tls_context


def get_endpoint(url: str, timeout_s: float = 10.0) -> tuple[int, str]:
    """(status, body) of a GET; no answer at all raises Transient."""
    try:
        response = httpx.get(url, timeout=timeout_s, verify=shared_tls_context())
    except httpx.HTTPError as exc:
        raise error_for_status(None, f"GET {url}: {exc}") from exc
    return response.status_code, response.text[:500]


def wait_until_ok(
    url: str,
    timeout_s: float,
    sleep: Callable[[float], None] = time.sleep,
    still_running: Callable[[], None] | None = None,
    get: Callable[[], tuple[int, str]] | None = None,
) -> str:
    """Poll GET `url` until 200 and return its body; `still_running` may raise to stop early.

    `get` reaches `url` another way (e.g. through the sandbox API when there is no public
    preview); `url` then only names it in errors.
    """
    fetch = get or (lambda: get_endpoint(url))
    deadline = time.monotonic() + timeout_s
    delays = poll_delays(cap=0.5)
    last = "no answer"
    while True:
        try:
            status, body = fetch()
            if status == 200:
                return body
            last = f"HTTP {status}: {body}"
        except Transient as exc:
            last = str(exc)
        if still_running is not None:
            still_running()
        if time.monotonic() > deadline:
            raise Transient(f"{url} not OK after {timeout_s:.0f}s (last: {last})")
        sleep(next(delays))
