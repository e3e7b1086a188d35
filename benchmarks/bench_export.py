"""Issue #7, figure 4: a 1 GB export streamed from the emulator to disk, then parsed.

The emulator (its own process) serves a pre-generated export file; the engine's
UniSender provider runs the export task and streams the file to disk. Then the file is
parsed twice: by the row reader (``iter_export_rows``, which every export format goes
through) and by the columnar block reader (what the planner uses for plain CSV). Each
step runs in a fresh process, on the 1 GB file and on a ~100 MB one: peak RSS must not
grow with the file.

    python -m benchmarks.bench_export [--megabytes N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from sync_engine import UniSenderConfig, parse_config
from sync_engine.columnar._blocks import export_layout
from sync_engine.providers.export_file import iter_export_rows
from sync_engine.providers.unisender import UniSenderProvider

from ._common import API_KEY, emulator_process, machine, peak_rss_mb, run_child
from .datasets import EXPORT_FIELDS, LIST_ID, MAPPING, export_file

__all__ = ["download", "parse_blocks", "parse_rows"]

FIELDS = ("Name", "City", "Segment")


async def _download(base_url: str, work_dir: Path) -> int:
    config = parse_config(
        {
            "source": {"type": "csv", "path": "unused.csv"},
            "provider": {
                "base_url": base_url,
                "api_key": API_KEY,
                "list_id": LIST_ID,
                "export_poll_interval": 0.02,
                "export_poll_max": 0.05,
                "timeout": 120.0,
            },
            "mapping": MAPPING,
        }
    )
    async with aiohttp.ClientSession() as session:
        assert isinstance(config.provider, UniSenderConfig)
        provider = UniSenderProvider(config.provider, session=session, work_dir=work_dir)
        snapshot = await provider.snapshot(list(EXPORT_FIELDS))
        return snapshot.path.stat().st_size


def download(path: Path) -> dict[str, Any]:
    """Export task, then the file streamed to a scratch directory; bytes and seconds."""
    with (
        emulator_process(export_file=path, fields=FIELDS) as emulator,
        tempfile.TemporaryDirectory(dir=path.parent) as scratch,
    ):
        started = time.perf_counter()
        size = anyio.run(_download, emulator.base_url, Path(scratch))
        seconds = time.perf_counter() - started
    return {"bytes": size, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def parse_rows(path: Path) -> dict[str, Any]:
    started = time.perf_counter()
    rows = sum(1 for _ in iter_export_rows(path, expected_fields=EXPORT_FIELDS))
    seconds = time.perf_counter() - started
    return {
        "bytes": path.stat().st_size,
        "rows": rows,
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


def parse_blocks(path: Path) -> dict[str, Any]:
    started = time.perf_counter()
    layout = export_layout(path, expected=EXPORT_FIELDS)
    rows = sum(block.frame.height for block in layout.blocks())
    seconds = time.perf_counter() - started
    return {
        "bytes": path.stat().st_size,
        "rows": rows,
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


STEPS = {"download": download, "rows": parse_rows, "blocks": parse_blocks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=1000)
    parser.add_argument("--small", type=int, default=100, help="the comparison file, MB")
    parser.add_argument("--child", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        machine()
        print(json.dumps(STEPS[args.child](args.file)))
        return
    print(machine())
    started = time.perf_counter()
    files = {size: export_file(size) for size in (args.small, args.megabytes)}
    print(f"data ready in {time.perf_counter() - started:.1f} s (generated on first use)")
    for step, label in (
        ("download", "stream to disk"),
        ("rows", "parse, row reader"),
        ("blocks", "parse, block reader"),
    ):
        results = {
            size: run_child("benchmarks.bench_export", ["--child", step, "--file", str(path)])
            for size, path in files.items()
        }
        big, small = results[args.megabytes], results[args.small]
        print(
            f"{label:20s}: {big['bytes'] / 1e6 / big['seconds']:7.1f} MB/s"
            f" ({big['bytes'] / 1e9:.2f} GB in {big['seconds']:.1f} s);"
            f" peak RSS {big['peak_rss_mb']:.0f} MB at {big['bytes'] / 1e9:.2f} GB vs"
            f" {small['peak_rss_mb']:.0f} MB at {small['bytes'] / 1e9:.2f} GB"
        )


if __name__ == "__main__":
    main()
