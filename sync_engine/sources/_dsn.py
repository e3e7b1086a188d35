"""Database URLs without their passwords, for messages and logs.

A DSN such as ``postgresql://app:s3cret@db:5432/crm?sslmode=require`` carries the
password in the userinfo part, and libpq-style URLs may also carry it as a ``password``
query parameter. Both are masked; everything else stays, because the host, port and
database are what a user needs to see to fix a connection error.

The userinfo is taken to end at the *last* ``@`` of the DSN, which masks a password
with unescaped ``@``, ``/`` or ``?`` whole, where a URL parser would split it; masking a
little too much is the safe side to err on.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["dsn_password", "dsn_secrets", "redact_dsn"]

_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<value>[^&#]*)", re.IGNORECASE)
_USERINFO = re.compile(r"^(?P<head>[^:/?#@]*://)(?P<user>[^:@]*):(?P<password>.*)@(?P<rest>[^@]*)$")


def redact_dsn(dsn: str) -> str:
    """The DSN with every password replaced by ``***``."""
    text = _USERINFO.sub(r"\g<head>\g<user>:***@\g<rest>", dsn)
    return _QUERY_PASSWORD.sub(r"\g<head>***", text)


def dsn_password(dsn: str) -> str | None:
    """The password a DSN carries, as written (maybe percent-encoded), if any."""
    userinfo = _USERINFO.match(dsn)
    if userinfo is not None and userinfo.group("password"):
        return userinfo.group("password")
    query = _QUERY_PASSWORD.search(dsn)
    return query.group("value") or None if query is not None else None


def dsn_secrets(dsn: str) -> list[str]:
    """Every form of the password that could show up in a driver's text."""
    password = dsn_password(dsn)
    if not password:
        return [dsn]
    return list(dict.fromkeys([dsn, password, unquote(password)]))
