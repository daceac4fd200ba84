"""One TLS context for the provider's sandbox-API clients and endpoint polls.

httpx builds a new SSL context for each client it makes, and that loads the whole CA bundle:
about 50 ms of CPU here, and 50 ms more for each proxy variable set (HTTP_PROXY, HTTPS_PROXY).
The Blaxel SDK makes a client for every sandbox-API call (`SyncSandboxAction.get_client`,
`blaxel/core/sandbox/sync/action.py:52`), and `up` polls a process or an endpoint every half
second while a server starts. So one `up` spent about a quarter of the provider's CPU loading
CA bundles. A context built once is shared: it trusts what a fresh one trusts (the same
`httpx.create_ssl_context()`, which honours SSL_CERT_FILE and SSL_CERT_DIR). The Anthropic
client (`infra/clients/anthropic.py`) still builds its own, about 3% of the provider's CPU.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
