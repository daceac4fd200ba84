"""The project's Pulumi program run in-process under Pulumi's mocks, with the mocks doing what
the engine does for each dynamic resource: check, then diff against the state and update (or
replace), or create when the state has none; a failed step ends the `up` like the engine's
default, and the state keeps only what succeeded. Fast enough to fail every step of an `up`.
"""

from __future__ import annotations

import base64
import pickle
import threading
from dataclasses import dataclass, field
from typing import Any

import dill
import pulumi
from pulumi.dynamic import Config, ConfigureRequest, ResourceProvider
from pulumi.runtime import rpc

from infra.components.stack import CmaBlaxelStack, CmaBlaxelStackArgs
from infra.config import load_stack_config

PROVIDER_KEY = "__provider"


def unwrap_secrets(value: Any) -> Any:
    """The plain value of mock inputs, secrets included, at any depth (as the provider sees it)."""
    if rpc.is_rpc_secret(value):
        return unwrap_secrets(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def load_provider(serialized: str, config: dict[str, Any] | None = None) -> ResourceProvider:
    """The provider as the provider host makes it: unpickled, then configured with the stack
    config (where providers read their credentials)."""
    provider: ResourceProvider = dill.loads(base64.b64decode(serialized))
    provider.configure(ConfigureRequest(Config(dict(config or {}), "cma-blaxel")))
    return provider


class UpFailed(RuntimeError):
    """A step of the in-process `up` failed (or was skipped after an earlier failure)."""


@dataclass
class StateEntry:
    id: str
    outs: dict[str, Any]
    provider: str  # the serialized provider, as the engine keeps it in state


@dataclass
class InProcessEngine(pulumi.runtime.Mocks):
    """The state of one stack across `up`s; `ops` lists every provider call made, in order."""

    state: dict[str, StateEntry] = field(default_factory=dict)
    ops: list[str] = field(default_factory=list)
    failure: BaseException | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the last up's stack config
    _idle: threading.Condition = field(default_factory=threading.Condition)
    _in_flight: int = 0

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if not args.custom or PROVIDER_KEY not in args.inputs:
            return f"{args.name}-id", dict(args.inputs)  # a component: nothing to do
        news = unwrap_secrets(dict(args.inputs))
        provider = load_provider(news[PROVIDER_KEY], self.config)
        with self._idle:
            if self.failure is not None:
                raise UpFailed(f"{args.name}: skipped after an earlier failure")
            self._in_flight += 1
        try:
            return self._step(args.name, provider, news)
        except BaseException as exc:
            with self._idle:
                self.failure = self.failure or exc
            raise
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _step(
        self, name: str, provider: ResourceProvider, news: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        old = self.state.get(name)
        self.ops.append(f"check {name}")
        checked = provider.check(old.outs if old else {}, news)
        if checked.failures:
            reasons = "; ".join(f"{f.property}: {f.reason}" for f in checked.failures)
            raise UpFailed(f"{name}: check failed: {reasons}")
        news = {**news, **(checked.inputs or {})}
        if old is None:
            self.ops.append(f"create {name}")
            created = provider.create(news)
            entry = StateEntry(str(created.id), dict(created.outs or {}), news[PROVIDER_KEY])
        else:
            self.ops.append(f"diff {name}")
            diff = provider.diff(old.id, old.outs, news)
            if not diff.changes:
                return old.id, {**news, **old.outs}
            if diff.replaces and diff.delete_before_replace:
                self.ops.append(f"delete-replaced {name}")
                provider.delete(old.id, old.outs)
                self.state.pop(name)
                self.ops.append(f"create-replacement {name}")
                created = provider.create(news)
                entry = StateEntry(str(created.id), dict(created.outs or {}), news[PROVIDER_KEY])
            elif diff.replaces:
                self.ops.append(f"create-replacement {name}")
                created = provider.create(news)
                self.ops.append(f"delete-replaced {name}")
                provider.delete(old.id, old.outs)
                entry = StateEntry(str(created.id), dict(created.outs or {}), news[PROVIDER_KEY])
            else:
                self.ops.append(f"update {name}")
                updated = provider.update(old.id, old.outs, news)
                entry = StateEntry(old.id, dict(updated.outs or {}), news[PROVIDER_KEY])
        self.state[name] = entry
        return entry.id, {**news, **entry.outs}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []

    def up(self, values: dict[str, str]) -> None:
        """One `pulumi up` of the project's program with stack config `values`; UpFailed (with
        the first step's error as cause) when a step failed."""
        self.failure = None
        self.config = dict(values)
        config = load_stack_config(values, {})
        pulumi.runtime.set_mocks(self, project="cma-blaxel", stack="faults", preview=False)

        @pulumi.runtime.test
        def program() -> pulumi.Output[Any]:
            stack = CmaBlaxelStack("cma", CmaBlaxelStackArgs.from_config(config))
            return pulumi.Output.all(*stack.outputs.values())

        # Pulumi's serialize_provider wraps pickle's _batch_setitems anew at every resource and
        # never unwraps it: harmless in a one-run process, a RecursionError after ~100 runs here.
        batch_setitems = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]
        try:
            program()
        except Exception as exc:
            raise UpFailed(f"up failed: {self.failure or exc}") from (self.failure or exc)
        finally:
            pickle._Pickler._batch_setitems = batch_setitems  # type: ignore[attr-defined]
            # Like the engine, end the update only once the steps already running have ended
            # (the mocks' runtime returns at the first failure, with the others still going).
            with self._idle:
                self._idle.wait_for(lambda: self._in_flight == 0)
        if self.failure is not None:
            raise UpFailed(f"up failed: {self.failure}") from self.failure

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {name: entry.outs for name, entry in self.state.items()}

    def destroy(self) -> None:
        """Delete what the state holds, dependents first (the reverse of creation order)."""
        for name in reversed(list(self.state)):
            entry = self.state.pop(name)
            load_provider(entry.provider, self.config).delete(entry.id, entry.outs)
