"""Environments: CRUD, archive, and the Console's environment keys."""

from __future__ import annotations

import secrets
from typing import Any

from emulator.anthropic.common import new_id, paginate
from emulator.anthropic.exceptions import ConflictError, InvalidRequestError
from emulator.anthropic.records import Environment
from emulator.anthropic.state import BackendState

CONFIG_TYPES = ("cloud", "self_hosted")


def _archived_error(environment_id: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Environment {environment_id} is archived and cannot be modified",
        details={"error_code": "environment_archived"},
    )


def normalize_config(config: Any) -> dict[str, Any]:
    """The stored config for a requested one (`None` means a default cloud environment)."""
    if config is None:
        config = {"type": "cloud"}
    if not isinstance(config, dict) or config.get("type") not in CONFIG_TYPES:
        raise InvalidRequestError("config.type: must be one of 'cloud', 'self_hosted'")
    if config["type"] == "self_hosted":
        return {"type": "self_hosted"}
    packages: dict[str, Any] = {kind: [] for kind in ("apt", "cargo", "gem", "go", "npm", "pip")}
    packages.update(config.get("packages") or {})
    packages["type"] = "packages"
    return {
        "type": "cloud",
        "networking": config.get("networking") or {"type": "unrestricted"},
        "packages": packages,
    }


def check_metadata(metadata: Any, *, patch: bool = False) -> dict[str, Any]:
    """Metadata as Anthropic limits it: at most 16 string pairs (a patch may null a key)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidRequestError("metadata: must be an object of string values")
    for key, value in metadata.items():
        if not isinstance(key, str) or len(key) > 64:
            raise InvalidRequestError(
                f"metadata: key {key!r} must be a string of at most 64 characters"
            )
        if not (isinstance(value, str) or (patch and value is None)) or len(value or "") > 512:
            raise InvalidRequestError(
                f"metadata.{key}: must be a string of at most 512 characters",
                details={"error_code": "invalid_metadata"},
            )
    return dict(metadata)


def apply_metadata_patch(
    current: dict[str, str], patch: dict[str, Any], *, empty_deletes: bool = True
) -> dict[str, str]:
    """Upsert string values; null deletes the key, and so does "" where `empty_deletes`.

    Environments: "null or empty string" deletes (SDK environment_update_params); agents and
    sessions: only null does, "" is a value (agent_update_params, session_update_params).
    """
    merged = dict(current)
    for key, value in patch.items():
        if value is None or (empty_deletes and value == ""):
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > 16:
        raise InvalidRequestError(
            "metadata: at most 16 keys", details={"error_code": "invalid_metadata"}
        )
    return merged


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequestError("name: must be a non-empty string")
    if len(name) > 256:
        raise InvalidRequestError("name: must be at most 256 characters")
    return name


def _check_scope(scope: Any) -> str | None:
    if scope not in (None, "organization", "account"):
        raise InvalidRequestError("scope: must be one of 'organization', 'account'")
    if scope == "account":
        raise InvalidRequestError("scope: API organizations support only 'organization'")
    return scope or "organization"


class EnvironmentOps(BackendState):
    """create_environment, retrieve_environment, update_environment, list_environments,
    delete_environment, archive_environment, mint_environment_key."""

    def create_environment(self, body: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        environment = Environment(
            id=new_id("env"),
            name=_check_name(body.get("name")),
            config=normalize_config(body.get("config")),
            description=body.get("description"),
            metadata=apply_metadata_patch({}, check_metadata(body.get("metadata"))),
            scope=_check_scope(body.get("scope")),
            created_at=now,
            updated_at=now,
        )
        with self._lock:
            self.environments[environment.id] = environment
        return environment.to_api()

    def retrieve_environment(self, environment_id: str) -> dict[str, Any]:
        with self._lock:
            return self.get_environment(environment_id).to_api()

    def update_environment(self, environment_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            environment = self.get_environment(environment_id)
            if environment.archived_at is not None:
                raise _archived_error(environment_id)
            if body.get("config") is not None:
                config = normalize_config(body["config"])
                if config["type"] != environment.config["type"]:
                    raise InvalidRequestError(
                        f"config.type: cannot change from {environment.config['type']!r} "
                        f"to {config['type']!r}; create a new environment instead",
                        details={"error_code": "invalid_config_type_change"},
                    )
                environment.config = config
            if body.get("name") is not None:
                environment.name = _check_name(body["name"])
            if "description" in body:
                environment.description = body["description"]
            if body.get("metadata") is not None:
                patch = check_metadata(body["metadata"], patch=True)
                environment.metadata = apply_metadata_patch(environment.metadata, patch)
            if body.get("scope") is not None:
                environment.scope = _check_scope(body["scope"])
            environment.updated_at = self.clock.now()
            return environment.to_api()

    def list_environments(
        self, *, include_archived: bool, limit: int | None, page: str | None
    ) -> dict[str, Any]:
        with self._lock:
            rows = [
                env
                for env in reversed(self.environments.values())
                if include_archived or env.archived_at is None
            ]
            chunk, next_page = paginate(rows, limit=limit, page=page, max_limit=100)
            return {"data": [env.to_api() for env in chunk], "next_page": next_page}

    def delete_environment(self, environment_id: str) -> dict[str, Any]:
        with self._lock:
            self.get_environment(environment_id)
            users = [
                s.id
                for s in self.sessions.values()
                if s.environment_id == environment_id and not s.deleted
            ]
            if users:
                raise ConflictError(
                    f"Environment {environment_id} is referenced by {len(users)} session(s) "
                    "and cannot be deleted; archive it instead"
                )
            del self.environments[environment_id]
            for key in [k for k, env in self.environment_keys.items() if env == environment_id]:
                del self.environment_keys[key]
            return {"id": environment_id, "type": "environment_deleted"}

    def archive_environment(self, environment_id: str) -> dict[str, Any]:
        with self._lock:
            environment = self.get_environment(environment_id)
            if environment.archived_at is None:
                environment.archived_at = environment.updated_at = self.clock.now()
            return environment.to_api()

    def mint_environment_key(self, environment_id: str) -> str:
        """A new environment key (Console only): bearer for the environment's work queue."""
        with self._lock:
            environment = self.get_environment(environment_id)
            if environment.config["type"] != "self_hosted":
                raise InvalidRequestError(
                    f"Environment {environment_id} is not self-hosted; only self-hosted environments have keys"
                )
            key = self._issue("sk-ant-oat01-" + secrets.token_urlsafe(48))
            self.environment_keys[key] = environment_id
            return key
