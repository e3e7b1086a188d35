"""The CLI killed, stopped and raced, as a real process against the emulator on loopback.

The CLI runs in another process, so these tests live on real time: the emulator delays
each importContacts answer a little, which spreads a run over a couple of seconds and
widens the window in which a batch has been applied but not yet answered.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import anyio
import orjson
import pytest
from anyio.abc import Process
from conftest import PG_DSN, Provider, serve_provider, wait_until, write_config, write_csv

from sync_engine import load_config
from sync_engine.emulator import EmulatorOptions
from sync_engine.journal import BatchState, RunStatus, open_journal, target_of

CONTACTS = int(os.environ.get("SYNC_ENGINE_KILL_CONTACTS", "10000"))
BATCH = 50  # 200 batches at the default size
KILL_ROUNDS = int(os.environ.get("SYNC_ENGINE_KILL_ROUNDS", "5"))
KILL_BUDGET_SECONDS = float(os.environ.get("SYNC_ENGINE_KILL_BUDGET", "60"))


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    options = EmulatorOptions(
        export_processing_after=0.01,
        export_ready_after=0.05,
        import_answer_delay=0.03,
        rate_limit=100_000,  # the documented 1200 a minute would make these tests crawl
    )
    async with serve_provider(options, fake_time=False) as served:
        yield served


def config_file(
    tmp_path: Path, provider: Provider, count: int = CONTACTS, **journal: object
) -> Path:
    source = write_csv(
        tmp_path / "contacts.csv",
        ["email", "name"],
        [[f"user{i}@example.com", f"Name {i}"] for i in range(count)],
    )
    return write_config(
        tmp_path,
        provider,
        source=source,
        provider_settings={"batch_size": BATCH, "concurrency": 4, "rate_limit": 100_000},
        journal=journal or None,
    )


async def start_cli(*args: str) -> Process:
    return await anyio.open_process(
        [sys.executable, "-m", "sync_engine", *args],
        stdin=None,
    )


async def finish(process: Process) -> tuple[int, str, str]:
    """Wait for the process while draining its pipes (so it never blocks on a full one)."""
    out: list[bytes] = []
    err: list[bytes] = []

    async def drain(stream: object, into: list[bytes]) -> None:
        if stream is not None:
            async for chunk in stream:  # type: ignore[attr-defined]
                into.append(chunk)

    async with anyio.create_task_group() as group:
        group.start_soon(drain, process.stdout, out)
        group.start_soon(drain, process.stderr, err)
        await process.wait()
    assert process.returncode is not None
    return process.returncode, b"".join(out).decode(), b"".join(err).decode()


async def wait_for_imports(provider: Provider, at_least: int) -> None:
    await wait_until(lambda: provider.emulator.calls["importContacts"] >= at_least)


def reached(provider: Provider, imports: int, process: Process) -> bool:
    return provider.emulator.calls["importContacts"] >= imports or process.returncode is not None


def assert_provider_equals_local(provider: Provider, count: int = CONTACTS) -> None:
    held = {c.email: c.fields.get("Name") for c in provider.emulator.contacts()}
    assert held == {f"user{i}@example.com": f"Name {i}" for i in range(count)}


async def journal_state(config_path: Path) -> tuple[list[RunStatus], list[tuple[BatchState, int]]]:
    config = load_config(config_path)
    handle = await open_journal(config.journal, target_of(config))
    try:
        runs = await handle.journal.history(target_of(config), 50)
        batches: list[tuple[BatchState, int]] = []
        for run in runs:
            for plan_no in range(1, run.plan_no + 1):
                batches += [
                    (b.state, b.answers)
                    for b in (await handle.journal.batches(run.id, plan_no)).values()
                ]
        return [r.status for r in runs], batches
    finally:
        await handle.journal.aclose()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
async def test_signal_stops_gracefully_and_the_next_run_resumes(
    tmp_path: Path, provider: Provider, signum: int, code: int
) -> None:
    config = config_file(tmp_path, provider)
    process = await start_cli("run", "--config", str(config), "--json")
    await wait_for_imports(provider, 10)
    process.send_signal(signal.Signals(signum))
    returncode, out, err = await finish(process)
    assert returncode == code, err
    assert f"{signal.Signals(signum).name}: stopping" in err
    partial = orjson.loads(out)
    assert partial["outcome"] == "cancelled"
    assert 10 <= partial["applied"]["inserted"] < CONTACTS
    statuses, batches = await journal_state(config)
    assert statuses == [RunStatus.RUNNING]
    # Consistent: drained batches were answered and journaled; nothing is left in doubt.
    assert {state for state, _ in batches} <= {BatchState.ANSWERED, BatchState.PENDING}
    assert (
        sum(1 for state, _ in batches if state is BatchState.ANSWERED) * BATCH
        == (partial["applied"]["inserted"])
    )

    returncode, out, err = await finish(await start_cli("run", "--config", str(config), "--json"))
    assert returncode == 0, err
    report = orjson.loads(out)
    assert report["attempt"] == 2
    assert report["applied"]["inserted"] == CONTACTS
    assert report["applied"]["resumed_batches"] == partial["applied"]["batches"]
    assert provider.emulator.calls["importContacts"] == CONTACTS // BATCH
    assert_provider_equals_local(provider)


async def test_sigkill_at_random_points_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, provider: Provider
) -> None:
    """Kill -9 the CLI again and again (bounded in rounds and time), then let it finish."""
    config = config_file(tmp_path, provider)
    rng = random.Random(20261123)
    kills = 0
    budget_ends = time.monotonic() + KILL_BUDGET_SECONDS
    batches_total = CONTACTS // BATCH
    finished: tuple[int, str, str] | None = None
    for round_no in range(KILL_ROUNDS):
        if time.monotonic() > budget_ends:
            break
        process = await start_cli("run", "--config", str(config), "--json")
        if round_no % 3:  # by progress: within the next quarter of the batches still to send
            _, batches = await journal_state(config)
            answered = sum(1 for state, _ in batches if state is BatchState.ANSWERED)
            ahead = rng.randint(1, max(1, (batches_total - answered) // 4))
            target = provider.emulator.calls["importContacts"] + ahead
            await wait_until(partial(reached, provider, target, process))
        else:  # by time: anywhere in start-up, planning or the first batches
            await anyio.sleep(rng.uniform(0.1, 1.2))
        killed = process.returncode is None
        if killed:
            process.kill()
            kills += 1
        result = await finish(process)
        if not killed or result[0] == 0:  # the run got to its end before the kill
            finished = result
            break
        _, batches = await journal_state(config)
        assert all(answers <= 1 for _, answers in batches)

    if finished is None:
        finished = await finish(await start_cli("run", "--config", str(config), "--json"))
    returncode, out, err = finished
    assert returncode == 0, err
    report = orjson.loads(out)
    assert_provider_equals_local(provider)
    statuses, batches = await journal_state(config)
    assert statuses == [RunStatus.FINISHED]  # one run in the history, however many attempts
    assert report["applied"]["inserted"] == CONTACTS  # and it reports as one run
    assert all(answers <= 1 for _, answers in batches)
    assert sum(1 for state, _ in batches if state is BatchState.ANSWERED) == batches_total
    imports = provider.emulator.calls["importContacts"]
    assert batches_total <= imports <= batches_total + kills * 4  # only in-flight ones resent
    print(f"{kills} kills survived; {imports - batches_total} in-flight batches resent")

    returncode, out, _ = await finish(await start_cli("history", "--config", str(config), "--json"))
    (run,) = orjson.loads(out)
    assert run["status"] == "finished"
    assert run["attempts"] >= 2 if kills else run["attempts"] == 1


@pytest.mark.parametrize("journal", ["sqlite", "postgres"])
async def test_two_concurrent_runs_one_refuses_or_waits(
    tmp_path: Path, provider: Provider, journal: str, pg_schema: str
) -> None:
    settings: dict[str, object] = {}
    if journal == "postgres":
        settings = {"dsn": PG_DSN, "schema": pg_schema}
    config = config_file(tmp_path, provider, 3000, **settings)
    release = provider.emulator.hold_import_answers()  # the first run stays in flight
    first = await start_cli("run", "--config", str(config), "--json")
    await wait_for_imports(provider, 2)
    code, out, err = await finish(await start_cli("run", "--config", str(config)))
    assert code == 75, err
    assert "another run of unisender://" in err
    assert out == ""
    waiting = await start_cli("run", "--config", str(config), "--wait", "60", "--json")
    release()
    code, out, err = await finish(first)
    assert code == 0, err
    assert orjson.loads(out)["applied"]["inserted"] == 3000
    code, out, err = await finish(waiting)
    assert code == 0, err
    assert orjson.loads(out)["plan"]["to_insert"] == 0  # it waited, then found nothing to do
    assert provider.emulator.calls["importContacts"] == 3000 // BATCH  # never both writing

    code, out, err = await finish(await start_cli("history", "--config", str(config)))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["run", "started", "mode", "tries"]
    assert len(lines) == 3
    assert "3000" in lines[2]
    assert all(line.rstrip().endswith("success") for line in lines[1:])


async def test_rejects_command_lists_remembered_rows(tmp_path: Path, provider: Provider) -> None:
    source = write_csv(
        tmp_path / "c.csv",
        ["email", "name"],
        [["ok@example.com", "Ok"], ["x@spamtrap.example.com", "Trap"]],
    )
    config = write_config(tmp_path, provider, source=source)
    code, _, err = await finish(await start_cli("run", "--config", str(config)))
    assert code == 1, err
    code, out, err = await finish(await start_cli("rejects", "--config", str(config), "--json"))
    assert code == 0, err
    (row,) = orjson.loads(out)
    assert row["key"] == "x@spamtrap.example.com"
    assert row["held_runs"] == 0
    code, out, _ = await finish(await start_cli("run", "--config", str(config)))
    assert code == 1
    assert "1 held back (rejected before, unchanged)" in out
    code, out, _ = await finish(await start_cli("rejects", "--config", str(config)))
    assert "x@spamtrap.example.com" in out
    assert "held 1 of 5 runs" in out
