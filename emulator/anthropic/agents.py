"""Agents: versioned configuration; no delete, only archive."""

from __future__ import annotations

import re
from typing import Any

from emulator.anthropic.common import iso, new_id, paginate
from emulator.anthropic.environments import apply_metadata_patch, check_metadata
from emulator.anthropic.exceptions import ConflictError, InvalidRequestError
from emulator.anthropic.multiagent import resolve_multiagent
from emulator.anthropic.records import Agent
from emulator.anthropic.state import BackendState

TOOLSET_TOOLS = ("bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search")
# docs "managed-agents/permission-policies": the agent toolset defaults to always_allow,
# MCP toolsets to always_ask (new tools of a server never run unapproved).
_DEFAULT_POLICY = {"agent_toolset_20260401": "always_allow", "mcp_toolset": "always_ask"}
_CUSTOM_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
_EFFORTS = ("low", "medium", "high", "xhigh", "max")
# Fields an update may replace, and the value each has when cleared.
_REPLACEABLE: dict[str, Any] = {
    "description": None,
    "system": None,
    "tools": [],
    "mcp_servers": [],
    "skills": [],
}


def normalize_model(model: Any) -> dict[str, Any]:
    if isinstance(model, str) and model:
        return {"id": model, "speed": "standard"}
    if isinstance(model, dict) and isinstance(model.get("id"), str) and model["id"]:
        keep = ("id", "effort", "inference_geo", "speed")
        config = {"speed": "standard", **{k: v for k, v in model.items() if k in keep}}
        if config.get("effort") is not None:
            config["effort"] = _effort(config["effort"])
        return config
    raise InvalidRequestError("model: must be a model name or a model_config object with an id")


def _effort(effort: Any) -> dict[str, str]:
    """A bare level (`"high"`) reads back as the SDK models it: `{"type": "high"}`."""
    level = effort.get("type") if isinstance(effort, dict) else effort
    if level not in _EFFORTS:
        raise InvalidRequestError(f"model.effort: must be one of {list(_EFFORTS)}, got {level!r}")
    return {"type": level}


def _tool_config(config: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    name = config.get("name")
    if name not in TOOLSET_TOOLS:
        raise InvalidRequestError(f"tools.configs.name: unknown tool {name!r}")
    return {
        "type": name,
        "name": name,
        "enabled": default["enabled"] if config.get("enabled") is None else config["enabled"],
        "permission_policy": config.get("permission_policy") or default["permission_policy"],
    }


def normalize_tool(tool: Any) -> dict[str, Any]:
    """A tool as the API echoes it back, defaults filled in."""
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind in ("agent_toolset_20260401", "mcp_toolset"):
        given = tool.get("default_config") or {}
        default = {
            "enabled": True if given.get("enabled") is None else given["enabled"],
            "permission_policy": given.get("permission_policy") or {"type": _DEFAULT_POLICY[kind]},
        }
        if kind == "mcp_toolset":
            if not tool.get("mcp_server_name"):
                raise InvalidRequestError("tools.mcp_server_name: required for an mcp_toolset")
            configs = [
                {
                    "name": c["name"],
                    "enabled": default["enabled"] if c.get("enabled") is None else c["enabled"],
                    "permission_policy": c.get("permission_policy") or default["permission_policy"],
                }
                for c in tool.get("configs") or []
            ]
            return {
                "type": kind,
                "mcp_server_name": tool["mcp_server_name"],
                "configs": configs,
                "default_config": default,
            }
        configs = [_tool_config(c, default) for c in tool.get("configs") or []]
        return {"type": kind, "configs": configs, "default_config": default}
    if kind == "custom":
        for key in ("name", "description", "input_schema"):
            if not tool.get(key):
                raise InvalidRequestError(f"tools.{key}: required for a custom tool")
        if not isinstance(tool["name"], str) or not _CUSTOM_TOOL_NAME.fullmatch(tool["name"]):
            raise InvalidRequestError(
                "tools.name: 1-128 characters; letters, digits, underscores, and hyphens"
            )
        if not isinstance(tool["input_schema"], dict) or tool["input_schema"].get("type") != (
            "object"
        ):
            raise InvalidRequestError("tools.input_schema: must be a JSON schema of type 'object'")
        return {k: tool[k] for k in ("type", "name", "description", "input_schema")}
    raise InvalidRequestError(
        "tools.type: must be one of 'agent_toolset_20260401', 'mcp_toolset', 'custom'"
    )


def normalize_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """A session's `agent_with_overrides` fields, rendered like the agent's own."""
    allowed = ("model", "system", "tools", "mcp_servers", "skills")
    unknown = [k for k in overrides if k not in allowed]
    if unknown:
        raise InvalidRequestError(f"agent: unknown override field(s) {unknown}")
    return {
        key: normalize_model(value) if key == "model" else _normalize_field(key, value)
        for key, value in overrides.items()
    }


def _normalize_field(key: str, value: Any) -> Any:
    if value is None:
        return _REPLACEABLE.get(key)
    if key == "tools":
        return [normalize_tool(t) for t in value]
    if key == "mcp_servers":
        return [{"type": "url", "name": s["name"], "url": s["url"]} for s in value]
    if key == "skills":
        return [{"version": "latest", **s} for s in value]
    if key == "description" and value == "":
        return None
    if key == "system" and value == "":
        return None
    return value


def check_references(snapshot: dict[str, Any]) -> None:
    """Server names unique, and each referenced by an mcp_toolset (agent_create_params.py)."""
    servers = [s["name"] for s in snapshot.get("mcp_servers") or []]
    if len(set(servers)) != len(servers):
        raise InvalidRequestError("mcp_servers: names must be unique")
    used = {t["mcp_server_name"] for t in snapshot.get("tools") or [] if t["type"] == "mcp_toolset"}
    if unknown := sorted(used - set(servers)):
        raise InvalidRequestError(f"tools.mcp_server_name: no server {unknown} in mcp_servers")
    if unused := sorted(set(servers) - used):
        raise InvalidRequestError(f"mcp_servers: not referenced by any mcp_toolset: {unused}")
    customs = [t["name"] for t in snapshot.get("tools") or [] if t["type"] == "custom"]
    if len(set(customs)) != len(customs):
        raise InvalidRequestError("tools: custom tool names must be unique")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequestError("name: must be a non-empty string")
    return name


class AgentOps(BackendState):
    """create_agent, retrieve_agent, update_agent, list_agents, list_agent_versions, archive_agent."""

    def create_agent(self, body: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        snapshot: dict[str, Any] = {
            "name": _check_name(body.get("name")),
            "model": normalize_model(body.get("model")),
            "metadata": apply_metadata_patch(
                {}, check_metadata(body.get("metadata")), empty_deletes=False
            ),
            "execution_identity": body.get("execution_identity") or {"type": "service_account"},
            "version": 1,
            "updated_at": iso(now),
        }
        for key in _REPLACEABLE:
            snapshot[key] = _normalize_field(key, body.get(key))
        check_references(snapshot)
        agent = Agent(id=new_id("agent"), created_at=now, versions=[snapshot])
        with self._lock:
            own = (agent.id, 1)
            snapshot["multiagent"] = resolve_multiagent(
                body.get("multiagent"), None, own, self._latest_agent_version
            )
            self.agents[agent.id] = agent
        return agent.to_api()

    def _latest_agent_version(self, agent_id: str) -> int:
        """The latest version of a roster entry's agent (the caller holds the lock)."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.archived_at is not None:
            raise InvalidRequestError(f"multiagent: agent {agent_id} not found or archived")
        return agent.version

    def retrieve_agent(self, agent_id: str, version: int | None = None) -> dict[str, Any]:
        with self._lock:
            agent = self.get_agent(agent_id)
            if version is not None and not 1 <= version <= agent.version:
                raise InvalidRequestError(
                    f"version: agent {agent_id} has versions 1 to {agent.version}, not {version}"
                )
            return agent.to_api(version)

    def update_agent(self, agent_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """A new version with the given fields replaced; a stale `version` is refused (409)."""
        with self._lock:
            agent = self.get_agent(agent_id)
            if agent.archived_at is not None:
                raise InvalidRequestError(f"Agent {agent_id} is archived and cannot be updated")
            expected = body.get("version")
            if expected is not None and expected != agent.version:
                raise ConflictError(
                    f"Agent {agent_id} is at version {agent.version}, but the update was "
                    f"based on version {expected}; retrieve the agent and retry"
                )
            current = agent.versions[-1]
            snapshot = dict(current)
            if body.get("name") is not None:
                snapshot["name"] = _check_name(body["name"])
            if body.get("model") is not None:
                snapshot["model"] = normalize_model(body["model"])
            if "execution_identity" in body:
                snapshot["execution_identity"] = body["execution_identity"] or {
                    "type": "service_account"
                }
            if body.get("metadata") is not None:
                patch = check_metadata(body["metadata"], patch=True)
                snapshot["metadata"] = apply_metadata_patch(
                    current["metadata"], patch, empty_deletes=False
                )
            for key in _REPLACEABLE:
                if key in body:
                    snapshot[key] = _normalize_field(key, body[key])
            check_references(snapshot)
            if "multiagent" in body:
                snapshot["multiagent"] = resolve_multiagent(
                    body["multiagent"],
                    current.get("multiagent"),
                    (agent_id, agent.version + 1),
                    self._latest_agent_version,
                )
            unchanged = all(
                snapshot[k] == current[k] for k in current if k not in ("version", "updated_at")
            )
            if unchanged:
                return agent.to_api()
            snapshot["version"] = agent.version + 1
            snapshot["updated_at"] = iso(self.clock.now())
            agent.versions.append(snapshot)
            return agent.to_api()

    def list_agents(
        self, *, include_archived: bool, limit: int | None, page: str | None
    ) -> dict[str, Any]:
        with self._lock:
            rows = [
                a
                for a in reversed(self.agents.values())
                if include_archived or a.archived_at is None
            ]
            chunk, next_page = paginate(rows, limit=limit, page=page, max_limit=100)
            return {"data": [a.to_api() for a in chunk], "next_page": next_page}

    def list_agent_versions(
        self, agent_id: str, *, limit: int | None, page: str | None
    ) -> dict[str, Any]:
        with self._lock:
            agent = self.get_agent(agent_id)
            numbers = list(range(agent.version, 0, -1))
            chunk, next_page = paginate(numbers, limit=limit, page=page, max_limit=100)
            return {"data": [agent.to_api(n) for n in chunk], "next_page": next_page}

    def archive_agent(self, agent_id: str) -> dict[str, Any]:
        with self._lock:
            agent = self.get_agent(agent_id)
            if agent.archived_at is None:
                agent.archived_at = self.clock.now()
            return agent.to_api()
