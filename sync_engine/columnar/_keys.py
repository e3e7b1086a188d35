"""The export's keys on disk, by line, while the index in memory holds only their hashes.

At a million contacts the key strings are the largest column of the remote index (and
sorting the index copies them again); the plan needs them only for the few rows it
names at the end (removals, contacts kept by consent, repeated keys). So each block's
``line, key`` goes to an Arrow IPC file as it is read, and those few rows are found
again by line, one block file at a time, so a lookup never loads every key at once.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import polars as pl

__all__ = ["KEY_CHECK_SEED", "KeyStore", "key_check"]

# A second, independent hash of each key, 32 bits of it. A match on the index's 64-bit
# ``kh`` is confirmed by this one too, so two different keys are taken for one only if
# both collide (about 2^-96 per pair) rather than compared as strings; 32 bits keep the
# index 4 bytes a contact smaller than a second 64-bit hash would.
KEY_CHECK_SEED = 0x5EED_C0DE


def key_check(key: pl.Expr) -> pl.Expr:
    return (key.hash(seed=KEY_CHECK_SEED) // 2**32).cast(pl.UInt32)


class KeyStore:
    """``line -> key`` of every keyed export row, spilled to disk block by block."""

    def __init__(self, work_dir: Path) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="export-keys-", dir=work_dir))
        self._files: list[Path] = []

    def add(self, keyed: pl.DataFrame) -> None:
        """Store one block's ``line, key`` rows."""
        path = self._dir / f"{len(self._files):06d}.arrow"
        keyed.select("line", "key").write_ipc(path, compression="uncompressed")
        self._files.append(path)

    def keys(self, lines: pl.Series) -> pl.DataFrame:
        """``line, key`` of the given export lines (those with a key), in no set order."""
        schema = {"line": pl.UInt32, "key": pl.String}
        if lines.is_empty():
            return pl.DataFrame(schema=schema)
        wanted = lines.cast(pl.UInt32).implode()
        found = [pl.read_ipc(path).filter(pl.col("line").is_in(wanted)) for path in self._files]
        found = [part for part in found if not part.is_empty()]
        return pl.concat(found) if found else pl.DataFrame(schema=schema)

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
