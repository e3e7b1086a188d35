"""eSputnik wire encoding: the null rule, the dedupe field, failedContacts, body splitting."""

from __future__ import annotations

import orjson

from sync_engine.plan import Batch, BatchKind, Change, ChangeKind
from sync_engine.providers._esputnik_wire import (
    Dedupe,
    contact_values,
    dedupe_for,
    encode_requests,
    failed_contacts,
    outcome_for,
)
from sync_engine.providers.base import RowStatus


def upserts(*fields: dict[str, str]) -> Batch:
    changes = tuple(
        Change(ChangeKind.UPDATE, f.get("email") or f.get("externalCustomerId", ""), f)
        for f in fields
    )
    return Batch(1, BatchKind.UPSERT, changes)


def bodies(batch: Batch, dedupe: Dedupe, **options: object) -> list[dict[str, object]]:
    settings: dict[str, object] = {
        "group": "G",
        "restore_deleted": False,
        "event_key": None,
        "max_body_bytes": 1 << 20,
        **options,
    }
    requests = encode_requests(batch, dedupe=dedupe, **settings)  # type: ignore[arg-type]
    return [orjson.loads(r.body) for r in requests]


def test_an_empty_synced_field_is_listed_and_left_out_so_it_becomes_null() -> None:
    (body,) = bodies(
        upserts({"email": "a@example.com", "firstName": "", "field_7": ""}), Dedupe("email")
    )
    assert body["contactFields"] == ["firstName"]
    assert body["customFieldsIDs"] == [7]
    assert body["contacts"] == [{"channels": [{"type": "email", "value": "a@example.com"}]}]


def test_the_dedupe_field_is_never_listed_for_update() -> None:
    batch = upserts({"externalCustomerId": "X1", "email": "a@example.com", "lastName": "L"})
    (body,) = bodies(batch, dedupe_for("field", "externalCustomerId"))
    assert body["dedupeOn"] == "externalCustomerId"
    assert body["contactFields"] == ["email", "lastName"]
    (by_field,) = bodies(upserts({"email": "a@example.com", "field_9": "k"}), Dedupe("fieldId", 9))
    assert (by_field["dedupeOn"], by_field["fieldId"], by_field["customFieldsIDs"]) == (
        "fieldId",
        9,
        [],
    )


def test_unsynced_fields_are_never_listed() -> None:
    """Rows that lack a field (null = "keep") go in their own request, which omits it."""
    batch = upserts({"email": "a@example.com", "firstName": "A"}, {"email": "b@example.com"})
    listed = sorted(str(b["contactFields"]) for b in bodies(batch, Dedupe("email")))
    assert listed == ["['firstName']", "[]"]


def test_options_follow_the_config() -> None:
    (body,) = bodies(
        upserts({"email": "a@example.com"}),
        Dedupe("email"),
        restore_deleted=True,
        event_key="newContact",
    )
    assert body["groupNames"] == ["G"]
    assert body["restoreDeleted"] is True
    assert body["eventKeyForNewContacts"] == "newContact"


def test_removal_only_leaves_the_group_and_touches_no_field() -> None:
    batch = Batch(
        1,
        BatchKind.REMOVE,
        (Change(ChangeKind.REMOVE, "a@example.com", {"email": "a@example.com"}),),
    )
    (body,) = bodies(batch, Dedupe("email"))
    assert body["groupNamesExclude"] == ["G"]
    assert (body["contactFields"], body["customFieldsIDs"]) == ([], [])
    assert "groupNames" not in body


def test_a_body_over_the_size_limit_is_split() -> None:
    batch = upserts(*({"email": f"user{i}@example.com", "firstName": "x" * 50} for i in range(30)))
    requests = encode_requests(
        batch,
        dedupe=Dedupe("email"),
        group=None,
        restore_deleted=False,
        event_key=None,
        max_body_bytes=1000,
    )
    assert len(requests) > 1
    assert all(len(r.body) <= 1000 for r in requests)
    assert [i for r in requests for i in r.indexes] == list(range(30))
    for request in requests:
        orjson.loads(request.body)  # still valid JSON after splicing


def test_phones_go_out_as_digits_and_read_back_in_e164() -> None:
    (body,) = bodies(upserts({"email": "a@example.com", "phone": "+79161234567"}), Dedupe("email"))
    assert body["contacts"][0]["channels"][1] == {"type": "sms", "value": "79161234567"}  # type: ignore[index]
    values = contact_values({"channels": [{"type": "sms", "value": "79161234567"}]})
    assert values == {"phone": "+79161234567"}


def test_failed_contacts_is_an_object_for_one_and_an_array_for_several() -> None:
    one = {"channels": [{"type": "email", "value": "b@example.com"}], "error": "bad"}
    assert failed_contacts({"failedContacts": one}) == [one]
    assert failed_contacts({"failedContacts": [one, one]}) == [one, one]
    assert failed_contacts({"asyncSessionId": "s"}) == []


def test_failed_contacts_map_back_to_their_rows() -> None:
    batch = upserts(
        {"email": "a@example.com"}, {"email": "b@example.com"}, {"email": "c@example.com"}
    )
    failed = [{"channels": [{"type": "email", "value": "B@example.com"}], "error": "no"}]
    rows = outcome_for(batch, [0, 1, 2], failed, Dedupe("email"), session_error="boom")
    assert [(r.index, r.status) for r in rows] == [
        (0, RowStatus.TRANSIENT),
        (1, RowStatus.REJECTED),
        (2, RowStatus.TRANSIENT),
    ]
    assert rows[1].message == "no"
