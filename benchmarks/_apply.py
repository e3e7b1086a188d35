"""Running a real sync (plan and apply) against an emulator process, for figures 2 and 3."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync_engine import SyncConfig, SyncEngine, SyncReport, parse_config
from sync_engine.providers import unisender

from ._common import API_KEY
from .datasets import LIST_ID, MAPPING

__all__ = ["ApplyRun", "WireTimer", "run_sync"]


@dataclass(kw_only=True)
class ApplyRun:
    report: SyncReport
    wall: float
    cpu: float
    apply_wall: float
    apply_cpu: float
    export_wait: float


class WireTimer:
    """CPU seconds spent building request bodies and parsing answers, measured by
    wrapping the provider's wire functions for the duration of a run."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._saved: list[tuple[object, str, object]] = []

    def _wrap(self, module: object, name: str) -> None:
        original: Callable[..., object] = getattr(module, name)

        def timed(*args: object, **kwargs: object) -> object:
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - started

        self._saved.append((module, name, original))
        setattr(module, name, timed)

    def __enter__(self) -> WireTimer:
        for name in ("encode_form", "import_pairs", "parse_answer", "parse_import_result"):
            self._wrap(unisender, name)
        return self

    def __exit__(self, *exc: object) -> None:
        for module, name, original in self._saved:
            setattr(module, name, original)


def config(
    local: Path, base_url: str, *, rate_limit: int, period: float, concurrency: int
) -> SyncConfig:
    return parse_config(
        {
            "source": {"type": "csv", "path": str(local)},
            "provider": {
                "base_url": base_url,
                "api_key": API_KEY,
                "list_id": LIST_ID,
                "rate_limit": rate_limit,
                "rate_period": period,
                "export_rate_limit": rate_limit,
                "concurrency": concurrency,
                "export_poll_interval": 0.05,
                "export_poll_max": 0.1,
                "timeout": 120.0,
            },
            "mapping": MAPPING,
            "work_dir": str(local.parent),
        }
    )


async def run_sync(
    local: Path,
    base_url: str,
    *,
    rate_limit: int = 1_000_000,
    period: float = 1.0,
    concurrency: int = 4,
    on_stage: Callable[[str], None] | None = None,
) -> ApplyRun:
    """One ``SyncEngine.run`` with the given limits; stage times from the report."""
    settings = config(
        local, base_url, rate_limit=rate_limit, period=period, concurrency=concurrency
    )
    stages = _Stages(on_stage)
    started, cpu = time.perf_counter(), time.process_time()
    async with SyncEngine(settings, progress=stages) as engine:
        report = await engine.run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return ApplyRun(
        report=report,
        wall=wall,
        cpu=cpu,
        apply_wall=report.stages.get("apply", 0.0),
        apply_cpu=stages.apply_cpu,
        export_wait=report.stages.get("export", 0.0),
    )


class _Stages:
    """A Progress that tells the caller which stage runs (and times the apply CPU)."""

    def __init__(self, on_stage: Callable[[str], None] | None) -> None:
        self.apply_cpu = 0.0
        self._on_stage = on_stage
        self._apply_started: float | None = None

    def _stop(self) -> None:
        if self._apply_started is not None:
            self.apply_cpu += time.process_time() - self._apply_started
            self._apply_started = None

    def stage(self, name: str) -> None:
        self._stop()
        if name == "apply":
            self._apply_started = time.process_time()
        if self._on_stage is not None:
            self._on_stage(name)

    def update(self, stage: str, info: Mapping[str, Any]) -> None:
        return None

    def close(self) -> None:
        self._stop()
