"""Local sources of truth: the Source protocol; file, database and in-memory sources."""

from __future__ import annotations

from sync_engine.sources._threaded import iterate_in_thread
from sync_engine.sources.base import IterableSource, Source
from sync_engine.sources.csv_file import CsvSource
from sync_engine.sources.jsonl_file import JsonlSource
from sync_engine.sources.postgres import PostgresSource
from sync_engine.sources.sqlite import SqliteSource

__all__ = [
    "CsvSource",
    "IterableSource",
    "JsonlSource",
    "PostgresSource",
    "Source",
    "SqliteSource",
    "iterate_in_thread",
]
