"""Sessions and their event log: create (queues work, fires the run-started webhook),
retrieve, list, update, archive, delete; send / list events; the scripted agent's turns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from emulator.anthropic import agent_script
from emulator.anthropic.agents import normalize_overrides
from emulator.anthropic.common import iso, new_id, paginate, previous_page
from emulator.anthropic.environments import apply_metadata_patch, check_metadata
from emulator.anthropic.exceptions import InvalidRequestError
from emulator.anthropic.records import Agent, Session
from emulator.anthropic.webhooks import RUN_STARTED, WebhookOps
from emulator.anthropic.work import WorkOps

USER_EVENT_TYPES = (
    "user.message",
    "user.interrupt",
    "user.tool_confirmation",
    "user.custom_tool_result",
    "user.define_outcome",
    "user.tool_result",
    "system.message",
)
SESSION_STATUSES = ("rescheduling", "running", "idle", "terminated")


def _status_after(event_type: str, current: str) -> str:
    return {
        "session.status_running": "running",
        "session.status_idle": "idle",
        "session.status_terminated": "terminated",
    }.get(event_type, current)


def _parse_time(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequestError(f"{field}: not an RFC 3339 timestamp: {value!r}") from exc


class SessionOps(WorkOps, WebhookOps):
    """create_session, retrieve_session, list_sessions, update_session, archive_session,
    delete_session, send_events, list_events, events_since."""

    def _resolve_agent(self, spec: Any) -> tuple[Agent, int, dict[str, Any]]:
        """(agent, version, overrides) for `agent="id"`, `{type: agent}` or `{type: agent_with_overrides}`."""
        if isinstance(spec, str):
            spec = {"type": "agent", "id": spec}
        if not isinstance(spec, dict) or spec.get("type") not in ("agent", "agent_with_overrides"):
            raise InvalidRequestError("agent: must be an agent id or an agent reference object")
        agent = self.get_agent(str(spec.get("id")))
        if agent.archived_at is not None:
            raise InvalidRequestError(f"agent: agent {agent.id} is archived")
        version = spec.get("version") or agent.version
        if not 1 <= version <= agent.version:
            raise InvalidRequestError(f"agent.version: agent {agent.id} has no version {version}")
        overrides = {k: v for k, v in spec.items() if k not in ("type", "id", "version")}
        return agent, version, normalize_overrides(overrides)

    def create_session(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            agent, version, overrides = self._resolve_agent(body.get("agent"))
            environment_id = body.get("environment_id")
            if not isinstance(environment_id, str) or not environment_id:
                raise InvalidRequestError("environment_id: required")
            environment = self.get_environment(environment_id)
            if environment.archived_at is not None:
                raise InvalidRequestError(
                    f"Environment {environment_id} is archived and cannot be used for new sessions",
                    details={"error_code": "environment_archived"},
                )
            now = self.clock.now()
            session = Session(
                id=new_id("sesn"),
                agent={**agent.session_view(version), **overrides},
                environment_id=environment_id,
                metadata=apply_metadata_patch(
                    {}, check_metadata(body.get("metadata")), empty_deletes=False
                ),
                title=body.get("title"),
                resources=list(body.get("resources") or []),
                vault_ids=list(body.get("vault_ids") or []),
                created_at=now,
                updated_at=now,
                budget=_check_budget(body.get("budget")),
            )
            for event in body.get("initial_events") or []:
                self._append_user_event(session, event)
            # Stored only now: a bad initial event leaves no half-made session behind.
            self.sessions[session.id] = session
            self.publish_webhook_event("session.created", session.id)
            if environment.config["type"] == "self_hosted":
                self.enqueue_work(session)
                if not any(e["type"] == "session.status_running" for e in session.events):
                    self.publish_webhook_event(RUN_STARTED, session.id)
            self._publish_status_changes(session, 0)
            return session.to_api(self.clock.now())

    def session_environment(self, session_id: str) -> str:
        """The environment a session runs in (for credential checks); 404 if there is no such session."""
        with self._lock:
            return self.get_session(session_id).environment_id

    def retrieve_session(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            return self.get_session(session_id).to_api(self.clock.now())

    def list_sessions(
        self,
        *,
        agent_id: str | None,
        include_archived: bool,
        statuses: list[str],
        order: str | None,
        limit: int | None,
        page: str | None,
        agent_version: int | None = None,
        created_at: dict[str, str] | None = None,
        memory_store_id: str | None = None,
        deployment_id: str | None = None,
    ) -> dict[str, Any]:
        """Every filter of the SDK's `SessionListParams`; a two-way cursor page (`prev_page`)."""
        unknown = [s for s in statuses if s not in SESSION_STATUSES]
        if unknown:
            raise InvalidRequestError(f"statuses: unknown status(es) {unknown}")
        if agent_version is not None and agent_id is None:
            raise InvalidRequestError("agent_version: requires agent_id")
        bounds = {
            op: _parse_time(value, f"created_at[{op}]") for op, value in (created_at or {}).items()
        }
        with self._lock:
            rows = [
                s
                for s in self.sessions.values()
                if not s.deleted
                and (include_archived or s.archived_at is None)
                and (agent_id is None or s.agent["id"] == agent_id)
                and (agent_version is None or s.agent.get("version") == agent_version)
                and (not statuses or s.status in statuses)
                and _within(iso(s.created_at), bounds)
                and (memory_store_id is None or _uses_memory_store(s, memory_store_id))
                # No deployments here: a deployment filter matches no session.
                and deployment_id is None
            ]
            if order != "asc":
                rows.reverse()
            chunk, next_page = paginate(rows, limit=limit, page=page, max_limit=100)
            now = self.clock.now()
            return {
                "data": [s.to_api(now) for s in chunk],
                "next_page": next_page,
                "prev_page": previous_page(page, limit=limit),
            }

    def update_session(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            session = self.get_session(session_id)
            if session.archived_at is not None:
                raise InvalidRequestError(f"Session {session_id} is archived and cannot be updated")
            if body.get("metadata") is not None:
                patch = check_metadata(body["metadata"], patch=True)
                session.metadata = apply_metadata_patch(
                    session.metadata, patch, empty_deletes=False
                )
            if "title" in body:
                session.title = body["title"]
            if "budget" in body:
                session.budget = _updated_budget(session, body["budget"])
            session.updated_at = self.clock.now()
            return session.to_api(session.updated_at)

    def _end_work(self, session: Session, *, force: bool) -> None:
        now = self.clock.now()
        for item in self.live_work_for(session.id):
            item.stop_requested_at = item.stop_requested_at or now
            if force or item.state == "queued":
                item.state, item.stopped_at = "stopped", now
            else:
                item.state = "stopping"

    def archive_session(self, session_id: str) -> dict[str, Any]:
        """Terminate the session: no more input; its worker hears `stopping` on its next heartbeat."""
        with self._lock:
            session = self.get_session(session_id)
            if session.archived_at is None:
                session.archived_at = self.clock.now()
                mark = len(session.events)
                if session.status != "terminated":
                    self._append(session, {"type": "session.status_terminated"})
                self._end_work(session, force=False)
                self._publish_status_changes(session, mark)
            return session.to_api(self.clock.now())

    def delete_session(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            session = self.get_session(session_id)
            self._append(session, {"type": "session.deleted"})
            self._end_work(session, force=True)
            session.deleted = True
            self.publish_webhook_event("session.deleted", session_id)
            return {"id": session_id, "type": "session_deleted"}

    # -- events ------------------------------------------------------------------------

    def _publish_status_changes(self, session: Session, mark: int) -> None:
        """Webhooks for the status changes among the events from `mark` on (sent once the
        change is committed, never for a refused batch). Run-started fires at every
        transition to running, each turn (platform.claude.com/docs/managed-agents/webhooks)."""
        hooks = {
            "session.status_running": RUN_STARTED,
            "session.status_idle": "session.status_idled",
            "session.status_terminated": "session.status_terminated",
        }
        for event in session.events[mark:]:
            if event["type"] in hooks:
                self.publish_webhook_event(hooks[event["type"]], session.id)

    def _append(self, session: Session, fields: dict[str, Any]) -> dict[str, Any]:
        event = {"id": new_id("sevt"), **fields, "processed_at": iso(self.clock.now())}
        session.events.append(event)
        session.status = _status_after(event["type"], session.status)
        session.updated_at = self.clock.now()
        self.notify()
        return event

    def _append_user_event(self, session: Session, event: Any) -> dict[str, Any]:
        """Validate and record a client event, then let the scripted agent answer it."""
        if not isinstance(event, dict) or event.get("type") not in USER_EVENT_TYPES:
            kind = event.get("type") if isinstance(event, dict) else event
            raise InvalidRequestError(f"events.type: unsupported event type {kind!r}")
        if event["type"] in ("user.tool_result", "user.custom_tool_result"):
            key = "tool_use_id" if event["type"] == "user.tool_result" else "custom_tool_use_id"
            open_ids = agent_script.open_call_ids(session.events, event["type"])
            if event.get(key) not in open_ids:
                raise InvalidRequestError(
                    f"events.{key}: {event.get(key)!r} names no open tool call of session {session.id}"
                )
        if event["type"] == "user.message" and not isinstance(event.get("content"), list):
            raise InvalidRequestError(
                "events.content: a user.message needs a list of content blocks"
            )
        if event["type"] == "user.tool_confirmation":
            self._check_confirmation(session, event)
        stored = self._append(session, dict(event))
        tools = session.agent.get("tools") or []
        permissions = agent_script.tool_permissions(tools)
        custom = agent_script.custom_tools(tools)
        for emitted in agent_script.react(session.events, stored, permissions, custom):
            self._append_agent_event(session, emitted)
        return stored

    @staticmethod
    def _check_confirmation(session: Session, event: dict[str, Any]) -> None:
        """A verdict must name an open call that asked for one, and say allow or deny."""
        if event.get("result") not in ("allow", "deny"):
            raise InvalidRequestError("events.result: must be 'allow' or 'deny'")
        asking = {
            call["id"]
            for call in agent_script.open_tool_calls(session.events)
            if call.get("evaluated_permission") == "ask"
        }
        confirmed = {
            e["tool_use_id"] for e in session.events if e["type"] == "user.tool_confirmation"
        }
        if event.get("tool_use_id") not in asking - confirmed:
            raise InvalidRequestError(
                f"events.tool_use_id: {event.get('tool_use_id')!r} names no tool call of "
                f"session {session.id} awaiting confirmation"
            )

    def _append_agent_event(self, session: Session, fields: dict[str, Any]) -> None:
        if fields.get("type") == "session.status_idle":
            # Required-nullable in the TypeScript and Go SDKs: present, null when nothing to add.
            fields = {**fields, "stop_details": fields.get("stop_details")}
        stop = fields.get("stop_reason")
        if stop and stop.get("type") == "requires_action":
            ids = [e["id"] for e in agent_script.open_tool_calls(session.events)]
            fields = {**fields, "stop_reason": {"type": "requires_action", "event_ids": ids}}
        self._append(session, fields)

    def send_events(self, session_id: str, events: Any) -> dict[str, Any]:
        if not isinstance(events, list) or not events:
            raise InvalidRequestError("events: must be a non-empty list")
        with self._lock:
            session = self.get_session(session_id)
            if session.status == "terminated" or session.archived_at is not None:
                raise InvalidRequestError(
                    f"Session {session_id} is terminated and accepts no events"
                )
            mark, status = len(session.events), session.status
            try:
                stored = [self._append_user_event(session, event) for event in events]
            except InvalidRequestError:
                # All or nothing: no stream has seen them (the lock is held), so undo.
                del session.events[mark:]
                session.status = status
                raise
            wakes = any(e["type"] == "user.message" for e in stored)
            environment = self.environments.get(session.environment_id)
            self_hosted = environment is not None and environment.config["type"] == "self_hosted"
            if (
                wakes
                and self_hosted
                and not session.stranded
                and not self.live_work_for(session.id)
            ):
                # A dormant session that gets a new message is queued again, as on the platform.
                self.enqueue_work(session)
            self._publish_status_changes(session, mark)
            return {"data": stored}

    def list_events(
        self,
        session_id: str,
        *,
        limit: int | None,
        page: str | None,
        order: str | None,
        types: list[str],
        created_at: dict[str, str],
    ) -> dict[str, Any]:
        bounds = {op: _parse_time(value, f"created_at[{op}]") for op, value in created_at.items()}
        with self._lock:
            rows = [
                e for e in self.get_session(session_id).events if not types or e["type"] in types
            ]
        rows = [e for e in rows if _within(e["processed_at"], bounds)]
        if order == "desc":
            rows.reverse()
        chunk, next_page = paginate(rows, limit=limit, page=page)
        return {"data": chunk, "next_page": next_page}

    def events_since(self, session_id: str, index: int) -> tuple[list[dict[str, Any]], bool]:
        """Events from `index` on, and whether the session is gone (deleted)."""
        with self._lock:
            session = self.sessions.get(session_id)
            if session is None:
                return [], True
            return session.events[index:], session.deleted


def _check_budget(budget: Any) -> dict[str, Any] | None:
    """A `{type: limit, max_list_cost: {amount, currency}}` budget, or None; 400 naming the field."""
    if budget is None:
        return None
    cost = budget.get("max_list_cost") if isinstance(budget, dict) else None
    if not isinstance(budget, dict) or budget.get("type") != "limit" or not isinstance(cost, dict):
        raise InvalidRequestError("budget: must be {type: 'limit', max_list_cost: {...}}")
    return {"type": "limit", "max_list_cost": dict(cost)}


def _updated_budget(session: Session, budget: Any) -> dict[str, Any] | None:
    """Replace or remove a budget; one cannot be added after creation (SDK session_update_params)."""
    if budget is not None and session.budget is None:
        raise InvalidRequestError(
            "budget: a budget cannot be added to a session created without one",
            details={"error_code": "budget_create_only"},
        )
    return _check_budget(budget)


def _uses_memory_store(session: Session, memory_store_id: str) -> bool:
    return any(
        r.get("type") == "memory_store" and r.get("memory_store_id") == memory_store_id
        for r in session.resources
    )


def _within(stamp: str, bounds: dict[str, datetime | None]) -> bool:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    checks = {
        "gt": lambda b: moment > b,
        "gte": lambda b: moment >= b,
        "lt": lambda b: moment < b,
        "lte": lambda b: moment <= b,
    }
    return all(checks[op](bound) for op, bound in bounds.items() if bound is not None)
