"""Agents: versioned configuration; no delete, only archive."""

from __future__ import annotations

from typing import Any

from emulator.anthropic.common import iso, new_id, paginate
from emulator.anthropic.environments import apply_metadata_patch, check_metadata
from emulator.anthropic.exceptions import ConflictError, InvalidRequestError
from emulator.anthropic.records import Agent
from emulator.anthropic.state import BackendState

TOOLSET_TOOLS = ("bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search")
_ALLOW = {"type": "always_allow"}
# Fields an update may replace, and the value each has when cleared.
_REPLACEABLE: dict[str, Any] = {
    "description": None,
    "system": None,
    "tools": [],
    "mcp_servers": [],
    "skills": [],
    "multiagent": None,
}


def normalize_model(model: Any) -> dict[str, Any]:
    if isinstance(model, str) and model:
        return {"id": model, "speed": "standard"}
    if isinstance(model, dict) and isinstance(model.get("id"), str) and model["id"]:
        keep = ("id", "effort", "inference_geo", "speed")
        return {"speed": "standard", **{k: v for k, v in model.items() if k in keep}}
    raise InvalidRequestError("model: must be a model name or a model_config object with an id")


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
            "permission_policy": given.get("permission_policy") or _ALLOW,
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


def check_mcp_references(snapshot: dict[str, Any]) -> None:
    """MCP server names are unique, each is used by an `mcp_toolset`, and every toolset names a
    declared server (sources silent on the first two: the stricter verdict; 400 naming the field)."""
    names = [server["name"] for server in snapshot.get("mcp_servers") or []]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidRequestError(f"mcp_servers: duplicate server name(s) {duplicates}")
    used = [
        t["mcp_server_name"] for t in snapshot.get("tools") or [] if t.get("type") == "mcp_toolset"
    ]
    undeclared = sorted(set(used) - set(names))
    if undeclared:
        raise InvalidRequestError(
            f"tools.mcp_server_name: {undeclared} name no server in mcp_servers"
        )
    unused = sorted(set(names) - set(used))
    if unused:
        raise InvalidRequestError(
            f"mcp_servers: {unused} not referenced by any mcp_toolset in tools"
        )


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
        check_mcp_references(snapshot)
        agent = Agent(id=new_id("agent"), created_at=now, versions=[snapshot])
        with self._lock:
            self.agents[agent.id] = agent
        return agent.to_api()

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
            check_mcp_references(snapshot)
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
