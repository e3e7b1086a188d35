"""The eSputnik soak, bounded for the suite: 4,000 contacts in mirror mode under every fault
kind that fits its API, 10% random faults on every call and 10% of import sessions in ERROR.

``python -m benchmarks.soak --provider esputnik`` runs the same code at a larger size.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.soak_esputnik import ESPUTNIK_KINDS, esputnik_soak
from sync_engine.emulator.esputnik import IMPORT_ERROR


async def test_an_esputnik_sync_under_every_fault_converges_and_its_report_adds_up(
    tmp_path: Path,
) -> None:
    """Every kind fires; nothing is lost, nothing extra stays, the next run plans 0."""
    result = await esputnik_soak(
        tmp_path, contacts=4000, probability=0.1, batch_size=50, page_size=100, timeout=1.0
    )
    print(result.figures())  # the figures, for `pytest -s`
    assert result.problems == []
    assert set(ESPUTNIK_KINDS) <= set(result.faults)
    assert result.faults[IMPORT_ERROR] >= 1
    first = result.reports[0]
    # Half were absent, a quarter stale, a quarter right, and 2% extra were in the group.
    assert (first.plan.to_insert, first.plan.to_update, first.plan.unchanged) == (2000, 1000, 1000)
    assert first.plan.to_remove == result.removed == 80
    assert sum(sum(r.retries.values()) for r in result.reports) >= len(ESPUTNIK_KINDS)
    made = sum(sum(r.calls.values()) for r in result.reports)
    assert result.injected >= len(ESPUTNIK_KINDS) + made // 20  # the random ones on top
    assert first.rates["calls"] > 0
    assert "effective" in first.rates
    assert result.reports[-1].plan.changes == 0
