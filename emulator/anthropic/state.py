"""The Anthropic backend's shared state: records, credentials, the clock and change signals.

Operations live in mixins (`environments.py`, `agents.py`, `sessions.py`, `work.py`,
`webhooks.py`) over this one state; `models.AnthropicBackend` puts them together.
State is guarded by one lock because tests read and poke it from their own
thread while the server's event loop serves requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from emulator.anthropic.auth import (
    API_KEY,
    ENVIRONMENT_KEY,
    SESSIONS_TOKEN,
    Principal,
    credential_from_headers,
)
from emulator.anthropic.common import Clock
from emulator.anthropic.exceptions import AuthenticationError, NotFoundError
from emulator.anthropic.records import (
    Agent,
    Delivery,
    Environment,
    Session,
    WebhookEndpoint,
    WorkItem,
)
from emulator.config import EmulatorConfig


@dataclass(frozen=True)
class Claim:
    """A worker id that polled a session's work item (who served what)."""

    work_id: str
    session_id: str
    worker_id: str | None
    at: datetime


class BackendState:
    """Records and plumbing shared by every operation mixin."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock()
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: set[asyncio.Event] = set()
        # Every credential handed out (environment keys, signing secrets, sessions tokens, work
        # secrets), for the fault suite's log scan. Append-only and kept across `reset()`: a
        # log written before a reset may still hold one.
        self.issued_secrets: list[str] = []
        self._init_records()

    def _issue(self, secret: str) -> str:
        """Record a credential the emulator hands out; returns it."""
        with self._lock:
            self.issued_secrets.append(secret)
        return secret

    def _init_records(self) -> None:
        self.environments: dict[str, Environment] = {}
        self.agents: dict[str, Agent] = {}
        self.sessions: dict[str, Session] = {}
        self.work_items: dict[str, WorkItem] = {}
        self.environment_keys: dict[str, str] = {}  # key -> environment id
        self.sessions_tokens: dict[str, str] = {}  # token -> work id
        self.sessions_token_expiry: dict[str, datetime] = {}  # token -> end of its life
        self.work_secret_modes: dict[str, str] = {}  # environment id -> SECRET_MODES entry
        self.webhook_endpoints: dict[str, WebhookEndpoint] = {}
        self.deliveries: list[Delivery] = []
        self.claims: list[Claim] = []
        self.worker_polls: dict[tuple[str, str], datetime] = {}  # (env, worker) -> last poll

    # -- change signals: long polls and event streams wait on these ---------------------

    def notify(self) -> None:
        """Wake every waiter on the server loop (callable from any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake_waiters)

    def notify_later(self, seconds: float) -> None:
        """Wake every waiter `seconds` from now (a queued item turning pollable)."""
        loop = self._loop
        if seconds > 0 and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.call_later, seconds, self._wake_waiters)

    def _wake_waiters(self) -> None:
        for event in list(self._waiters):
            event.set()

    @contextlib.contextmanager
    def watching(self) -> Iterator[asyncio.Event]:
        """An event set on the next change; register it *before* checking, so no change is missed."""
        event = asyncio.Event()
        self._waiters.add(event)
        try:
            yield event
        finally:
            self._waiters.discard(event)

    # -- credentials -------------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller behind `x-api-key` / `Authorization: Bearer`; 401 for anything unknown."""
        header, credential = credential_from_headers(headers)
        with self._lock:
            if credential == self.config.anthropic_api_key:
                return Principal(API_KEY)
            environment_id = self.environment_keys.get(credential)
            if environment_id is not None:
                return Principal(ENVIRONMENT_KEY, environment_id=environment_id)
            work_id = self.sessions_tokens.get(credential)
            expiry = self.sessions_token_expiry.get(credential)
            if work_id is not None and expiry is not None and self.clock.now() >= expiry:
                # Short-lived (about an hour): past it, the token is refused like any other.
                raise AuthenticationError("sessions token expired")
            if work_id is not None:
                item = self.work_items[work_id]
                return Principal(
                    SESSIONS_TOKEN,
                    environment_id=item.environment_id,
                    work_id=work_id,
                    session_id=item.session_id,
                )
        raise AuthenticationError(
            "invalid x-api-key" if header == "x-api-key" else "invalid bearer token"
        )

    # -- lookups -----------------------------------------------------------------------

    def get_environment(self, environment_id: str) -> Environment:
        environment = self.environments.get(environment_id)
        if environment is None:
            raise NotFoundError(f"Environment {environment_id} not found")
        return environment

    def get_agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise NotFoundError(f"Agent {agent_id} not found")
        return agent

    def get_session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None or session.deleted:
            raise NotFoundError(f"Session {session_id} not found")
        return session

    def get_work(self, environment_id: str, work_id: str) -> WorkItem:
        item = self.work_items.get(work_id)
        if item is None or item.environment_id != environment_id:
            raise NotFoundError(f"Work item {work_id} not found in environment {environment_id}")
        return item
