"""Credentials as resource inputs: base URLs in the clear, keys always as secret Outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi


@dataclass(frozen=True)
class AnthropicAccess:
    """Where the Anthropic API is and its key (a secret Output)."""

    base_url: str
    api_key: pulumi.Input[str]

    def props(self) -> dict[str, Any]:
        return {"anthropic_base_url": self.base_url, "anthropic_api_key": _secret(self.api_key)}


@dataclass(frozen=True)
class BlaxelAccess:
    """The Blaxel control plane, the workspace and its key (a secret Output)."""

    base_url: str
    workspace: str
    api_key: pulumi.Input[str]

    def props(self) -> dict[str, Any]:
        return {
            "blaxel_base_url": self.base_url,
            "blaxel_workspace": self.workspace,
            "blaxel_api_key": _secret(self.api_key),
        }


def _secret(value: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.secret(value)
