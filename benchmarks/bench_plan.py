"""Issue #7, figure 1: plan 1,000,000 local contacts against a 1,000,000-contact export.

The local CSV has six mapped fields (phone and tags among them) and the export 1%
changed, 0.5% new and 0.5% removed contacts (see ``datasets``). Each measurement runs
in a fresh process: ``SyncEngine.plan()`` against an in-process emulator that serves the
export file; the planning time is the engine's own "index" + "plan" stages (read both
sides, normalise, diff, write the plan), the RSS is the process's peak. Also measured:
the row path (``SyncEngine(columnar=False)``, on fewer contacts: it is ~15x slower) and
the pandas reference peer (``peer_pandas``), with the ratio engine/peer.

    python -m benchmarks.bench_plan [--contacts N] [--repeat K] [--row-contacts M]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import anyio

from sync_engine import SyncEngine, SyncReport, parse_config
from sync_engine.emulator import EmulatorOptions, UniSenderEmulator
from sync_engine.testing import running_emulator

from ._common import API_KEY, current_rss_mb, machine, peak_rss_mb, run_child
from .datasets import LIST_ID, MAPPING, PlanningFiles, planning_files

__all__ = ["plan_files"]


def _config(files: PlanningFiles, base_url: str, work_dir: Path | None) -> Any:
    return parse_config(
        {
            "source": {"type": "csv", "path": str(files.local)},
            "provider": {
                "base_url": base_url,
                "api_key": API_KEY,
                "list_id": LIST_ID,
                "export_poll_interval": 0.02,
                "export_poll_max": 0.05,
            },
            "sync": {"mode": "mirror"},
            "mapping": MAPPING,
            **({"work_dir": str(work_dir)} if work_dir else {}),
        }
    )


async def plan_files(files: PlanningFiles, *, columnar: bool, dry_run: bool = True) -> SyncReport:
    """One engine plan (or run) of the pair against an emulator serving the export."""
    emulator = UniSenderEmulator(
        api_key=API_KEY,
        options=EmulatorOptions(
            export_file=files.export,
            export_processing_after=0.0,
            export_ready_after=0.01,
            rate_limit=1_000_000,
            request_log_size=100_000,
            max_body_bytes=64 * 1024 * 1024,
        ),
    )
    emulator.add_list("Bench")
    for name in ("Name", "City", "Segment"):
        emulator.add_field(name)
    try:
        async with running_emulator(emulator) as base_url:
            config = _config(files, base_url, files.local.parent)
            async with SyncEngine(config, columnar=columnar) as engine:
                if dry_run:
                    return await engine.plan()
                return await engine.run(allow_deletes=len(emulator.contacts()) + files.contacts)
    finally:
        await emulator.aclose()


def _child(contacts: int, columnar: bool) -> None:
    files = planning_files(contacts)
    before = current_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    report = anyio.run(lambda: plan_files(files, columnar=columnar))
    result = {
        "wall": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "planning": report.stages.get("index", 0.0) + report.stages.get("plan", 0.0),
        "stages": report.stages,
        "rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
        "plan": report.to_dict()["plan"],
    }
    print(json.dumps(result))


def _engine(contacts: int, columnar: bool) -> dict[str, Any]:
    return run_child(
        "benchmarks.bench_plan",
        ["--child", "columnar" if columnar else "rows", "--contacts", str(contacts)],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--contacts", type=int, default=int(os.environ.get("BENCH_CONTACTS", 1_000_000))
    )
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", 3)))
    parser.add_argument("--row-contacts", type=int, default=100_000, help="0 skips the row path")
    parser.add_argument("--no-peer", action="store_true", help="skip the pandas peer")
    parser.add_argument("--child", choices=["columnar", "rows"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.contacts, args.child == "columnar")
        return
    print(machine())
    started = time.perf_counter()
    files = planning_files(args.contacts)
    print(
        f"data: {args.contacts:,} contacts, local {files.local.stat().st_size / 1e6:.0f} MB +"
        f" export {files.export.stat().st_size / 1e6:.0f} MB ({time.perf_counter() - started:.1f} s"
        " incl. generation)"
    )
    runs = [_engine(args.contacts, columnar=True) for _ in range(args.repeat)]
    best = min(runs, key=lambda r: r["planning"])
    seconds, rss = best["planning"], max(r["peak_rss_mb"] for r in runs)
    plan = best["plan"]
    rows = plan["local_rows"] + plan["remote_total"] + plan["remote_invalid"]
    each = ", ".join(f"{r['planning']:.2f}" for r in runs)
    print(
        f"engine (columnar): planning {seconds:.2f} s best of {len(runs)} ({each});"
        f" cpu {best['cpu']:.2f} s for the whole dry run"
    )
    print(
        f"  {args.contacts / seconds:,.0f} contacts/s ({rows / seconds:,.0f} rows read/s);"
        f" peak RSS {rss:.0f} MB = {rss * 2**20 / args.contacts:.0f} bytes/contact"
        f" (process start {best['rss_before_mb']:.0f} MB)"
    )
    print(
        f"  plan: {plan['to_insert']:,} inserts, {plan['to_update']:,} updates,"
        f" {plan['to_remove']:,} removals, {plan['unchanged']:,} unchanged,"
        f" {plan['kept_by_consent']:,} kept by consent, {plan['invalid_local']} invalid,"
        f" {plan['duplicates']} duplicates"
    )
    target_s, target_mb = 3.0 * args.contacts / 1e6, 300 * max(1.0, args.contacts / 1e6)
    if args.contacts >= 10_000_000:
        target_s, target_mb = 30.0 * args.contacts / 1e7, 2048.0 * args.contacts / 1e7
    print(
        f"  targets: <= {target_s:.0f} s {'met' if seconds <= target_s else 'NOT met'},"
        f" <= {target_mb:.0f} MB {'met' if rss <= target_mb else 'NOT met'}"
    )
    if args.row_contacts:
        row = _engine(args.row_contacts, columnar=False)
        rate = args.row_contacts / row["planning"]
        print(
            f"row path on {args.row_contacts:,} contacts: {row['planning']:.2f} s"
            f" ({rate:,.0f} contacts/s, peak RSS {row['peak_rss_mb']:.0f} MB);"
            f" columnar is {seconds and (args.contacts / seconds) / rate:.1f}x faster per contact"
        )
    if not args.no_peer:
        peer = run_child("benchmarks.peer_pandas", [str(files.local), str(files.export)])
        print(
            f"REFERENCE PEER (pandas, not the engine): {peer['seconds']:.2f} s,"
            f" peak RSS {peer['peak_rss_mb']:.0f} MB ({peer['inserts']:,} inserts,"
            f" {peer['updates']:,} updates, {peer['removals']:,} removals)"
        )
        print(f"ratio engine/peer: {seconds / peer['seconds']:.2f} (below 1: the engine is faster)")


if __name__ == "__main__":
    main()
