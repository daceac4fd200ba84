"""The orchestrator's exception tree; `app.py` maps each to a response in one place.

    OrchestratorError
    ├── WebhookRejected, MalformedWebhook, PayloadTooLarge, NotConfigured   (routes)
    ├── BlaxelError            a Blaxel SDK or network failure (`sandboxes.as_blaxel_error`)
    │   └── BlaxelNotFound     the sandbox, process or volume does not exist (404)
    └── UnservableWork         a claimed item this orchestrator must not or cannot serve

Anything else raised from our code is a bug: never retried, logged with its traceback.
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Root of every error the orchestrator raises on purpose."""


class WebhookRejected(OrchestratorError):
    """The webhook's signature is missing, forged or outside the timestamp tolerance (401)."""


class MalformedWebhook(OrchestratorError):
    """The webhook is signed but its body is not an event we can read (400)."""


class PayloadTooLarge(OrchestratorError):
    """The webhook body is larger than any event could be (413); it is not read whole."""


class NotConfigured(OrchestratorError):
    """A setting the route needs is missing (503); the message names it."""


class BlaxelError(OrchestratorError):
    """A Blaxel call failed; `transient` is True when retrying may help (5xx, 429, network)."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


class BlaxelNotFound(BlaxelError):
    """The Blaxel object asked for does not exist (404): never transient."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False, status=404)


class UnservableWork(OrchestratorError):
    """A claimed work item that no retry can serve (e.g. its secret carries no sessions token)."""
