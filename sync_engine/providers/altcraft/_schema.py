"""The fields an Altcraft sync may write, and how each one normalises.

``email`` and ``phone`` (Altcraft's ``phones``) are the keys; ``first_name``,
``last_name`` and ``middle_name`` are Altcraft's ``_fname``, ``_lname``, ``_mname``
(``[mapping]`` names cannot start with "_"); any other name is a custom profile field,
compared as text.
"""

from __future__ import annotations

from sync_engine.schema import FieldKind, FieldSchema

__all__ = ["ALTCRAFT_SCHEMA"]

ALTCRAFT_SCHEMA = FieldSchema(
    system={
        "email": FieldKind.EMAIL,
        "phone": FieldKind.PHONE,
        "first_name": FieldKind.TEXT,
        "last_name": FieldKind.TEXT,
        "middle_name": FieldKind.TEXT,
    },
    # Altcraft's: its ids, the wire name of phone, and subscriptions (consent).
    reserved=frozenset({"profile_id", "phones", "subscriptions"}),
)
