"""`python -m emulator --port N [--data-dir D]`: serve the emulator on loopback until stopped."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from pathlib import Path

from emulator.server import EmulatorServer


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="loopback port (0: any free one)")
    parser.add_argument("--data-dir", type=Path, default=None, help="sandbox files and images")
    args = parser.parse_args()
    os.environ.setdefault("DO_NOT_TRACK", "1")

    server = EmulatorServer(port=args.port, data_dir=args.data_dir).start()
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
