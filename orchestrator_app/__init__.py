"""The orchestrator: a Starlette app that turns signed CMA webhooks into one worker sandbox per session.

Modules: `settings` (environment, prefix ORCH_), `webhooks` (verify, record, 200), `dispatch`
(warm a worker sandbox, then claim the work, then start the worker), `recovery` (a periodic
drain for webhooks that never arrived), `workers` (worker sandbox names and specs, pure),
`sandboxes` (their lifecycle through the Blaxel SDK, retries), `health` (`/health`, `/ready`),
`logging` (one JSON object a line, secrets redacted), `app` (routes, lifespan, error mapping),
`image` (the orchestrator image, for the Pulumi provider), `boot` (the image's entrypoint: it
starts the server again after Blaxel rebuilds the sandbox).

Exceptions (all in `orchestrator_app.errors`):

    OrchestratorError
    ├── WebhookRejected      401: missing, forged or stale signature
    ├── MalformedWebhook     400: signed, but not an event we can read
    ├── PayloadTooLarge      413: a body larger than any event, refused before it is read whole
    ├── NotConfigured        503: a setting this route needs is missing
    └── BlaxelError          a Blaxel call failed (`transient` says whether a retry may help)
"""

from __future__ import annotations

import os

# The Blaxel SDK reports errors and usage to its vendors unless told not to, and it reads this
# when it is first imported: set it before any submodule can import blaxel.
os.environ["DO_NOT_TRACK"] = "1"
