"""The Altcraft soak, bounded for the suite: 4,000 profiles, a trigger on every import,
every fault kind plus 10% random faults. ``python -m benchmarks.soak --provider altcraft``
runs the same code bigger."""

from __future__ import annotations

from pathlib import Path

from benchmarks.soak_altcraft import soak_altcraft
from sync_engine.emulator import SURVIVABLE_KINDS


async def test_a_trigger_sync_under_every_fault_converges_and_sends_no_campaign_twice(
    tmp_path: Path,
) -> None:
    """Converged, zero duplicate campaigns, exactly one per changed profile, every campaign
    accounted for by an applied or an unknown row, and every report adds up."""
    result = await soak_altcraft(tmp_path, contacts=4000, probability=0.1)
    figures = result.figures()
    print(figures)  # the figures, for `pytest -s`
    print(f"survived all {result.injected} injected faults")
    assert result.problems == []
    assert set(result.faults) == set(SURVIVABLE_KINDS)
    assert result.duplicates == 0
    assert result.triggered == 3000  # the absent half and the stale quarter
    first = result.reports[0]
    assert (first.plan.to_insert, first.plan.to_update, first.plan.unchanged) == (2000, 1000, 1000)
    assert first.plan.to_remove == result.removed == 80
    assert result.unknown > 0  # lost trigger answers happened and were reported, not resent
    assert result.converged is not None
    assert result.converged.failed == 0
    assert result.per_profile == {0: 1000, 1: 3000}
    assert result.reports[0].rates["slowdowns"] >= 1  # 100 calls/s configured, 40 taken
    assert result.wall_seconds < 30
