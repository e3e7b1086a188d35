"""Local sources of truth: the Source protocol and the file and in-memory sources."""

from __future__ import annotations

from sync_engine.sources._threaded import iterate_in_thread
from sync_engine.sources.base import IterableSource, Source
from sync_engine.sources.csv_file import CsvSource
from sync_engine.sources.jsonl_file import JsonlSource

__all__ = ["CsvSource", "IterableSource", "JsonlSource", "Source", "iterate_in_thread"]
