"""A UniSender emulator process for benchmarks: prints its base URL, serves until killed.

Rate limits are given per window (``--rate-limit 20 --window 1`` is 20 calls/s); the
default is effectively unlimited. The synced list has id 1, and ``--field`` creates
user fields.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from sync_engine.emulator import EmulatorOptions, UniSenderEmulator
from sync_engine.testing import serve_forever

from ._common import API_KEY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate-limit", type=int, default=1_000_000)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--export-file", type=Path)
    parser.add_argument("--field", action="append", default=[])
    args = parser.parse_args()
    options = EmulatorOptions(
        rate_limit=args.rate_limit,
        rate_limit_window=args.window,
        export_file=args.export_file,
        export_processing_after=0.01,
        export_ready_after=0.05,
        max_body_bytes=64 * 1024 * 1024,
    )
    emulator = UniSenderEmulator(api_key=API_KEY, options=options)
    emulator.add_list("Bench")
    for name in args.field:
        emulator.add_field(name)

    def ready(base_url: str) -> None:
        print(base_url, flush=True)

    anyio.run(lambda: serve_forever(emulator, host="127.0.0.1", port=0, ready=ready))


if __name__ == "__main__":
    main()
