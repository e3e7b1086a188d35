"""Issue #7, figure 2: saturating the provider's rate limit, and speed without one.

A. The emulator (its own process) allows R calls per second, counted over a sliding
   window (R x 10 calls per 10 s by default; UniSender's own is 1200 per 60 s, the
   same rate); the engine syncs N x 500 new contacts, i.e. N importContacts batches. The apply stage
   should take N/R seconds, the whole run N/R plus the export wait; utilisation is the
   share of the calls the window allowed during the apply stage that were made.
B. No limit: batches/s, and the engine's CPU per contact sent, in all and in building
   request bodies plus parsing answers; then a naive reference client (``naive_client``:
   the same batches one after another) against a fresh emulator, and the ratio.

    python -m benchmarks.bench_ratelimit [--rate R] [--batches N] [--free-batches M]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import anyio

from ._apply import WireTimer, run_sync
from ._common import API_KEY, emulator_process, machine
from .datasets import DATA_DIR, insert_file
from .naive_client import send_all

__all__ = ["saturate", "unlimited"]

FIELDS = ("Name", "City", "Segment")
BATCH = 500


def saturate(
    rate: int, batches: int, window: float, *, directory: Path = DATA_DIR
) -> dict[str, Any]:
    """Part A: one run against an emulator limited to ``rate`` calls per second."""
    local = insert_file(batches * BATCH, directory=directory)
    limit = round(rate * window)
    with emulator_process(rate_limit=limit, window=window, fields=FIELDS) as emulator:
        run = anyio.run(lambda: run_sync(local, emulator.base_url, rate_limit=limit, period=window))
    calls = run.report.calls
    imports = calls.get("importContacts", 0)
    # The achieved call rate over the apply stage as a share of R (a sliding window lets
    # a little more through at the very start, so a short run can pass 100%).
    allowed = rate * run.apply_wall
    return {
        "batches": run.report.batches,
        "imports": imports,
        "retries": sum(run.report.retries.values()),
        "apply": run.apply_wall,
        "export": run.export_wait,
        "wall": run.wall,
        "ideal": batches / rate,
        "utilisation": imports / allowed,
        "inserted": run.report.inserted,
        "stages": run.report.stages,
    }


def unlimited(batches: int, *, directory: Path = DATA_DIR) -> dict[str, Any]:
    """Part B: the engine and the naive client, each against a fresh unlimited emulator."""
    local = insert_file(batches * BATCH, directory=directory)
    with emulator_process(fields=FIELDS) as emulator, WireTimer() as wire:
        run = anyio.run(lambda: run_sync(local, emulator.base_url))
    with emulator_process(fields=FIELDS) as emulator:
        naive = send_all(local, emulator.base_url, API_KEY, size=BATCH)
    sent = run.report.inserted + run.report.rejected
    return {
        "batches": run.report.batches,
        "contacts": sent,
        "apply": run.apply_wall,
        "apply_cpu": run.apply_cpu,
        "wire_cpu": wire.seconds,
        "naive": naive,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=int(os.environ.get("BENCH_RATE", 20)))
    parser.add_argument("--batches", type=int, default=int(os.environ.get("BENCH_BATCHES", 400)))
    parser.add_argument("--window", type=float, default=10.0, help="seconds")
    parser.add_argument("--free-batches", type=int, default=200)
    args = parser.parse_args()
    print(machine())
    a = saturate(args.rate, args.batches, args.window)
    target = a["ideal"] + a["export"]
    print(
        f"A. limit {args.rate} calls/s ({round(args.rate * args.window)} per {args.window:g} s),"
        f" {a['batches']} batches ({a['inserted']:,} contacts):"
        f" apply {a['apply']:.2f} s for N/R = {a['ideal']:.2f} s;"
        f" run {a['wall']:.2f} s vs N/R + export wait {target:.2f} s"
        f" ({a['wall'] / target - 1:+.1%}); utilisation {a['utilisation']:.1%};"
        f" {a['retries']} retries"
    )
    print("   stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in a["stages"].items()))
    b = unlimited(args.free_batches)
    per_contact = 1e6 / b["contacts"]
    naive = b["naive"]
    engine_rate = b["batches"] / b["apply"]
    naive_rate = naive["batches"] / naive["seconds"]
    print(
        f"B. no limit, {b['batches']} batches ({b['contacts']:,} contacts):"
        f" {engine_rate:.1f} batches/s; engine CPU {b['apply_cpu'] * per_contact:.1f} us per"
        f" contact in the apply stage, of which {b['wire_cpu'] * per_contact:.1f} us"
        " building request bodies and parsing answers"
    )
    print(
        f"   REFERENCE naive client (one batch after another, urllib):"
        f" {naive_rate:.1f} batches/s, {naive['cpu'] * 1e6 / naive['contacts']:.1f} us CPU"
        f" per contact; ratio engine/naive {engine_rate / naive_rate:.2f}x"
    )


if __name__ == "__main__":
    main()
