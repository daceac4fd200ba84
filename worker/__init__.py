"""The worker image's program: serve one claimed work item with the SDK's EnvironmentWorker.

`python -m worker` (started by the orchestrator inside a session's worker sandbox) reads only
ANTHROPIC_BASE_URL, ANTHROPIC_ENVIRONMENT_ID, ANTHROPIC_SESSION_ID, ANTHROPIC_WORK_ID and
ANTHROPIC_WORK_SECRET; it authenticates with the per-item secret alone. `worker.image` declares
the image it runs in.
"""
