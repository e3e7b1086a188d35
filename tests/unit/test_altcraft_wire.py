"""Altcraft's wire format: profile encoding, exact body splitting, answer classification."""

from __future__ import annotations

import itertools

import orjson
import pytest

from sync_engine.errors import BatchRejectedError, FatalProviderError, RetriableProviderError
from sync_engine.providers.altcraft._wire import (
    encode_profile,
    parse_answer,
    row_outcomes,
    split_body,
)
from sync_engine.providers.base import RowStatus


def scrub(text: str) -> str:
    return text.replace("secret-token", "***")


def test_profile_uses_altcrafts_names_and_subscribes_without_a_status() -> None:
    encoded = encode_profile(
        {"email": "a@example.com", "phone": "+79000000000", "first_name": "A", "CRM_ID": "7"},
        resource_id=3,
        subscribe=["email", "phone"],
        wrap=True,
    )
    data = orjson.loads(encoded)["data"]
    assert data["phones"] == "+79000000000"
    assert data["_fname"] == "A"
    assert data["CRM_ID"] == "7"
    assert "phone" not in data
    assert data["subscriptions"] == [
        {"channel": "email", "email": "a@example.com", "resource_id": 3},
        {"channel": "phone", "phone": "+79000000000", "resource_id": 3},
    ]
    plain = orjson.loads(
        encode_profile({"email": ""}, resource_id=3, subscribe=["email"], wrap=False)
    )
    assert plain == {"email": ""}  # no address, no subscription; no wrapper for import_batch


@pytest.mark.parametrize("limit", [120, 200, 333, 1000, 10_000])
def test_split_bodies_are_exactly_measured_and_keep_every_row_in_order(limit: int) -> None:
    envelope = {"db_id": 1, "matching": "email", "token": "t" * 20}
    profiles = [
        orjson.dumps({"email": f"user{i}@example.com", "n": "x" * (i % 7)}) for i in range(50)
    ]
    bodies, oversize = split_body(envelope, profiles, limit=limit)
    assert oversize == []
    assert [i for body in bodies for i in body.rows] == list(range(50))
    for body in bodies:
        assert len(body.payload) <= limit
        decoded = orjson.loads(body.payload)
        assert decoded["token"] == "t" * 20
        assert decoded["data"] == [orjson.loads(profiles[i]) for i in body.rows]
    if len(bodies) > 1:  # greedy: no two neighbours would have fitted together
        for left, right in itertools.pairwise(bodies):
            assert len(left.payload) + len(profiles[right.rows[0]]) + 1 > limit


def test_a_profile_too_big_alone_is_set_aside() -> None:
    profiles = [b'{"email":"a@x.io"}', b'{"email":"' + b"b" * 200 + b'"}', b'{"email":"c@x.io"}']
    bodies, oversize = split_body({"db_id": 1}, profiles, limit=100)
    assert oversize == [1]
    assert [body.rows for body in bodies] == [(0, 2)]


def test_success_and_error_answers() -> None:
    ok = parse_answer(
        200,
        b'{"error":0,"error_text":"Successful operation","task_id":"t1"}',
        method="m",
        scrub=scrub,
    )
    assert ok["task_id"] == "t1"
    with pytest.raises(FatalProviderError, match="tariff limit") as tariff:
        parse_answer(
            402, b'{"error":402,"error_text":"Tariff limit reached"}', method="m", scrub=scrub
        )
    assert tariff.value.code == "tariff_limit"
    for status in (401, 403):
        with pytest.raises(FatalProviderError, match="token"):
            parse_answer(
                status, b'{"error":%d,"error_text":"No access"}' % status, method="m", scrub=scrub
            )
    with pytest.raises(FatalProviderError):
        parse_answer(200, b'{"error":403,"error_text":"No access"}', method="m", scrub=scrub)
    body_limit = (
        b'{"error":400,"error_debug":"http: request body too large","error_text":"Invalid request"}'
    )
    with pytest.raises(BatchRejectedError) as large:
        parse_answer(400, body_limit, method="m", scrub=scrub)
    assert large.value.code == "body_too_large"
    with pytest.raises(RetriableProviderError):
        parse_answer(200, b"<html>proxy</html>", method="m", scrub=scrub)
    with pytest.raises(BatchRejectedError) as bad:
        parse_answer(
            200, b'{"error":400,"error_text":"bad secret-token here"}', method="m", scrub=scrub
        )
    assert "secret-token" not in str(bad.value)


def test_row_outcomes_map_per_profile_errors_to_batch_indexes() -> None:
    results = [
        {"profile_id": "a"},
        {"error": 400, "error_text": "Invalid email"},
        {"profile_id": "c"},
    ]
    outcomes, warnings = row_outcomes(results, (10, 11, 12))
    assert [(o.index, o.status, o.code) for o in outcomes] == [
        (11, RowStatus.REJECTED, "altcraft_400")
    ]
    assert warnings == []
    _, short = row_outcomes([], (1, 2))
    assert short
    assert "0 profile results for 2" in short[0]
