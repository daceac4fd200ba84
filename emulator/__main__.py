"""`python -m emulator --port N [--data-dir D] [--fast] [--sandbox-deploy-s S]
[--preview-url-form F]`: serve the emulator on loopback until stopped (realistic platform
latencies unless told otherwise)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from pathlib import Path

from emulator.config import PREVIEW_URL_FORMS, Timing, fast_timing
from emulator.server import EmulatorServer


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="loopback port (0: any free one)")
    parser.add_argument("--data-dir", type=Path, default=None, help="sandbox files and images")
    parser.add_argument("--fast", action="store_true", help="test latencies (fast_timing)")
    parser.add_argument(
        "--sandbox-deploy-s", type=float, default=None, help="DEPLOYING time of a new sandbox"
    )
    parser.add_argument(
        "--preview-url-form",
        choices=PREVIEW_URL_FORMS,
        default="scheme_less",
        help="how previews' spec.url is written (protocol_relative: //host/...)",
    )
    args = parser.parse_args()
    os.environ.setdefault("DO_NOT_TRACK", "1")

    timing = fast_timing() if args.fast else Timing()
    if args.sandbox_deploy_s is not None:
        timing.update(sandbox_deploy_s=args.sandbox_deploy_s)
    server = EmulatorServer(
        port=args.port,
        data_dir=args.data_dir,
        timing=timing,
        preview_url_form=args.preview_url_form,
    ).start()
    config = server.config
    print(
        json.dumps(
            {
                "anthropic_base_url": config.anthropic_base_url,
                "blaxel_base_url": config.blaxel_base_url,
                "console_url": config.console_url,
                "anthropic_api_key": config.anthropic_api_key,
                "blaxel_api_key": config.blaxel_api_key,
                "blaxel_workspace": config.blaxel_workspace,
            }
        ),
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
