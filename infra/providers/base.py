"""What every provider shares: credentials from props, field-level diffs, check results."""

from __future__ import annotations

import logging
import os
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pulumi
import pydantic
from pulumi.dynamic import CheckFailure, CheckResult, DiffResult, ResourceProvider
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN

from infra.clients.anthropic import AnthropicCredentials
from infra.clients.blaxel import BlaxelCredentials

# In the provider host, grpc logs every provider exception with its traceback at ERROR; the
# engine already shows the exception's message on the resource, which the traceback buries.
logging.getLogger("grpc._server").setLevel(logging.CRITICAL)

# Inputs that carry credentials: every resource of a platform gets them, as secrets.
ANTHROPIC_CREDENTIAL_FIELDS = ("anthropic_base_url", "anthropic_api_key")
BLAXEL_CREDENTIAL_FIELDS = ("blaxel_base_url", "blaxel_workspace", "blaxel_api_key")
SECRET_CREDENTIAL_FIELDS = ("anthropic_api_key", "blaxel_api_key")

DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
DEFAULT_BLAXEL_BASE_URL = "https://api.blaxel.ai/v0"


class MissingCredentials(Exception):
    """Neither the resource inputs nor the environment hold a needed credential."""


def anthropic_credentials(props: Mapping[str, Any]) -> AnthropicCredentials:
    """Credentials from the resource inputs, else ANTHROPIC_API_KEY (read at call time)."""
    api_key = props.get("anthropic_api_key") or os.environ.get("ANTHROPIC_API_KEY")
    if not api_key:
        raise MissingCredentials(
            "no Anthropic API key: set cma:anthropicApiKey or ANTHROPIC_API_KEY"
        )
    base_url = (
        props.get("anthropic_base_url")
        or os.environ.get("ANTHROPIC_BASE_URL")
        or DEFAULT_ANTHROPIC_BASE_URL
    )
    return AnthropicCredentials(base_url=str(base_url), api_key=str(api_key))


def blaxel_credentials(props: Mapping[str, Any]) -> BlaxelCredentials:
    """Credentials from the resource inputs, else BL_API_KEY / BL_WORKSPACE (at call time)."""
    api_key = props.get("blaxel_api_key") or os.environ.get("BL_API_KEY")
    workspace = props.get("blaxel_workspace") or os.environ.get("BL_WORKSPACE")
    if not api_key or not workspace:
        raise MissingCredentials(
            "no Blaxel credentials: set blaxel:apiKey and blaxel:workspace "
            "(or BL_API_KEY and BL_WORKSPACE)"
        )
    base_url = props.get("blaxel_base_url") or DEFAULT_BLAXEL_BASE_URL
    return BlaxelCredentials(base_url=str(base_url), workspace=str(workspace), api_key=str(api_key))


def pick(props: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """The named fields of `props` (absent ones as None), for outputs and comparisons."""
    return {name: props.get(name) for name in fields}


def changed_fields(
    olds: Mapping[str, Any], news: Mapping[str, Any], fields: Iterable[str]
) -> list[str]:
    """The fields whose value differs between old outputs and new inputs (pure)."""
    return [name for name in fields if olds.get(name) != news.get(name)]


def field_diff(
    olds: Mapping[str, Any],
    news: Mapping[str, Any],
    fields: Iterable[str],
    replace_fields: Iterable[str] = (),
) -> DiffResult:
    """A DiffResult naming exactly the changed fields, replacing only for `replace_fields`."""
    changed = changed_fields(olds, news, fields)
    replacing = set(replace_fields)
    replaces = [name for name in changed if name in replacing]
    return DiffResult(changes=bool(changed), replaces=replaces, stables=[])


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
        return model.model_validate(news).model_dump()
    except ValueError:
        return news


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


class Props(pydantic.BaseModel):
    """Base of each provider's typed inputs: unknown extras (e.g. __provider) are ignored."""

    model_config = pydantic.ConfigDict(extra="ignore")


def with_secret_outputs(
    opts: pulumi.ResourceOptions | None, *fields: str
) -> pulumi.ResourceOptions:
    """`opts` plus `fields` marked as secret outputs (credentials stay encrypted in state)."""
    extra = pulumi.ResourceOptions(additional_secret_outputs=list(fields))
    return pulumi.ResourceOptions.merge(opts, extra)


REPO_ROOT = str(Path(__file__).resolve().parent.parent.parent)


def _load_provider(root: str, module: str, name: str) -> Any:
    """Runs in the provider host: make `root` importable, then build the provider afresh."""
    import importlib
    import sys

    if root not in sys.path:
        sys.path.insert(0, root)
    return getattr(importlib.import_module(module), name)()


def _by_value(fn: Any) -> Any:
    # dill pickles a function of `__main__` by value: the provider host, whose working dir is
    # infra/ and whose sys.path lacks the repository root, can run it without importing us.
    copy = types.FunctionType(fn.__code__, {"__builtins__": __builtins__}, fn.__name__)
    copy.__module__ = "__main__"
    return copy


class PortableProvider(ResourceProvider):
    """A provider pickled as "import this class from the repository", never by value.

    State then holds only the module and class name: no client, key or config travels with
    it, and state written by an older version loads the current code.
    """

    def __reduce__(self) -> tuple[Any, tuple[str, str, str]]:
        cls = type(self)
        return (_by_value(_load_provider), (REPO_ROOT, cls.__module__, cls.__qualname__))
