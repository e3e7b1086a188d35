"""Small runs of every benchmark's code, checked for what they compute, not for speed."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from benchmarks import bench_apply_memory, bench_export, bench_plan, bench_ratelimit
from benchmarks.datasets import export_file, write_planning_files
from benchmarks.peer_pandas import peer_plan


def test_bench_plan_both_planners_agree_and_the_peer_finds_the_same_removals(
    tmp_path: Path,
) -> None:
    """20k contacts: identical dry-run reports from both planners; the peer's removals match."""
    files = write_planning_files(tmp_path, 20_000)
    columnar = anyio.run(lambda: bench_plan.plan_files(files, columnar=True)).to_dict()
    rows = anyio.run(lambda: bench_plan.plan_files(files, columnar=False)).to_dict()
    for report in (columnar, rows):
        report.pop("stages")
        report.pop("rates")  # timings too: calls per second
    assert columnar == rows
    plan = columnar["plan"]
    assert plan["local_rows"] > 20_000 * 0.99
    assert plan["to_insert"] == 100  # 0.5% new
    assert plan["kept_by_consent"] > 0
    peer = peer_plan(files.local, files.export)
    assert peer["removals"] == plan["to_remove"] + plan["kept_from_removal"]


def test_bench_ratelimit_saturates_and_compares_with_the_naive_client(tmp_path: Path) -> None:
    saturated = bench_ratelimit.saturate(200, 6, 1.0, directory=tmp_path)
    assert (saturated["batches"], saturated["inserted"]) == (6, 3000)
    assert saturated["utilisation"] > 0
    free = bench_ratelimit.unlimited(4, directory=tmp_path)
    assert free["batches"] == free["naive"]["batches"] == 4
    assert free["contacts"] == free["naive"]["contacts"] == 2000
    assert 0 < free["wire_cpu"] <= free["apply_cpu"]


def test_bench_apply_memory_sends_every_insert(tmp_path: Path) -> None:
    result = bench_apply_memory.apply_all(2_000, directory=tmp_path)
    assert (result["inserted"], result["batches"]) == (2_000, 4)
    assert result["plan_rss_mb"] > 0
    assert result["apply_rss_mb"] > 0


@pytest.mark.parametrize("step", ["download", "rows", "blocks"])
def test_bench_export_steps_read_the_whole_file(tmp_path: Path, step: str) -> None:
    path = export_file(2, directory=tmp_path)
    result = bench_export.STEPS[step](path)
    assert result["bytes"] == path.stat().st_size
    if step != "download":
        lines = path.read_bytes().count(b"\n") - 1  # the header
        assert result["rows"] == lines
