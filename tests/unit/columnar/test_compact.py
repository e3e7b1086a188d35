"""Strings a plan keeps past their block are copied out, so the block's text can go."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import polars as pl
from polars.testing import assert_frame_equal

from sync_engine.columnar._compact import compact


def test_compact_keeps_every_value_and_type() -> None:
    frame = pl.DataFrame(
        {
            "key": ["a@x.io", None, "c@x.io"],
            "tags": [["vip", "new"], [], None],
            "line": pl.Series([2, 3, 4], dtype=pl.UInt32),
        }
    )
    assert_frame_equal(compact(frame), frame)


_PROBE = textwrap.dedent(
    """
    import json, sys
    import polars as pl
    from sync_engine.columnar._compact import compact

    def rss():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096

    kept, before = [], rss()
    for block in range(10):
        key = pl.format("contact-{}-{}@long-domain-name.example.com", block, pl.int_range(200_000))
        text = pl.select(key=key)
        few = text.filter(pl.int_range(pl.len()) % 1000 == 0)
        if sys.argv[1] != "nothing":
            kept.append(compact(few) if sys.argv[1] == "compact" else few)
        del text
    print(json.dumps({"grown": rss() - before, "rows": sum(k.height for k in kept)}))
    """
)


def _grown(mode: str) -> int:
    env = {**os.environ, "_RJEM_MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0"}
    done = subprocess.run(  # noqa: S603 (our own probe, run by this interpreter)
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, env=env, check=True
    )
    result = json.loads(done.stdout)
    assert result["rows"] == (0 if mode == "nothing" else 2_000)
    return int(result["grown"])


def test_kept_rows_do_not_pin_the_text_of_their_blocks() -> None:
    """10 blocks of ~10 MB of text, 0.1% of each kept: views would keep all ~100 MB.

    Measured against a run that keeps nothing (polars' own start-up memory).
    """
    floor = _grown("nothing")
    pinned, compacted = _grown("views") - floor, _grown("compact") - floor
    assert pinned > 60 * 2**20  # what compact exists to avoid (polars' string views)
    assert compacted < 15 * 2**20
