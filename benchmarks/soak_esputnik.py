"""Issue #8's soak for eSputnik: a mirror sync against an emulator that fails calls in
every way that fits its API.

Every survivable fault kind fires at least once (one counted rule per kind, spread over
the call sites), a share of all calls (10% by default) fails with a kind drawn at random,
and the same share of import sessions ends in ERROR. The run must converge: the synced
group equals the local file (names right, stale ones updated, extra members excluded), no
row lost, the report's counts add up, and a second run, still under fire, plans nothing.
The emulator shares a fake clock with the engine, so backoffs, import polls and 429
pauses cost no real time; only hangs (a real client timeout) and slow answers do.

    python -m benchmarks.soak --provider esputnik [--contacts 20000] [--faults 0.1]
"""

from __future__ import annotations

import csv
import random
import time
from collections import Counter
from pathlib import Path

from sync_engine import load_config
from sync_engine.clock import FakeClock
from sync_engine.emulator import (
    SURVIVABLE_KINDS,
    EmulatedESputnikContact,
    ESputnikEmulator,
    ESputnikOptions,
)
from sync_engine.emulator._faults import fits
from sync_engine.testing import running_emulator

from ._common import API_KEY
from .soak import SoakResult, _add_up, _converge

__all__ = ["ESPUTNIK_KINDS", "GROUP", "esputnik_soak"]

GROUP = "Customers"
# The call sites of a mirror sync into a group, busiest first: each kind's guaranteed
# firing goes to the first one it fits, spread round-robin over them.
_SITES = ("contactsBulkUpdate", "getImportSessionStatus", "getGroupContacts", "searchGroups")
ESPUTNIK_KINDS = tuple(k for k in SURVIVABLE_KINDS if any(fits(k, s) for s in _SITES))


def _name(i: int) -> str:
    """A first name for row ``i`` (eSputnik refuses digits in names)."""
    return "Name " + "".join(chr(65 + int(digit)) for digit in str(i))


def _config(work: Path, base_url: str, *, batch_size: int, page_size: int, timeout: float) -> str:
    return f"""
[source]
type = "csv"
path = "{work / "contacts.csv"}"

[provider]
type = "esputnik"
base_url = "{base_url}"
api_key = "{API_KEY}"
group = "{GROUP}"
source_opted_in = true
batch_size = {batch_size}
page_size = {page_size}
timeout = {timeout}
import_poll_interval = 1.0
import_poll_max = 5.0

[sync]
mode = "mirror"

[mapping]
email = "email"
firstName = "name"

[journal]
dir = "{work / "journal"}"
"""


def _seed(emulator: ESputnikEmulator, truth: dict[str, str]) -> int:
    """Half the contacts absent, a quarter stale, a quarter right; 2% extra to remove."""
    seeded = []
    for i, (email, name) in enumerate(truth.items()):
        if i % 4 < 2:
            first = name if i % 4 == 0 else "Stale"
            values = {"email": email, "firstName": first}
            seeded.append(EmulatedESputnikContact(100_000 + i, values=values, groups={GROUP}))
    extra = max(1, len(truth) // 50)
    base = 100_000 + len(truth)
    seeded += [
        EmulatedESputnikContact(
            base + i, values={"email": f"gone{i}@soak.example.com"}, groups={GROUP}
        )
        for i in range(extra)
    ]
    emulator.seed(seeded)
    return extra


def _arm(emulator: ESputnikEmulator) -> None:
    """One guaranteed firing of each kind, round-robin over the sites it fits, spaced out
    so that no single call has to survive them all at once."""
    placed: Counter[str] = Counter()
    for number, kind in enumerate(ESPUTNIK_KINDS):
        sites = [s for s in _SITES if fits(kind, s)]
        site = sites[number % len(sites)]
        emulator.faults.add(kind=kind, method=site, count=1, after=2 * placed[site])
        placed[site] += 1


def _check(emulator: ESputnikEmulator, truth: dict[str, str]) -> list[str]:
    """Differences between the synced group and the local truth (empty: converged)."""
    members = {
        c.values["email"]: c.values.get("firstName", "")
        for c in emulator.contacts()
        if GROUP in c.groups and c.email is not None
    }
    problems = [f"lost: {e}" for e in truth if e not in members]
    problems += [f"wrong name: {e}" for e, n in truth.items() if e in members and members[e] != n]
    problems += [f"not removed: {e}" for e in members if e not in truth]
    return problems


async def esputnik_soak(
    work: Path,
    *,
    contacts: int,
    probability: float = 0.1,
    seed: int = 8,
    batch_size: int = 500,
    page_size: int = 500,
    timeout: float = 2.0,  # noqa: ASYNC109 - the engine's per-call timeout, set in its config
) -> SoakResult:
    """Run the soak in ``work``; the caller checks ``problems`` (and prints ``figures``)."""
    clock = FakeClock()
    options = ESputnikOptions(
        import_delay=2.0, fault_seed=seed, fault_hang_seconds=timeout * 3, fault_retry_after=2.0
    )
    truth = {f"c{i}@soak.example.com": _name(i) for i in range(contacts)}
    with (work / "contacts.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        writer.writerows(truth.items())
    started = time.perf_counter()
    async with ESputnikEmulator(api_key=API_KEY, options=options, clock=clock.now) as emulator:
        removed = _seed(emulator, truth)
        _arm(emulator)
        emulator.faults.add(kind="any", probability=probability)
        emulator.session_error_rate = probability
        result = SoakResult(contacts, removed, 0, 0.0, emulator.faults.injected)
        async with running_emulator(emulator) as base_url:
            path = work / "sync.toml"
            path.write_text(
                _config(
                    work, base_url, batch_size=batch_size, page_size=page_size, timeout=timeout
                ),
                encoding="utf-8",
            )
            config = load_config(path)
            rng = random.Random(seed)
            result.converged = await _converge(config, clock, rng, result)
            if result.converged is not None:
                result.problems += _add_up(result.converged)
            result.problems += _check(emulator, truth)
            again = await _converge(config, clock, rng, result)  # still under fire
            if again is not None and again.plan.changes:
                result.problems.append(f"the run after convergence planned {again.plan}")
        result.wall_seconds = time.perf_counter() - started
    return result
