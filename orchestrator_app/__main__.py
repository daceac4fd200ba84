"""`python -m orchestrator_app`: serve the orchestrator with uvicorn on 0.0.0.0:$ORCH_PORT.

The port is ORCH_PORT, else PORT (the sandbox runtime's), else 8000; ORCH_HOST moves the
address (tests bind 127.0.0.1). Settings are read once,
here; a setting that does not validate ends the process with a message naming the field.
"""

from __future__ import annotations

import gc
import logging
import sys

import uvicorn
from pydantic import ValidationError

from orchestrator_app.app import create_app
from orchestrator_app.logging import configure_logging
from orchestrator_app.settings import Settings

# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms). The
# web loop gives the GIL up at each socket call of a webhook answer; with the dispatch thread
# busy, each of those waited up to the whole interval to get it back.
GIL_SWITCH_INTERVAL_S = 0.0005


def main() -> int:
    redactor = configure_logging()
    try:
        settings = Settings.from_env()
    except ValidationError as exc:
        problems = [
            f"ORCH_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        ]
        logging.getLogger("orchestrator_app").error(
            "invalid settings", extra={"problems": problems}
        )
        return 2
    redactor.add(settings.secret_values())
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    logging.getLogger().setLevel(settings.log_level.upper())
    app = create_app(settings)
    # Everything imported so far lives as long as the process: out of the collector's sight, a
    # full collection scans only what dispatch made since (measured: 200 ms pauses otherwise).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep our JSON handler for uvicorn's loggers too
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
