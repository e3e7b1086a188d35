"""REFERENCE PEER, not sync-engine: the straightforward pandas way to diff the two files.

Reads both CSVs whole, merges them on the e-mail key and compares the mapped columns.
It does less than the engine (no e-mail or phone validation, no phone normalisation, no
consent rules, no row-level error reports, everything in memory) and exists only so
that ``bench_plan`` can print how the engine compares with what a data engineer would
write first. Run alone: ``python -m benchmarks.peer_pandas LOCAL.csv EXPORT.csv``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd

from ._common import peak_rss_mb

__all__ = ["peer_plan"]

# local column -> export column, as the engine's mapping pairs them.
PAIRS = {"phone": "phone", "name": "Name", "city": "City", "segment": "Segment", "tags": "tags"}


def _tags(column: pd.Series) -> pd.Series:
    return column.str.replace(" ", "").str.split(",").map(lambda t: ",".join(sorted(t)))


def peer_plan(local_path: Path, export_path: Path) -> dict[str, int]:
    """Inserts, updates and removals by a plain merge (keys lower-cased and trimmed)."""
    local = pd.read_csv(local_path, dtype=str, keep_default_na=False)
    remote = pd.read_csv(export_path, dtype=str, keep_default_na=False)
    local["key"] = local["email"].str.strip().str.lower()
    remote["key"] = remote["email"].str.strip().str.lower()
    local = local.drop_duplicates("key")
    local["tags"] = _tags(local["tags"])
    remote["tags"] = _tags(remote["tags"])
    merged = local.merge(remote, on="key", how="outer", suffixes=("", "_r"), indicator=True)
    both = merged[merged["_merge"] == "both"]
    changed = pd.Series(False, index=both.index)
    for left, right in PAIRS.items():
        other = right + "_r" if right in local.columns else right
        changed |= both[left].str.strip() != both[other].str.strip()
    return {
        "inserts": int((merged["_merge"] == "left_only").sum()),
        "updates": int(changed.sum()),
        "removals": int((merged["_merge"] == "right_only").sum()),
    }


def main() -> None:
    local, export = Path(sys.argv[1]), Path(sys.argv[2])
    started, cpu = time.perf_counter(), time.process_time()
    counts = peer_plan(local, export)
    result = {
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "peak_rss_mb": peak_rss_mb(),
        **counts,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
