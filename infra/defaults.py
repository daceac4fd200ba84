"""The platforms' default API URLs and the environment variables credentials fall back to.

A module of constants with no imports, shared by the config model (infra/config.py) and the
providers: the dynamic provider host reads these without building the config model.
"""

DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
DEFAULT_BLAXEL_BASE_URL = "https://api.blaxel.ai/v0"
# Environment variables a credential may come from when its key is not set.
ENV_FALLBACKS = {
    "cma:anthropicApiKey": "ANTHROPIC_API_KEY",
    "blaxel:apiKey": "BL_API_KEY",
    "blaxel:workspace": "BL_WORKSPACE",
}
