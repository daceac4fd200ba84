"""The Blaxel half of the emulator: control plane, sandbox APIs, previews and image pushes.

`BlaxelBackend` (models.py) holds the state; `blaxel_routes(backend)` (routes.py) serves it,
mounted under `/blaxel`: `/blaxel/v0/...` is the control plane, `/blaxel/sandboxes/{name}` a
sandbox's own API (its `metadata.url`), `/blaxel/previews/{sandbox}/{preview}` a preview URL,
`/blaxel/uploads/{name}` where an image's build context is uploaded.
"""

from emulator.blaxel.models import BlaxelBackend
from emulator.blaxel.routes import blaxel_routes

__all__ = ["BlaxelBackend", "blaxel_routes"]
