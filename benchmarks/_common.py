"""What every benchmark shares: the machine line, child processes, memory readings,
and an emulator served from its own process (so the engine's CPU and RSS are its own)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import structlog

__all__ = [
    "EmulatorProcess",
    "RssSampler",
    "current_rss_mb",
    "emulator_process",
    "machine",
    "peak_rss_mb",
    "quiet_logs",
    "run_child",
]

API_KEY = "bench-api-key-0123456789"


def quiet_logs() -> None:
    """Benchmarks print figures, not the engine's info logs (warnings still show)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def machine() -> str:
    """The line every benchmark prints first: cores, and the load other work puts on them."""
    quiet_logs()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"machine: os.cpu_count()={os.cpu_count()}, load average {load:.2f}"


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """This process's resident set size now (from /proc; the peak where there is none)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except OSError:
        return peak_rss_mb()
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """Samples RSS every few milliseconds and keeps the peak per labelled phase."""

    def __init__(self, interval: float = 0.005) -> None:
        self.phase = "start"
        self.peaks: dict[str, float] = {}
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            rss = current_rss_mb()
            if rss > self.peaks.get(self.phase, 0.0):
                self.peaks[self.phase] = rss


def run_child(module: str, args: Sequence[str]) -> dict[str, Any]:
    """Run ``python -m module args`` and return the JSON object it prints last."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", module, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    last = result.stdout.strip().splitlines()[-1]
    data: dict[str, Any] = json.loads(last)
    return data


class EmulatorProcess:
    """A UniSender emulator in a child process; ``base_url`` once it listens."""

    def __init__(self, process: subprocess.Popen[str], base_url: str) -> None:
        self.process = process
        self.base_url = base_url


@contextlib.contextmanager
def emulator_process(
    *,
    rate_limit: int = 1_000_000,
    window: float = 1.0,
    export_file: Path | None = None,
    fields: Sequence[str] = (),
) -> Iterator[EmulatorProcess]:
    """Serve an emulator from ``benchmarks._emulator`` on a free loopback port."""
    command = [
        sys.executable,
        "-m",
        "benchmarks._emulator",
        "--rate-limit",
        str(rate_limit),
        "--window",
        str(window),
        *(["--export-file", str(export_file)] if export_file else []),
        *(arg for name in fields for arg in ("--field", name)),
    ]
    with subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command, stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            if not base_url.startswith("http://127.0.0.1:"):
                raise RuntimeError(f"the emulator did not start: {base_url!r}")
            yield EmulatorProcess(process, base_url)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
