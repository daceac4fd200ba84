"""Pure rules over sandbox payloads: names, durations, lifecycle policies, masking, expiry."""

from __future__ import annotations

import copy
import re
from datetime import datetime
from typing import Any

# The rule's one home is Blaxel's SDK, which states the control plane's verdict
# (tests/emulator/test_name_rule_contract.py pins the product to it too).
from blaxel.core.sandbox.names import SANDBOX_NAME_MAX_LENGTH, is_valid_sandbox_name

from emulator.blaxel.exceptions import BadRequest

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MASKED_ENV_VALUE = "****"  # what the control plane shows for every env value it reads back
TTL_MAX_AGE_MIN_S = 300
TTL_IDLE_MIN_S = 60
DEFAULT_TERMINATED_RETENTION_S = 300
DEFAULT_IMAGE = "blaxel/base-image:latest"
DEFAULT_MEMORY = 4096
POLICY_TYPES = ("ttl-idle", "ttl-max-age", "date")
# Blaxel's own: 443 the sandbox API over HTTPS, 80 system, 8080 sandbox API (docs "Ports").
RESERVED_PORTS = (80, 443, 8080)
MEMORY_MIN_MB = 512  # sources silent: the product's own bounds (infra/config.py)
MEMORY_MAX_MB = 65536


def validate_sandbox_name(name: Any) -> str:
    """The name if the control plane accepts it, else Blaxel's 400."""
    if not isinstance(name, str) or not name:
        raise BadRequest("metadata.name is required", code="INVALID_INPUT")
    if not is_valid_sandbox_name(name):
        raise BadRequest(
            f"Invalid sandbox name '{name}': names use lowercase letters, digits and single"
            f" hyphens, at most {SANDBOX_NAME_MAX_LENGTH} characters",
            code="INVALID_INPUT",
        )
    return name


def parse_duration(value: Any, field: str) -> int:
    """Seconds in a duration such as '30m' or '1h30m' (units s, m, h, d, w)."""
    text = str(value).strip() if value is not None else ""
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise BadRequest(f"{field}: invalid duration '{value}' (use s, m, h, d or w units)")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def parse_date(value: Any, field: str) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise BadRequest(f"{field}: invalid ISO 8601 date '{value}'") from exc


def check_port(port: Any, field: str) -> int:
    """A port a sandbox may expose or preview: a number, not one of Blaxel's reserved ones."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise BadRequest(f"{field}: must be a port number (1-65535)", code="INVALID_PORTS")
    if port in RESERVED_PORTS:
        raise BadRequest(
            f"{field}: port {port} is reserved by Blaxel"
            f" ({', '.join(map(str, RESERVED_PORTS))} are reserved)",
            code="INVALID_PORTS",
        )
    return port


def check_preview_port(port: Any) -> int:
    return check_port(port, "spec.port")


def validate_spec(spec: dict[str, Any], regions: tuple[str, ...] = ()) -> None:
    """Reject what the control plane refuses (400): TTLs, policies, ports, memory, region."""
    runtime = spec.get("runtime") or {}
    for index, entry in enumerate(runtime.get("ports") or []):
        if not isinstance(entry, dict):
            raise BadRequest(
                f"spec.runtime.ports[{index}]: must be an object", code="INVALID_PORTS"
            )
        check_port(entry.get("target"), f"spec.runtime.ports[{index}].target")
    memory = runtime.get("memory")
    if (
        isinstance(memory, bool)
        or not isinstance(memory, int)
        or not (MEMORY_MIN_MB <= memory <= MEMORY_MAX_MB)
    ):
        raise BadRequest(
            f"spec.runtime.memory: {memory!r} MB is outside {MEMORY_MIN_MB}-{MEMORY_MAX_MB}",
            code="VALIDATION_FAILED",
        )
    region = spec.get("region")
    if region is not None and regions and region not in regions:
        raise BadRequest(
            f"spec.region: unknown region {region!r} (one of {', '.join(regions)})",
            code="INVALID_REGION",
        )
    ttl = runtime.get("ttl")
    if ttl and parse_duration(ttl, "spec.runtime.ttl") < TTL_MAX_AGE_MIN_S:
        raise BadRequest("spec.runtime.ttl: minimum is 5m")
    if runtime.get("expires"):
        parse_date(runtime["expires"], "spec.runtime.expires")
    for index, policy in enumerate(lifecycle_policies(spec)):
        field = f"spec.lifecycle.expirationPolicies[{index}]"
        kind, value = policy.get("type"), policy.get("value")
        if kind not in POLICY_TYPES:
            raise BadRequest(f"{field}.type: must be one of {', '.join(POLICY_TYPES)}")
        if policy.get("action", "delete") != "delete":
            raise BadRequest(f"{field}.action: only 'delete' is supported")
        if kind == "date":
            parse_date(value, f"{field}.value")
            continue
        seconds = parse_duration(value, f"{field}.value")
        minimum = TTL_IDLE_MIN_S if kind == "ttl-idle" else TTL_MAX_AGE_MIN_S
        if seconds < minimum:
            raise BadRequest(f"{field}.value: minimum for {kind} is {minimum}s")
    for volume in spec.get("volumes") or []:
        if not volume.get("name") or not str(volume.get("mountPath", "")).startswith("/"):
            raise BadRequest("spec.volumes: each volume needs a name and an absolute mountPath")


def lifecycle_policies(spec: dict[str, Any]) -> list[dict[str, Any]]:
    lifecycle = spec.get("lifecycle") or {}
    return list(lifecycle.get("expirationPolicies") or [])


def with_defaults(spec: dict[str, Any] | None) -> dict[str, Any]:
    """The spec as stored: the SDK's defaults filled in, unknown fields kept."""
    spec = copy.deepcopy(spec or {})
    runtime = spec.setdefault("runtime", {})
    runtime["image"] = runtime.get("image") or DEFAULT_IMAGE
    runtime["memory"] = runtime.get("memory") or DEFAULT_MEMORY
    spec.setdefault("enabled", True)
    return spec


def merge_masked_envs(new_spec: dict[str, Any], old_spec: dict[str, Any]) -> dict[str, Any]:
    """Keep stored values for envs sent back masked (SDK updates round-trip a GET)."""
    old = {e.get("name"): e for e in (old_spec.get("runtime") or {}).get("envs") or []}
    runtime = new_spec.get("runtime") or {}
    merged = []
    for env in runtime.get("envs") or []:
        env = dict(env)
        previous = old.get(env.get("name"))
        if previous is not None and env.get("value") in (None, MASKED_ENV_VALUE):
            env["value"] = previous.get("value")
        merged.append(env)
    if "envs" in runtime:
        runtime["envs"] = merged
    return new_spec


def check_envs_unchanged(new_spec: dict[str, Any], old_spec: dict[str, Any]) -> None:
    """Envs are fixed at creation (docs "Variables and secrets"): a change is refused (400)."""
    if "envs" not in (new_spec.get("runtime") or {}):
        new_spec["runtime"]["envs"] = copy.deepcopy((old_spec.get("runtime") or {}).get("envs"))
        if new_spec["runtime"]["envs"] is None:
            del new_spec["runtime"]["envs"]
        return
    if _env_set(new_spec) != _env_set(old_spec):
        raise BadRequest(
            "spec.runtime.envs: environment variables cannot be added or changed after a"
            " sandbox is created; delete and create it again",
            code="VALIDATION_FAILED",
        )


def _env_set(spec: dict[str, Any]) -> list[tuple[str, str, bool]]:
    envs = (spec.get("runtime") or {}).get("envs") or []
    return sorted(
        (str(e.get("name")), str(e.get("value") or ""), bool(e.get("secret"))) for e in envs
    )


def masked(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as the API shows it: every env value masked, secret or not, and no proxy
    routing secret (write-only: "never returned in API responses", SDK
    core/client/models/proxy_target.py)."""
    shown = copy.deepcopy(spec)
    for env in (shown.get("runtime") or {}).get("envs") or []:
        if "value" in env:
            env["value"] = MASKED_ENV_VALUE
    for rule in _routing(shown):
        rule.pop("secrets", None)
    return shown


def _routing(spec: dict[str, Any]) -> list[dict[str, Any]]:
    proxy = (spec.get("network") or {}).get("proxy") or {}
    return [r for r in proxy.get("routing") or [] if isinstance(r, dict)]


def merge_proxy_secrets(new_spec: dict[str, Any], old_spec: dict[str, Any]) -> dict[str, Any]:
    """Keep the stored secrets of routing rules sent back without them (same destinations)."""
    old = {tuple(r.get("destinations") or []): r.get("secrets") for r in _routing(old_spec)}
    for rule in _routing(new_spec):
        stored = old.get(tuple(rule.get("destinations") or []))
        if "secrets" not in rule and stored:
            rule["secrets"] = copy.deepcopy(stored)
    return new_spec


def env_values(spec: dict[str, Any]) -> dict[str, str]:
    envs = (spec.get("runtime") or {}).get("envs") or []
    return {str(e["name"]): str(e.get("value") or "") for e in envs if e.get("name")}


def runtime_ports(spec: dict[str, Any]) -> list[int]:
    ports = (spec.get("runtime") or {}).get("ports") or []
    return [int(p["target"]) for p in ports if isinstance(p, dict) and p.get("target")]


def expiry_deadline(spec: dict[str, Any], created_at: float, last_used_at: float) -> float | None:
    """The time at which a policy (or runtime ttl/expires) deletes the sandbox, None if never."""
    deadlines: list[float] = []
    runtime = spec.get("runtime") or {}
    if runtime.get("ttl"):
        deadlines.append(created_at + parse_duration(runtime["ttl"], "ttl"))
    if runtime.get("expires"):
        deadlines.append(parse_date(runtime["expires"], "expires"))
    for policy in lifecycle_policies(spec):
        kind, value = policy.get("type"), policy.get("value")
        if kind == "ttl-max-age":
            deadlines.append(created_at + parse_duration(value, "value"))
        elif kind == "ttl-idle":
            deadlines.append(last_used_at + parse_duration(value, "value"))
        elif kind == "date":
            deadlines.append(parse_date(value, "value"))
    return min(deadlines) if deadlines else None


def terminated_retention(spec: dict[str, Any]) -> int:
    value = (spec.get("lifecycle") or {}).get("terminatedRetention")
    return parse_duration(value, "terminatedRetention") if value else DEFAULT_TERMINATED_RETENTION_S
