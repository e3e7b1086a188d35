"""A big emulated base is moved out of the cyclic collector's reach as it grows."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from sync_engine.emulator._gc import FREEZE_EVERY, LongLived
from sync_engine.emulator._model import EmulatedContact
from sync_engine.emulator._unisender_state import ContactBase


@pytest.fixture(autouse=True)
def freezing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As in a served emulator; the process's collector is left as the test found it."""
    monkeypatch.setattr(LongLived, "freezing", True)
    yield
    gc.unfreeze()


def test_nothing_is_frozen_unless_the_process_turned_freezing_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(LongLived, "freezing", False)
    tracker = LongLived(every=1)
    tracker.stored(3)
    assert tracker.freezes == 0


def test_every_so_many_stored_objects_everything_tracked_is_frozen() -> None:
    tracker = LongLived(every=3)
    for _ in range(2):
        tracker.stored()
    assert tracker.freezes == 0
    tracker.stored()
    assert tracker.freezes == 1
    assert gc.get_freeze_count() > 0
    tracker.stored(5)
    assert tracker.freezes == 2


def test_the_contact_base_freezes_as_it_grows_and_objects_still_die_by_refcount() -> None:
    base = ContactBase()
    base.seed(EmulatedContact(email=f"u{i}@example.com") for i in range(FREEZE_EVERY * 2 + 1))
    assert base._long_lived.freezes == 2
    assert gc.get_freeze_count() >= 2 * FREEZE_EVERY  # the contacts, their sets...
    contact = base.find(email="u0@example.com")
    assert contact is not None
    first = weakref.ref(contact)
    del contact
    assert first() is not None
    del base  # frozen, yet freed as soon as nothing refers to it (no collection runs)
    assert first() is None
