"""CLI logging masks secrets in every rendered line; the progress line redraws in place."""

from __future__ import annotations

import io

import orjson
import structlog

from sync_engine.log import configure_logging
from sync_engine.progress import TerminalProgress


def test_secrets_are_masked_in_json_logs() -> None:
    stream = io.StringIO()
    configure_logging(log_format="json", verbose=True, secrets=["key-abcdef-123"], stream=stream)
    try:
        structlog.get_logger().warning("retrying", error="denied for key-abcdef-123", attempt=2)
    finally:
        structlog.reset_defaults()
    line = orjson.loads(stream.getvalue())
    assert line["error"] == "denied for ***"
    assert line["level"] == "warning"
    assert line["timestamp"].endswith("Z")
    assert "key-abcdef-123" not in stream.getvalue()


def test_info_needs_verbose() -> None:
    stream = io.StringIO()
    configure_logging(log_format="console", verbose=False, stream=stream)
    try:
        structlog.get_logger().info("stage", stage="export")
        structlog.get_logger().error("boom")
    finally:
        structlog.reset_defaults()
    assert "stage" not in stream.getvalue()
    assert "boom" in stream.getvalue()


def test_terminal_progress_overwrites_one_line() -> None:
    stream = io.StringIO()
    progress = TerminalProgress(stream)
    progress.stage("export")
    progress.update("batches", {"done": 1, "total": 3})
    progress.close()
    text = stream.getvalue()
    assert text.startswith("\rexport...")
    assert "\n" not in text
    assert text.endswith("\r")
