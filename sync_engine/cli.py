"""The ``sync-engine`` command: a thin layer over the library.

It parses arguments, loads the config, runs the engine inside ``anyio.run`` and maps
the outcome to exit codes fit for cron: 0 success, 1 completed with rejected rows,
2 configuration or usage error, 3 run failed or refused, 75 another run of the same
target holds the lock (EX_TEMPFAIL: try again later), 130 interrupted by SIGINT,
143 stopped by SIGTERM. A stopped run lets its batches in flight finish, writes the
journal and prints the partial report; the next ``run`` resumes it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import orjson

from . import __version__
from .config import SyncConfig, load_config
from .engine import SyncEngine
from .errors import ConfigError, RunLockedError, SyncEngineError
from .journal.queries import read_history, read_rejects
from .journal.store import RunRecord, RunStatus
from .log import configure_logging
from .progress import NullProgress, Progress, TerminalProgress
from .report import SyncReport
from .sources._dsn import redact_dsn

if TYPE_CHECKING:
    from .testing import ServableEmulator

__all__ = ["main"]

EXIT_OK, EXIT_REJECTED, EXIT_CONFIG, EXIT_FAILED = 0, 1, 2, 3
EXIT_LOCKED, EXIT_INTERRUPTED, EXIT_TERMINATED = 75, 130, 143


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        print("sync-engine: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sync-engine",
        description="Keep a provider's contact base equal to your local contacts.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--config",
            "-c",
            type=Path,
            default=Path("sync-engine.toml"),
            help="TOML config file (default: ./sync-engine.toml)",
        )
        sub.add_argument(
            "--log-format",
            choices=["auto", "console", "json"],
            default="auto",
            help="logs on stderr: console text or JSON lines (auto: JSON unless a TTY)",
        )
        sub.add_argument("--verbose", "-v", action="store_true", help="log each stage")

    run = commands.add_parser("run", help="plan and apply a sync")
    common(run)
    run.add_argument(
        "--full", action="store_true", help="resend every local contact whatever the diff says"
    )
    run.add_argument(
        "--allow-deletes",
        type=int,
        metavar="N",
        help="allow up to N removals this run, above the deletion guard",
    )
    run.add_argument(
        "--rejects",
        type=Path,
        metavar="FILE",
        help="write every rejected or invalid row, with its reason, to this CSV",
    )
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    run.add_argument(
        "--restart",
        action="store_true",
        help="discard an interrupted run of this target and plan afresh (default: resume it)",
    )
    run.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="if another run of this target is in progress, wait this long for it"
        " (default: [journal] lock_wait, 0: exit at once with code 75)",
    )
    run.set_defaults(handler=_cmd_run)

    plan = commands.add_parser("plan", help="dry run: show what a run would change")
    common(plan)
    plan.add_argument("--full", action="store_true")
    plan.add_argument("--allow-deletes", type=int, metavar="N")
    plan.add_argument("--samples", type=int, default=10, help="changes to show field by field")
    plan.add_argument("--rejects", type=Path, metavar="FILE")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(handler=_cmd_plan)

    check = commands.add_parser("check-config", help="validate the config")
    common(check)
    check.add_argument(
        "--online", action="store_true", help="also ask the provider: key, list and user fields"
    )
    check.set_defaults(handler=_cmd_check)

    history = commands.add_parser("history", help="the last runs: when, mode, counts, outcome")
    common(history)
    history.add_argument("-n", "--limit", type=int, default=20, help="how many runs (default 20)")
    history.add_argument("--all-targets", action="store_true", help="runs of every target")
    history.add_argument("--json", action="store_true", help="print JSON for machines")
    history.set_defaults(handler=_cmd_history)

    rejects = commands.add_parser(
        "rejects", help="rows the provider rejected, held back until they change"
    )
    common(rejects)
    rejects.add_argument("--json", action="store_true", help="print JSON for machines")
    rejects.set_defaults(handler=_cmd_rejects)

    emulate = commands.add_parser("emulate", help="serve the provider emulator")
    emulate.add_argument("provider", choices=sorted(_EMULATORS))
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument("--port", type=int, default=0, help="0 picks a free port")
    emulate.add_argument(
        "--api-key",
        "--token",
        dest="api_key",
        default=os.environ.get("EMULATOR_API_KEY", "test-key"),
        help="the credential the emulator accepts (Altcraft calls it a token)",
    )
    emulate.add_argument("--seed", type=Path, help="JSON file: lists, fields and contacts")
    emulate.add_argument(
        "--export-delay", type=float, default=0.2, help="seconds an export task takes to complete"
    )
    emulate.add_argument(
        "--import-delay",
        type=float,
        default=0.2,
        help="eSputnik: seconds an import session takes to finish",
    )
    emulate.add_argument(
        "--faults",
        metavar="SPEC",
        help="inject faults: KIND[@METHOD][=PROBABILITY|*COUNT],... e.g. 'any=0.1'"
        " or 'hang@importContacts*2,link_expired@download' (eSputnik also: import_error=P)",
    )
    emulate.set_defaults(handler=_cmd_emulate)

    demo = commands.add_parser("demo", help="a real sync of sample contacts against the emulator")
    demo.add_argument("--log-format", choices=["auto", "console", "json"], default="auto")
    demo.add_argument("--verbose", "-v", action="store_true")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def _load(args: argparse.Namespace) -> SyncConfig | None:
    try:
        config = load_config(args.config)
    except ConfigError as error:
        configure_logging(log_format=args.log_format, verbose=args.verbose)
        print(f"sync-engine: {error}", file=sys.stderr)
        return None
    configure_logging(
        log_format=args.log_format,
        verbose=args.verbose,
        secrets=config.secrets(),
    )
    return config


def _progress() -> Progress:
    return TerminalProgress() if sys.stderr.isatty() else NullProgress()


def _cmd_run(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_CONFIG
    return _execute(config, args, dry_run=False)


def _cmd_plan(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_CONFIG
    return _execute(config, args, dry_run=True)


def _execute(config: SyncConfig, args: argparse.Namespace, *, dry_run: bool) -> int:
    holder: dict[str, SyncReport | None] = {"report": None}
    received: list[int] = []

    async def watch_signals(run_scope: anyio.CancelScope, engine: SyncEngine) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                if not received:
                    received.append(signum)
                    print(
                        f"sync-engine: {signal.Signals(signum).name}: stopping; batches in flight"
                        " may finish (send it again to stop now)",
                        file=sys.stderr,
                        flush=True,
                    )
                    run_scope.cancel()
                else:
                    engine.hurry()

    async def go() -> None:
        engine = SyncEngine(config, rejects_path=args.rejects, progress=_progress())
        failure: SyncEngineError | None = None
        async with engine, anyio.create_task_group() as group:
            run_scope = anyio.CancelScope()
            group.start_soon(watch_signals, run_scope, engine)
            try:
                with run_scope:
                    await engine.run(
                        dry_run=dry_run,
                        full=args.full,
                        allow_deletes=args.allow_deletes,
                        samples=getattr(args, "samples", 10),
                        restart=getattr(args, "restart", False),
                        lock_wait=getattr(args, "wait", None),
                    )
            except SyncEngineError as error:
                failure = error  # raised below, outside the task group (no exception group)
            finally:
                holder["report"] = engine.last_report
                group.cancel_scope.cancel()
        if failure is not None:
            raise failure

    try:
        anyio.run(go)
    except ConfigError as error:
        print(f"sync-engine: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except RunLockedError as error:
        print(f"sync-engine: {error}", file=sys.stderr)
        return EXIT_LOCKED
    except SyncEngineError as error:
        partial = holder["report"]
        if partial is not None:
            _print_report(partial, as_json=args.json)
        print(f"sync-engine: {error}", file=sys.stderr)
        return EXIT_FAILED
    report = holder["report"]
    assert report is not None
    _print_report(report, as_json=args.json)
    if received:
        return EXIT_TERMINATED if received[0] == signal.SIGTERM else EXIT_INTERRUPTED
    if dry_run:
        return EXIT_OK
    return report.exit_code


def _print_report(report: SyncReport, *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(report.render_text())
    sys.stdout.flush()


def _cmd_check(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_CONFIG
    print(f"{config.label}: ok")
    print(f"  source: {config.source.describe()}")
    provider = config.provider
    print(f"  provider: {provider.kind} at {provider.base_url}, {provider.scope()}")
    print(f"  key: {config.sync.key}; mode: {config.sync.mode}")
    print("  mapping: " + ", ".join(f"{f} <- {config.rule(f).describe()}" for f in config.mapping))
    journal = config.journal
    if not journal.enabled:
        print("  journal: off (no resume, no run lock, no history)")
    elif journal.dsn is not None:
        print(f"  journal: PostgreSQL {redact_dsn(journal.dsn.reveal())}, schema {journal.schema}")
    else:
        print(f"  journal: {journal.path}")
    path = getattr(config.source, "path", None)
    if isinstance(path, Path) and not path.exists():
        print(f"  warning: {path} does not exist yet")
    for warning in provider.warnings():
        print(f"  warning: {warning}")
    if not args.online:
        return EXIT_OK

    async def online() -> list[str]:
        async with SyncEngine(config) as engine:
            return await engine.check()

    try:
        warnings = anyio.run(online)
    except ConfigError as error:
        print(f"sync-engine: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except SyncEngineError as error:
        print(f"sync-engine: {error}", file=sys.stderr)
        return EXIT_FAILED
    for warning in warnings:
        print(f"  warning: {warning}")
    print("  provider: key, list and fields ok")
    return EXIT_OK


def _cmd_history(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_CONFIG
    try:
        runs = anyio.run(_history, config, args.limit, args.all_targets)
    except SyncEngineError as error:
        print(f"sync-engine: {error}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(error, ConfigError) else EXIT_FAILED
    if args.json:
        rows = [_run_json(run) for run in runs]
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    if not runs:
        print("no runs yet")
        return EXIT_OK
    header = (
        "run",
        "started",
        "mode",
        "tries",
        "time",
        "ins",
        "upd",
        "rem",
        "rej",
        "fail",
        "outcome",
    )
    lines = [header] + [_run_row(run) for run in runs]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return EXIT_OK


async def _history(config: SyncConfig, limit: int, all_targets: bool) -> list[RunRecord]:
    return await read_history(config, limit=limit, all_targets=all_targets)


def _run_outcome(run: RunRecord) -> str:
    if run.status is RunStatus.RUNNING:
        return "unfinished (running, or resumed by the next run)"
    if run.status is RunStatus.ABANDONED:
        return "abandoned (--restart)"
    return (run.outcome or "") + (f": {run.message}" if run.message else "")


def _applied(run: RunRecord) -> dict[str, int]:
    applied = (run.report or {}).get("applied", {})
    return {
        k: int(applied.get(k, 0)) for k in ("inserted", "updated", "removed", "rejected", "failed")
    }


def _run_row(run: RunRecord) -> tuple[str, ...]:
    applied = _applied(run)
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started_at))
    mode = run.mode + (" full" if run.full else "")
    counts = tuple(str(applied[k]) if run.report else "-" for k in applied)
    return (
        f"#{run.id}",
        started,
        mode,
        str(run.attempts),
        f"{run.active_seconds:.1f}s",
        *counts,
        _run_outcome(run),
    )


def _run_json(run: RunRecord) -> dict[str, object]:
    return {
        "run_id": run.id,
        "target": run.target,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "mode": run.mode,
        "full": run.full,
        "status": run.status.value,
        "outcome": run.outcome,
        "message": run.message,
        "attempts": run.attempts,
        "duration_seconds": round(run.active_seconds, 3),
        "plan": (run.report or {}).get("plan") or (run.plan_state or {}).get("summary"),
        "applied": _applied(run) if run.report else None,
    }


def _cmd_rejects(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_CONFIG
    try:
        rejects = anyio.run(read_rejects, config)
    except SyncEngineError as error:
        print(f"sync-engine: {error}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(error, ConfigError) else EXIT_FAILED
    retry = config.journal.retry_rejects_after_runs
    if args.json:
        rows = [
            {
                "key": r.key,
                "code": r.code,
                "reason": r.reason,
                "first_run": r.first_run,
                "last_run": r.last_run,
                "held_runs": r.held,
                "retry_after_runs": retry,
            }
            for r in rejects
        ]
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    if not rejects:
        print("no remembered rejects")
        return EXIT_OK
    print(
        f"{len(rejects)} rows rejected by the provider; each is offered again when it changes"
        f" or after {retry} runs held back:"
    )
    for r in rejects:
        print(
            f"  {r.key}: {r.reason} [{r.code}] (run #{r.last_run}, held {r.held} of {retry} runs)"
        )
    return EXIT_OK


def _unisender_emulator(args: argparse.Namespace) -> ServableEmulator:
    from .emulator import EmulatorOptions, FaultInjector, UniSenderEmulator, seed_document

    if args.faults:
        try:
            FaultInjector().arm(args.faults)
        except ValueError as error:
            raise ValueError(f"--faults {args.faults!r}: {error}") from None

    options = EmulatorOptions(
        brand=args.provider,
        export_processing_after=args.export_delay / 4,
        export_ready_after=args.export_delay,
        faults=args.faults or "",
    )
    emulator = UniSenderEmulator(api_key=args.api_key, options=options)
    if args.seed:
        seed_document(emulator, orjson.loads(args.seed.read_bytes()))
    return emulator


def _esputnik_emulator(args: argparse.Namespace) -> ServableEmulator:
    from .emulator import ESputnikEmulator, ESputnikOptions

    options = ESputnikOptions(import_delay=args.import_delay, faults=args.faults or "")
    try:
        emulator = ESputnikEmulator(api_key=args.api_key, options=options)
    except ValueError as error:
        raise ValueError(f"--faults {args.faults!r}: {error}") from None
    if args.seed:
        emulator.seed_document(orjson.loads(args.seed.read_bytes()))
    return emulator


def _altcraft_emulator(args: argparse.Namespace) -> ServableEmulator:
    from .emulator.altcraft import AltcraftEmulator, AltcraftOptions, seed_altcraft

    options = AltcraftOptions(task_ready_after=args.export_delay, faults=args.faults or "")
    try:
        emulator = AltcraftEmulator(token=args.api_key, options=options)
    except ValueError as error:
        raise ValueError(f"--faults {args.faults!r}: {error}") from None
    if args.seed:
        seed_altcraft(emulator, orjson.loads(args.seed.read_bytes()))
    else:
        emulator.add_database(1)  # something to sync into without a seed file
    return emulator


# ``sync-engine emulate <provider>``: builds the provider's emulator from the arguments
# (raising OSError/ValueError for a bad --seed file).
_EMULATORS: dict[str, Callable[[argparse.Namespace], ServableEmulator]] = {
    "unisender": _unisender_emulator,
    "selzy": _unisender_emulator,
    "esputnik": _esputnik_emulator,
    "yespo": _esputnik_emulator,
    "altcraft": _altcraft_emulator,
}


def _cmd_emulate(args: argparse.Namespace) -> int:
    from .testing import serve_forever

    configure_logging(log_format="auto")
    try:
        emulator = _EMULATORS[args.provider](args)
    except (OSError, ValueError) as error:
        where = f"--seed {args.seed}: " if args.seed and "--faults" not in str(error) else ""
        print(f"sync-engine: {where}{error}", file=sys.stderr)
        return EXIT_CONFIG

    def ready(url: str) -> None:
        print(f"{args.provider} emulator listening on {url}", flush=True)

    async def go() -> None:
        try:
            await serve_forever(emulator, host=args.host, port=args.port, ready=ready)
        finally:
            await emulator.aclose()

    try:
        anyio.run(go)
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    configure_logging(log_format=args.log_format, verbose=args.verbose)
    return anyio.run(run_demo)
