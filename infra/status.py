"""`python -m infra.status [--json] [--local | --outputs FILE]`: what a deployed stack is doing.

Reads the stack's outputs (`pulumi stack output --json --show-secrets` on stdin, a file, or, with
`--local`, the offline stack through `scripts/pulumi`) and prints a table: the environment, the
agent and its version (and whether it drifted from the stack's), the work queue, this stack's
worker sandboxes (labels `cma-role=worker`, `cma-environment-id=<environment_id>`) with their
session and state, and the orchestrator's own `/status` (with the `status_token` output).
Read-only: it changes nothing anywhere. Credentials come from the usual environment variables
(ANTHROPIC_API_KEY, BL_API_KEY, BL_WORKSPACE), or the local stack's config with `--local`.
A section that cannot be read says why instead of failing the whole report.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")

import anthropic
import httpx
from blaxel.core.client.api.compute import list_sandboxes
from blaxel.core.client.client import client as control_plane

from infra.clients import anthropic as anthropic_api
from infra.clients import blaxel as blaxel_api
from infra.clients.anthropic import AnthropicCredentials
from infra.clients.blaxel import BlaxelCredentials
from infra.clients.errors import ClientError
from infra.providers.sandbox import SandboxProps

# The port the orchestrator listens on in its sandbox (the sandbox's only port).
ORCHESTRATOR_PORT: int = SandboxProps.model_fields["port"].default

REPO_ROOT = Path(__file__).resolve().parent.parent
ROLE_LABEL, SESSION_LABEL, ENVIRONMENT_LABEL = "cma-role", "cma-session-id", "cma-environment-id"
Section = dict[str, Any]


class StatusError(Exception):
    """The command cannot run at all (no outputs, no credentials); the message says why."""


# --- inputs ---------------------------------------------------------------------------------


def local_pulumi(*args: str) -> Any:
    """JSON from `scripts/pulumi ARGS…` (the offline `local` stack)."""
    done = subprocess.run(
        [str(REPO_ROOT / "scripts" / "pulumi"), *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise StatusError(f"scripts/pulumi {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout or "{}")


def credentials_from(
    env: dict[str, str], config: dict[str, Any], outputs: dict[str, Any]
) -> tuple[AnthropicCredentials | None, BlaxelCredentials | None]:
    """API credentials from stack config values (`--local`) or else the environment."""

    def pick(key: str, var: str) -> str | None:
        entry = config.get(key)
        value = entry.get("value") if isinstance(entry, dict) else None
        return value or env.get(var) or None

    anthropic_key = pick("cma:anthropicApiKey", "ANTHROPIC_API_KEY")
    blaxel_key, workspace = (
        pick("blaxel:apiKey", "BL_API_KEY"),
        pick("blaxel:workspace", "BL_WORKSPACE"),
    )
    anthropic_url = outputs.get("anthropic_base_url") or "https://api.anthropic.com"
    blaxel_url = outputs.get("blaxel_base_url") or "https://api.blaxel.ai/v0"
    return (
        AnthropicCredentials(anthropic_url, anthropic_key) if anthropic_key else None,
        BlaxelCredentials(blaxel_url, workspace, blaxel_key) if blaxel_key and workspace else None,
    )


# --- the sections (each: I/O, then a plain dict) ---------------------------------------------


def environment_section(creds: AnthropicCredentials, outputs: dict[str, Any]) -> Section:
    env = anthropic_api.get_environment(creds, outputs["environment_id"])
    return {"id": env.get("id"), "name": env.get("name"), "archived_at": env.get("archived_at")}


def agent_section(creds: AnthropicCredentials, outputs: dict[str, Any]) -> Section:
    agent = anthropic_api.get_agent(creds, outputs["agent_id"])
    declared = outputs.get("agent_version")
    return {
        "id": agent.get("id"),
        "name": agent.get("name"),
        "model": (agent.get("model") or {}).get("id")
        if isinstance(agent.get("model"), dict)
        else agent.get("model"),
        "version": agent.get("version"),
        "stack_version": declared,
        # Someone updated the agent outside the stack: the next `up` puts the declared one back.
        "drifted": declared is not None and agent.get("version") != declared,
    }


def queue_section(creds: AnthropicCredentials, outputs: dict[str, Any]) -> Section:
    client = anthropic.Anthropic(
        api_key=creds.api_key, base_url=creds.base_url, max_retries=1, timeout=15.0
    )
    with client:
        stats = client.beta.environments.work.stats(outputs["environment_id"])
    return {
        "depth": stats.depth,
        "pending": stats.pending,
        "oldest_queued_at": stats.oldest_queued_at,
        "workers_polling": stats.workers_polling,
    }


def is_stack_worker(labels: dict[str, Any], environment_id: str) -> bool:
    """A worker sandbox of this stack's environment (pure)."""
    return labels.get(ROLE_LABEL) == "worker" and labels.get(ENVIRONMENT_LABEL) == environment_id


def worker_rows(sandboxes: list[dict[str, Any]], environment_id: str) -> list[Section]:
    """This stack's worker sandboxes, with their session and state, sorted by name (pure)."""
    rows = []
    for sandbox in sandboxes:
        metadata = sandbox.get("metadata") or {}
        labels = metadata.get("labels") or {}
        if is_stack_worker(labels, environment_id):
            rows.append(
                {
                    "sandbox": metadata.get("name"),
                    "session_id": labels.get(SESSION_LABEL),
                    "state": sandbox.get("status"),
                    "created_at": metadata.get("createdAt"),
                }
            )
    return sorted(rows, key=lambda r: str(r["sandbox"]))


def all_sandboxes(creds: BlaxelCredentials) -> list[dict[str, Any]]:
    """Every sandbox of the workspace, page by page (the control plane's listing)."""
    found: list[dict[str, Any]] = []
    cursor: Any = None
    while True:
        kwargs: dict[str, Any] = {"client": control_plane, "limit": 100}
        if cursor:
            kwargs["cursor"] = cursor
        page = blaxel_api._api(
            creds, "list sandboxes", functools.partial(list_sandboxes.sync_detailed, **kwargs)
        )
        body = page.to_dict() if hasattr(page, "to_dict") else {"data": page}
        found += [s if isinstance(s, dict) else s.to_dict() for s in body.get("data") or []]
        cursor = (body.get("meta") or {}).get("nextCursor")
        if not cursor:
            return found


def orchestrator_section(
    outputs: dict[str, Any],
    get: Callable[..., httpx.Response] = httpx.get,
    blaxel_creds: BlaxelCredentials | None = None,
) -> Section:
    """The orchestrator's /status: through its public URL, or (poll mode, no preview) through
    the sandbox API with the Blaxel credentials."""
    url, token = outputs.get("orchestrator_url"), outputs.get("status_token")
    sandbox = outputs.get("orchestrator_sandbox")
    if not url and not (sandbox and blaxel_creds):
        return {"error": "no orchestrator_url output (poll mode: give the Blaxel credentials)"}
    if not token:
        return {
            "error": "no status_token output: run with --show-secrets (or the stack predates it)"
        }
    headers = {"Authorization": f"Bearer {token}"}
    if url:
        where = f"{url}/status"
        response = get(where, headers=headers, timeout=15)
        status, text = response.status_code, response.text
    else:
        assert blaxel_creds is not None and sandbox
        where = f"port {ORCHESTRATOR_PORT}/status of sandbox {sandbox}"
        status, text = blaxel_api.fetch_port(
            blaxel_creds, str(sandbox), ORCHESTRATOR_PORT, "/status", headers
        )
    if status != 200:
        return {"error": f"{where} answered {status}"}
    body: Section = json.loads(text)
    return body


def guarded(read: Callable[[], Any]) -> Any:
    """A section, or {"error": …} when it cannot be read (the others still print)."""
    try:
        return read()
    except (ClientError, anthropic.APIError, httpx.HTTPError, KeyError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def gather(
    outputs: dict[str, Any],
    anthropic_creds: AnthropicCredentials | None,
    blaxel_creds: BlaxelCredentials | None,
) -> dict[str, Any]:
    """The whole report, as JSON-able data."""
    no_anthropic = {"error": "no Anthropic API key (ANTHROPIC_API_KEY)"}
    report: dict[str, Any] = {"stack": {k: outputs.get(k) for k in ("environment_id", "agent_id")}}
    if anthropic_creds is None:
        report.update(environment=no_anthropic, agent=no_anthropic, queue=no_anthropic)
    else:
        creds = anthropic_creds
        report["environment"] = guarded(lambda: environment_section(creds, outputs))
        report["agent"] = guarded(lambda: agent_section(creds, outputs))
        report["queue"] = guarded(lambda: queue_section(creds, outputs))
    if blaxel_creds is None:
        report["workers"] = {"error": "no Blaxel credentials (BL_API_KEY, BL_WORKSPACE)"}
    else:
        bl = blaxel_creds
        report["workers"] = guarded(
            lambda: worker_rows(all_sandboxes(bl), str(outputs.get("environment_id")))
        )
    report["orchestrator"] = guarded(
        lambda: orchestrator_section(outputs, blaxel_creds=blaxel_creds)
    )
    return report


# --- the table ---------------------------------------------------------------------------------


def _table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    cells = [[str(r.get(c) if r.get(c) is not None else "-") for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))  # noqa: E731
    return ["  " + line(columns).rstrip(), *("  " + line(row).rstrip() for row in cells)]


def _pairs(section: Any, keys: list[str]) -> list[str]:
    if isinstance(section, dict) and "error" in section:
        return [f"  error: {section['error']}"]
    width = max(len(k) for k in keys)
    return [
        f"  {k.ljust(width)}  {section.get(k) if section.get(k) is not None else '-'}" for k in keys
    ]


def render(report: dict[str, Any]) -> str:
    """The report as the table an operator reads (pure)."""
    lines = ["environment", *_pairs(report["environment"], ["id", "name", "archived_at"])]
    lines += [
        "agent",
        *_pairs(report["agent"], ["id", "name", "model", "version", "stack_version", "drifted"]),
    ]
    lines += [
        "queue",
        *_pairs(report["queue"], ["depth", "pending", "oldest_queued_at", "workers_polling"]),
    ]
    workers = report["workers"]
    lines.append(f"workers ({len(workers)})" if isinstance(workers, list) else "workers")
    if isinstance(workers, dict):
        lines.append(f"  error: {workers['error']}")
    elif workers:
        lines += _table(workers, ["sandbox", "session_id", "state", "created_at"])
    orchestrator = report["orchestrator"]
    lines.append("orchestrator /status")
    if "error" in orchestrator:
        lines.append(f"  error: {orchestrator['error']}")
    else:
        lines += _pairs(
            orchestrator,
            ["environment_id", "dispatching", "sessions_in_flight", "workers_by_state"],
        )
        tracked = orchestrator.get("workers") or []
        if tracked:
            lines += _table(tracked, ["session_id", "sandbox", "state", "work_id"])
        for name, values in sorted((orchestrator.get("counters") or {}).items()):
            shown = ", ".join(f"{k}={v:g}" for k, v in sorted(values.items()))
            lines.append(f"  {name}: {shown}")
    return "\n".join(lines)


# --- the command ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.status", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--local", action="store_true", help="the offline stack, via scripts/pulumi"
    )
    source.add_argument(
        "--outputs", type=Path, help="a file of `pulumi stack output --json --show-secrets`"
    )
    args = parser.parse_args(argv)
    try:
        config: dict[str, Any] = {}
        if args.local:
            outputs = local_pulumi("stack", "output", "--json", "--show-secrets")
            config = local_pulumi("config", "--show-secrets", "--json")
        else:
            text = args.outputs.read_text() if args.outputs else sys.stdin.read()
            outputs = json.loads(text or "{}")
        if not outputs.get("environment_id"):
            raise StatusError("no environment_id among the stack's outputs (is the stack up?)")
    except (StatusError, json.JSONDecodeError, OSError) as exc:
        print(f"status: {exc}", file=sys.stderr)
        return 1
    anthropic_creds, blaxel_creds = credentials_from(dict(os.environ), config, outputs)
    report = gather(outputs, anthropic_creds, blaxel_creds)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
