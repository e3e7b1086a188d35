"""Issue #8 for Altcraft: a mirror sync with a trigger (every import sends a campaign, so
no call may go twice) against an emulator that fails calls in every way it can.

Every survivable fault kind fires at least once where it fits on Altcraft, and a share
of all calls (10% by default) fails with a kind drawn at random. Runs repeat, as a
scheduler would, until one finishes clean: a trigger batch whose answer was lost is
never resent, so it is reported unknown_outcome and the next run's diff sends only what
did not arrive. The checks: the database equals the local file; no profile got two
campaigns, every profile the sync changed got exactly one, and every campaign is
accounted for by a row reported applied or one reported unknown; each report adds up.

    python -m benchmarks.soak --provider altcraft [--contacts 50000] [--faults 0.1]
"""

from __future__ import annotations

import csv
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync_engine import Outcome, SyncConfig, SyncEngine, SyncEngineError, SyncReport, load_config
from sync_engine.clock import FakeClock
from sync_engine.emulator import SURVIVABLE_KINDS
from sync_engine.emulator._faults import DOWNLOAD
from sync_engine.emulator.altcraft import (
    TRIGGER_METHOD,
    AltcraftEmulator,
    AltcraftOptions,
    altcraft_fits,
)
from sync_engine.testing import running_emulator

from .soak import SoakResult, _add_up

__all__ = ["AltcraftSoakResult", "soak_altcraft"]

TOKEN = "soak-altcraft-token-3f9a61c07e"  # noqa: S105 - the emulator's test token
DB_ID = 1
TRIGGER_ID = 8
# Where each kind's guaranteed firing goes: the first site it fits.
_SITES = (TRIGGER_METHOD, "profiles/delete", "profiles/get_all", "tasks/status", DOWNLOAD)
MAX_RUNS = 8  # each run sends only what earlier runs did not get through


@dataclass
class AltcraftSoakResult(SoakResult):
    """The generic soak result plus the campaign tallies."""

    work: Path = Path()  # where each run's rejects CSV goes
    triggered: int = 0  # profiles that got a campaign
    per_profile: dict[int, int] | None = None  # campaigns -> profiles that got that many
    duplicates: int = 0  # profiles that got more than one
    applied: int = 0  # rows reported inserted or updated, over all finished runs
    unknown: int = 0  # rows reported unknown_outcome, over all runs

    def figures(self) -> dict[str, Any]:
        figures = super().figures()
        figures["rates (calls/s)"] = self.reports[0].rates if self.reports else {}
        figures["campaigns: profiles triggered"] = self.triggered
        figures["campaigns: profiles triggered twice or more"] = self.duplicates
        figures["campaigns per profile -> profiles"] = self.per_profile
        figures["rows reported applied / unknown_outcome"] = (self.applied, self.unknown)
        return figures


def _config(work: Path, base_url: str, *, batch_size: int, timeout: float) -> str:
    return f"""
[source]
type = "csv"
path = "{work / "contacts.csv"}"

[provider]
type = "altcraft"
base_url = "{base_url}"
token = "{TOKEN}"
db_id = {DB_ID}
trigger_id = {TRIGGER_ID}
batch_size = {batch_size}
timeout = {timeout}
concurrency = 4
rate_limit = 100
task_poll_interval = 0.5
task_poll_max = 5.0
task_timeout = 120.0

[sync]
mode = "mirror"
removal = "delete"

[mapping]
email = "email"
first_name = "name"

[journal]
dir = "{work / "journal"}"
"""


def _seed(emulator: AltcraftEmulator, truth: dict[str, str]) -> set[str]:
    """Half absent, a quarter stale, a quarter right, 2% extra; returns who needs a change."""
    emulator.add_database(DB_ID)
    changed = set()
    for i, (email, name) in enumerate(truth.items()):
        if i % 4 == 0:
            emulator.seed(DB_ID, {"email": email, "_fname": name})
            continue
        if i % 4 == 1:
            emulator.seed(DB_ID, {"email": email, "_fname": "stale"})
        changed.add(email)
    for i in range(max(1, len(truth) // 50)):
        emulator.seed(DB_ID, {"email": f"gone{i}@soak.example.com", "_fname": "Gone"})
    return changed


def _arm(emulator: AltcraftEmulator) -> None:
    """One guaranteed firing of each kind at its first site; trigger firings spaced out."""
    placed: Counter[str] = Counter()
    for kind in SURVIVABLE_KINDS:
        site = next(s for s in _SITES if altcraft_fits(kind, s))
        after = 2 * placed[site] if site in (TRIGGER_METHOD, "profiles/delete") else 0
        emulator.faults.add(kind=kind, method=site, count=1, after=after)
        placed[site] += 1


def _check(
    emulator: AltcraftEmulator, truth: dict[str, str], changed: set[str], result: AltcraftSoakResult
) -> list[str]:
    """Differences from the local truth, and every campaign sent twice or unaccounted for."""
    database = {p.email: p for p in emulator.profiles(DB_ID)}
    problems = [f"lost: {e}" for e in truth if e not in database]
    problems += [
        f"wrong name: {e}"
        for e, n in truth.items()
        if e in database and database[e].fields.get("_fname") != n
    ]
    problems += [f"not removed: {e}" for e in database if e not in truth]
    sends = Counter({pid: n for (t, pid), n in emulator.triggers.items() if t == TRIGGER_ID})
    counts = {e: sends[p.id] for e, p in database.items()}  # trigger_count() is O(sends)
    result.triggered = sum(1 for n in counts.values() if n)
    result.per_profile = dict(sorted(Counter(counts.values()).items()))
    result.duplicates = sum(1 for n in counts.values() if n > 1)
    problems += [f"{n} campaigns: {e}" for e, n in counts.items() if n > 1]
    problems += [f"no campaign though changed: {e}" for e in changed if counts.get(e) != 1]
    problems += [
        f"a campaign though unchanged: {e}" for e in truth if e not in changed and counts[e]
    ]
    # A campaign is sent by a row reported applied, or by one reported unknown that did
    # arrive: never by a row the engine claimed did not go.
    if not result.applied <= result.triggered <= result.applied + result.unknown:
        problems.append(
            f"campaigns {result.triggered} not accounted for by {result.applied} applied"
            f" and {result.unknown} unknown rows"
        )
    return problems


def _tally(report: SyncReport, rejects: Path, result: AltcraftSoakResult) -> list[str]:
    """Count a finished run's rows from its rejects CSV (every problem, not only the first
    thousand kept in memory); its unknown rows must all be among its failed ones."""
    with rejects.open(encoding="utf-8", newline="") as handle:
        codes = [row["code"] for row in csv.DictReader(handle)]
    unknown = codes.count("unknown_outcome")
    result.applied += report.inserted + report.updated
    result.unknown += unknown
    problems = _add_up(report)
    if len(codes) != report.problems.total:
        problems.append(f"{len(codes)} rows in the rejects CSV, {report.problems.total} problems")
    if unknown > report.failed:
        problems.append(f"{unknown} unknown rows but only {report.failed} failed")
    return problems


async def _runs(
    config: SyncConfig, clock: FakeClock, result: AltcraftSoakResult, rng: random.Random
) -> bool:
    """Run until a run finishes clean (nothing failed), MAX_RUNS at most."""
    for _ in range(MAX_RUNS):
        result.runs += 1
        rejects = result.work / f"rejects-{result.runs}.csv"
        async with SyncEngine(config, clock=clock, rng=rng, rejects_path=rejects) as engine:
            try:
                report = await engine.run()
            except SyncEngineError as error:  # e.g. every export of the run lost
                result.failures.append(str(error))
                continue
        result.reports.append(report)
        result.problems += _tally(report, rejects, result)
        if report.outcome is Outcome.SUCCESS:
            result.converged = report
            return True
        result.failures.append(f"{report.outcome.value}: {report.failed} failed")
    result.problems.append(f"no clean run in {MAX_RUNS}: {result.failures}")
    return False


async def soak_altcraft(
    work: Path,
    *,
    contacts: int,
    probability: float = 0.1,
    seed: int = 8,
    batch_size: int = 100,
    timeout: float = 1.0,  # noqa: ASYNC109 - the engine's per-call timeout, set in its config
) -> AltcraftSoakResult:
    """Run the Altcraft soak in ``work``; the caller checks ``problems``."""
    clock = FakeClock()
    # The install takes 40 calls/s, the config says 100: the adaptive limiter must learn it.
    options = AltcraftOptions(
        fault_seed=seed, fault_hang_seconds=timeout * 3, rate_limit=40, rate_limit_window=1.0
    )
    truth = {f"c{i}@soak.example.com": f"Name {i}" for i in range(contacts)}
    with (work / "contacts.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        writer.writerows(truth.items())
    started = time.perf_counter()
    async with AltcraftEmulator(token=TOKEN, options=options, clock=clock.now) as emulator:
        changed = _seed(emulator, truth)
        removed = len(emulator.profiles(DB_ID)) - len(truth) // 2
        _arm(emulator)
        emulator.faults.add(kind="any", probability=probability)
        result = AltcraftSoakResult(contacts, removed, 0, 0.0, emulator.faults.injected, work=work)
        async with running_emulator(emulator) as base_url:
            path = work / "altcraft.toml"
            path.write_text(
                _config(work, base_url, batch_size=batch_size, timeout=timeout), encoding="utf-8"
            )
            config, rng = load_config(path), random.Random(seed)
            if await _runs(config, clock, result, rng):
                result.problems += _check(emulator, truth, changed, result)
                # Once more, still under fire: nothing left to send, no campaign resent.
                converged, sent = result.converged, sum(emulator.triggers.values())
                if await _runs(config, clock, result, rng):
                    assert result.converged is not None
                    if result.converged.plan.changes:
                        result.problems.append(
                            f"the run after convergence planned {result.converged.plan}"
                        )
                    if sum(emulator.triggers.values()) != sent:
                        result.problems.append("the run after convergence sent campaigns")
                result.converged = converged
        result.wall_seconds = time.perf_counter() - started
    return result
