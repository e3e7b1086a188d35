"""REFERENCE CLIENT, not sync-engine: the same importContacts batches, one after another.

What a first script does: read the CSV, build each 500-row call with ``urlencode``,
POST it with ``urllib``, wait for the answer, read it with ``json``, next. No
concurrency, no rate limiter, no retries. ``bench_ratelimit`` compares its batches/s
with the engine's against the same (unlimited) emulator.
"""

from __future__ import annotations

import csv
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

from .datasets import LIST_ID

__all__ = ["send_all"]

FIELDS = ("email", "phone", "tags", "Name", "City", "Segment", "email_list_ids")


def _batches(local: Path, size: int) -> Iterator[list[list[str]]]:
    with local.open(encoding="utf-8", newline="") as handle:
        batch: list[list[str]] = []
        for row in csv.DictReader(handle):
            batch.append(
                [
                    row["email"],
                    row["phone"],
                    row["tags"],
                    row["name"],
                    row["city"],
                    row["segment"],
                    str(LIST_ID),
                ]
            )
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch


def send_all(local: Path, base_url: str, api_key: str, *, size: int = 500) -> dict[str, float]:
    """Send every batch in turn; batches, contacts, seconds and CPU seconds."""
    started, cpu = time.perf_counter(), time.process_time()
    batches = contacts = 0
    url = f"{base_url}/en/api/importContacts?format=json"
    for batch in _batches(local, size):
        pairs = [(f"field_names[{i}]", name) for i, name in enumerate(FIELDS)]
        for r, row in enumerate(batch):
            pairs += [(f"data[{r}][{i}]", value) for i, value in enumerate(row)]
        pairs += [("api_key", api_key), ("overwrite_tags", "0"), ("overwrite_lists", "0")]
        request = urllib.request.Request(url, data=urlencode(pairs).encode(), method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - loopback
            answer = json.loads(response.read())
        if "result" not in answer:
            raise RuntimeError(f"the emulator refused a batch: {answer}")
        batches += 1
        contacts += len(batch)
    return {
        "batches": batches,
        "contacts": contacts,
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
    }
