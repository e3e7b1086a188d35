"""The fault injector itself: text specs, sites, the 'any' mix, counting; and the CLI flag."""

from __future__ import annotations

import pytest
from conftest import cli
from hypothesis import given
from hypothesis import strategies as st

from sync_engine.emulator import (
    SURVIVABLE_KINDS,
    EmulatorOptions,
    FaultInjector,
    UniSenderEmulator,
    parse_fault_spec,
)
from sync_engine.emulator._faults import DOWNLOAD, FAULT_KINDS, fits

METHODS = ("importContacts", "async/exportContacts", "async/getTaskResult", "getLists", DOWNLOAD)


def test_text_specs_read_kind_method_probability_and_count() -> None:
    assert parse_fault_spec("any=0.1, hang@importContacts*2,link_expired@download") == [
        {"kind": "any", "probability": 0.1},
        {"kind": "hang", "method": "importContacts", "count": 2},
        {"kind": "link_expired", "method": "download"},
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (" , ", "empty fault spec"),
        ("retry_later*2,http_503=lots", "'lots' is not a number"),
        ("retry_later*2,boom", "unknown fault kind 'boom'"),
        ("retry_later*2,hang=1.5", "probability must be in"),
    ],
)
def test_bad_specs_are_refused_with_a_reason(spec: str, message: str) -> None:
    injector = FaultInjector()
    injector.arm("http_503")
    with pytest.raises(ValueError, match=message):
        injector.arm(spec)
    assert len(injector.rules) == 1  # all or nothing


def test_the_options_arm_the_emulator_at_start() -> None:
    emulator = UniSenderEmulator(api_key="k" * 8, options=EmulatorOptions(faults="hang*2,any=0.5"))
    assert [(r.kind, r.remaining, r.probability) for r in emulator.faults.rules] == [
        ("hang", 2, None),
        ("any", None, 0.5),
    ]


@given(seed=st.integers(0, 2**32), method=st.sampled_from(METHODS))
def test_any_picks_only_survivable_kinds_that_fit_the_site(seed: int, method: str) -> None:
    injector = FaultInjector(seed=seed)
    injector.add(kind="any", probability=1.0)
    kinds = [injector.take(method) for _ in range(30)]
    assert all(k in SURVIVABLE_KINDS and fits(k, method) for k in kinds)
    assert sum(injector.injected.values()) == 30


def test_a_rule_is_skipped_not_spent_where_its_kind_does_not_fit() -> None:
    injector = FaultInjector()
    injector.add(kind="link_expired", count=1)
    injector.add(kind="export_failed", count=1)
    assert injector.take("importContacts") is None
    assert injector.take("async/exportContacts") is None
    assert injector.take("async/getTaskResult") == "export_failed"
    assert injector.take(DOWNLOAD) == "link_expired"
    assert injector.rules == []
    assert injector.injected == {"export_failed": 1, "link_expired": 1}


def test_every_kind_fits_somewhere_and_only_network_kinds_fit_everywhere() -> None:
    for kind in FAULT_KINDS:
        assert any(fits(kind, m) for m in METHODS), kind
    everywhere = {k for k in FAULT_KINDS if all(fits(k, m) for m in METHODS)}
    assert everywhere == {
        "http_500",
        "http_502",
        "http_503",
        "http_504",
        "connection_reset",
        "hang",
        "slow",
    }


async def test_the_emulate_command_refuses_a_bad_fault_spec() -> None:
    code, _, err = await cli("emulate", "unisender", "--faults", "http_503@importContacts=2")
    assert code == 2
    assert "--faults" in err
    assert "probability" in err
