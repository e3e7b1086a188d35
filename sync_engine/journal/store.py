"""The run journal: runs, their batches, and rows the provider rejected.

A batch is written ``pending`` (its keys and a digest of its payload) before it is
sent, then marked ``sent``, and finally ``answered`` (with the per-row outcomes),
``failed`` (with the error), or ``unknown`` (sent, answer lost, and resending was not
safe). That is what lets a run killed at any moment resume without losing a batch or
sending one twice where resending is not safe. The same SQL serves SQLite and
PostgreSQL through :mod:`._db`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ._db import Database

__all__ = ["BatchRecord", "BatchState", "Journal", "RejectRecord", "RunRecord", "RunStatus"]

SCHEMA_VERSION = 1


class RunStatus(enum.Enum):
    RUNNING = "running"  # planning or applying; unfinished if the process is gone
    FINISHED = "finished"
    ABANDONED = "abandoned"  # discarded by --restart


class BatchState(enum.Enum):
    PENDING = "pending"
    SENT = "sent"
    ANSWERED = "answered"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def settled(self) -> bool:
        return self in (BatchState.ANSWERED, BatchState.FAILED, BatchState.UNKNOWN)


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    id: int
    target: str
    config_digest: str
    mode: str
    full: bool
    status: RunStatus
    outcome: str | None
    started_at: float
    finished_at: float | None
    active_seconds: float
    attempts: int
    plan_no: int
    plan_digest: str | None
    plan_path: str | None
    planned_at: float | None
    plan_state: Mapping[str, Any] | None
    report: Mapping[str, Any] | None
    message: str | None


@dataclass(frozen=True, kw_only=True)
class BatchRecord:
    number: int
    kind: str
    digest: str
    state: BatchState
    task_id: str | None
    outcome: Mapping[str, Any] | None
    sends: int
    answers: int


@dataclass(frozen=True, kw_only=True)
class RejectRecord:
    key: str
    digest: str
    code: str
    reason: str
    first_run: int
    last_run: int
    held: int
    seen_at: float


_SELECT_RUNS = (
    "SELECT id, target, config_digest, mode, full_sync, status, outcome, started_at,"
    " finished_at, active_seconds, attempts, plan_no, plan_digest, plan_path, planned_at,"
    " plan_state, report, message FROM runs"
)


def _schema(dialect: str) -> list[str]:
    serial = "BIGSERIAL PRIMARY KEY" if dialect == "postgres" else "INTEGER PRIMARY KEY"
    real = "DOUBLE PRECISION"
    return [
        "CREATE TABLE IF NOT EXISTS journal_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS runs (
            id {serial},
            target TEXT NOT NULL,
            config_digest TEXT NOT NULL,
            mode TEXT NOT NULL,
            full_sync INTEGER NOT NULL,
            status TEXT NOT NULL,
            outcome TEXT,
            started_at {real} NOT NULL,
            finished_at {real},
            active_seconds {real} NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 1,
            plan_no INTEGER NOT NULL DEFAULT 0,
            plan_digest TEXT,
            plan_path TEXT,
            planned_at {real},
            plan_state TEXT,
            report TEXT,
            message TEXT)""",
        "CREATE INDEX IF NOT EXISTS runs_by_target ON runs (target, id)",
        f"""CREATE TABLE IF NOT EXISTS batches (
            run_id BIGINT NOT NULL,
            plan_no INTEGER NOT NULL,
            number INTEGER NOT NULL,
            kind TEXT NOT NULL,
            keys TEXT NOT NULL,
            digest TEXT NOT NULL,
            state TEXT NOT NULL,
            task_id TEXT,
            outcome TEXT,
            sends INTEGER NOT NULL DEFAULT 0,
            answers INTEGER NOT NULL DEFAULT 0,
            updated_at {real} NOT NULL,
            PRIMARY KEY (run_id, plan_no, number))""",
        f"""CREATE TABLE IF NOT EXISTS rejects (
            target TEXT NOT NULL,
            key TEXT NOT NULL,
            digest TEXT NOT NULL,
            code TEXT NOT NULL,
            reason TEXT NOT NULL,
            first_run BIGINT NOT NULL,
            last_run BIGINT NOT NULL,
            held INTEGER NOT NULL DEFAULT 0,
            seen_at {real} NOT NULL,
            PRIMARY KEY (target, key))""",
    ]


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def _loads(text: str | None) -> Any:
    return orjson.loads(text) if text else None


class Journal:
    """Reads and writes the journal tables through a :class:`Database`."""

    def __init__(self, database: Database, *, label: str) -> None:
        self.db = database
        self.label = label

    async def migrate(self) -> None:
        for statement in _schema(self.db.dialect):
            await self.db.execute(statement)
        await self.db.execute(
            "INSERT INTO journal_meta (name, value) VALUES ('schema', ?)"
            " ON CONFLICT (name) DO NOTHING",
            str(SCHEMA_VERSION),
        )

    async def aclose(self) -> None:
        await self.db.aclose()

    # -- runs ------------------------------------------------------------------------
    async def begin_run(self, *, target: str, config_digest: str, mode: str, full: bool) -> int:
        rows = await self.db.fetch(
            "INSERT INTO runs (target, config_digest, mode, full_sync, status, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            target,
            config_digest,
            mode,
            int(full),
            RunStatus.RUNNING.value,
            time.time(),
        )
        return int(rows[0][0])

    async def unfinished_run(self, target: str) -> RunRecord | None:
        rows = await self.db.fetch(
            _SELECT_RUNS + " WHERE target = ? AND status = ? ORDER BY id DESC LIMIT 1",
            target,
            RunStatus.RUNNING.value,
        )
        return _run(rows[0]) if rows else None

    async def run(self, run_id: int) -> RunRecord:
        rows = await self.db.fetch(_SELECT_RUNS + " WHERE id = ?", run_id)
        return _run(rows[0])

    async def history(self, target: str | None, limit: int) -> list[RunRecord]:
        if target is None:
            rows = await self.db.fetch(_SELECT_RUNS + " ORDER BY id DESC LIMIT ?", limit)
        else:
            rows = await self.db.fetch(
                _SELECT_RUNS + " WHERE target = ? ORDER BY id DESC LIMIT ?",
                target,
                limit,
            )
        return [_run(row) for row in rows]

    async def resumed(self, run_id: int) -> None:
        await self.db.execute("UPDATE runs SET attempts = attempts + 1 WHERE id = ?", run_id)

    async def planned(
        self,
        run_id: int,
        *,
        plan_no: int,
        digest: str,
        path: str,
        state: Mapping[str, Any],
    ) -> None:
        """The plan is on disk (fsynced): record its identity; batches may follow."""
        await self.db.execute(
            "UPDATE runs SET plan_no = ?, plan_digest = ?, plan_path = ?, planned_at = ?,"
            " plan_state = ? WHERE id = ?",
            plan_no,
            digest,
            path,
            time.time(),
            _json(state),
            run_id,
        )

    async def add_active_time(self, run_id: int, seconds: float) -> None:
        await self.db.execute(
            "UPDATE runs SET active_seconds = active_seconds + ? WHERE id = ?", seconds, run_id
        )

    async def finish_run(
        self,
        run_id: int,
        *,
        status: RunStatus,
        outcome: str | None,
        report: Mapping[str, Any] | None,
        message: str | None,
    ) -> None:
        await self.db.execute(
            "UPDATE runs SET status = ?, outcome = ?, report = ?, message = ?, finished_at = ?"
            " WHERE id = ?",
            status.value,
            outcome,
            _json(report) if report is not None else None,
            message,
            time.time(),
            run_id,
        )

    # -- batches ---------------------------------------------------------------------
    async def batch_pending(
        self, run_id: int, plan_no: int, number: int, *, kind: str, keys: Sequence[str], digest: str
    ) -> None:
        await self.db.execute(
            "INSERT INTO batches (run_id, plan_no, number, kind, keys, digest, state, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, plan_no, number) DO NOTHING",
            run_id,
            plan_no,
            number,
            kind,
            _json(list(keys)),
            digest,
            BatchState.PENDING.value,
            time.time(),
        )

    async def batch_sent(self, run_id: int, plan_no: int, number: int) -> None:
        await self.db.execute(
            "UPDATE batches SET state = ?, sends = sends + 1, updated_at = ?"
            " WHERE run_id = ? AND plan_no = ? AND number = ?",
            BatchState.SENT.value,
            time.time(),
            run_id,
            plan_no,
            number,
        )

    async def batch_task(self, run_id: int, plan_no: int, number: int, task_id: str) -> None:
        await self.db.execute(
            "UPDATE batches SET task_id = ?, updated_at = ?"
            " WHERE run_id = ? AND plan_no = ? AND number = ?",
            task_id,
            time.time(),
            run_id,
            plan_no,
            number,
        )

    async def batch_settled(
        self,
        run_id: int,
        plan_no: int,
        number: int,
        *,
        state: BatchState,
        outcome: Mapping[str, Any],
    ) -> None:
        answered = 1 if state is BatchState.ANSWERED else 0
        await self.db.execute(
            "UPDATE batches SET state = ?, outcome = ?, answers = answers + ?, updated_at = ?"
            " WHERE run_id = ? AND plan_no = ? AND number = ?",
            state.value,
            _json(outcome),
            answered,
            time.time(),
            run_id,
            plan_no,
            number,
        )

    async def batches(self, run_id: int, plan_no: int) -> dict[int, BatchRecord]:
        rows = await self.db.fetch(
            "SELECT number, kind, digest, state, task_id, outcome, sends, answers FROM batches"
            " WHERE run_id = ? AND plan_no = ?",
            run_id,
            plan_no,
        )
        return {
            int(row[0]): BatchRecord(
                number=int(row[0]),
                kind=row[1],
                digest=row[2],
                state=BatchState(row[3]),
                task_id=row[4],
                outcome=_loads(row[5]),
                sends=int(row[6]),
                answers=int(row[7]),
            )
            for row in rows
        }

    async def prune_batches(self, target: str, *, keep_runs: int) -> None:
        """Drop the batch rows of all but the target's last ``keep_runs`` runs (one statement).

        The run rows stay, with their counts, for the history.
        """
        await self.db.execute(
            "DELETE FROM batches WHERE run_id IN (SELECT id FROM runs WHERE target = ? AND id <"
            " (SELECT MIN(id) FROM (SELECT id FROM runs WHERE target = ? ORDER BY id DESC"
            " LIMIT ?) AS recent))",
            target,
            target,
            max(1, keep_runs),
        )

    # -- rejects ---------------------------------------------------------------------
    async def rejects(self, target: str) -> dict[str, RejectRecord]:
        rows = await self.db.fetch(
            "SELECT key, digest, code, reason, first_run, last_run, held, seen_at FROM rejects"
            " WHERE target = ? ORDER BY seen_at, key",
            target,
        )
        return {
            row[0]: RejectRecord(
                key=row[0],
                digest=row[1],
                code=row[2],
                reason=row[3],
                first_run=int(row[4]),
                last_run=int(row[5]),
                held=int(row[6]),
                seen_at=float(row[7]),
            )
            for row in rows
        }

    async def remember_rejects(
        self, target: str, run_id: int, rows: Iterable[tuple[str, str, str, str]]
    ) -> None:
        """Upsert (key, payload digest, code, reason) for rows the provider rejected."""
        now = time.time()
        values = [(target, k, d, c, r, run_id, run_id, now) for k, d, c, r in rows]
        if values:
            await self.db.executemany(
                "INSERT INTO rejects (target, key, digest, code, reason, first_run, last_run,"
                " held, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)"
                " ON CONFLICT (target, key) DO UPDATE SET digest = excluded.digest,"
                " code = excluded.code, reason = excluded.reason, last_run = excluded.last_run,"
                " held = 0, seen_at = excluded.seen_at",
                values,
            )

    async def forget_rejects(self, target: str, keys: Iterable[str]) -> None:
        values = [(target, key) for key in keys]
        if values:
            await self.db.executemany("DELETE FROM rejects WHERE target = ? AND key = ?", values)

    async def hold_rejects(self, target: str, keys: Iterable[str]) -> None:
        """Count one more run in which these unchanged rejected rows were held back."""
        values = [(target, key) for key in keys]
        if values:
            await self.db.executemany(
                "UPDATE rejects SET held = held + 1 WHERE target = ? AND key = ?", values
            )


def _run(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        id=int(row[0]),
        target=row[1],
        config_digest=row[2],
        mode=row[3],
        full=bool(row[4]),
        status=RunStatus(row[5]),
        outcome=row[6],
        started_at=float(row[7]),
        finished_at=float(row[8]) if row[8] is not None else None,
        active_seconds=float(row[9]),
        attempts=int(row[10]),
        plan_no=int(row[11]),
        plan_digest=row[12],
        plan_path=row[13],
        planned_at=float(row[14]) if row[14] is not None else None,
        plan_state=_loads(row[15]),
        report=_loads(row[16]),
        message=row[17],
    )
