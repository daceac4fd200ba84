"""Memory stores and their memories: what the SDK's `EnvironmentWorker` mounts for a session.

The worker downloads and syncs a session's stores with the item's sessions token only: "the
memory_stores endpoints accept the per-item sessions token but reject the environment key"
(SDK `lib/environments/_worker.py:704`). The API key manages them. A memory is a UTF-8 text at
a path, at most 100 kB, addressed by a stable `mem_` id; `content_sha256` guards updates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emulator.anthropic.auth import API_KEY, SESSIONS_TOKEN, Principal
from emulator.anthropic.common import iso, new_id, paginate
from emulator.anthropic.environments import apply_metadata_patch, check_metadata
from emulator.anthropic.exceptions import (
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
)
from emulator.anthropic.state import BackendState

MAX_CONTENT_BYTES = 102_400


@dataclass
class Memory:
    id: str
    store_id: str
    path: str
    content: str
    version_id: str
    created_at: datetime
    updated_at: datetime

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()

    def to_api(self, view: str | None) -> dict[str, Any]:
        return {
            "type": "memory",
            "id": self.id,
            "memory_store_id": self.store_id,
            "memory_version_id": self.version_id,
            "path": self.path,
            "content": None if view == "basic" else self.content,
            "content_sha256": self.sha256,
            "content_size_bytes": len(self.content.encode()),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass
class MemoryStore:
    id: str
    name: str
    description: str
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None
    memories: dict[str, Memory] = field(default_factory=dict)

    def to_api(self) -> dict[str, Any]:
        return {
            "type": "memory_store",
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "metadata": dict(self.metadata),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "archived_at": iso(self.archived_at) if self.archived_at else None,
        }


def _check_path(path: Any) -> str:
    if not isinstance(path, str) or not path.startswith("/") or path.endswith("/"):
        raise InvalidRequestError(f"path: must be an absolute file path, got {path!r}")
    return path


def _check_content(content: Any) -> str:
    text = "" if content is None else content
    if not isinstance(text, str):
        raise InvalidRequestError("content: must be a string")
    if len(text.encode()) > MAX_CONTENT_BYTES:
        raise InvalidRequestError(f"content: at most {MAX_CONTENT_BYTES} bytes")
    return text


class MemoryStoreOps(BackendState):
    """create/retrieve/list/archive/delete_memory_store; create/retrieve/list/update/delete_memory."""

    memory_stores: dict[str, MemoryStore]

    def _init_records(self) -> None:
        super()._init_records()
        self.memory_stores = {}

    def check_memory_access(self, who: Principal, store_id: str, *, manage: bool = False) -> None:
        """The API key; or (memories only) a sessions token whose session has the store attached.

        Environment keys are refused, as the SDK's worker notes.
        """
        if who.kind == API_KEY:
            return
        if who.kind == SESSIONS_TOKEN and not manage:
            session = self.sessions.get(who.session_id or "")
            attached = session is not None and any(
                r.get("type") == "memory_store" and r.get("memory_store_id") == store_id
                for r in session.resources
            )
            if attached:
                return
            raise PermissionDeniedError(
                f"The sessions token's session has no memory store {store_id} attached"
            )
        raise PermissionDeniedError("Memory stores accept the API key or a sessions token only")

    def _store(self, store_id: str) -> MemoryStore:
        store = self.memory_stores.get(store_id)
        if store is None:
            raise NotFoundError(f"Memory store {store_id} not found")
        return store

    def create_memory_store(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequestError("name: must be a non-empty string")
        now = self.clock.now()
        store = MemoryStore(
            id=new_id("memstore"),
            name=name,
            description=str(body.get("description") or ""),
            metadata=apply_metadata_patch(
                {}, check_metadata(body.get("metadata")), empty_deletes=False
            ),
            created_at=now,
            updated_at=now,
        )
        with self._lock:
            self.memory_stores[store.id] = store
        return store.to_api()

    def retrieve_memory_store(self, store_id: str) -> dict[str, Any]:
        with self._lock:
            return self._store(store_id).to_api()

    def list_memory_stores(self, *, limit: int | None, page: str | None) -> dict[str, Any]:
        with self._lock:
            rows = [s for s in reversed(self.memory_stores.values()) if s.archived_at is None]
            chunk, next_page = paginate(rows, limit=limit, page=page, max_limit=100)
            return {"data": [s.to_api() for s in chunk], "next_page": next_page}

    def archive_memory_store(self, store_id: str) -> dict[str, Any]:
        with self._lock:
            store = self._store(store_id)
            store.archived_at = store.archived_at or self.clock.now()
            return store.to_api()

    def delete_memory_store(self, store_id: str) -> dict[str, Any]:
        with self._lock:
            self._store(store_id)
            del self.memory_stores[store_id]
            return {"type": "memory_store_deleted", "id": store_id}

    def create_memory(
        self, store_id: str, body: dict[str, Any], view: str | None
    ) -> dict[str, Any]:
        with self._lock:
            store = self._store(store_id)
            if store.archived_at is not None:
                raise InvalidRequestError(f"Memory store {store_id} is archived")
            path = _check_path(body.get("path"))
            if any(m.path == path for m in store.memories.values()):
                raise InvalidRequestError(f"path: a memory already exists at {path}")
            now = self.clock.now()
            memory = Memory(
                new_id("mem"), store_id, path, _check_content(body.get("content")),
                new_id("memver"), now, now,
            )  # fmt: skip
            store.memories[memory.id] = memory
            return memory.to_api(view)

    def _memory(self, store_id: str, memory_id: str) -> Memory:
        memory = self._store(store_id).memories.get(memory_id)
        if memory is None:
            raise NotFoundError(f"Memory {memory_id} not found in memory store {store_id}")
        return memory

    def retrieve_memory(self, store_id: str, memory_id: str, view: str | None) -> dict[str, Any]:
        with self._lock:
            return self._memory(store_id, memory_id).to_api(view)

    def list_memories(
        self, store_id: str, *, path_prefix: str | None, limit: int | None, page: str | None,
        view: str | None,
    ) -> dict[str, Any]:  # fmt: skip
        with self._lock:
            rows = sorted(
                (m for m in self._store(store_id).memories.values()
                 if path_prefix is None or m.path.startswith(path_prefix)),
                key=lambda m: m.path,
            )  # fmt: skip
            chunk, next_page = paginate(rows, limit=limit, page=page, max_limit=1000)
            return {"data": [m.to_api(view) for m in chunk], "next_page": next_page}

    def update_memory(
        self, store_id: str, memory_id: str, body: dict[str, Any], view: str | None
    ) -> dict[str, Any]:
        with self._lock:
            memory = self._memory(store_id, memory_id)
            precondition = body.get("precondition") or {}
            expected = precondition.get("content_sha256")
            if expected is not None and expected != memory.sha256:
                raise PreconditionFailedError(
                    f"content_sha256 of memory {memory_id} is not {expected}"
                )
            if body.get("path") is not None:
                memory.path = _check_path(body["path"])
            if body.get("content") is not None:
                memory.content = _check_content(body["content"])
            memory.version_id = new_id("memver")
            memory.updated_at = self.clock.now()
            return memory.to_api(view)

    def delete_memory(
        self, store_id: str, memory_id: str, expected_sha256: str | None
    ) -> dict[str, Any]:
        with self._lock:
            memory = self._memory(store_id, memory_id)
            if expected_sha256 is not None and expected_sha256 != memory.sha256:
                raise PreconditionFailedError(
                    f"content_sha256 of memory {memory_id} is not {expected_sha256}"
                )
            del self._store(store_id).memories[memory_id]
            return {"type": "memory_deleted", "id": memory_id}
