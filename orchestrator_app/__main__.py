"""`python -m orchestrator_app`: serve the orchestrator with uvicorn on 0.0.0.0:$ORCH_PORT.

The port is ORCH_PORT, else PORT (the sandbox runtime's), else 8000; ORCH_HOST moves the
address (tests bind 127.0.0.1). Settings are read once,
here; a setting that does not validate ends the process with a message naming the field.
"""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from orchestrator_app.app import create_app
from orchestrator_app.logging import configure_logging
from orchestrator_app.settings import Settings


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
    logging.getLogger().setLevel(settings.log_level.upper())
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep our JSON handler for uvicorn's loggers too
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
