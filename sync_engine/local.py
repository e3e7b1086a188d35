"""The local side of a sync: source rows -> one normalised contact per key.

Steps, each in its own module: read the source (``sources``), check that the mapped
columns exist, map values by the ``[mapping]`` rules (``mapping``), normalise into a
contact (``contact``), and resolve duplicate keys by the configured rule
(``duplicates``). The engine gets one stream of contacts, problems and duplicates.

A file source whose mapping is all plain ``field = "column"`` entries skips the mapping
step: its values are text already and go to the contact builder as they are.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path

import anyio

from .config import SyncConfig
from .contact import Contact, ContactBuilder
from .duplicates import Duplicate, DuplicateResolver, Ranked
from .errors import SourceError
from .mapping import RowMapper
from .records import RowProblem, SourceRow
from .sources import CsvSource, JsonlSource, Source

__all__ = ["LocalContacts", "needed_columns"]


def needed_columns(config: SyncConfig) -> dict[str, str]:
    """Every column the sync reads, with what needs it (for "missing column" errors)."""
    needed: dict[str, str] = {}
    for provider_field, column in config.mapping.items():
        needed.setdefault(column, f"mapped to {provider_field}")
    newest_by = config.source.newest_by
    if newest_by is not None:
        needed.setdefault(newest_by, "[source] newest_by")
    return needed


class LocalContacts:
    """Streams a source as contacts; see the module docstring for the steps."""

    def __init__(
        self,
        source: Source,
        config: SyncConfig,
        builder: ContactBuilder,
        *,
        work_dir: Path,
    ) -> None:
        self.source = source
        settings = config.source
        rules = {name: config.rule(name) for name in config.mapping}
        plain = (
            isinstance(source, CsvSource | JsonlSource)
            and settings.null == "clear"
            and all(rule.plain for rule in rules.values())
        )
        self._mapper: RowMapper | None = None
        self.plain = plain  # no mapping step: what the columnar planner can do as well
        self._builder = builder
        if not plain:
            self._mapper = RowMapper(
                rules, kinds={n: builder.schema.kind(n) for n in rules}, settings=settings
            )
            # The mapper hands over rows keyed by provider field.
            self._builder = ContactBuilder(
                mapping={name: name for name in rules},
                schema=builder.schema,
                normaliser=builder.normaliser,
                key=builder.key_kind,
                key_field=builder.key_field,
                implicit_list_id=(
                    int(builder.implicit_list_id) if builder.implicit_list_id is not None else None
                ),
            )
        self._needed = needed_columns(config)
        self._check_header = isinstance(source, CsvSource)
        self._newest_by = settings.newest_by
        self._resolver = (
            DuplicateResolver(settings.duplicates, spool_dir=work_dir, newest_by=settings.newest_by)
            if settings.duplicates != "first"
            else None
        )

    @property
    def optional_fields(self) -> frozenset[str]:
        """Fields a contact may lack because a NULL was kept (see ``mapping``)."""
        return self._mapper.optional_fields if self._mapper is not None else frozenset()

    async def read(self) -> AsyncGenerator[Contact | RowProblem | Duplicate, None]:
        """Every source row once: as a contact, a problem, or a skipped duplicate.

        With the ``first`` rule duplicates are left to the diff, which sees keys in order.
        """
        if self._resolver is None:
            async with aclosing(self._contacts()) as contacts:
                async for item in contacts:
                    assert not isinstance(item, Ranked)
                    yield item
            return
        async with aclosing(self._contacts()) as ranked:
            # mypy cannot narrow the union of the generator's items; _contacts yields
            # Ranked (never a bare Contact) when a resolver is set.
            resolved = self._resolver.resolve(ranked)  # type: ignore[arg-type]
            async with aclosing(resolved):
                async for outcome in resolved:
                    yield outcome

    async def _contacts(self) -> AsyncGenerator[Contact | Ranked | RowProblem, None]:
        rows = self.source.read()
        check = self._check_header
        ranked = self._resolver is not None
        try:
            async for item in rows:
                if isinstance(item, RowProblem):
                    yield item
                    continue
                if check:
                    self._check_columns(item)
                    check = False
                built = self._build(item)
                if ranked and isinstance(built, Contact):
                    rank = item.values.get(self._newest_by) if self._newest_by else None
                    yield Ranked(built, rank)
                else:
                    yield built
        finally:
            aclose = getattr(rows, "aclose", None)
            if aclose is not None:
                # Shielded: a database source must get to close its connection even when
                # the run is being cancelled.
                with anyio.CancelScope(shield=True):
                    await aclose()

    def _build(self, row: SourceRow) -> Contact | RowProblem:
        if self._mapper is None:
            return self._builder.local(row)
        mapped, problem = self._mapper.map(row)
        built = self._builder.local(mapped)
        if isinstance(built, RowProblem):
            if problem is None:
                # The builder names provider fields here; users know their columns.
                column = self._mapper.columns.get(built.field or "", built.field)
                problem = RowProblem(built.origin, column, built.reason)
            return RowProblem(problem.origin, problem.field, problem.reason, key=built.key)
        if problem is not None:
            return RowProblem(problem.origin, problem.field, problem.reason, key=built.key)
        if len(mapped.values) < len(self._mapper.columns):
            # A field missing from the mapped row had its NULL kept: leave it out.
            left_out = self._mapper.columns.keys() - mapped.values.keys()
            fields = {n: v for n, v in built.fields.items() if n not in left_out}
            built = Contact(key=built.key, fields=fields, origin=built.origin)
        return built

    def _check_columns(self, row: SourceRow) -> None:
        """A CSV header must have every mapped column: fail before anything is planned."""
        missing = [(c, why) for c, why in self._needed.items() if c not in row.values]
        if missing:
            column, why = missing[0]
            raise SourceError(
                f"{row.origin.source}: column {column!r} ({why}) is not in the header;"
                f" columns are: {', '.join(map(str, row.values))}"
            )
