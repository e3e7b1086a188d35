"""An in-process eSputnik / Yespo API v1 (the contact endpoints a sync uses).

It answers on the same paths with the same shapes as the real service (the OpenAPI file
in the docs is its contract, and tests validate its answers against it), so a client
works against it by changing only the host: HTTP Basic auth with the API key as the
password, 429 over 200 requests/s (50/s for contact search), paged search with
``TotalCount``, and imports that finish ``import_delay`` seconds after they were sent.

Faults come from the shared ``FaultInjector`` (``faults``), matched by operationId (e.g.
``contactsBulkUpdate``, ``getGroupContacts``): 5xx from a proxy, 429 with or without
Retry-After, resets, hangs, slow, garbled or cut answers, answers lost after the call ran,
calls run twice. One kind is eSputnik's own, outside the injector: ``import_error``, an
accepted import whose session ends in ERROR (``failing_sessions`` counted, or
``session_error_rate``). Text specs (``--faults``) take both, e.g.
``any=0.1,import_error=0.1`` or ``hang@contactsBulkUpdate*2``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import orjson
from aiohttp import web

from ._esputnik_state import (
    Account,
    BadRequest,
    EmulatedESputnikContact,
    contact_json,
    contacts_for,
)
from ._faults import FaultInjector, FaultKind, parse_fault_spec, proxy_error_page
from ._lifecycle import ClosingEmulator
from ._ratelimit import CallWindow

__all__ = ["IMPORT_ERROR", "ESputnikEmulator", "ESputnikOptions", "Exchange"]

IMPORT_ERROR = "import_error"  # eSputnik's own fault: the session ends in ERROR

_JSON = "application/json; charset=UTF-8"
_Handler = Callable[[web.Request], Awaitable[web.Response]]
# A fault answers instead of the call: (status, body).
_FAULTS: dict[str, tuple[int, str]] = {
    "retry_later": (503, "Service Unavailable"),
    "rate_limited": (429, "Too many requests: More than 200 requests per 1 second"),
    "rate_limited_retry_after": (429, "Too many requests: More than 200 requests per 1 second"),
    "invalid_arg": (400, "Bad request"),
    "access_denied": (401, "Unauthorized"),
    "not_enough_money": (402, "Payment required"),
}
# Faults that let the call run and then spoil (or delay) its answer; the others answer
# instead of running it.
_AFTER_CALL = frozenset({"slow", "truncated_json", "lost_answer", "duplicated"})


@dataclass(frozen=True, kw_only=True)
class ESputnikOptions:
    """Behaviour knobs; the defaults are the documented limits."""

    max_contacts: int = 3000  # per POST /api/v1/contacts
    max_rows: int = 500  # maxrows cap for searches
    import_delay: float = 0.2  # seconds from POST to FINISHED
    rate_limit: int = 200  # per second, per key, every method
    search_rate_limit: int = 50  # per second, GET /api/v1/contacts
    rate_limit_window: float = 1.0
    max_body_bytes: int = 32 * 1024 * 1024
    exchange_log_size: int = 10_000
    fault_seed: int = 0
    # Fault rules armed at start, as text: ``KIND[@OPERATION][=P|*N],...``.
    faults: str = ""
    # Real seconds a "hang" holds the connection (longer than the client's timeout) and
    # a "slow" answer waits; the Retry-After of rate_limited_retry_after.
    fault_hang_seconds: float = 60.0
    fault_slow_seconds: float = 0.05
    fault_retry_after: float = 1.0


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and the emulator's answer, for contract checks in tests.

    The Authorization header itself is never kept, only whether one was sent.
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    content_type: str
    body: bytes
    status: int
    response_headers: tuple[tuple[str, str], ...]
    response_body: bytes
    operation: str
    authorized: bool


class ESputnikEmulator(ClosingEmulator):
    """Serve ``app()``; drive and read the state from tests."""

    def __init__(
        self,
        *,
        api_key: str,
        options: ESputnikOptions | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("the emulator needs a non-empty api_key")
        self._api_key = api_key
        self.options = options or ESputnikOptions()
        self._clock = clock or time.monotonic
        self.account = Account()
        self.calls: Counter[str] = Counter()
        self.faults = FaultInjector(seed=self.options.fault_seed)
        self.exchanges: deque[Exchange] = deque(maxlen=self.options.exchange_log_size)
        self._window = CallWindow(
            limit=self.options.rate_limit, window=self.options.rate_limit_window
        )
        self._search_window = CallWindow(
            limit=self.options.search_rate_limit, window=self.options.rate_limit_window
        )
        self.rate_limited = 0  # calls refused for the account's rate (not injected ones)
        self.hold_sessions = False  # sessions stay STARTED until released
        self.failing_sessions = 0  # the next N sessions end in ERROR
        self.session_error_rate = 0.0  # ... and then this share of them
        self._session_random = random.Random(self.options.fault_seed)  # noqa: S311 - test faults
        if self.options.faults:
            self.arm_faults(self.options.faults)

    def __repr__(self) -> str:
        return f"ESputnikEmulator(contacts={len(self.account.contacts)})"

    # -- state for tests ------------------------------------------------------------
    def seed(self, contacts: Iterable[EmulatedESputnikContact]) -> None:
        """Store contacts as they are, creating their segments."""
        for contact in contacts:
            self.account.add(contact)

    def seed_document(self, data: object) -> int:
        """Seed from JSON: ``{"contacts": [{"email", "sms", "firstName", ..., "groups"}]}``."""
        items = data.get("contacts") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ValueError('the seed must be an object with a "contacts" array')
        contacts = []
        for number, item in enumerate(items, start=self.account.next_id()):
            if not isinstance(item, dict):
                raise ValueError("every seeded contact must be an object")
            groups = item.get("groups") or []
            values = {str(k): str(v) for k, v in item.items() if k != "groups"}
            contacts.append(
                EmulatedESputnikContact(number, values=values, groups={str(g) for g in groups})
            )
        self.seed(contacts)
        return len(contacts)

    def contacts(self) -> list[EmulatedESputnikContact]:
        """Every contact after the sessions due by now, in id order."""
        self._settle()
        return sorted(self.account.contacts.values(), key=lambda c: c.id)

    def contact(
        self, *, email: str | None = None, sms: str | None = None
    ) -> EmulatedESputnikContact | None:
        self._settle()
        query = {k: v for k, v in (("email", email), ("sms", sms)) if v is not None}
        found = self.account.search(query)
        return found[0] if found else None

    def arm_faults(self, spec: str) -> None:
        """Arm a text spec; ``import_error`` parts set the session faults, the rest go to
        the shared injector (all or none on a bad spec)."""
        shared: list[str] = []
        sessions: list[dict[str, object]] = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            parsed = parse_fault_spec(part)[0]
            if parsed["kind"] == IMPORT_ERROR:
                if "method" in parsed:
                    raise ValueError(f"fault {part!r}: import_error takes no @operation")
                sessions.append(parsed)
            else:
                shared.append(part)
        trial = FaultInjector()
        if shared:
            trial.arm(",".join(shared))
        for rule in sessions:
            probability = rule.get("probability")
            if isinstance(probability, float) and not 0.0 < probability <= 1.0:
                raise ValueError("fault probability must be in (0, 1]")
            count = rule.get("count")
            if isinstance(count, int) and count < 1:
                raise ValueError("fault count must be at least 1")
        if shared:
            self.faults.arm(",".join(shared))
        for rule in sessions:
            probability, count = rule.get("probability"), rule.get("count")
            if isinstance(probability, float):
                self.session_error_rate = probability
            else:
                self.failing_sessions += count if isinstance(count, int) else 1

    def _session_fails(self) -> bool:
        """Whether the session just started is to end in ERROR (counted as injected)."""
        if self.failing_sessions > 0:
            self.failing_sessions -= 1
        elif not (
            self.session_error_rate and self._session_random.random() < self.session_error_rate
        ):
            return False
        self.faults.injected[IMPORT_ERROR] += 1
        return True

    def release_sessions(self) -> None:
        """Let held sessions finish (when their delay has passed)."""
        self.hold_sessions = False
        self._settle()

    def sessions_started(self) -> int:
        return len(self.account.sessions)

    def _settle(self) -> None:
        self.account.finish_due(self._clock(), hold=self.hold_sessions)

    # -- HTTP -----------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.options.max_body_bytes)
        routes: list[tuple[str, str, str, _Handler]] = [
            ("POST", "/api/v1/contacts", "contactsBulkUpdate", self._bulk_update),
            ("GET", "/api/v1/contacts", "searchContacts", self._search),
            ("GET", "/api/v1/importstatus/{session}", "getImportSessionStatus", self._status),
            ("GET", "/api/v1/groups", "searchGroups", self._groups),
            ("GET", "/api/v1/group/{id}/contacts", "getGroupContacts", self._group_contacts),
            ("DELETE", "/api/v1/contact/{id}", "deleteContact_1", self._delete_by_id),
            ("DELETE", "/api/v1/contact", "deleteContact", self._delete_by_external),
            ("POST", "/api/v1/emails/unsubscribed/add", "addToUnsubscribed", self._unsubscribe),
            (
                "POST",
                "/api/v1/emails/unsubscribed/delete",
                "deleteFromUnsubscribed",
                self._resubscribe,
            ),
        ]
        for method, path, operation, handler in routes:
            app.router.add_route(method, path, self._wrap(operation, handler))
        return app

    def _wrap(self, operation: str, handler: _Handler) -> _Handler:
        async def serve(request: web.Request) -> web.Response:
            body = await request.read()
            response = await self._answer(operation, handler, request)
            raw = response.body if isinstance(response.body, bytes) else b""
            self.exchanges.append(
                Exchange(
                    method=request.method,
                    path=request.path,
                    query=tuple(request.query.items()),
                    content_type=request.headers.get("Content-Type", ""),
                    body=body,
                    status=response.status,
                    response_headers=tuple(response.headers.items()),
                    response_body=raw,
                    operation=operation,
                    authorized="Authorization" in request.headers,
                )
            )
            return response

        return serve

    async def _answer(
        self, operation: str, handler: _Handler, request: web.Request
    ) -> web.Response:
        self.calls[operation] += 1
        fault = self.faults.take(operation)
        if fault is not None and fault not in _AFTER_CALL:
            return await self._serve_fault(fault, request)
        if not self._authorized(request):
            return web.Response(
                status=401,
                text="Unauthorized",
                headers={"WWW-Authenticate": 'Basic realm="eSputnik"'},
            )
        now = self._clock()
        windows = [self._window]
        if operation == "searchContacts":
            windows.append(self._search_window)
        if not all(w.has_room(self._api_key, now) for w in windows):
            self.rate_limited += 1
            return self._fault("rate_limited")
        for window in windows:
            window.record(self._api_key, now)
        self._settle()
        try:
            response = await handler(request)
            if fault == "duplicated":
                await handler(request)  # a proxy resent it; the client sees one answer
        except BadRequest as error:
            return web.Response(status=400, text=str(error))
        if fault is not None:
            return await self._spoil(fault, response, request)
        return response

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        _, _, password = decoded.partition(":")
        return hmac.compare_digest(password.encode(), self._api_key.encode())

    async def _serve_fault(self, kind: FaultKind, request: web.Request) -> web.Response:
        """Answer with ``kind`` instead of running the call."""
        if kind == "connection_reset":
            return _reset(request)
        if kind == "hang":
            await anyio.sleep(self.options.fault_hang_seconds)
            return _reset(request)
        if kind == "malformed_json":
            return web.Response(body=b'{"asyncSessionId": "<html>', content_type="application/json")
        return self._fault(kind)

    async def _spoil(
        self, kind: FaultKind, response: web.Response, request: web.Request
    ) -> web.Response:
        """The call ran; now its answer is late, cut or lost."""
        if kind == "slow":
            await anyio.sleep(self.options.fault_slow_seconds)
        elif kind == "truncated_json":
            raw = response.body if isinstance(response.body, bytes) else b""
            cut = web.Response(status=response.status, body=raw[: len(raw) // 2])
            cut.headers["Content-Type"] = _JSON
            return cut
        elif kind == "lost_answer":
            return _reset(request)
        return response

    def _fault(self, kind: FaultKind) -> web.Response:
        page = proxy_error_page(kind)
        if page is not None:
            return page
        status, text = _FAULTS[kind]
        headers = None
        if kind == "rate_limited_retry_after":
            retry = self.options.fault_retry_after
            headers = {"Retry-After": str(int(retry)) if retry == int(retry) else f"{retry:g}"}
        return web.Response(status=status, text=text, headers=headers)

    # -- endpoints ------------------------------------------------------------------
    async def _bulk_update(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return web.Response(status=415, text="Unsupported media type")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise BadRequest("the body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be an object")
        failed, session = self.account.start_import(
            body,
            now=self._clock(),
            delay=self.options.import_delay,
            max_contacts=self.options.max_contacts,
        )
        if self._session_fails():
            session.error = "Import failed: internal error while processing the session"
        answer: dict[str, Any] = {"asyncSessionId": session.id}
        if len(failed) == 1:
            answer["failedContacts"] = failed[0]  # documented: one failure is an object
        elif failed:
            answer["failedContacts"] = failed
        return _json(answer)

    async def _unsubscribed_emails(self, request: web.Request) -> list[str]:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise BadRequest("the body is not JSON") from None
        emails = body.get("emails") if isinstance(body, dict) else None
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            raise BadRequest("emails must be an array of strings")
        return [email.strip().lower() for email in emails]

    async def _unsubscribe(self, request: web.Request) -> web.Response:
        self.account.unsubscribed.update(await self._unsubscribed_emails(request))
        return _json({})

    async def _resubscribe(self, request: web.Request) -> web.Response:
        self.account.unsubscribed.difference_update(await self._unsubscribed_emails(request))
        return _json({})

    async def _status(self, request: web.Request) -> web.Response:
        session = self.account.sessions.get(request.match_info["session"])
        if session is None:
            return web.Response(status=404, text="Import session not found")
        when = session.finished_at if session.finished_at is not None else self._clock()
        answer: dict[str, Any] = {
            "status": session.status,
            "timestamp": datetime.fromtimestamp(max(when, 0.0), UTC).isoformat(),
        }
        if session.status == "FINISHED":
            answer["mapping"] = session.mapping
        if session.status == "ERROR":
            answer["description"] = session.error
        return _json(answer)

    def _paging(self, request: web.Request) -> tuple[int, int]:
        try:
            start = int(request.query.get("startindex", "1"))
            rows = int(request.query.get("maxrows", str(self.options.max_rows)))
        except ValueError:
            raise BadRequest("startindex and maxrows must be integers") from None
        if start < 1 or rows < 1:
            raise BadRequest("startindex and maxrows must be at least 1")
        return start, min(rows, self.options.max_rows)

    async def _search(self, request: web.Request) -> web.Response:
        start, rows = self._paging(request)
        conditions = {
            k: v
            for k, v in request.query.items()
            if k in ("email", "sms", "externalCustomerId", "firstname", "lastname")
        }
        found = self.account.search(conditions)
        page = contacts_for(found, start, rows)
        groups = self.account.groups
        return _json(
            [contact_json(c, full=False, groups=groups) for c in page],
            headers={"TotalCount": str(len(found))},
        )

    async def _groups(self, request: web.Request) -> web.Response:
        start, rows = self._paging(request)
        name = request.query.get("name")
        found = [
            {"id": i, "name": n, "type": "Static"}
            for n, i in sorted(self.account.groups.items(), key=lambda item: item[1])
            if name is None or name.lower() in n.lower()
        ]
        return _json(found[start - 1 : start - 1 + rows])

    async def _group_contacts(self, request: web.Request) -> web.Response:
        start, rows = self._paging(request)
        name = self.account.group_name(_int(request.match_info["id"]))
        if name is None:
            return web.Response(status=404, text="Segment not found")
        members = self.account.members(name)
        if request.query.get("asc", "true") == "false":
            members.reverse()
        page = contacts_for(members, start, rows)
        groups = self.account.groups
        # TotalCount is not documented here; sent as search sends it, and clients that
        # do not read it are unaffected.
        return _json(
            [contact_json(c, full=True, groups=groups) for c in page],
            headers={"TotalCount": str(len(members))},
        )

    async def _delete_by_id(self, request: web.Request) -> web.Response:
        contact_id = _int(request.match_info["id"])
        if not self.account.delete(contact_id):
            return web.Response(status=404, text=f"Contact with id='{contact_id}' not found")
        return _json(f"Contact with id='{contact_id}' has been deleted")

    async def _delete_by_external(self, request: web.Request) -> web.Response:
        external = request.query.get("externalCustomerId")
        if not external:
            raise BadRequest("externalCustomerId is required")
        found = self.account.search({"externalCustomerId": external})
        if not found:
            return web.Response(status=404, text=f"Contact {external!r} not found")
        self.account.delete(found[0].id)
        return _json(f"Contact with externalCustomerId='{external}' has been deleted")


def _reset(request: web.Request) -> web.Response:
    """Close the connection without an answer (the client sees a disconnect)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never reaches the client: the connection is gone


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"{text!r} is not an id") from None


def _json(body: object, *, headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(body=orjson.dumps(body), status=200, headers=headers)
    response.headers["Content-Type"] = _JSON
    return response
