"""A random bearer token generated once per stack (the orchestrator's `/status` and `/metrics`).

Generated at create and kept in state as a secret output: stable across `up`s, new only
when the resource is replaced (`pulumi up --replace`).
"""

from __future__ import annotations

import secrets
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ReadResult

from infra.providers.base import CmaProvider, CmaResource, Props

TOKEN_BYTES = 32


class TokenProps(Props):
    """Inputs of a generated token: only its purpose (a label)."""

    purpose: str


class TokenProvider(CmaProvider):
    """Generates the token locally; no platform call."""

    props_model = TokenProps

    def create(self, props: dict[str, Any]) -> CreateResult:
        p: TokenProps = self.validated(props)
        return CreateResult(
            f"token-{p.purpose}", {**p.model_dump(), "token": secrets.token_urlsafe(TOKEN_BYTES)}
        )

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props, inputs=self.validated(props).model_dump())


class GeneratedToken(CmaResource, module="cma", name="GeneratedToken"):
    """A secret token, generated once; `token` is secret."""

    provider_class = TokenProvider
    output_names = ("token",)
    secret_output_names = ("token",)

    token: pulumi.Output[str]
