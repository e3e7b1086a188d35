"""Issue #7, figure 3: memory stays flat in the size of the plan.

A first full sync of 1,000,000 new contacts (2,000 importContacts batches) against an
emulator in its own process, limit off. This process samples its own RSS and keeps the
peak per stage: planning (which spools the million changes to disk) and applying
(which holds only the batches in flight: ``concurrency`` being sent plus as many queued).

    python -m benchmarks.bench_apply_memory [--contacts N]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import anyio

from ._apply import run_sync
from ._common import RssSampler, emulator_process, machine, run_child
from .datasets import DATA_DIR, insert_file

__all__ = ["apply_all"]

FIELDS = ("Name", "City", "Segment")
CONCURRENCY = 4
BATCH = 500


def apply_all(contacts: int, *, directory: Path = DATA_DIR) -> dict[str, Any]:
    """One full sync of ``contacts`` new contacts; RSS peaks by stage."""
    local = insert_file(contacts, directory=directory)
    with RssSampler() as sampler, emulator_process(fields=FIELDS) as emulator:

        def on_stage(name: str) -> None:
            sampler.phase = name

        run = anyio.run(
            lambda: run_sync(local, emulator.base_url, concurrency=CONCURRENCY, on_stage=on_stage)
        )
    peaks = sampler.peaks
    return {
        "inserted": run.report.inserted,
        "batches": run.report.batches,
        "stages": run.report.stages,
        "plan_rss_mb": max(peaks.get("index", 0.0), peaks.get("plan", 0.0)),
        "apply_rss_mb": peaks.get("apply", 0.0),
        "start_rss_mb": peaks.get("start", 0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--contacts", type=int, default=int(os.environ.get("BENCH_INSERTS", 1_000_000))
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        machine()  # quiets the logs
        print(json.dumps(apply_all(args.contacts)))
        return
    print(machine())
    result = run_child(
        "benchmarks.bench_apply_memory", ["--child", "--contacts", str(args.contacts)]
    )
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in result["stages"].items())
    print(f"{result['inserted']:,} inserts in {result['batches']:,} batches ({stages})")
    in_flight = 2 * CONCURRENCY
    print(
        f"peak RSS while planning {result['plan_rss_mb']:.0f} MB; while applying"
        f" {result['apply_rss_mb']:.0f} MB (at most {in_flight} batches of {BATCH} in memory:"
        f" {CONCURRENCY} in flight, {CONCURRENCY} queued); difference"
        f" {result['apply_rss_mb'] - result['plan_rss_mb']:+.0f} MB"
    )


if __name__ == "__main__":
    main()
