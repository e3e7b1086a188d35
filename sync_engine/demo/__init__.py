"""``sync-engine demo``: a real sync of bundled sample contacts against the emulator.

The emulator runs in this process on a free loopback port and is spoken to over real
HTTP, exactly as the real service would be. The demo syncs twice: the first run inserts,
updates and keeps an unsubscribed contact as the provider has it; the second run right
after must plan zero changes.
"""

from __future__ import annotations

import sys
import tempfile
from importlib.resources import as_file, files
from pathlib import Path

from sync_engine.config import parse_config
from sync_engine.emulator import EmulatedContact, UniSenderEmulator
from sync_engine.engine import SyncEngine
from sync_engine.testing import running_emulator

__all__ = ["run_demo"]

DEMO_KEY = "demo-api-key-not-secret"


async def run_demo() -> int:
    """Run the demo; exit code 0 when the second run converged to zero changes."""
    emulator = UniSenderEmulator(api_key=DEMO_KEY)
    list_id = emulator.add_list("Newsletter")
    emulator.add_field("Name")
    emulator.add_field("City")
    emulator.seed(
        [
            EmulatedContact(
                email="unsubscribed.user@example.com",
                email_status="unsubscribed",
                email_list_ids={list_id},
                fields={"Name": "Uma", "City": "Bergen"},
            ),
            EmulatedContact(
                email="stale.name@example.com",
                email_list_ids={list_id},
                fields={"Name": "Old Name", "City": "Riga"},
            ),
        ]
    )
    try:
        with (
            as_file(files(__package__) / "contacts.csv") as csv_path,
            tempfile.TemporaryDirectory() as scratch,
        ):
            async with running_emulator(emulator) as base_url:
                config = parse_config(
                    {
                        "source": {"type": "csv", "path": str(csv_path)},
                        "provider": {
                            "type": "unisender",
                            "base_url": base_url,
                            "api_key": DEMO_KEY,
                            "list_id": list_id,
                            "export_poll_interval": 0.1,
                        },
                        "sync": {"key": "email", "default_region": "RU"},
                        "mapping": {
                            "email": "email",
                            "phone": "phone",
                            "tags": "tags",
                            "Name": "first_name",
                            "City": "city",
                        },
                        "work_dir": scratch,
                    },
                    path=Path(scratch) / "demo.toml",
                )
                print(f"emulator: {base_url} (UniSender API, in this process)\n")
                async with SyncEngine(config) as engine:
                    first = await engine.run()
                print("first run " + first.render_text() + "\n")
                async with SyncEngine(config) as engine:
                    second = await engine.run()
                print("second run " + second.render_text())
    finally:
        await emulator.aclose()
    converged = second.plan.changes == 0
    print(
        "\nconverged: the second run planned zero changes"
        if converged
        else "\nNOT converged: the second run planned changes",
        file=sys.stdout,
    )
    return 0 if converged else 3
