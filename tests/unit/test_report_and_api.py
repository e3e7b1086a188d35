"""The report's exit codes, the rejects file's formula guard, and the pinned public API."""

from __future__ import annotations

import csv
from pathlib import Path

import sync_engine
from sync_engine.plan import PlanSummary
from sync_engine.report import Outcome, Problem, ProblemSink, SyncReport, neutralise_formula


def test_exit_codes_follow_the_outcome() -> None:
    report = SyncReport(provider="unisender", mode="upsert")
    report.settle()
    assert report.exit_code == 0
    report = SyncReport(provider="unisender", mode="upsert", rejected=1)
    report.settle()
    assert (report.outcome, report.exit_code) == (Outcome.REJECTED_ROWS, 1)
    report = SyncReport(
        provider="unisender", mode="upsert", plan=PlanSummary(local_rows=3, invalid_local=1)
    )
    report.settle()
    assert report.exit_code == 1
    report = SyncReport(provider="unisender", mode="upsert", failed=2, rejected=1)
    report.settle()
    assert (report.outcome, report.exit_code) == (Outcome.FAILED, 3)


def test_warnings_are_distinct_and_capped() -> None:
    report = SyncReport(provider="unisender", mode="upsert")
    report.warn("same")
    report.warn("same")
    for i in range(500):
        report.warn(f"row {i} over the limit")
    assert report.warnings[:2] == ["same", "row 0 over the limit"]
    assert len(report.warnings) == 100


def test_formulas_are_neutralised() -> None:
    assert neutralise_formula("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    assert neutralise_formula("+1") == "'+1"
    assert neutralise_formula("anna@example.com") == "anna@example.com"


def test_problem_sink_streams_all_and_keeps_a_capped_sample(tmp_path: Path) -> None:
    path = tmp_path / "rejects.csv"
    sink = ProblemSink(path, cap=2)
    for i in range(5):
        sink.add(
            Problem(
                stage="local",
                reason=f"bad {i}",
                source="f.csv",
                line=i + 2,
                field="email",
                key="=x",
            )
        )
    sink.close()
    assert sink.total == 5
    assert len(sink.kept) == 2
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["line"] for r in rows] == ["2", "3", "4", "5", "6"]
    assert rows[0]["key"] == "'=x"
    assert rows[0]["reason"] == "bad 0"


def test_public_api_is_pinned() -> None:
    """Changing the public surface must be a deliberate act: update this list with it."""
    assert sync_engine.__all__ == sorted(sync_engine.__all__)
    assert set(sync_engine.__all__) == {
        "Batch",
        "BatchKind",
        "BatchOutcome",
        "BatchRejectedError",
        "Change",
        "ChangeKind",
        "ConfigError",
        "Contact",
        "CsvSource",
        "CsvSourceConfig",
        "DeletionGuard",
        "ExportError",
        "FatalProviderError",
        "FieldRule",
        "IterableSource",
        "JsonlSource",
        "JsonlSourceConfig",
        "Outcome",
        "Plan",
        "PlanSummary",
        "PostgresSource",
        "PostgresSourceConfig",
        "Problem",
        "Provider",
        "ProviderConfig",
        "ProviderError",
        "RemoteContact",
        "RemoteRecord",
        "RetriableProviderError",
        "RowOrigin",
        "RowOutcome",
        "RowProblem",
        "RowStatus",
        "RunRefusedError",
        "Secret",
        "Source",
        "SourceError",
        "SourceRow",
        "SqliteSource",
        "SqliteSourceConfig",
        "SyncConfig",
        "SyncEngine",
        "SyncEngineError",
        "SyncReport",
        "SyncSettings",
        "UniSenderConfig",
        "__version__",
        "load_config",
        "parse_config",
    }
    for name in sync_engine.__all__:
        assert hasattr(sync_engine, name), name
