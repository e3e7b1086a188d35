"""A faithful UniSender/Selzy API emulator served by aiohttp, for tests and demos.

Selzy is the same API under another host, so one emulator serves both; the ``brand``
option only changes the wording of messages. What it speaks (see providers.md §1):

- ``GET|POST /{lang}/api/{method}`` with ``lang`` in en, ru, ua; parameters from the query,
  an urlencoded body or a multipart body, merged (the body wins). Methods:
  ``importContacts``, ``async/exportContacts``, ``async/getTaskResult``, ``getLists``,
  ``createList``, ``getFields``, ``createField``, ``getContact``, ``getContactCount``
  (``list_id`` -> ``{"count": N}``, as UniSender's API reference describes it).
- Answers are HTTP 200 ``{"result": ...}`` or ``{"error": ..., "code": ...}``; injected
  faults (``_faults.py``) can also answer HTTP 5xx with an HTML body like a proxy, reset
  the connection, never answer, answer late, cut or garble the JSON, execute a call twice
  or lose its answer, fail or stall an export, expire its link or cut its download.
- ``GET /download/{token}/{filename}`` serves a finished export without an API key, like
  the pre-signed AWS link the real provider hands out.
- ``/_emulator/...`` admin endpoints (contacts, seed, faults, calls, requests) drive an
  emulator running as a separate process. They need **no API key**: this is a local test
  server and must never be exposed beyond loopback.

All state lives on the ``UniSenderEmulator`` instance; time comes from an injectable
clock so tests can walk the export life cycle and rate-limit windows without sleeping.
"""

from __future__ import annotations

import hmac
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import anyio
from aiohttp import web

from ._admin import add_admin_routes
from ._export import ExportFormat, ExportStore
from ._faults import DOWNLOAD, FaultInjector, FaultKind, proxy_error_page
from ._lifecycle import ClosingEmulator
from ._model import (
    ArgumentError,
    EmulatedContact,
    ExportFilter,
    normalize_email,
    normalize_phone,
)
from ._ratelimit import CallWindow
from ._unisender_state import ContactBase
from ._wire import (
    Brand,
    Params,
    RecordedRequest,
    error_response,
    json_response,
    read_params,
)

__all__ = ["EmulatorOptions", "UniSenderEmulator"]

LANGUAGES = frozenset({"en", "ru", "ua"})
_EXPORT_METHOD = "async/exportContacts"
_EMAIL_STATUSES = frozenset(
    {"new", "invited", "active", "inactive", "unsubscribed", "blocked", "activation_requested"}
)
_PHONE_STATUSES = frozenset({"new", "active", "inactive", "unsubscribed", "blocked"})
# Faults that let the call run and then spoil (or delay) its answer; the others answer
# instead of running it.
_AFTER_CALL = frozenset(
    {"slow", "truncated_json", "lost_answer", "duplicated", "export_stalled", "export_short"}
)
_T = TypeVar("_T")
_Handler = Callable[[Params, web.Request], dict[str, object]]


@dataclass(frozen=True, slots=True, kw_only=True)
class EmulatorOptions:
    """Knobs of one emulator; the defaults are the provider's documented limits."""

    brand: Brand = "unisender"
    rate_limit: int = 1200
    export_rate_limit: int = 20
    rate_limit_window: float = 60.0
    retry_after: float | None = None
    export_processing_after: float = 0.05
    export_ready_after: float = 0.2
    export_format: ExportFormat = field(default_factory=ExportFormat)
    contact_limit: int | None = None
    rejected_email_domains: frozenset[str] = frozenset({"spamtrap.example.com"})
    max_import_rows: int = 500
    max_user_fields: int = 50
    request_log_size: int = 100
    fault_seed: int = 0
    max_body_bytes: int = 32 * 1024 * 1024
    # Real seconds importContacts waits after applying a batch, before it answers: widens
    # the window in which a killed client has sent a batch but not seen its answer.
    import_answer_delay: float = 0.0
    # Serve this file as every export, as it is, instead of one written from the
    # contacts (benchmarks' big files, tests' malformed ones). Argument checks still run.
    export_file: Path | None = None
    # Injected faults: real seconds a "hang" holds the connection (longer than any client
    # timeout under test) and a "slow" answer waits; the Retry-After of
    # rate_limited_retry_after.
    # Fault rules armed at start, as text: ``KIND[@METHOD][=P|*N],...`` (see _faults.py).
    faults: str = ""
    fault_hang_seconds: float = 60.0
    fault_slow_seconds: float = 0.05
    fault_retry_after: float = 1.0

    def __post_init__(self) -> None:
        if self.brand not in ("unisender", "selzy"):
            raise ValueError(f"unknown brand {self.brand!r}")
        if not 0 <= self.export_processing_after <= self.export_ready_after:
            raise ValueError("need 0 <= export_processing_after <= export_ready_after")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must not be negative")
        if self.contact_limit is not None and self.contact_limit < 0:
            raise ValueError("contact_limit must not be negative")


def _reset(request: web.Request) -> web.Response:
    """Close the connection without an answer (the client sees a disconnect)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never reaches the client: the connection is gone


async def _cut_download(request: web.Request, path: Path, content_type: str) -> web.StreamResponse:
    """Announce the whole file, send half of it, and hang up."""
    data = await anyio.Path(path).read_bytes()
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.content_length = len(data)
    await response.prepare(request)
    await response.write(data[: len(data) // 2])
    if request.transport is not None:
        request.transport.close()
    return response


def _seconds(value: float) -> str:
    """Retry-After text: whole seconds as an integer, a fraction only when configured."""
    return str(int(value)) if value == int(value) else f"{value:g}"


class UniSenderEmulator(ClosingEmulator):
    """An in-process UniSender/Selzy: serve ``app()`` and drive the state from tests."""

    def __init__(
        self,
        *,
        api_key: str,
        options: EmulatorOptions | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("the emulator needs a non-empty api_key")
        self._api_key = api_key
        self.options = options or EmulatorOptions()
        self._clock = clock or time.monotonic
        opts = self.options
        self._base = ContactBase(
            rejected_email_domains=opts.rejected_email_domains,
            contact_limit=opts.contact_limit,
            max_import_rows=opts.max_import_rows,
            max_user_fields=opts.max_user_fields,
        )
        self._exports = ExportStore(
            processing_after=opts.export_processing_after, ready_after=opts.export_ready_after
        )
        self._window = CallWindow(limit=opts.rate_limit, window=opts.rate_limit_window)
        self._answers_released: anyio.Event | None = None
        self._export_window = CallWindow(
            limit=opts.export_rate_limit, window=opts.rate_limit_window
        )
        self.calls: Counter[str] = Counter()
        self.faults = FaultInjector(seed=opts.fault_seed)
        if opts.faults:
            self.faults.arm(opts.faults)
        self.requests: deque[RecordedRequest] = deque(maxlen=opts.request_log_size)
        self._methods: dict[str, _Handler] = {
            "importContacts": self._import_contacts,
            _EXPORT_METHOD: self._export_contacts,
            "async/getTaskResult": self._get_task_result,
            "getLists": self._get_lists,
            "createList": self._create_list,
            "getFields": self._get_fields,
            "createField": self._create_field,
            "getContact": self._get_contact,
            "getContactCount": self._get_contact_count,
        }

    def __repr__(self) -> str:
        return f"UniSenderEmulator(brand={self.options.brand!r}, contacts={len(self._base)})"

    async def aclose(self) -> None:
        """Remove the export files; the emulator's contacts stay readable."""
        self._exports.close()

    # -- state access for tests (synchronous, in-process) -----------------------------

    def add_list(self, title: str) -> int:
        """Create a list and return its id."""
        return self._checked(lambda: self._base.catalog.add_list(title))

    def add_field(self, name: str, type: str = "string") -> int:
        """Create a user field (createField rules) and return its id."""
        return self._checked(lambda: self._base.catalog.add_field(name, type))

    def seed(self, contacts: Iterable[EmulatedContact]) -> None:
        """Store contacts as they are (no import rules); missing lists and fields are created."""
        self._checked(lambda: self._base.seed(contacts))

    def contacts(self) -> list[EmulatedContact]:
        """Copies of every contact, in id order."""
        return self._base.contacts()

    def contact(
        self, *, email: str | None = None, phone: str | None = None
    ) -> EmulatedContact | None:
        """A copy of the contact with this email (or phone), or None."""
        found = self._base.find(email=email, phone=phone)
        return None if found is None else found.copy()

    @staticmethod
    def _checked(action: Callable[[], _T]) -> _T:
        try:
            return action()
        except ArgumentError as exc:
            raise ValueError(str(exc)) from None

    # -- HTTP --------------------------------------------------------------------------

    def app(self) -> web.Application:
        """A new aiohttp application over this emulator's state."""
        app = web.Application(client_max_size=self.options.max_body_bytes)
        app.router.add_get("/download/{token}/{filename}", self._download)
        app.router.add_get("/{lang}/api/{method:.+}", self._api)
        app.router.add_post("/{lang}/api/{method:.+}", self._api)
        add_admin_routes(app, self)
        return app

    def _brand_name(self) -> str:
        return "Selzy" if self.options.brand == "selzy" else "UniSender"

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["lang"] not in LANGUAGES:
            raise web.HTTPNotFound
        method = request.match_info["method"]
        now = self._clock()
        self.calls[method] += 1
        try:
            items = await read_params(request)
        except ArgumentError as exc:
            return error_response("invalid_arg", str(exc))
        self.requests.append(
            RecordedRequest(
                method=method,
                http_method=request.method,
                items=tuple((k, v) for k, v in items if k != "api_key"),
                content_type=request.content_type,
                at=now,
            )
        )
        params = Params(items)
        fault = self.faults.take(method)
        if fault is not None and fault not in _AFTER_CALL:
            return await self._serve_fault(fault, request)
        key = params.get("api_key") or ""
        if not hmac.compare_digest(key.encode(), self._api_key.encode()):
            return error_response(
                "invalid_api_key",
                f"Invalid API key: check the key in your {self._brand_name()} account",
            )
        handler = self._methods.get(method)
        if handler is None:
            return error_response("unknown_method", f"Unknown method {method!r}")
        if not self._admit(key, method, now):
            return self._fault_response("rate_limited")
        try:
            body = handler(params, request)
            if fault == "duplicated":
                handler(params, request)  # a proxy resent it; the client sees one answer
        except ArgumentError as exc:
            return error_response("invalid_arg", str(exc))
        if fault is not None:
            return await self._spoil(fault, body, request)
        if method == "importContacts" and self.options.import_answer_delay:
            await anyio.sleep(self.options.import_answer_delay)
        if method == "importContacts" and self._answers_released is not None:
            await self._answers_released.wait()
        return json_response(body)

    def hold_import_answers(self) -> Callable[[], None]:
        """Apply imports but hold their answers until the returned function is called.

        For tests that need a run to stay in flight for as long as they take, whatever the
        machine's speed (rather than a delay that a slow machine might outlast).
        """
        released = anyio.Event()
        self._answers_released = released

        def release() -> None:
            if self._answers_released is released:
                self._answers_released = None
            released.set()

        return release

    def _admit(self, key: str, method: str, now: float) -> bool:
        """Count the call against the provider's limits, or refuse it (refusals are not counted)."""
        windows = [self._window]
        if method == _EXPORT_METHOD:
            windows.append(self._export_window)
        if not all(w.has_room(key, now) for w in windows):
            return False
        for window in windows:
            window.record(key, now)
        return True

    async def _serve_fault(self, kind: FaultKind, request: web.Request) -> web.StreamResponse:
        """Answer with ``kind`` instead of running the call."""
        if kind == "connection_reset":
            return _reset(request)
        if kind == "hang":
            await anyio.sleep(self.options.fault_hang_seconds)
            return _reset(request)
        if kind == "malformed_json":
            return web.Response(body=b'{"result": {"ta<html>', content_type="application/json")
        if kind == "export_failed":
            task = Params(await read_params(request)).text("task_uuid") or ""
            return json_response(
                {"result": {"task_uuid": task, "task_type": "exportContacts", "status": "failed"}}
            )
        return self._fault_response(kind)

    async def _spoil(
        self, kind: FaultKind, body: dict[str, object], request: web.Request
    ) -> web.StreamResponse:
        """The call ran; now its answer is late, cut, lost, or its export task stalls."""
        if kind == "slow":
            await anyio.sleep(self.options.fault_slow_seconds)
        elif kind == "truncated_json":
            raw = json_response(body).body
            assert isinstance(raw, bytes)
            return web.Response(body=raw[: len(raw) // 2], content_type="application/json")
        elif kind == "lost_answer":
            return _reset(request)
        elif kind in ("export_stalled", "export_short"):
            result = body.get("result")
            if isinstance(result, dict):
                task = str(result.get("task_uuid"))
                if kind == "export_stalled":
                    self._exports.stall(task)
                else:
                    self._exports.shorten(task)
        return json_response(body)

    def _fault_response(self, kind: FaultKind) -> web.Response:
        page = proxy_error_page(kind)
        if page is not None:
            return page
        brand = self._brand_name()
        if kind in ("rate_limited", "rate_limited_retry_after"):
            headers = None
            if kind == "rate_limited_retry_after":
                headers = {"Retry-After": _seconds(self.options.fault_retry_after)}
            elif self.options.retry_after is not None:
                headers = {"Retry-After": _seconds(self.options.retry_after)}
            return error_response(
                "api_call_limit_exceeded_for_api_key",
                f"The API call limit for this key is exceeded: {self.options.rate_limit} calls "
                "per minute. Try again later.",
                headers=headers,
            )
        messages: dict[str, str] = {
            "retry_later": "Temporary failure. Try again later.",
            "invalid_arg": "An invalid value was specified for one of the method arguments",
            "access_denied": f"Access denied: check that API access is enabled in your {brand} "
            "account and that the method is allowed",
            "not_enough_money": "Not enough money in the account to execute the method",
        }
        return error_response(kind, messages[kind])

    async def _download(self, request: web.Request) -> web.StreamResponse:
        self.calls[DOWNLOAD] += 1
        task = self._exports.downloadable(
            request.match_info["token"], request.match_info["filename"], self._clock()
        )
        if task is None:
            raise web.HTTPNotFound
        fault = self.faults.take(DOWNLOAD)
        if fault == "link_expired":
            self._exports.expire(task)
            raise web.HTTPNotFound
        if fault == "download_cut":
            return await _cut_download(request, task.path, task.content_type)
        if fault == "slow":
            await anyio.sleep(self.options.fault_slow_seconds)
        elif fault is not None:
            return await self._serve_fault(fault, request)
        return web.FileResponse(
            task.path,
            headers={
                "Content-Type": task.content_type,
                "Content-Disposition": f'attachment; filename="{task.filename}"',
            },
        )

    # -- API methods -------------------------------------------------------------------

    def _import_contacts(self, params: Params, request: web.Request) -> dict[str, object]:
        field_names = params.array("field_names")
        rows = params.matrix("data", len(field_names))
        outcome = self._base.import_contacts(
            field_names,
            rows,
            overwrite_tags=params.flag("overwrite_tags"),
            overwrite_lists=params.flag("overwrite_lists"),
        )
        body: dict[str, object] = {"result": outcome.result()}
        if outcome.overlimit:
            body["warnings"] = [{"warning": "Addresses overlimit for current period"}]
        return body

    def _export_contacts(self, params: Params, request: web.Request) -> dict[str, object]:
        list_id = params.integer("list_id")
        if list_id is not None:
            self._base.catalog.check_list(list_id)
        email_status = params.text("email_status")
        if email_status is not None and email_status not in _EMAIL_STATUSES:
            raise ArgumentError(f"Invalid email_status {email_status!r}")
        phone_status = params.text("phone_status")
        if phone_status is not None and phone_status not in _PHONE_STATUSES:
            raise ArgumentError(f"Invalid phone_status {phone_status!r}")
        email = params.text("email")
        phone = params.text("phone")
        normalized_phone = normalize_phone(phone) if phone is not None else None
        if phone is not None and normalized_phone is None:
            raise ArgumentError("Invalid phone number format")
        selection = ExportFilter(
            list_id=list_id,
            email=normalize_email(email) if email is not None else None,
            phone=normalized_phone,
            tag=params.text("tag"),
            email_status=email_status,
            phone_status=phone_status,
        )
        columns = self._base.export_columns(params.array("field_names"))
        if self.options.export_file is not None:
            task = self._exports.serve(
                path=self.options.export_file, fmt=self.options.export_format, now=self._clock()
            )
            return {"result": {"task_uuid": task.uuid, "status": "new"}}
        task = self._exports.create(
            fmt=self.options.export_format,
            columns=columns,
            rows=self._base.export_rows(columns, selection),
            now=self._clock(),
            notify_url=params.text("notify_url"),
        )
        return {"result": {"task_uuid": task.uuid, "status": "new"}}

    def _get_task_result(self, params: Params, request: web.Request) -> dict[str, object]:
        task_uuid = params.text("task_uuid")
        if task_uuid is None:
            raise ArgumentError("Argument task_uuid is required")
        task = self._exports.get(task_uuid)
        if task is None:
            raise ArgumentError(f"Task {task_uuid!r} not found")
        status = self._exports.status(task, self._clock())
        result: dict[str, object] = {
            "task_uuid": task.uuid,
            "task_type": "exportContacts",
            "status": status,
        }
        if status == "completed":
            path = f"/download/{task.token}/{task.filename}"
            result["file_to_download"] = str(request.url.origin().with_path(path))
        return {"result": result}

    def _get_lists(self, params: Params, request: web.Request) -> dict[str, object]:
        return {"result": [{"id": i, "title": t} for i, t in self._base.catalog.lists()]}

    def _create_list(self, params: Params, request: web.Request) -> dict[str, object]:
        return {"result": {"id": self._base.catalog.add_list(params.text("title") or "")}}

    def _get_fields(self, params: Params, request: web.Request) -> dict[str, object]:
        return {
            "result": [
                {"id": f.id, "name": f.name, "type": f.type, "is_visible": 1, "view_pos": pos}
                for pos, f in enumerate(self._base.catalog.fields(), start=1)
            ]
        }

    def _create_field(self, params: Params, request: web.Request) -> dict[str, object]:
        name = params.text("name")
        if name is None:
            raise ArgumentError("Argument name is required")
        return {
            "result": {"id": self._base.catalog.add_field(name, params.text("type") or "string")}
        }

    def _get_contact_count(self, params: Params, request: web.Request) -> dict[str, object]:
        """Contacts in a list, as an export of that list would hold them."""
        list_id = params.integer("list_id")
        if list_id is None:
            raise ArgumentError("Argument list_id is required")
        self._base.catalog.check_list(list_id)
        return {"result": {"count": self._base.count(ExportFilter(list_id=list_id))}}

    def _get_contact(self, params: Params, request: web.Request) -> dict[str, object]:
        email = params.text("email")
        if email is None:
            raise ArgumentError("Argument email is required")
        contact = self._base.find(email=email)
        if contact is None or contact.email is None:
            raise ArgumentError("Contact not found")
        added_at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self._base.added_at(contact.id)))
        result: dict[str, object] = {
            "email": {
                "email": contact.email,
                "status": contact.email_status,
                "availability": "available",
                "added_at": added_at,
            }
        }
        if params.flag("include_lists"):
            memberships = [
                *((i, "active") for i in contact.email_list_ids),
                *((i, "unsubscribed") for i in contact.email_unsubscribed_list_ids),
                *((i, "excluded") for i in contact.email_excluded_list_ids),
            ]
            result["lists"] = [
                {"id": i, "status": s, "added_at": added_at} for i, s in sorted(memberships)
            ]
        if params.flag("include_fields"):
            result["fields"] = dict(contact.fields)
        return {"result": result}
