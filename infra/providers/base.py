"""What every provider shares: credentials read at call time, typed props, derived diffs.

Credentials are never resource inputs or outputs. The engine hands every dynamic provider
the whole stack config, namespaces kept (pulumi pkg/v3@v3.259.0 resource/deploy/target.go:47-66,
`GetPackageConfig`: "For dynamic providers, we always pass the full configuration"); the
provider host passes it to `configure()` once per process (pulumi/dynamic/__main__.py:72-74,
`get_provider` → `ConfigureRequest(config=Config(raw_config=…))`, secrets unwrapped in
`Configure`, __main__.py:194-199). So a rotated key in config is what the next call uses,
and a revoked key kept in old state is never used: refresh and destroy work with the new one.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import pulumi
import pydantic
from pulumi.dynamic import CheckFailure, CheckResult, DiffResult, ResourceProvider
from pulumi.dynamic.dynamic import ConfigureRequest
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN

# Not infra.config: the provider host needs these constants, not the config model it builds.
from infra.defaults import DEFAULT_ANTHROPIC_BASE_URL, DEFAULT_BLAXEL_BASE_URL, ENV_FALLBACKS
from infra.names import Owner

if TYPE_CHECKING:  # the SDK-backed clients are imported where they are called
    from infra.clients.anthropic import AnthropicCredentials
    from infra.clients.blaxel import BlaxelCredentials

# In the provider host, grpc logs every provider exception with its traceback at ERROR; the
# engine already shows the exception's message on the resource, which the traceback buries.
logging.getLogger("grpc._server").setLevel(logging.CRITICAL)

# The module `python -m pulumi.dynamic` runs: the SDK's dynamic provider host.
PROVIDER_HOST_MODULE = "pulumi.dynamic.__main__"


def is_provider_host(main: ModuleType | None) -> bool:
    """Whether `main` (the process's __main__) is the SDK's dynamic provider host (pure)."""
    spec = getattr(main, "__spec__", None)
    return getattr(spec, "name", None) == PROVIDER_HOST_MODULE


def exit_without_teardown() -> None:
    """End the process now, as it was ending: streams flushed, status 1 after an uncaught
    exception (the interpreter keeps it in sys.last_value), else 0."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1 if hasattr(sys, "last_value") else 0)


def skip_teardown_at_exit() -> None:
    """At exit, skip the interpreter's teardown of every loaded module.

    The engine waits for the provider host to exit after each command (it sends SIGINT, the
    host stops its server and returns), and tearing down pydantic, grpc and the providers
    takes longer than the whole no-op diff. atexit runs after the interpreter has joined the
    server's worker threads, so an operation still running finishes as before; what is
    skipped holds nothing to write (providers keep no state, responses have been sent).
    """
    atexit.register(exit_without_teardown)


if is_provider_host(sys.modules.get("__main__")):
    skip_teardown_at_exit()

# The config keys credentials come from (and the environment variables that stand in).
CREDENTIAL_KEYS = (
    "cma:anthropicApiKey",
    "cma:anthropicBaseUrl",
    "blaxel:apiKey",
    "blaxel:workspace",
    "blaxel:baseUrl",
)
EXTRA_ENV_FALLBACKS = {
    "cma:anthropicBaseUrl": "ANTHROPIC_BASE_URL",
    "blaxel:baseUrl": "BL_BASE_URL",
}
# Inputs older versions stored on every resource; ignored (and dropped) now.
LEGACY_CREDENTIAL_FIELDS = (
    "anthropic_base_url",
    "anthropic_api_key",
    "blaxel_base_url",
    "blaxel_workspace",
    "blaxel_api_key",
)


class MissingCredentials(Exception):
    """Neither the stack config nor the environment hold a needed credential."""


def credential_values(config: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str | None]:
    """Each credential key's value: stack config first, then its environment variable (pure)."""
    fallbacks = {**ENV_FALLBACKS, **EXTRA_ENV_FALLBACKS}
    values: dict[str, str | None] = {}
    for key in CREDENTIAL_KEYS:
        value = config.get(key)
        if value in (None, "") and key in fallbacks:
            value = env.get(fallbacks[key])
        values[key] = str(value) if value not in (None, "") else None
    return values


class Props(pydantic.BaseModel):
    """Base of each provider's typed inputs: unknown extras (e.g. __provider) are ignored."""

    model_config = pydantic.ConfigDict(extra="ignore")


class OwnedProps(Props):
    """Inputs of an object found by a unique name: who owns it, and how to resolve a clash."""

    owner: Owner | None = None
    # The config key that sets the name, for the error on a clash (not diffed).
    name_key: str = ""


def pick(props: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """The named fields of `props` (absent ones as None), for outputs and comparisons."""
    return {name: props.get(name) for name in fields}


def changed_fields(
    olds: Mapping[str, Any], news: Mapping[str, Any], fields: Iterable[str]
) -> list[str]:
    """The fields whose value differs between old outputs and new inputs (pure)."""
    return [name for name in fields if _plain(olds.get(name)) != _plain(news.get(name))]


def _plain(value: Any) -> Any:
    # A dataclass (Owner) and its dict form as stored in state compare equal.
    if isinstance(value, Owner):
        return {"project": value.project, "stack": value.stack}
    return value


def field_diff(
    olds: Mapping[str, Any],
    news: Mapping[str, Any],
    fields: Iterable[str],
    replace_fields: Iterable[str] = (),
) -> DiffResult:
    """A DiffResult naming exactly the changed fields, replacing only for `replace_fields`.

    Replacements delete first: every object here is identified by a unique name (or adopted
    by it), so a create-before-delete would adopt the live object and then delete it.
    """
    changed = changed_fields(olds, news, fields)
    replacing = set(replace_fields)
    replaces = [name for name in changed if name in replacing]
    return DiffResult(
        changes=bool(changed),
        replaces=replaces,
        stables=[],
        delete_before_replace=True,
    )


def contains_unknown(value: Any) -> bool:
    """Whether a (preview-time) input holds a value not known yet, at any depth."""
    if isinstance(value, Unknown) or value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_unknown(v) for v in value)
    return False


def with_defaults(model: type[pydantic.BaseModel], news: dict[str, Any]) -> dict[str, Any]:
    """The inputs with the model's defaults filled in; as given when they do not validate yet
    (check reports why, and a preview may hold unknowns)."""
    try:
        return {**news, **model.model_validate(news).model_dump()}
    except ValueError:
        return news


def with_field_defaults(model: type[pydantic.BaseModel], olds: Mapping[str, Any]) -> dict[str, Any]:
    """Old state with the defaults of fields it predates: a field added since behaves as its
    default did, so state written before it exists shows no change (pure)."""
    defaults = {
        name: field.get_default(call_default_factory=True)
        for name, field in model.model_fields.items()
        if not field.is_required() and name not in olds
    }
    return {**defaults, **olds}


def check_with(model: type[pydantic.BaseModel], news: dict[str, Any]) -> CheckResult:
    """Validate new inputs with a pydantic model; each failure names its property.

    During a preview some inputs are not known yet: those are not validated.
    """
    unknown = {key for key, value in news.items() if contains_unknown(value)}
    known = {key: value for key, value in news.items() if key not in unknown}
    try:
        model.model_validate(known)
    except pydantic.ValidationError as exc:
        failures = [
            CheckFailure(str(err["loc"][0]), err["msg"])
            for err in exc.errors()
            if err["loc"] and str(err["loc"][0]) not in unknown
        ]
        return CheckResult(news, failures)
    return CheckResult(news, [])


class CmaProvider(ResourceProvider):
    """The one base of the stack's providers.

    Pickled by reference (dill stores "module.Class" for a class of an importable module:
    no path, no bytecode in state), so state written by an older version loads the current
    code. Subclasses declare their typed `props_model`; the diffed fields are its fields
    minus `not_diffed`; `replace_fields` replace (delete first).
    """

    props_model: ClassVar[type[Props]] = Props
    not_diffed: ClassVar[frozenset[str]] = frozenset()
    replace_fields: ClassVar[tuple[str, ...]] = ()
    # Provider state is set by configure() in the provider host only, never pickled.
    serialize_as_secret_always = False

    def __getstate__(self) -> dict[str, Any]:
        return {}  # what configure() read (credentials) never goes into the state

    def __setstate__(self, _state: dict[str, Any]) -> None:
        pass

    def configure(self, req: ConfigureRequest) -> None:
        raw = getattr(req.config, "_props", {}) or {}
        self._credentials = credential_values(raw, os.environ)

    def credentials(self) -> dict[str, str | None]:
        """The configured credentials, else the environment's (a provider used directly)."""
        configured = getattr(self, "_credentials", None)
        return configured if configured is not None else credential_values({}, os.environ)

    def anthropic(self) -> AnthropicCredentials:
        from infra.clients.anthropic import AnthropicCredentials

        values = self.credentials()
        api_key = values["cma:anthropicApiKey"]
        if not api_key:
            raise MissingCredentials(
                "no Anthropic API key: set cma:anthropicApiKey or ANTHROPIC_API_KEY"
            )
        base_url = values["cma:anthropicBaseUrl"] or DEFAULT_ANTHROPIC_BASE_URL
        return AnthropicCredentials(base_url=base_url.rstrip("/"), api_key=api_key)

    def blaxel(self) -> BlaxelCredentials:
        from infra.clients.blaxel import BlaxelCredentials

        values = self.credentials()
        api_key, workspace = values["blaxel:apiKey"], values["blaxel:workspace"]
        if not api_key or not workspace:
            raise MissingCredentials(
                "no Blaxel credentials: set blaxel:apiKey and blaxel:workspace "
                "(or BL_API_KEY and BL_WORKSPACE)"
            )
        base_url = values["blaxel:baseUrl"] or DEFAULT_BLAXEL_BASE_URL
        return BlaxelCredentials(
            base_url=base_url.rstrip("/"), workspace=workspace, api_key=api_key
        )

    @classmethod
    def diffed_fields(cls) -> tuple[str, ...]:
        return tuple(f for f in cls.props_model.model_fields if f not in cls.not_diffed)

    def validated(self, props: Mapping[str, Any]) -> Any:
        """The typed inputs (validated once per call; check has reported any problem)."""
        return self.props_model.model_validate(dict(props))

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> Any:
        # Credentials of older versions' inputs are dropped here, so they leave the state.
        news = {k: v for k, v in news.items() if k not in LEGACY_CREDENTIAL_FIELDS}
        return check_with(self.props_model, news)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> Any:
        wanted = with_defaults(self.props_model, news)
        had = with_field_defaults(self.props_model, olds)
        return field_diff(had, wanted, self.diffed_fields(), self.replace_fields)


def with_secret_outputs(
    opts: pulumi.ResourceOptions | None, *fields: str
) -> pulumi.ResourceOptions:
    """`opts` plus `fields` marked as secret outputs."""
    extra = pulumi.ResourceOptions(additional_secret_outputs=list(fields))
    return pulumi.ResourceOptions.merge(opts, extra)


# The type every resource had before each kind got its own (kept as an alias: no replace).
LEGACY_TYPE = "pulumi-python:dynamic:Resource"


class CmaResource(pulumi.dynamic.Resource):
    """Base of the typed resources: declares outputs, secret outputs and the legacy alias."""

    provider_class: ClassVar[type[CmaProvider]]
    output_names: ClassVar[tuple[str, ...]] = ()
    secret_output_names: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        resource_name: str,
        props: Mapping[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        extra = pulumi.ResourceOptions(
            aliases=[pulumi.Alias(type_=LEGACY_TYPE)],
            additional_secret_outputs=list(self.secret_output_names),
            delete_before_replace=True,
        )
        super().__init__(
            self.provider_class(),
            resource_name,
            {**props, **dict.fromkeys(self.output_names)},
            pulumi.ResourceOptions.merge(opts, extra),
        )
