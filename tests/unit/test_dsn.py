"""DSN redaction: the password never survives, the rest stays readable."""

from __future__ import annotations

import string
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_engine.sources._dsn import dsn_password, dsn_secrets, redact_dsn


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/crm", "postgresql://app:***@db:5432/crm"),
        ("postgresql://app@db/crm", "postgresql://app@db/crm"),
        ("postgres://db/crm?user=app&password=s3cret", "postgres://db/crm?user=app&password=***"),
        ("postgresql://app:p@ss@db/crm", "postgresql://app:***@db/crm"),
        ("postgresql://app:s3cret@[::zz/crm", "postgresql://app:***@[::zz/crm"),
        ("postgresql://app:a/b?c@db/crm", "postgresql://app:***@db/crm"),
    ],
)
def test_passwords_are_masked(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


def test_every_form_of_the_password_is_found_for_scrubbing() -> None:
    assert dsn_password("postgresql://app:p%40ss@db/crm") == "p%40ss"
    assert dsn_password("postgresql://db/crm?password=x%20y") == "x%20y"
    assert dsn_password("postgresql://app@db/crm") is None
    dsn = "postgresql://app:p%40ss@db/crm"
    assert dsn_secrets(dsn) == [dsn, "p%40ss", "p@ss"]
    assert dsn_secrets("postgresql://app@db/crm") == ["postgresql://app@db/crm"]


@given(
    st.text(alphabet=string.ascii_letters + string.digits + "!$&'()*+,;=-._~@:/?#[] ", min_size=6)
)
def test_no_password_survives_redaction(password: str) -> None:
    """Escaped or not (a careless user may leave '@' in it), the password is masked whole."""
    for written in (quote(password, safe=""), password):
        redacted = redact_dsn(f"postgresql://app:{written}@db.example.com:5432/crm")
        assert redacted == "postgresql://app:***@db.example.com:5432/crm"
