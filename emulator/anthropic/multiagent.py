"""An agent's `multiagent` as the API resolves it (anthropic 2.10.0 `BetaManagedAgentsMultiagent`).

`coordinator`: every roster entry becomes a concrete `{type: agent, id, version}` (a bare id
and an unversioned reference take the agent's latest version, `{type: self}` the agent
itself). `multiagent_20261001`: the members take their defaults (advisor disabled, subagents
and workflows enabled with inline agents enabled and no predefined agents); on an update of a
stored `multiagent_20261001` the given members merge into the stored ones, and a member sent
as null takes its default (`BetaManagedAgentsMultiagent20261001Params` docstring).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.anthropic.exceptions import InvalidRequestError

Resolve = Callable[[str], int]  # an agent id -> its latest version (raises when unknown)
_ENABLED = {"type": "enabled", "inline_agents": {"type": "enabled"}, "predefined_agents": []}
DEFAULTS: dict[str, dict[str, Any]] = {
    "advisor": {"type": "disabled"},
    "subagents": _ENABLED,
    "workflows": _ENABLED,
}


def _reference(entry: Any, own: tuple[str, int], latest: Resolve) -> dict[str, Any]:
    if isinstance(entry, str):
        return {"type": "agent", "id": entry, "version": latest(entry)}
    if isinstance(entry, dict) and entry.get("type") == "self":
        return {"type": "agent", "id": own[0], "version": own[1]}
    if isinstance(entry, dict) and entry.get("type") == "agent" and entry.get("id"):
        version = entry.get("version") or latest(entry["id"])
        return {"type": "agent", "id": entry["id"], "version": version}
    if isinstance(entry, dict) and entry.get("type") == "advisor":
        return dict(entry)
    raise InvalidRequestError(f"multiagent.agents: not an agent reference: {entry!r}")


def _member(
    name: str, given: Any, stored: dict[str, Any] | None, own: tuple[str, int], latest: Resolve
) -> dict[str, Any]:
    if given is None:
        return dict(DEFAULTS[name])
    if not isinstance(given, dict) or given.get("type") not in ("enabled", "disabled"):
        raise InvalidRequestError(f"multiagent.{name}.type: must be 'enabled' or 'disabled'")
    if given["type"] == "disabled":
        return {"type": "disabled"}
    if name == "advisor":
        if not given.get("model"):
            raise InvalidRequestError("multiagent.advisor.model: required for an enabled advisor")
        return {"type": "enabled", "model": given["model"]}
    base = stored if stored and stored.get("type") == "enabled" else DEFAULTS[name]
    member = {**base, **{k: v for k, v in given.items() if k != "predefined_agents"}}
    if "predefined_agents" in given:
        member["predefined_agents"] = [
            _reference(e, own, latest) for e in given["predefined_agents"] or []
        ]
    member["inline_agents"] = member.get("inline_agents") or {"type": "enabled"}
    return member


def resolve_multiagent(
    given: Any, stored: dict[str, Any] | None, own: tuple[str, int], latest: Resolve
) -> dict[str, Any] | None:
    """`given` (create or update body) resolved, merged into `stored` where the API merges."""
    if given is None:
        return None
    kind = given.get("type") if isinstance(given, dict) else None
    if kind == "coordinator":
        agents = given.get("agents") or []
        if not 1 <= len(agents) <= 20:
            raise InvalidRequestError("multiagent.agents: 1 to 20 entries")
        return {"type": kind, "agents": [_reference(e, own, latest) for e in agents]}
    if kind == "multiagent_20261001":
        previous = stored if stored and stored.get("type") == kind else {}
        resolved: dict[str, Any] = {"type": kind}
        for name in DEFAULTS:
            if name in given:
                resolved[name] = _member(name, given[name], previous.get(name), own, latest)
            else:
                resolved[name] = previous.get(name) or dict(DEFAULTS[name])
        return resolved
    raise InvalidRequestError("multiagent.type: must be 'coordinator' or 'multiagent_20261001'")
