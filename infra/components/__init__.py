"""Component resources: the stack's building blocks, usable from any Pulumi program.

from infra.components import CmaBlaxelStack, CmaBlaxelStackArgs
"""

from infra.components.agents import AgentPlatform, AgentPlatformArgs
from infra.components.images import ImageSpec, SandboxImages, SandboxImagesArgs
from infra.components.orchestrator import Orchestrator, OrchestratorArgs
from infra.components.stack import CmaBlaxelStack, CmaBlaxelStackArgs

__all__ = [
    "AgentPlatform",
    "AgentPlatformArgs",
    "CmaBlaxelStack",
    "CmaBlaxelStackArgs",
    "ImageSpec",
    "Orchestrator",
    "OrchestratorArgs",
    "SandboxImages",
    "SandboxImagesArgs",
]
