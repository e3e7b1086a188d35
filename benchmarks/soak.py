"""Issue #8: the soak. A mirror sync against an emulator that fails calls in every way it can.

Every survivable fault kind fires at least once at a site where it fits (one counted rule
per kind; two export losses wait for the check run), and on top of that a share of all
calls (``--faults``, 10% by default) fails with a kind drawn at random. The run must
converge: the provider's list equals the local file (right names, stale ones updated,
extra contacts excluded), no row lost, the report's counts add up, and a second run,
still under fire, plans nothing. The emulator shares a
fake clock with the engine, so backoffs, Retry-After waits and export polls cost no real
time; only hangs (a real client timeout) and slow answers do.

    python -m benchmarks.soak [--contacts 200000] [--faults 0.1] [--seed 8]
    python -m benchmarks.soak --provider altcraft [--contacts 50000]  (soak_altcraft.py)
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import anyio
import structlog

from sync_engine import (
    Outcome,
    SyncConfig,
    SyncEngine,
    SyncEngineError,
    SyncReport,
    load_config,
)
from sync_engine.clock import FakeClock
from sync_engine.emulator import (
    SURVIVABLE_KINDS,
    EmulatedContact,
    EmulatorOptions,
    FaultKind,
    UniSenderEmulator,
)
from sync_engine.emulator._faults import DOWNLOAD, fits
from sync_engine.testing import running_emulator

from ._common import API_KEY

__all__ = ["SoakResult", "soak"]

# Where each kind's guaranteed firing goes: the first site it fits.
_SITES = ("importContacts", "async/exportContacts", "async/getTaskResult", DOWNLOAD)
_CHECK_RUN_KINDS: tuple[FaultKind, ...] = ("export_short", "link_expired")
MAX_RUNS = 3  # a run that fails after its bounded retries is resumed from the journal


@dataclass
class SoakResult:
    """What the soak did and what it found; ``problems`` is empty when it converged."""

    contacts: int
    removed: int
    runs: int
    wall_seconds: float
    faults: Counter[str]
    reports: list[SyncReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # runs that stopped, with why
    converged: SyncReport | None = None  # the run that brought the provider in line

    @property
    def injected(self) -> int:
        return sum(self.faults.values())

    def figures(self) -> dict[str, Any]:
        """The numbers the README quotes."""
        main = self.converged or self.reports[0]
        retries = Counter[str]()
        for report in self.reports:
            retries.update(report.retries)
        return {
            "contacts": self.contacts,
            "removed": self.removed,
            "runs (the check run included)": self.runs,
            "stopped runs (resumed)": self.failures,
            "faults injected": self.injected,
            "faults by kind": dict(sorted(self.faults.items())),
            "retries": dict(sorted(retries.items())),
            "rates (calls/s)": main.rates,
            "wall seconds": round(self.wall_seconds, 1),
            "contacts per wall second": round(self.contacts / self.wall_seconds),
            "converged": not self.problems,
        }


def _config(work: Path, base_url: str, list_id: int, *, batch_size: int, timeout: float) -> str:
    return f"""
[source]
type = "csv"
path = "{work / "contacts.csv"}"

[provider]
type = "unisender"
base_url = "{base_url}"
api_key = "{API_KEY}"
list_id = {list_id}
batch_size = {batch_size}
timeout = {timeout}
export_poll_interval = 1.0
export_poll_max = 5.0
export_timeout = 120.0

[sync]
mode = "mirror"

[mapping]
email = "email"
Name = "name"

[journal]
dir = "{work / "journal"}"
"""


def _truth(contacts: int) -> dict[str, str]:
    return {f"c{i}@soak.example.com": f"Name {i}" for i in range(contacts)}


def _seed(emulator: UniSenderEmulator, truth: dict[str, str], list_id: int) -> int:
    """Half the contacts absent, a quarter stale, a quarter right; 2% extra to remove."""
    seeded = []
    for i, (email, name) in enumerate(truth.items()):
        if i % 4 == 0:
            seeded.append(
                EmulatedContact(email=email, email_list_ids={list_id}, fields={"Name": name})
            )
        elif i % 4 == 1:
            seeded.append(
                EmulatedContact(email=email, email_list_ids={list_id}, fields={"Name": "stale"})
            )
    extra = max(1, len(truth) // 50)
    seeded += [
        EmulatedContact(email=f"gone{i}@soak.example.com", email_list_ids={list_id})
        for i in range(extra)
    ]
    emulator.seed(seeded)
    return extra


def _arm(emulator: UniSenderEmulator, kinds: Iterable[FaultKind]) -> None:
    """One guaranteed firing of each kind, at the first site where it fits.

    Import calls are many, so their firings are spaced out (not all on one batch's
    retries); the export sites see a call or two a run, so theirs fire at once.
    """
    placed: Counter[str] = Counter()
    for kind in kinds:
        site = next(s for s in _SITES if fits(kind, s))
        after = 2 * placed[site] if site == "importContacts" else 0
        emulator.faults.add(kind=kind, method=site, count=1, after=after)
        placed[site] += 1


def _check(emulator: UniSenderEmulator, truth: dict[str, str], list_id: int) -> list[str]:
    """Differences between the provider's list and the local truth (empty: converged)."""
    members: dict[str, str] = {}
    for contact in emulator.contacts():
        if (
            contact.email is not None
            and list_id in contact.email_list_ids
            and list_id not in contact.email_excluded_list_ids
        ):
            members[contact.email] = contact.fields.get("Name", "")
    problems = [f"lost: {e}" for e in truth if e not in members]
    problems += [f"wrong name: {e}" for e, n in truth.items() if e in members and members[e] != n]
    problems += [f"not removed: {e}" for e in members if e not in truth]
    return problems


def _add_up(report: SyncReport) -> list[str]:
    """A report's counts must account for every planned change and every row."""
    plan = report.plan
    applied = report.inserted + report.updated + report.removed + report.rejected + report.failed
    problems = []
    if applied != plan.changes:
        problems.append(f"applied {applied} != planned {plan.changes}")
    if plan.local_valid != plan.to_insert + plan.to_update + plan.unchanged + plan.kept_by_consent:
        problems.append(f"local rows do not add up: {plan}")
    return problems


async def _converge(
    config: SyncConfig, clock: FakeClock, rng: random.Random, result: SoakResult
) -> SyncReport | None:
    """Run until a run succeeds, as an operator (or a scheduler) would: a run that stops
    (its bounded retries spent) is resumed from the journal; MAX_RUNS runs at most."""
    for _ in range(MAX_RUNS):
        result.runs += 1
        async with SyncEngine(config, clock=clock, rng=rng) as engine:
            try:
                report = await engine.run()
            except SyncEngineError as error:
                result.failures.append(str(error))
                assert engine.last_report is not None
                result.reports.append(engine.last_report)
                continue
        result.reports.append(report)
        if report.outcome is Outcome.SUCCESS:
            return report
        result.failures.append(f"{report.outcome.value}: {report.message}")
    result.problems.append(f"no successful run in {MAX_RUNS}: {result.failures}")
    return None


async def soak(
    work: Path,
    *,
    contacts: int,
    probability: float = 0.1,
    seed: int = 8,
    batch_size: int = 500,
    timeout: float = 2.0,  # noqa: ASYNC109 - the engine's per-call timeout, set in its config
) -> SoakResult:
    """Run the soak in ``work``; the caller checks ``problems`` (and prints ``figures``)."""
    clock = FakeClock()
    options = EmulatorOptions(fault_seed=seed, fault_hang_seconds=timeout * 3)
    truth = _truth(contacts)
    with (work / "contacts.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        writer.writerows(truth.items())
    started = time.perf_counter()
    async with UniSenderEmulator(api_key=API_KEY, options=options, clock=clock.now) as emulator:
        list_id = emulator.add_list("Customers")
        emulator.add_field("Name")
        removed = _seed(emulator, truth, list_id)
        # Two of the ways to lose an export wait for the check run, so that no snapshot
        # has to survive every loss at once (3 attempts each); the random faults stay on.
        _arm(emulator, [k for k in SURVIVABLE_KINDS if k not in _CHECK_RUN_KINDS])
        emulator.faults.add(kind="any", probability=probability)
        result = SoakResult(contacts, removed, 0, 0.0, emulator.faults.injected)
        async with running_emulator(emulator) as base_url:
            path = work / "sync.toml"
            path.write_text(
                _config(work, base_url, list_id, batch_size=batch_size, timeout=timeout),
                encoding="utf-8",
            )
            config = load_config(path)
            rng = random.Random(seed)
            result.converged = await _converge(config, clock, rng, result)
            if result.converged is not None:
                result.problems += _add_up(result.converged)
            result.problems += _check(emulator, truth, list_id)
            _arm(emulator, _CHECK_RUN_KINDS)
            again = await _converge(config, clock, rng, result)  # still under fire
            if again is not None and again.plan.changes:
                result.problems.append(f"the run after convergence planned {again.plan}")
        result.wall_seconds = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--faults", type=float, default=0.1, help="share of calls that fail")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument(
        "--provider",
        choices=["unisender", "esputnik", "altcraft"],
        default="unisender",
        help="whose emulator to soak (see benchmarks/soak_esputnik.py, soak_altcraft.py)",
    )
    args = parser.parse_args()
    # Every retry logs a warning; the soak prints its own tallies instead.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    run = soak
    if args.provider == "altcraft":
        from .soak_altcraft import soak_altcraft as run
    if args.provider == "esputnik":
        from .soak_esputnik import esputnik_soak as run
    with TemporaryDirectory(prefix="sync-engine-soak-") as tmp:
        result = anyio.run(
            lambda: run(Path(tmp), contacts=args.contacts, probability=args.faults, seed=args.seed)
        )
    for name, value in result.figures().items():
        print(f"{name}: {value}")
    if result.problems:
        print(f"NOT CONVERGED ({len(result.problems)} problems):")
        for problem in result.problems[:20]:
            print(f"  {problem}")
        raise SystemExit(1)
    print(f"survived all {result.injected} injected faults")


if __name__ == "__main__":
    main()
