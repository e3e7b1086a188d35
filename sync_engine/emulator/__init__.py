"""Provider emulators: real HTTP servers with the providers' semantics, for tests and demos."""

from __future__ import annotations

from ._admin import seed_document
from ._esputnik_state import EmulatedESputnikContact
from ._export import ExportFormat
from ._faults import SURVIVABLE_KINDS, FaultInjector, FaultKind, parse_fault_spec
from ._model import EmulatedContact
from ._wire import RecordedRequest
from .altcraft import AltcraftEmulator, AltcraftOptions, ExportLayout
from .esputnik import ESputnikEmulator, ESputnikOptions, Exchange
from .unisender import EmulatorOptions, UniSenderEmulator

__all__ = [
    "SURVIVABLE_KINDS",
    "AltcraftEmulator",
    "AltcraftOptions",
    "ESputnikEmulator",
    "ESputnikOptions",
    "EmulatedContact",
    "EmulatedESputnikContact",
    "EmulatorOptions",
    "Exchange",
    "ExportFormat",
    "ExportLayout",
    "FaultInjector",
    "FaultKind",
    "RecordedRequest",
    "UniSenderEmulator",
    "parse_fault_spec",
    "seed_document",
]
