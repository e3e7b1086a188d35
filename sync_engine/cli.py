"""The ``sync-engine`` command: a thin layer over the library.

It parses arguments, loads the config, runs the engine inside ``anyio.run`` and maps
the outcome to exit codes fit for cron: 0 success, 1 completed with rejected rows,
2 configuration or usage error, 3 run failed or refused, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
import orjson

from . import __version__
from .config import SyncConfig, load_config
from .engine import SyncEngine
from .errors import ConfigError, SyncEngineError
from .log import configure_logging
from .progress import NullProgress, Progress, TerminalProgress
from .report import SyncReport

__all__ = ["main"]

EXIT_OK, EXIT_REJECTED, EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


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

    emulate = commands.add_parser("emulate", help="serve the provider emulator")
    emulate.add_argument("provider", choices=["unisender", "selzy"])
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument("--port", type=int, default=0, help="0 picks a free port")
    emulate.add_argument("--api-key", default=os.environ.get("EMULATOR_API_KEY", "test-key"))
    emulate.add_argument("--seed", type=Path, help="JSON file: lists, fields and contacts")
    emulate.add_argument(
        "--export-delay", type=float, default=0.2, help="seconds an export task takes to complete"
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
    async def go() -> SyncReport:
        async with SyncEngine(config, rejects_path=args.rejects, progress=_progress()) as engine:
            try:
                return await engine.run(
                    dry_run=dry_run,
                    full=args.full,
                    allow_deletes=args.allow_deletes,
                    samples=getattr(args, "samples", 10),
                )
            finally:
                holder["report"] = engine.last_report

    holder: dict[str, SyncReport | None] = {"report": None}
    try:
        report = anyio.run(go)
    except ConfigError as error:
        print(f"sync-engine: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except SyncEngineError as error:
        partial = holder["report"]
        if partial is not None:
            _print_report(partial, as_json=args.json)
        print(f"sync-engine: {error}", file=sys.stderr)
        return EXIT_FAILED
    _print_report(report, as_json=args.json)
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
    print(f"  provider: {provider.kind} at {provider.base_url}, list {provider.list_id}")
    print(f"  key: {config.sync.key}; mode: {config.sync.mode}")
    print("  mapping: " + ", ".join(f"{f} <- {config.rule(f).describe()}" for f in config.mapping))
    path = getattr(config.source, "path", None)
    if isinstance(path, Path) and not path.exists():
        print(f"  warning: {path} does not exist yet")
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


def _cmd_emulate(args: argparse.Namespace) -> int:
    from .emulator import EmulatorOptions, UniSenderEmulator, seed_document
    from .testing import serve_forever

    configure_logging(log_format="auto")
    options = EmulatorOptions(
        brand=args.provider,
        export_processing_after=args.export_delay / 4,
        export_ready_after=args.export_delay,
    )
    emulator = UniSenderEmulator(api_key=args.api_key, options=options)
    if args.seed:
        try:
            seed_document(emulator, orjson.loads(args.seed.read_bytes()))
        except (OSError, ValueError) as error:
            print(f"sync-engine: --seed {args.seed}: {error}", file=sys.stderr)
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
