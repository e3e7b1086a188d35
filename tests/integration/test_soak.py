"""The soak, bounded for the suite: 5,000 contacts under every fault kind plus 10% random faults.

``make soak`` runs the same code at 200,000 contacts (benchmarks/soak.py).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.soak import soak
from sync_engine.emulator import SURVIVABLE_KINDS


async def test_a_sync_under_every_fault_converges_and_its_report_adds_up(tmp_path: Path) -> None:
    """Every survivable kind fires; nothing is lost, nothing extra stays, the next run plans 0."""
    result = await soak(tmp_path, contacts=5000, probability=0.1, batch_size=100, timeout=1.0)
    print(result.figures())  # the figures, for `pytest -s`
    assert result.problems == []
    assert set(result.faults) == set(SURVIVABLE_KINDS)
    first = result.reports[0]
    # Half were absent, a quarter stale, a quarter right, and 2% extra were in the list
    # (counted by the first run, even if a second one had to finish its work).
    assert (first.plan.to_insert, first.plan.to_update, first.plan.unchanged) == (2500, 1250, 1250)
    assert first.plan.to_remove == result.removed == 100
    assert sum(sum(r.retries.values()) for r in result.reports) >= len(SURVIVABLE_KINDS) - 2
    assert result.reports[-1].plan.changes == 0
