"""The columnar plan: the same verdicts as ``Differ`` and the engine's plan stage, by column.

Order of work: index the export (``_remote``), then read the local file block by block:
normalise (``_local``), join each block to the index, decide every row's verdict and
write its change to the spool in line order. What only the end can tell comes last:
keys repeated across blocks (duplicates are reported, never merged), the counts, the
problems in line order and, in mirror mode, the removals in export order. Nothing
reaches the report before the last block has proven readable, so a file that turns out
to need the row reader (``NotColumnar``) leaves no trace but an overwritten spool.
"""

from __future__ import annotations

import heapq
import io
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl

from sync_engine.contact import Contact, ContactBuilder
from sync_engine.duplicates import Duplicate
from sync_engine.normalise import FieldValue
from sync_engine.plan import Change, ChangeKind, PlanSpool
from sync_engine.providers.base import RemoteSnapshot
from sync_engine.records import RowOrigin
from sync_engine.report import Problem, SyncReport

from ._blocks import Block, CsvLayout, NotColumnar
from ._compact import compact
from ._keys import KeyStore, key_check
from ._local import LocalColumns
from ._normalise import SET_KINDS, ColumnNormaliser
from ._remote import LockRule, RemoteIndex, index_remote
from ._search import SortedHashes
from ._sets import SetRegistry
from ._shape import Shape

__all__ = ["ColumnarPlan", "PlanSettings", "Planner", "encode_changes"]

INSERT, UPDATE, UNCHANGED, KEPT = 0, 1, 2, 3
_COUNTS = ("unchanged", "kept", "inserts", "updates", "skipped")
_KINDS = {INSERT: ChangeKind.INSERT, UPDATE: ChangeKind.UPDATE}
_EXPORT_SOURCE = "provider export"  # how the row path names export rows
_ENCODE_ROWS = 4096  # changes encoded at a time: about 1 MB of JSON
_REMOTE_TWICE = "the provider's export lists some contacts twice; the first is used"
# What a local row is matched against: the index's ``r_*`` columns, and its sorted hashes.
_Index = tuple[pl.DataFrame, SortedHashes]


@dataclass(frozen=True, kw_only=True)
class PlanSettings:
    """The run's choices that shape the plan (see ``SyncSettings`` and ``SyncEngine.run``)."""

    mode: str
    full: bool
    samples: int
    kept_cap: int


@dataclass(kw_only=True)
class ColumnarPlan:
    """A finished plan: the closed spool, the samples, and the export lines behind the
    sampled updates (to show their old values in a dry run)."""

    spool: PlanSpool
    sample_inserts: list[Contact] = field(default_factory=list)
    sample_updates: list[Contact] = field(default_factory=list)
    removal_keys: list[str] = field(default_factory=list)
    updated_lines: frozenset[int] = frozenset()
    snapshot: RemoteSnapshot | None = None


class Planner:
    """Plans one local CSV file against one export file; ``run`` once."""

    def __init__(
        self,
        *,
        local: CsvLayout,
        source_name: str,
        export: CsvLayout,
        builder: ContactBuilder,
        additive: frozenset[str],
        lock: LockRule,
        settings: PlanSettings,
        spool: PlanSpool,
        checkpoint: Callable[[], None],
    ) -> None:
        self.shape = Shape(builder, additive)
        self._builder = builder
        self._local = local
        self._source = source_name
        self._export = export
        self._lock = lock
        self._settings = settings
        self._spool = spool
        self._checkpoint = checkpoint
        self._registry = SetRegistry()
        self._normaliser = ColumnNormaliser(builder.normaliser, self._registry)
        self._sets = tuple(kind in SET_KINDS for kind in self.shape.kinds)
        self._plan = ColumnarPlan(spool=spool)
        self._first_line = pl.Series(dtype=pl.UInt32)  # see _local_pass
        self._counted = dict.fromkeys(_COUNTS, 0)  # see _local_pass
        # Rows are matched as they stand first (see _judge) only if every scalar field is
        # compared exactly: the digest then proves a row equal to the provider's.
        self._trial = all(
            i in self.shape.exact for i, is_set in enumerate(self._sets) if not is_set
        )

    def run(self, report: SyncReport) -> ColumnarPlan:
        """Plan, then fill the report; raises NotColumnar before touching the report."""
        started = time.perf_counter()
        keys = KeyStore(self._spool.path.parent)
        fresh_keys = KeyStore(self._spool.path.parent)
        try:
            remote = index_remote(
                self._export,
                shape=self.shape,
                normaliser=self._normaliser,
                lock=self._lock,
                checkpoint=self._checkpoint,
                keys=keys,
            )
            indexed = time.perf_counter()
            valid, invalid, rows = self._local_pass(remote, fresh_keys)
            self._report_remote(remote, report)
            valid = _first_across_blocks(valid)
            repeats = valid.filter(~pl.col("first"))
            kept = valid.filter(pl.col("first") & (pl.col("verdict") == KEPT)).head(
                max(0, self._settings.kept_cap - len(report.kept))
            )
            unseen = self._unseen(invalid, remote)
            # The few export keys the report names, read back from disk in one pass.
            wanted = pl.concat([repeats.get_column("r"), kept.get_column("r"), unseen["line"]])
            names = remote.keys.keys(wanted.drop_nulls()).rename({"line": "r"})
            self._resolve(valid, repeats, kept, names, fresh_keys, invalid, rows, remote, report)
            self._removals(unseen, names, report)
        finally:
            keys.close()
            fresh_keys.close()
        self._spool.close()
        report.stages["index"] = report.stages.get("index", 0.0) + indexed - started
        report.stages["plan"] = report.stages.get("plan", 0.0) + time.perf_counter() - indexed
        return self._plan

    # -- the local pass -----------------------------------------------------------------
    def _verdict(self) -> pl.Expr:
        shape = self.shape
        grows = [~pl.col(f"within{i}") for i in shape.additive]
        return (
            pl.when(pl.col("r").is_null())
            .then(INSERT)
            .when(pl.col("r_lock") != 0)
            .then(KEPT)
            .when(pl.lit(self._settings.full))
            .then(UPDATE)
            .when(pl.col("digest") != pl.col("r_digest"))
            .then(UPDATE)
            .when(pl.any_horizontal(grows) if grows else pl.lit(False))
            .then(UPDATE)
            .otherwise(UNCHANGED)
            .cast(pl.UInt8)
        )

    def _skipped(self) -> pl.Expr:
        verdict, mode = pl.col("verdict"), self._settings.mode
        if mode == "update-only":
            return verdict == INSERT
        if mode == "insert-only":
            return verdict == UPDATE
        return pl.lit(False)

    def _local_pass(
        self, remote: RemoteIndex, fresh_keys: KeyStore
    ) -> tuple[pl.DataFrame, pl.DataFrame, int]:
        """The verdicts still to settle (``kh, line, verdict, r, r_lock, skipped, written,
        first``; ``r`` is the matched export line), the invalid rows, and the row count;
        the keys of valid rows the index lacks go to ``fresh_keys`` (a known key is the
        index's own).

        A valid row whose key the index knows is settled as soon as its block is read
        (whether it came first is known by then): it is only counted. Kept are the rows
        the end still needs: those of keys new to the provider (a later block cannot
        change what an earlier one did, but the same new key may have come before), the
        repeats, and the contacts kept by consent that the report lists. On a first sync
        every key is new: their strings wait on disk, not in memory.
        """
        shape = self.shape
        columns = LocalColumns(
            self._local, builder=self._builder, shape=shape, normaliser=self._normaliser
        )
        index_values = remote.frame.select(
            pl.col("kc").alias("r_kc"),
            pl.col("digest").alias("r_digest"),
            *(
                pl.col(shape.additive_name(i)).alias("r_" + shape.additive_name(i))
                for i in shape.additive
            ),
            pl.col("lock").alias("r_lock"),
            pl.col("clean").alias("r_clean"),
            pl.col("line").alias("r"),  # the export line of the matched contact
        )
        lookup = (index_values, SortedHashes(remote.frame.get_column("kh")))
        if remote.frame.is_empty():
            self._trial = False  # a first sync: no row can equal an index row
        verdict, skipped = self._verdict(), self._skipped()
        # The first local line to name each index row, by export line (0: none yet): a
        # row naming one already named is a repeat, known as soon as its block is read.
        self._first_line = _first_lines(remote)
        valid: list[pl.DataFrame] = []
        invalid: list[pl.DataFrame] = []
        rows = 0
        for block in self._local.blocks():
            self._checkpoint()
            judged = self._judge(columns, block, lookup)
            rows += judged.height
            ok = judged.get_column("reason").is_null()
            invalid.append(compact(judged.select("line", "field", "reason", "key").filter(~ok)))
            if (judged.get_column("r_kc") != judged.get_column("kc")).any():
                raise NotColumnar("two different keys share a 64-bit hash")
            judged = judged.with_columns(
                self._registry.within(
                    judged.get_column(shape.value(i)),
                    judged.get_column("r_" + shape.additive_name(i)),
                ).alias(f"within{i}")
                for i in shape.additive
            ).with_columns(verdict=verdict)
            narrow = judged.select("key", "kh", "line", "verdict", "r", "r_lock").filter(ok)
            named_before = self._first_line.gather(narrow.get_column("r")) != 0
            narrow = narrow.with_columns(
                first=pl.col("kh").is_first_distinct() & ~named_before.fill_null(False),
                skipped=skipped,
            ).with_columns(
                written=pl.col("first")
                & pl.col("verdict").is_in([INSERT, UPDATE])
                & ~pl.col("skipped")
            )
            named = narrow.filter(pl.col("first") & pl.col("r").is_not_null())
            self._first_line.scatter(named.get_column("r"), named.get_column("line"))
            lines = narrow.filter("written").get_column("line")
            self._write(judged.filter(pl.col("line").is_in(lines.implode())))
            unsettled = pl.col("r").is_null() | ~pl.col("first") | (pl.col("verdict") == KEPT)
            self._count(narrow.filter(~unsettled))
            valid.append(
                narrow.filter(unsettled).select(
                    "kh", "line", "verdict", "r", "r_lock", "skipped", "written", "first"
                )
            )
            # The keys of rows new to the provider: only repeats among them need one back.
            fresh_keys.add(narrow.filter(pl.col("r").is_null()).select("line", "key"))
        return (
            _concat(valid, _VALID),
            _concat(invalid, _INVALID),
            rows,
        )

    def _count(self, rows: pl.DataFrame) -> None:
        """Add rows' verdicts to the plan's counts (``_COUNTS``)."""
        verdict, skipped, once = pl.col("verdict"), pl.col("skipped"), pl.col("first")
        counts = rows.select(
            unchanged=(once & (verdict == UNCHANGED)).sum(),
            kept=(once & (verdict == KEPT)).sum(),
            inserts=(once & (verdict == INSERT) & ~skipped).sum(),
            updates=(once & (verdict == UPDATE) & ~skipped).sum(),
            skipped=(once & skipped).sum(),
        ).row(0, named=True)
        for name in _COUNTS:
            self._counted[name] += int(counts[name])

    def _judge(self, columns: LocalColumns, block: Block, lookup: _Index) -> pl.DataFrame:
        """The block's rows normalised, hashed and matched to the index (``r_*``).

        Most rows of a nightly file hold the provider's own values, and normalising is
        most of the cost of a row, so rows are first matched as they stand, as if every
        scalar cell were canonical. A row whose key and exactly compared values then
        equal those of an index row that was canonical as it stood has canonical cells
        itself: normalising it would change nothing (a canonical cell is kept as it is).
        Only the other rows are normalised and matched again.
        """
        raw, first = block.frame, block.first_line
        lines = pl.int_range(first, first + raw.height, dtype=pl.UInt32, eager=True)
        sets = columns.sets(raw)
        if not self._trial:
            return self._matched(columns.frame(raw, sets, lines), lookup)
        trial = self._matched(columns.frame(raw, sets, lines, trusted=True), lookup)
        trusted = trial.select(
            (
                pl.col("r_clean")
                & (pl.col("r_kc") == pl.col("kc"))
                & (pl.col("r_digest") == pl.col("digest"))
                & pl.col("reason").is_null()
            ).fill_null(False)
        ).to_series()
        if trusted.all():
            return trial
        rows = (~trusted).arg_true()
        if 2 * rows.len() > raw.height:
            # Mostly new or changed rows: the whole block, as it would be without a trial.
            del trial
            return self._matched(columns.frame(raw, sets, lines), lookup)
        # The other rows, normalised and matched again on their own, then put back.
        again = columns.frame(raw[rows], sets[rows], lines.gather(rows))
        again = self._matched(again, lookup)
        # Put back in place: once the trial frame is let go, its columns are held by
        # this list alone, so scatter need not copy them.
        judged = trial.get_columns()
        del trial
        for column in judged:
            column.scatter(rows, again.get_column(column.name))
        return pl.DataFrame(judged)

    def _hashed(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(
            digest=self.shape.digest(), kh=pl.col("key").hash(), kc=key_check(pl.col("key"))
        )

    def _matched(self, frame: pl.DataFrame, lookup: _Index) -> pl.DataFrame:
        hashed = self._hashed(frame)
        return hashed.hstack(_lookup(lookup, hashed.get_column("kh")))

    def _write(self, changes: pl.DataFrame) -> None:
        """Spool a block's changes in line order: encoded by column in one go (a first
        sync spools a million inserts), and the first few kept as samples."""
        if changes.is_empty():
            return
        shape = self.shape
        values = [
            (
                self._registry.items(changes.get_column(shape.value(i)))
                if is_set
                else changes.get_column(shape.value(i))
            ).alias(name)
            for i, (name, is_set) in enumerate(zip(shape.fields, self._sets, strict=True))
        ]
        rows = changes.select("key", "line", "verdict").hstack(values)
        # In slices: one bytes object per block would be tens of MB, which the C
        # allocator then keeps (its mmap threshold follows the largest block freed).
        for offset in range(0, rows.height, _ENCODE_ROWS):
            part = rows.slice(offset, _ENCODE_ROWS)
            encoded = encode_changes(part, shape.fields, self._source)
            self._spool.write_encoded(encoded, part.height)
        self._keep_samples(rows)

    def _keep_samples(self, rows: pl.DataFrame) -> None:
        plan, samples = self._plan, self._settings.samples
        for verdict, target in ((INSERT, plan.sample_inserts), (UPDATE, plan.sample_updates)):
            wanted = samples - len(target)
            if wanted <= 0:
                continue
            picked = rows.filter(pl.col("verdict") == verdict).head(wanted)
            for key, line, _, *cells in picked.iter_rows():
                origin = RowOrigin(self._source, line)
                target.append(Contact(key=key, fields=self._fields(cells), origin=origin))

    def _fields(self, cells: list[Any]) -> dict[str, FieldValue]:
        """Cells of one row as ``Contact.fields``: strings, and sets as frozensets."""
        return {
            name: frozenset(value) if is_set else str(value)
            for name, value, is_set in zip(self.shape.fields, cells, self._sets, strict=True)
        }

    def _emit(self, change: Change) -> None:
        self._spool.write(change)
        samples = self._settings.samples
        target = (
            self._plan.sample_inserts
            if change.kind is ChangeKind.INSERT
            else self._plan.sample_updates
        )
        if len(target) < samples:
            target.append(Contact(key=change.key, fields=change.fields, origin=change.origin))

    # -- what only the end can tell -----------------------------------------------------
    def _report_remote(self, remote: RemoteIndex, report: SyncReport) -> None:
        summary = report.plan
        summary.remote_invalid += remote.keyless.len()
        for line in remote.keyless.to_list():
            report.problems.add(
                Problem(
                    stage="remote",
                    reason=f"provider row has no {self._builder.key_label}",
                    source=_EXPORT_SOURCE,
                    line=line,
                )
            )
        if remote.duplicated:
            report.warn(_REMOTE_TWICE)
        summary.remote_total += remote.frame.height

    def _resolve(
        self,
        valid: pl.DataFrame,
        repeats: pl.DataFrame,
        kept: pl.DataFrame,
        names: pl.DataFrame,
        fresh_keys: KeyStore,
        invalid: pl.DataFrame,
        rows: int,
        remote: RemoteIndex,
        report: SyncReport,
    ) -> None:
        # Only the unsettled rows reach here (see _local_pass): the rest are counted.
        # The row each repeat repeats: of a known key, the first to name its index row;
        # of a new key, the first row with its hash.
        fresh = repeats.filter(pl.col("r").is_null())
        earlier = valid.filter(
            pl.col("first") & pl.col("kh").is_in(fresh.get_column("kh").implode())
        ).select("kh", first_line="line")
        repeats = repeats.with_columns(
            first_line=self._first_line.gather(repeats.get_column("r"))
        ).join(earlier, on="kh", how="left", maintain_order="left")
        repeats = repeats.with_columns(
            first_line=pl.coalesce("first_line", "first_line_right")
        ).drop("first_line_right")
        repeats = self._with_keys(repeats, fresh_keys, names)
        late = repeats.filter("written")
        if not late.is_empty():
            # Written before the block that saw the key first had been read: rare (a key
            # repeated across blocks and changed), so rewriting the spool is fine.
            self._drop_from_spool(frozenset(late.get_column("line").to_list()))
        summary = report.plan
        self._count(valid)
        counts = self._counted
        summary.local_rows += rows
        summary.invalid_local += invalid.height
        summary.duplicates += repeats.height
        summary.unchanged += counts["unchanged"]
        summary.kept_by_consent += counts["kept"]
        summary.to_insert += counts["inserts"]
        summary.to_update += counts["updates"]
        summary.skipped_by_mode += counts["skipped"]
        kept = kept.join(names, on="r", how="left", maintain_order="left")
        for key, code in kept.select("key", "r_lock").iter_rows():
            report.kept.append((key, remote.reasons[code] or "locked"))
        for problem in heapq.merge(
            self._invalid_problems(invalid), self._duplicate_problems(repeats), key=_line
        ):
            report.problems.add(problem)
        if self._plan.sample_updates:
            keys = pl.Series([contact.key for contact in self._plan.sample_updates])
            hashes, checks = keys.hash().implode(), key_check(pl.lit(keys)).implode()
            lines = []
            for table in (remote.frame, remote.repeats):
                found = table.filter(pl.col("kh").is_in(hashes)).filter(pl.col("kc").is_in(checks))
                lines += found.get_column("line").to_list()
            self._plan.updated_lines = frozenset(lines)

    @staticmethod
    def _with_keys(
        repeats: pl.DataFrame, fresh_keys: KeyStore, names: pl.DataFrame
    ) -> pl.DataFrame:
        """Repeated rows with their key: the export's for a known key (``names``, by the
        matched export line ``r``; the lookup already checked it), else the row's own
        (from ``fresh_keys``), checked against the first row's."""
        if repeats.is_empty():
            return repeats.with_columns(key=pl.lit(None, dtype=pl.String))
        known = repeats.filter(pl.col("r").is_not_null()).join(names, on="r", how="left")
        fresh = repeats.filter(pl.col("r").is_null())
        keyed = fresh_keys.keys(pl.concat([fresh.get_column("line"), fresh["first_line"]]))
        fresh = fresh.join(keyed, on="line", how="left").join(
            keyed.select(first_line="line", first_key="key"), on="first_line", how="left"
        )
        if (fresh.get_column("key") != fresh.get_column("first_key")).any():
            raise NotColumnar("two different keys share a 64-bit hash")
        return pl.concat([known, fresh.drop("first_key")], how="diagonal").sort("line")

    def _invalid_problems(self, invalid: pl.DataFrame) -> Iterator[Problem]:
        for line, column, reason, key in invalid.iter_rows():
            yield Problem(
                stage="local", reason=reason, key=key, source=self._source, line=line, field=column
            )

    def _duplicate_problems(self, repeats: pl.DataFrame) -> Iterator[Problem]:
        source = self._source
        for key, line, first_line in repeats.select("key", "line", "first_line").iter_rows():
            kept, dropped = RowOrigin(source, first_line), RowOrigin(source, line)
            yield Duplicate(key, kept, dropped, "first").problem()

    def _drop_from_spool(self, lines: frozenset[int]) -> None:
        spool = self._spool
        spool.close()
        final = spool.path
        moved = final.with_name(final.name + ".repeats")
        final.replace(moved)
        spool.path = moved  # read the old changes from where they now are
        fresh = PlanSpool(final)
        self._spool = self._plan.spool = fresh
        self._plan.sample_inserts.clear()
        self._plan.sample_updates.clear()
        for change in spool.read():
            if change.origin is None or change.origin.line not in lines:
                self._emit(change)
        moved.unlink()

    def _unseen(self, invalid: pl.DataFrame, remote: RemoteIndex) -> pl.DataFrame:
        """Mirror mode: ``line, lock`` of the export rows no local row names (valid or
        not), in export order; nothing in other modes."""
        if self._settings.mode != "mirror":
            return pl.DataFrame(schema={"line": pl.UInt32, "lock": pl.UInt16})
        # Few invalid rows name a key; their keys protect remote contacts too.
        named = invalid.filter(pl.col("key").is_not_null()).with_columns(
            kh=pl.col("key").hash(), kc=key_check(pl.col("key"))
        )
        wanted = named.get_column("kh").implode()
        matched = remote.frame.filter(pl.col("kh").is_in(wanted)).select("kh", "kc", r="line")
        protected = named.join(matched, on="kh").filter(pl.col("kc") == pl.col("kc_right"))
        marks = (self._first_line != 0).scatter(protected.get_column("r"), True)
        unseen = remote.frame.filter(~marks.gather(remote.frame.get_column("line")))
        return unseen.select("line", "lock").sort("line")

    def _removals(self, unseen: pl.DataFrame, names: pl.DataFrame, report: SyncReport) -> None:
        """Mirror mode: a removal for each unseen export row (``names`` holds its key)."""
        unseen = unseen.join(names, left_on="line", right_on="r", how="left", maintain_order="left")
        summary = report.plan
        shown = self._plan.removal_keys
        for key, code in unseen.select("key", "lock").iter_rows():
            if code != 0:
                summary.kept_from_removal += 1
                continue
            summary.to_remove += 1
            self._spool.write(Change(ChangeKind.REMOVE, key, self._builder.identity(key)))
            if len(shown) < self._settings.samples:
                shown.append(key)


def encode_changes(rows: pl.DataFrame, fields: Sequence[str], source: str) -> bytes:
    """``key, line, verdict`` and one column per field (sets as sorted lists) as spool
    lines, byte for byte what ``PlanSpool.write`` writes for the same changes: one JSON
    object per line with the kind, the key, the fields in order and the origin."""
    kind = (
        pl.when(pl.col("verdict") == INSERT)
        .then(pl.lit('{"k":"insert",'))
        .otherwise(pl.lit('{"k":"update",'))
    )
    key = pl.struct("key").struct.json_encode().str.strip_prefix("{").str.strip_suffix("}")
    encoded = rows.select(
        pl.concat_str(
            kind,
            key,
            pl.lit(',"f":'),
            pl.struct(list(fields)).struct.json_encode(),
            pl.lit(',"o":[' + orjson.dumps(source).decode() + ","),
            pl.col("line").cast(pl.String),
            pl.lit("]}"),
        )
    )
    # Written out by polars in one pass: no Python string per line, nor one for all.
    buffer = io.BytesIO()
    encoded.write_csv(buffer, include_header=False, quote_style="never", line_terminator="\n")
    return buffer.getvalue()


def _first_across_blocks(valid: pl.DataFrame) -> pl.DataFrame:
    """``first`` corrected for keys new to the provider: a key the index knows was told
    first or not in its block, but a new key (few, yet all of them on a first sync) may
    have come in an earlier block too."""
    fresh = valid.get_column("r").is_null().arg_true()
    if fresh.is_empty():
        return valid
    again = ~valid.get_column("kh").gather(fresh).is_first_distinct()
    return valid.with_columns(first=valid.get_column("first").scatter(fresh.filter(again), False))


def _first_lines(remote: RemoteIndex) -> pl.Series:
    """0 for every export line that an index row can have."""
    lines = remote.frame.get_column("line")
    size = 0 if lines.is_empty() else int(lines.max()) + 1  # type: ignore[arg-type]
    return pl.repeat(0, size, eager=True, dtype=pl.UInt32)


def _lookup(index: _Index, hashes: pl.Series) -> pl.DataFrame:
    """The index rows whose ``kh`` equals each hash (all null where none does).

    A search in the sorted index costs per block row, where a join would cost per index
    row, for every block again.
    """
    values, hashed = index
    return values[hashed.positions(hashes)]


def _line(problem: Problem) -> int:
    return problem.line or 0


_VALID = pl.Schema(
    {
        "kh": pl.UInt64,
        "line": pl.UInt32,
        "verdict": pl.UInt8,
        "r": pl.UInt32,
        "r_lock": pl.UInt16,
        "skipped": pl.Boolean,
        "written": pl.Boolean,
        "first": pl.Boolean,
    }
)
_INVALID = pl.Schema({"line": pl.UInt32, "field": pl.String, "reason": pl.String, "key": pl.String})


def _concat(parts: list[pl.DataFrame], schema: pl.Schema) -> pl.DataFrame:
    if not parts:
        return pl.DataFrame(schema=schema)
    # Chunks stay as they are: no second copy of the parts while they are joined.
    return pl.concat(parts, how="vertical", rechunk=False) if len(parts) > 1 else parts[0]
