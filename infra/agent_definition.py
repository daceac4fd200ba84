"""Agent definitions as code: the typed model of `cma:agents`, its payloads and its drift check.

`parse_agents(values)` validates the stack config (`cma:agents`, a list, or the older
`cma:agentName` / `cma:model` / `cma:agentSystem`, which make a one-element list) into
`AgentDefinition`s; every error names its config path, e.g. `cma:agents[1].tools[0].type`.
The fields are those `client.beta.agents.create` / `update` accept (anthropic 2.10.0,
`types/beta/agent_create_params.py`, `agent_update_params.py`).

Pure functions, no I/O:
- `create_payload(defn, custom_tools)`: the create body; `{type: custom, name}` entries that
  name a tool of the custom-tools module take its description and input schema from there.
- `update_payload(defn, custom_tools, live)`: the update body; every field is sent (the API
  replaces them whole), and metadata is a patch, so a key the live agent holds but the
  definition does not is sent as null, which removes it.
- `drift(payload, live)`: the fields where what the API read back differs from what was sent,
  knowing that the API fills in tool defaults, reorders lists and resolves model defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_AGENT_NAME = "cma-blaxel-agent"
TOOLSET: Literal["agent_toolset_20260401"] = "agent_toolset_20260401"
TOOLSET_TOOLS = ("bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search")
# docs "managed-agents/permission-policies": the agent toolset defaults to always_allow,
# MCP toolsets to always_ask; tools are enabled unless configured otherwise.
DEFAULT_POLICY = {TOOLSET: "always_allow", "mcp_toolset": "always_ask"}
TOOL_NAME = r"^[A-Za-z0-9_-]{1,128}$"  # custom tool names (BetaManagedAgentsCustomToolParams)
MULTIAGENT_MEMBERS = ("advisor", "subagents", "workflows")
LEGACY_KEYS = {"name": "cma:agentName", "model": "cma:model", "system": "cma:agentSystem"}
_LEGACY = "cma:agent"  # the error prefix of the one agent the older keys define
# Discriminator values pydantic puts into an error's location; they are not config keys.
_TAGS = {TOOLSET, "mcp_toolset", "custom", "anthropic", "aws_role", "service_account"}


class AgentDefinitionError(ValueError):
    """Invalid agent definitions; `problems` holds one `path: message` line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid agent definition:\n  " + "\n  ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PermissionPolicy(_Strict):
    type: Literal["always_allow", "always_ask", "auto"]


class ToolsetDefaultConfig(_Strict):
    enabled: bool | None = None
    permission_policy: PermissionPolicy | None = None


class ToolsetToolConfig(_Strict):
    name: Literal["bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search"]
    enabled: bool | None = None
    permission_policy: PermissionPolicy | None = None


class AgentToolset(_Strict):
    """The built-in toolset, with a default and per-tool configs."""

    type: Literal["agent_toolset_20260401"]
    default_config: ToolsetDefaultConfig | None = None
    configs: list[ToolsetToolConfig] = []


class McpToolConfig(_Strict):
    name: str = Field(min_length=1, max_length=128)
    enabled: bool | None = None
    permission_policy: PermissionPolicy | None = None


class McpToolset(_Strict):
    """The tools of one MCP server of `mcp_servers`."""

    type: Literal["mcp_toolset"]
    mcp_server_name: str = Field(min_length=1, max_length=255)
    default_config: ToolsetDefaultConfig | None = None
    configs: list[McpToolConfig] = []


class CustomTool(_Strict):
    """A custom tool: just a `name` of the custom-tools module, or a full declaration."""

    type: Literal["custom"]
    name: str = Field(pattern=TOOL_NAME)
    description: str | None = Field(None, min_length=1)
    input_schema: dict[str, Any] | None = None

    @pydantic.model_validator(mode="after")
    def _whole_or_reference(self) -> CustomTool:
        given = (self.description is not None, self.input_schema is not None)
        if given[0] != given[1]:
            raise ValueError(
                "give both description and input_schema, or neither (then the tool comes "
                "from cma:customToolsModule)"
            )
        if self.input_schema is not None and self.input_schema.get("type") != "object":
            raise ValueError("input_schema: must be a JSON schema of type 'object'")
        return self


Tool = Annotated[AgentToolset | McpToolset | CustomTool, Field(discriminator="type")]


class McpServer(_Strict):
    type: Literal["url"] = "url"
    name: str = Field(min_length=1, max_length=255)
    url: str = Field(pattern=r"^https?://\S+$")


class Skill(_Strict):
    type: Literal["anthropic", "custom"]
    skill_id: str = Field(min_length=1)
    version: str | None = None


class ModelConfig(_Strict):
    """The model: a plain id in config is the same as `{id: ...}`."""

    id: str = Field(min_length=1)
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    inference_geo: str | None = None
    speed: Literal["standard", "fast"] | None = None


class ServiceAccount(_Strict):
    type: Literal["service_account"]


class AwsRole(_Strict):
    type: Literal["aws_role"]
    role_arn: str = Field(pattern=r"^arn:aws[\w-]*:iam::\d{12}:role/\S+$", max_length=2048)


class AgentDefinition(_Strict):
    """One agent as declared in `cma:agents`."""

    name: str = Field(min_length=1)
    model: ModelConfig = ModelConfig(id=DEFAULT_MODEL)
    description: str | None = None
    system: str | None = None
    tools: list[Tool] = Field([AgentToolset(type=TOOLSET)], max_length=256)
    mcp_servers: list[McpServer] = Field([], max_length=20)
    skills: list[Skill] = []
    # The API keeps 16 keys; the stack adds up to 4 of its own (managed-by, the owner's
    # project and stack, the custom tools' digest).
    metadata: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] = (
        Field({}, max_length=12)
    )
    execution_identity: Annotated[ServiceAccount | AwsRole, Field(discriminator="type")] | None = (
        None
    )
    # Passed through as declared (coordinator or multiagent_20261001, SDK-typed unions).
    multiagent: dict[str, Any] | None = None

    @pydantic.field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @pydantic.field_validator("model", mode="before")
    @classmethod
    def _model_id(cls, value: Any) -> Any:
        return {"id": value} if isinstance(value, str) else value

    @pydantic.field_validator("multiagent")
    @classmethod
    def _multiagent_type(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type") not in ("coordinator", "multiagent_20261001"):
            raise ValueError("type: must be 'coordinator' or 'multiagent_20261001'")
        return value

    @pydantic.model_validator(mode="after")
    def _references(self) -> AgentDefinition:
        servers = [s.name for s in self.mcp_servers]
        if len(set(servers)) != len(servers):
            raise ValueError("mcp_servers: names must be unique")
        used = {t.mcp_server_name for t in self.tools if isinstance(t, McpToolset)}
        if unknown := sorted(used - set(servers)):
            raise ValueError(f"tools: mcp_toolset names servers not in mcp_servers: {unknown}")
        if unused := sorted(set(servers) - used):
            raise ValueError(f"mcp_servers: not referenced by any mcp_toolset: {unused}")
        customs = [t.name for t in self.tools if isinstance(t, CustomTool)]
        if len(set(customs)) != len(customs):
            raise ValueError("tools: custom tool names must be unique")
        if sum(isinstance(t, AgentToolset) for t in self.tools) > 1:
            raise ValueError(f"tools: at most one {TOOLSET}")
        return self

    def custom_tool_names(self) -> list[str]:
        """The custom tools this agent takes from the custom-tools module."""
        return [t.name for t in self.tools if isinstance(t, CustomTool) and t.description is None]


def _path(prefix: str, loc: Sequence[Any]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in _TAGS and not str(part).startswith("function-"):
            path += f".{part}"
    return path


def _problem(prefix: str, err: Mapping[str, Any]) -> str:
    loc = list(err.get("loc") or ())
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "union_tag_invalid":
        loc.append("type")
        tags = err.get("ctx", {}).get("expected_tags", "")
        msg = f"must be one of {tags}, got {err.get('ctx', {}).get('tag')!r}"
    elif err["type"] == "union_tag_not_found":
        loc.append("type")
        msg = "required"
    elif err["type"] == "missing":
        msg = "required"
    elif err["type"] == "extra_forbidden":
        msg = "not a known field"
    elif err["type"] == "literal_error":
        msg = f"must be one of {msg.removeprefix('Input should be ')}, got {err.get('input')!r}"
    if prefix == _LEGACY and loc and loc[0] in LEGACY_KEYS:
        return f"{_path(LEGACY_KEYS[loc[0]], loc[1:])}: {msg}"
    return f"{_path(prefix, loc)}: {msg}"


def _decode(raw: Any) -> Any:
    """Structured config may arrive as its JSON text (`pulumi.Config.get`)."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise AgentDefinitionError([f"cma:agents: not a list of agents ({exc})"]) from None
    return raw


def parse_agents(values: Mapping[str, Any]) -> list[AgentDefinition]:
    """The agents of the stack config (keys like 'cma:agents'); errors name the config path."""
    legacy = {f: values[k] for f, k in LEGACY_KEYS.items() if values.get(k) not in (None, "")}
    if values.get("cma:agents") in (None, ""):
        return [_validate(_LEGACY, {"name": DEFAULT_AGENT_NAME, **legacy})]
    if legacy:
        keys = ", ".join(LEGACY_KEYS[f] for f in legacy)
        raise AgentDefinitionError([f"cma:agents: set it or {keys}, not both"])
    raw = _decode(values["cma:agents"])
    if not isinstance(raw, list) or not raw:
        raise AgentDefinitionError(["cma:agents: must be a non-empty list of agents"])
    problems: list[str] = []
    agents: list[AgentDefinition] = []
    for index, item in enumerate(raw):
        try:
            agents.append(_validate(f"cma:agents[{index}]", item))
        except AgentDefinitionError as exc:
            problems += exc.problems
    names = [a.name for a in agents]
    problems += [
        f"cma:agents: the name {n!r} is used more than once"
        for n in sorted(set(names))
        if names.count(n) > 1
    ]
    if problems:
        raise AgentDefinitionError(problems)
    return agents


def _validate(prefix: str, item: Any) -> AgentDefinition:
    if not isinstance(item, dict):
        raise AgentDefinitionError([f"{prefix}: must be an object, got {type(item).__name__}"])
    try:
        return AgentDefinition.model_validate(item)
    except pydantic.ValidationError as exc:
        raise AgentDefinitionError([_problem(prefix, e) for e in exc.errors()]) from None


def check_custom_tools(agents: Sequence[AgentDefinition], available: Mapping[str, Any]) -> None:
    """Every custom tool an agent names must exist in the module; declared ones must not clash."""
    problems = []
    for index, agent in enumerate(agents):
        for position, tool in enumerate(agent.tools):
            if not isinstance(tool, CustomTool):
                continue
            path = f"cma:agents[{index}].tools[{position}].name"
            if tool.description is None and tool.name not in available:
                known = ", ".join(sorted(available)) or "none: cma:customToolsModule is not set"
                problems.append(f"{path}: no custom tool {tool.name!r} (known: {known})")
            elif tool.description is not None and tool.name in available:
                problems.append(
                    f"{path}: {tool.name!r} is a tool of cma:customToolsModule; "
                    "name it without description and input_schema"
                )
    if problems:
        raise AgentDefinitionError(problems)


def _tool_payload(tool: AgentToolset | McpToolset | CustomTool, custom: Mapping[str, Any]) -> Any:
    if isinstance(tool, CustomTool) and tool.description is None:
        spec = custom[tool.name]
        return {
            "type": "custom",
            "name": tool.name,
            "description": spec["description"],
            "input_schema": spec["input_schema"],
        }
    return tool.model_dump(exclude_none=True)


def _multiagent_payload(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """An update merges a `multiagent_20261001` into the stored one member by member: a member
    not declared is sent as null, which gives it its default instead of keeping an old value."""
    if value is not None and value.get("type") == "multiagent_20261001":
        return {**dict.fromkeys(MULTIAGENT_MEMBERS), **value}
    return value


def create_payload(defn: AgentDefinition, custom_tools: Mapping[str, Any]) -> dict[str, Any]:
    """The body of `agents.create` (pure); `custom_tools` maps a name to its derived spec."""
    model = defn.model.model_dump(exclude_none=True)
    body: dict[str, Any] = {
        "name": defn.name,
        "model": model["id"] if model.keys() == {"id"} else model,
        "tools": [_tool_payload(t, custom_tools) for t in defn.tools],
        "mcp_servers": [s.model_dump() for s in defn.mcp_servers],
        "skills": [s.model_dump(exclude_none=True) for s in defn.skills],
        "metadata": dict(defn.metadata),
        "description": defn.description,
        "system": defn.system,
        "execution_identity": (
            defn.execution_identity.model_dump() if defn.execution_identity else None
        ),
        "multiagent": _multiagent_payload(defn.multiagent),
    }
    return body


def update_payload(
    defn: AgentDefinition, custom_tools: Mapping[str, Any], live: Mapping[str, Any]
) -> dict[str, Any]:
    """The body of `agents.update` but `version`: all fields, metadata as a patch of `live`'s."""
    body = create_payload(defn, custom_tools)
    removed = {key: None for key in live.get("metadata") or {} if key not in defn.metadata}
    body["metadata"] = {**removed, **body["metadata"]}
    return body


# --- drift: what was sent against what the API reads back ------------------------------------


def _policy(config: Mapping[str, Any] | None) -> str | None:
    policy = (config or {}).get("permission_policy")
    return policy.get("type") if isinstance(policy, Mapping) else None


def _toolset_view(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A toolset with every default made explicit: (enabled, policy) per configured tool."""
    default_config = tool.get("default_config") or {}
    enabled = default_config.get("enabled")
    default = (
        True if enabled is None else enabled,
        _policy(default_config) or DEFAULT_POLICY[str(tool["type"])],
    )
    effective: dict[str, tuple[Any, Any]] = {}
    for config in tool.get("configs") or []:
        effective[config["name"]] = (
            default[0] if config.get("enabled") is None else config["enabled"],
            _policy(config) or default[1],
        )
    # A tool the API lists with the default settings is the same as one not listed.
    explicit = {name: value for name, value in effective.items() if value != default}
    return {"default": default, "configs": explicit}


def _tool_key(tool: Mapping[str, Any]) -> tuple[str, str]:
    return str(tool.get("type")), str(tool.get("mcp_server_name") or tool.get("name") or "")


def _tool_view(tool: Mapping[str, Any]) -> Any:
    if tool.get("type") in DEFAULT_POLICY:
        return _toolset_view(tool)
    # An SDK dump of the read-back spells the schema's unset optional keys as null.
    schema = {k: v for k, v in (tool.get("input_schema") or {}).items() if v is not None}
    return {"name": tool.get("name"), "description": tool.get("description"), "schema": schema}


def _tools_view(tools: Any) -> dict[tuple[str, str], Any]:
    return {_tool_key(t): _tool_view(t) for t in tools or []}


def _model_view(model: Any) -> dict[str, Any]:
    return {"id": model, "speed": "standard"} if isinstance(model, str) else dict(model or {})


def _effort(value: Any) -> Any:
    return value.get("type") if isinstance(value, Mapping) else value


def _model_drifts(sent: Any, live: Any) -> bool:
    want, have = _model_view(sent), _model_view(live)
    if want.get("id") != have.get("id"):
        return True
    if (want.get("speed") or "standard") != (have.get("speed") or "standard"):
        return True
    if want.get("inference_geo") != have.get("inference_geo"):
        return True
    # Without a declared effort the API resolves a per-model default: only a declared one counts.
    return "effort" in want and _effort(want["effort"]) != _effort(have.get("effort"))


def _roster(entries: Any, own_id: Any) -> list[str]:
    """Roster entries as agent ids; the agent itself as "self" (the API resolves it to its id)."""
    ids = []
    for entry in entries or []:
        if isinstance(entry, str):
            ids.append("self" if entry == own_id else entry)
        elif entry.get("type") == "self" or entry.get("id") == own_id:
            ids.append("self")
        elif entry.get("type") == "advisor":
            ids.append(f"advisor:{entry.get('model')}")
        else:
            ids.append(str(entry.get("id")))
    return sorted(ids)


def _member_view(name: str, member: Any, own_id: Any) -> dict[str, Any]:
    if member is None:  # absent or null: the member's default
        member = {"type": "disabled"} if name == "advisor" else {"type": "enabled"}
    view: dict[str, Any] = {"type": member.get("type")}
    if view["type"] == "enabled" and name == "advisor":
        view["model"] = member.get("model")
    elif view["type"] == "enabled":
        view["inline"] = (member.get("inline_agents") or {"type": "enabled"}).get("type")
        view["predefined"] = _roster(member.get("predefined_agents"), own_id)
    return view


def _multiagent_view(value: Any, own_id: Any) -> Any:
    """`multiagent` with roster references resolved away and member defaults made explicit."""
    if not isinstance(value, Mapping):
        return None
    if value.get("type") == "coordinator":
        return {"type": "coordinator", "agents": _roster(value.get("agents"), own_id)}
    members = {m: _member_view(m, value.get(m), own_id) for m in MULTIAGENT_MEMBERS}
    return {"type": value.get("type"), **members}


def _skills_view(skills: Any) -> dict[tuple[str, str], str]:
    return {
        (str(s.get("type")), str(s.get("skill_id"))): str(s.get("version") or "latest")
        for s in skills or []
    }


def _text(value: Any) -> Any:
    return value or None  # the API reads an empty description or system back as null


def drift(payload: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """The fields of `live` (as read back) that differ from `payload` (what was sent), sorted."""
    differs: dict[str, bool] = {
        "name": payload.get("name") != live.get("name"),
        "description": _text(payload.get("description")) != _text(live.get("description")),
        "system": _text(payload.get("system")) != _text(live.get("system")),
        "model": _model_drifts(payload.get("model"), live.get("model")),
        "tools": _tools_view(payload.get("tools")) != _tools_view(live.get("tools")),
        "mcp_servers": {s["name"]: s["url"] for s in payload.get("mcp_servers") or []}
        != {s["name"]: s["url"] for s in live.get("mcp_servers") or []},
        "skills": _skills_view(payload.get("skills")) != _skills_view(live.get("skills")),
        # The declared bag is the whole bag: a key added out of band is drift too.
        "metadata": {k: v for k, v in (payload.get("metadata") or {}).items() if v is not None}
        != dict(live.get("metadata") or {}),
        "execution_identity": (payload.get("execution_identity") or {"type": "service_account"})
        != (live.get("execution_identity") or {"type": "service_account"}),
        "multiagent": _multiagent_view(payload.get("multiagent"), live.get("id"))
        != _multiagent_view(live.get("multiagent"), live.get("id")),
    }
    return sorted(field for field, changed in differs.items() if changed)


DRIFT_FIELDS = (
    "name",
    "description",
    "system",
    "model",
    "tools",
    "mcp_servers",
    "skills",
    "metadata",
    "execution_identity",
    "multiagent",
)


def live_state(live: Mapping[str, Any]) -> dict[str, Any]:
    """What to keep of a read-back in state: the compared fields, the id and the version.

    A provider's diff is then `drift(payload_of_new_inputs, olds["live"])`: it shows a declared
    change and an out-of-band edit (once refresh stored the edited read-back) alike.
    """
    kept = {field: live.get(field) for field in DRIFT_FIELDS}
    return {**kept, "id": live.get("id"), "version": live.get("version")}


def declared_or_live(payload: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
    """Per compared field: the declared value where the read-back agrees, else the read-back's.

    As a provider's outputs (and refresh's inputs), a field-by-field diff against the next
    inputs then shows exactly the fields edited out of band, and nothing for an agent the API
    merely enriched or reordered.
    """
    drifted = set(drift(payload, live))
    return {f: live.get(f) if f in drifted else payload.get(f) for f in DRIFT_FIELDS}
