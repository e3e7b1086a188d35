"""The fields an Altcraft sync may write, and how each one normalises.

The sync uses Altcraft's own profile field names (``_fname``, ``_lname``...), except
``phone`` for the profile's ``phones`` (the engine's key vocabulary); any other name is
a custom profile field, compared as text.
"""

from __future__ import annotations

from sync_engine.schema import FieldKind, FieldSchema

__all__ = ["ALTCRAFT_SCHEMA"]

ALTCRAFT_SCHEMA = FieldSchema(
    system={
        "email": FieldKind.EMAIL,
        "phone": FieldKind.PHONE,
        "_fname": FieldKind.TEXT,
        "_lname": FieldKind.TEXT,
        "_mname": FieldKind.TEXT,
    },
    # Altcraft's: its ids, the wire name of phone, and subscriptions (consent).
    reserved=frozenset({"_id", "profile_id", "phones", "subscriptions", "_regip", "_ip"}),
)
