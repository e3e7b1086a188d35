"""An Altcraft Platform API v1.1 emulator served by aiohttp, for tests and demos.

What it speaks (providers.md §3): ``POST /api/v1.1/{method}`` with a JSON body; the token
in the body (``token``) or in ``Authorization: Bearer``; answers ``{error, error_text,
...}`` with the error code also as the HTTP status (401 no token, 403 wrong token, 402
tariff limit, 400 bad request, 404 unknown task or profile). Methods:
``profiles/import_batch``, ``campaigns/triggers/import_and_start_batch_task``,
``tasks/status``, ``profiles/get_all``, ``profiles/delete``. A body over the limit gets
the documented ``{"error":400,"error_debug":"http: request body too large",...}``.
Export files are served at ``GET /api/download/data/{token}/{file}`` to the token only.

Tests read the state in-process: ``profiles()``, ``profile(email=...)`` and
``trigger_count(...)`` (campaigns sent per profile, to prove none went twice). Time comes
from an injectable clock; ``hold_tasks()`` keeps tasks processing for as long as a test
needs, and ``lose_answers()`` applies a call but answers 502, like a proxy that timed out.

Injected faults (``faults``, the generic ``FaultInjector`` with Altcraft's sites, see
``altcraft_fits``): 5xx from a proxy, 429 with or without Retry-After, resets, hangs,
slow, garbled, cut or lost answers, calls run twice, export tasks that fail or stall,
short exports, expired links and downloads cut mid-file.
"""

from __future__ import annotations

import contextlib
import hmac
import shutil
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson
from aiohttp import web

from ._altcraft_export import ExportLayout, write_profiles
from ._altcraft_state import MATCHING, AltcraftError, Profile, ProfileStore, Subscription
from ._faults import DOWNLOAD, FaultInjector, FaultKind, fits, proxy_error_page
from ._lifecycle import ClosingEmulator
from ._ratelimit import CallWindow
from ._wire import json_response

__all__ = [
    "AltcraftEmulator",
    "AltcraftOptions",
    "AltcraftRequest",
    "ExportLayout",
    "Profile",
    "Subscription",
    "altcraft_fits",
    "seed_altcraft",
]

IMPORT_METHOD = "profiles/import_batch"
TRIGGER_METHOD = "campaigns/triggers/import_and_start_batch_task"
_BODY_TOO_LARGE = AltcraftError(400, "Invalid request", "http: request body too large")
_OK = {"error": 0, "error_text": "Successful operation"}
TASK_STATUS = "tasks/status"
EXPORT_METHOD = "profiles/get_all"
_FAULTS: Mapping[str, tuple[int, str]] = {
    "rate_limited": (429, "Too many requests"),
    "rate_limited_retry_after": (429, "Too many requests"),
    "retry_later": (503, "Service temporarily unavailable"),
    "invalid_arg": (400, "Invalid request"),
    "access_denied": (403, "No access"),
    "not_enough_money": (402, "Tariff limit reached"),
}

# Faults that let the call run and then spoil (or delay) its answer; the others answer
# instead of running it.
_AFTER_CALL = frozenset(
    {"slow", "truncated_json", "lost_answer", "duplicated", "export_stalled", "export_short"}
)


def altcraft_fits(kind: str, method: str) -> bool:
    """Where a fault kind can happen against Altcraft (the generic rule, Altcraft's names).

    The export faults belong to ``profiles/get_all`` and ``tasks/status``; a call run twice
    never hits the trigger: a proxy that resends a campaign-sending POST is beyond any
    client's defence, and the soak would blame the engine for its duplicate.
    """
    if method == DOWNLOAD or kind in ("link_expired", "download_cut"):
        return fits(kind, method)
    if kind == "export_failed":
        return method == TASK_STATUS
    if kind in ("export_stalled", "export_short"):
        return method == EXPORT_METHOD
    if kind == "duplicated":
        return method != TRIGGER_METHOD
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class AltcraftOptions:
    """Knobs of one emulator; the defaults follow the documented limits."""

    max_body_bytes: int = 10 * 1024 * 1024
    max_batch_profiles: int = 10_000
    task_ready_after: float = 0.2  # seconds (emulator clock) until a task completes
    export_layout: ExportLayout = field(default_factory=ExportLayout)
    profile_limit: int | None = None  # the tariff: more profiles answer 402
    rate_limit: int = 100_000
    rate_limit_window: float = 1.0
    rejected_email_domains: frozenset[str] = frozenset({"spamtrap.example.com"})
    request_log_size: int = 200
    fault_seed: int = 0
    retry_after: float | None = None  # Retry-After of a rate-limit refusal (None: none sent)
    # Fault rules armed at start, as text: ``KIND[@METHOD][=P|*N],...`` (see _faults.py);
    # real seconds a hang holds the connection and a slow answer waits; the Retry-After
    # of rate_limited_retry_after.
    faults: str = ""
    fault_hang_seconds: float = 60.0
    fault_slow_seconds: float = 0.05
    fault_retry_after: float = 1.0


@dataclass(frozen=True, slots=True)
class AltcraftRequest:
    """One call as received: the body without its token, and where the token came from."""

    method: str
    body: Mapping[str, Any]
    size: int
    auth: str | None
    query: str


@dataclass(slots=True)
class _Task:
    id: str
    kind: str  # "export" or "trigger"
    created: float
    result: dict[str, object]
    stalled: bool = False  # an injected export_stalled: processing forever


class AltcraftEmulator(ClosingEmulator):
    """An in-process Altcraft: serve ``app()`` and drive the state from tests."""

    def __init__(
        self,
        *,
        token: str,
        options: AltcraftOptions | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not token:
            raise ValueError("the emulator needs a non-empty token")
        self._token = token
        self.options = options or AltcraftOptions()
        self._clock = clock or time.monotonic
        self.store = ProfileStore(
            rejected_email_domains=self.options.rejected_email_domains,
            profile_limit=self.options.profile_limit,
        )
        self._tasks: dict[str, _Task] = {}
        self._files: dict[str, Path] = {}
        self._dir = Path(tempfile.mkdtemp(prefix="altcraft-emulator-"))
        self._window = CallWindow(
            limit=self.options.rate_limit, window=self.options.rate_limit_window
        )
        self._segments: dict[int, tuple[int, Callable[[Profile], bool]]] = {}
        self._held = False
        self._answers_released: anyio.Event | None = None
        self._lose: Counter[str] = Counter()
        self.triggers: Counter[tuple[int, str]] = Counter()  # (trigger_id, profile id) -> sends
        self.calls: Counter[str] = Counter()
        self.polls: Counter[str] = Counter()  # tasks/status calls by task kind
        self.faults = FaultInjector(seed=self.options.fault_seed, fits=altcraft_fits)
        if self.options.faults:
            self.faults.arm(self.options.faults)
        self._short_export = False  # the next export holds half the profiles
        self.requests: deque[AltcraftRequest] = deque(maxlen=self.options.request_log_size)
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, object]]] = {
            "profiles/import_batch": self._import_batch,
            TRIGGER_METHOD: self._import_and_trigger,
            "tasks/status": self._task_status,
            "profiles/get_all": self._get_all,
            "profiles/delete": self._delete,
        }

    def __repr__(self) -> str:
        return f"AltcraftEmulator(profiles={len(self.store)})"

    async def aclose(self) -> None:
        """Remove the export files; the profiles stay readable."""
        shutil.rmtree(self._dir, ignore_errors=True)

    # -- state for tests ---------------------------------------------------------------
    def add_database(self, db_id: int) -> int:
        self.store.databases.add(db_id)
        return db_id

    def seed(
        self,
        db_id: int,
        fields: Mapping[str, str],
        subscriptions: Iterable[Subscription] = (),
    ) -> Profile:
        """Store a profile as it is (no import rules)."""
        self.store.databases.add(db_id)
        return self.store.add(db_id, fields, list(subscriptions))

    def add_segment(self, db_id: int, member: Callable[[Profile], bool]) -> int:
        """A segment of a database: the profiles ``member`` accepts. Returns its id."""
        segment_id = 100 + len(self._segments) + 1
        self._segments[segment_id] = (db_id, member)
        return segment_id

    def profiles(self, db_id: int | None = None) -> list[Profile]:
        return list(self.store.profiles(db_id))

    def profile(self, *, email: str | None = None, **fields: str) -> Profile | None:
        """The first profile with this email (or these field values), or None."""
        wanted = dict(fields)
        if email is not None:
            wanted["email"] = email
        return next(
            (
                p
                for p in self.store.profiles()
                if all(p.fields.get(k) == v for k, v in wanted.items())
            ),
            None,
        )

    def trigger_count(self, profile: Profile, trigger_id: int | None = None) -> int:
        """How many trigger campaigns were started for this profile (by one trigger)."""
        return sum(
            n
            for (t, pid), n in self.triggers.items()
            if pid == profile.id and trigger_id in (None, t)
        )

    def hold_tasks(self) -> Callable[[], None]:
        """Keep trigger tasks processing until the returned function is called."""
        self._held = True

        def release() -> None:
            self._held = False

        return release

    def hold_answers(self) -> Callable[[], None]:
        """Apply imports (and start their tasks) but hold the answers until released.

        For tests that need a run stopped while a request is in flight, however slow the
        machine (rather than a delay a slow machine might outlast).
        """
        released = anyio.Event()
        self._answers_released = released

        def release() -> None:
            if self._answers_released is released:
                self._answers_released = None
            released.set()

        return release

    def lose_answers(self, method: str, count: int = 1) -> None:
        """Apply the next ``count`` calls of ``method``, then answer 502 as a proxy would."""
        self._lose[method] += count

    # -- HTTP --------------------------------------------------------------------------
    def app(self) -> web.Application:
        """A new aiohttp application over this emulator's state."""
        app = web.Application(client_max_size=self.options.max_body_bytes * 2 + (1 << 20))
        app.router.add_post("/api/v1.1/{method:.+}", self._api)
        app.router.add_get("/api/download/data/{token}/{name}", self._download)
        app.router.add_get("/_emulator/profiles", self._admin_profiles)
        return app

    def _auth(self, request: web.Request, body: Mapping[str, Any]) -> tuple[str | None, str]:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return "header", header[len("Bearer ") :].strip()
        token = body.get("token")
        if isinstance(token, str):
            return "body", token
        return None, ""

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        self.calls[method] += 1
        try:
            body = await self._read_body(request)
        except AltcraftError as error:
            return _error(error)
        where, token = self._auth(request, body)
        self.requests.append(
            AltcraftRequest(
                method,
                {k: v for k, v in body.items() if k != "token"},
                request.content_length or 0,
                where,
                request.query_string,
            )
        )
        fault = self.faults.take(method)
        if fault is not None and fault not in _AFTER_CALL:
            return await self._serve_fault(fault, request)
        if where is None:
            return _error(AltcraftError(401, "API token required"))
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            return _error(AltcraftError(403, "No access: invalid token"))
        handler = self._methods.get(method)
        if handler is None:
            return _error(AltcraftError(404, f"Unknown method {method!r}"))
        now = self._clock()
        if not self._window.has_room(token, now):
            return self._fault_response("rate_limited")
        self._window.record(token, now)
        self._short_export = fault == "export_short"
        try:
            answer = handler(body)
        except AltcraftError as error:
            return _error(error)
        finally:
            self._short_export = False
        if fault == "duplicated":  # a proxy resent it; the client sees the first answer
            with contextlib.suppress(AltcraftError):  # e.g. a second delete finds nothing
                handler(body)
        if fault is not None:
            return await self._spoil(fault, answer, request)
        held = self._answers_released
        if held is not None and method in (IMPORT_METHOD, TRIGGER_METHOD):
            await held.wait()
        if self._lose[method] > 0:
            self._lose[method] -= 1
            return web.Response(status=502, text="<html><h1>502 Bad Gateway</h1></html>")
        return json_response(answer)

    async def _serve_fault(self, kind: FaultKind, request: web.Request) -> web.StreamResponse:
        """Answer with ``kind`` instead of running the call."""
        if kind == "connection_reset":
            return _reset(request)
        if kind == "hang":
            await anyio.sleep(self.options.fault_hang_seconds)
            return _reset(request)
        if kind == "malformed_json":
            return web.Response(body=b'{"error": 0, "da<html>', content_type="application/json")
        if kind == "export_failed":  # the task reports a failure (any task: poll answers)
            return json_response({**_OK, "data": {"status": "error", "progress": 0}})
        return self._fault_response(kind)

    async def _spoil(
        self, kind: FaultKind, answer: dict[str, object], request: web.Request
    ) -> web.StreamResponse:
        """The call ran; now its answer is late, cut or lost, or its export task stalls."""
        if kind == "slow":
            await anyio.sleep(self.options.fault_slow_seconds)
        elif kind == "truncated_json":
            raw = json_response(answer).body
            assert isinstance(raw, bytes)
            return web.Response(body=raw[: len(raw) // 2], content_type="application/json")
        elif kind == "lost_answer":
            return _reset(request)
        elif kind == "export_stalled":
            data = answer.get("data")
            task = self._tasks.get(str(data.get("task_id"))) if isinstance(data, dict) else None
            if task is not None:
                task.stalled = True
        return json_response(answer)

    def _fault_response(self, kind: FaultKind) -> web.Response:
        page = proxy_error_page(kind)
        if page is not None:
            return page
        headers = None
        if kind == "rate_limited_retry_after":
            headers = {"Retry-After": _seconds(self.options.fault_retry_after)}
        elif kind == "rate_limited" and self.options.retry_after is not None:
            headers = {"Retry-After": _seconds(self.options.retry_after)}
        code, text = _FAULTS[kind]
        return json_response({"error": code, "error_text": text}, status=code, headers=headers)

    async def _read_body(self, request: web.Request) -> dict[str, Any]:
        limit = self.options.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _BODY_TOO_LARGE
        raw = await request.read()
        if len(raw) > limit:
            raise _BODY_TOO_LARGE
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            raise AltcraftError(400, "Invalid request", "the body is not JSON") from None
        if not isinstance(body, dict):
            raise AltcraftError(400, "Invalid request", "the body is not a JSON object")
        return body

    # -- methods -----------------------------------------------------------------------
    def _import(
        self, body: Mapping[str, Any], *, wrapped: bool
    ) -> tuple[list[dict[str, object]], list[Profile | None]]:
        db_id = self.store.check_db(body.get("db_id"))
        matching = body.get("matching") or "email"
        if matching not in MATCHING:
            raise AltcraftError(400, f"Unknown matching {matching!r}")
        data = body.get("data")
        if not isinstance(data, list) or not data:
            raise AltcraftError(400, "data must be a non-empty array")
        if len(data) > self.options.max_batch_profiles:
            raise AltcraftError(400, f"at most {self.options.max_batch_profiles} profiles a call")
        field_name = body.get("field_name")
        resource_id = body.get("resource_id")
        entries: list[dict[str, object]] = []
        profiles: list[Profile | None] = []
        for item in data:
            profile_data = item.get("data") if wrapped and isinstance(item, dict) else item
            entry, profile = self.store.import_one(
                db_id,
                profile_data,
                matching=str(matching),
                field_name=field_name if isinstance(field_name, str) else None,
                resource_id=resource_id if isinstance(resource_id, int) else None,
            )
            entries.append(entry)
            profiles.append(profile)
        return entries, profiles

    def _import_batch(self, body: dict[str, Any]) -> dict[str, object]:
        entries, _ = self._import(body, wrapped=False)
        return {**_OK, "result": entries}

    def _import_and_trigger(self, body: dict[str, Any]) -> dict[str, object]:
        trigger_id = body.get("trigger_id")
        if not isinstance(trigger_id, int) or isinstance(trigger_id, bool) or trigger_id <= 0:
            raise AltcraftError(400, "trigger_id is required")
        entries, profiles = self._import(body, wrapped=True)
        if not body.get("skip_triggers"):
            for profile in profiles:
                if profile is not None:
                    self.triggers[(trigger_id, profile.id)] += 1
        task = self._task("trigger", {"error": 0, "error_text": "", "result": entries})
        return {**_OK, "task_id": task.id}

    def _task(self, kind: str, result: dict[str, object]) -> _Task:
        task = _Task(f"task_{uuid.uuid4()}", kind, self._clock(), result)
        self._tasks[task.id] = task
        return task

    def _task_status(self, body: dict[str, Any]) -> dict[str, object]:
        task = self._tasks.get(str(body.get("task_id")))
        if task is None:
            raise AltcraftError(404, "Task not found")
        self.polls[task.kind] += 1
        elapsed = self._clock() - task.created
        ready = self.options.task_ready_after
        if (self._held and task.kind == "trigger") or task.stalled or elapsed < ready:
            progress = 0 if ready <= 0 else min(99, int(100 * elapsed / ready))
            return {**_OK, "data": {"status": "processing", "progress": progress}}
        return {**_OK, "data": {"status": "completed", "progress": 100, "result": task.result}}

    def _get_all(self, body: dict[str, Any]) -> dict[str, object]:
        source_type = body.get("source_type", "database")
        source_id = body.get("source_id")
        file_format = body.get("file_format", "csv")
        if file_format not in ("csv", "json"):
            raise AltcraftError(400, f"file_format must be csv or json, got {file_format!r}")
        if source_type == "segment":
            if source_id not in self._segments:
                raise AltcraftError(400, f"Segment {source_id!r} not found")
            db_id, member = self._segments[source_id]
            profiles = [p for p in self.store.profiles(db_id) if member(p)]
        elif source_type == "database":
            db_id = self.store.check_db(source_id)
            profiles = list(self.store.profiles(db_id))
        else:
            raise AltcraftError(400, f"source_type must be database or segment: {source_type!r}")
        total = len(profiles)
        if self._short_export:  # an injected export_short: a clean file, half the rows
            profiles = profiles[: len(profiles) // 2]
        paths = write_profiles(
            self._dir,
            f"{db_id}_database_export",
            profiles,
            file_format=file_format,
            layout=self.options.export_layout,
        )
        urls = []
        for path in paths:
            key = uuid.uuid4().hex
            self._files[key] = path
            urls.append(f"/api/download/data/{key}/{path.name}")
        task = self._task(
            "export",
            {
                "errors": [],
                "source_id": source_id,
                "total": total,
                "type": source_type,
                "urls": urls,
            },
        )
        return {**_OK, "data": {"task_id": task.id}}

    def _delete(self, body: dict[str, Any]) -> dict[str, object]:
        db_id = self.store.check_db(body.get("db_id"))
        self.store.delete(db_id, body)
        return dict(_OK)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        self.calls[DOWNLOAD] += 1
        header = request.headers.get("Authorization", "")
        if not hmac.compare_digest(header.encode(), f"Bearer {self._token}".encode()):
            return _error(AltcraftError(401, "API token required"))
        key = request.match_info["token"]
        path = self._files.get(key)
        if path is None or path.name != request.match_info["name"] or not path.exists():
            raise web.HTTPNotFound
        fault = self.faults.take(DOWNLOAD)
        if fault == "link_expired":
            del self._files[key]
            raise web.HTTPNotFound
        if fault == "download_cut":
            return await _cut_download(request, path)
        if fault == "slow":
            await anyio.sleep(self.options.fault_slow_seconds)
        elif fault is not None:
            return await self._serve_fault(fault, request)
        return web.FileResponse(path)

    async def _admin_profiles(self, request: web.Request) -> web.StreamResponse:
        """Profiles and trigger counts, for an emulator run as a separate process."""
        return json_response(
            [
                {
                    "id": p.id,
                    "db_id": p.db_id,
                    "fields": p.fields,
                    "subscriptions": [s.to_json() for s in p.subscriptions],
                    "triggered": self.trigger_count(p),
                }
                for p in self.store.profiles()
            ]
        )


def _error(error: AltcraftError) -> web.Response:
    return json_response(error.answer(), status=error.code)


def _reset(request: web.Request) -> web.Response:
    """Close the connection without an answer (the client sees a disconnect)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never reaches the client: the connection is gone


async def _cut_download(request: web.Request, path: Path) -> web.StreamResponse:
    """Announce the whole file, send half of it, and hang up."""
    data = await anyio.Path(path).read_bytes()
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = len(data)
    await response.prepare(request)
    await response.write(data[: len(data) // 2])
    if request.transport is not None:
        request.transport.close()
    return response


def _seconds(value: float) -> str:
    """Retry-After text: whole seconds as an integer, a fraction only when configured."""
    return str(int(value)) if value == int(value) else f"{value:g}"


def seed_altcraft(emulator: AltcraftEmulator, document: object) -> None:
    """Load ``{"databases": [1], "profiles": [{"db_id", "fields", "subscriptions"}]}``.

    Raises ValueError naming what is wrong (``sync-engine emulate altcraft --seed``).
    """
    if not isinstance(document, dict) or set(document) - {"databases", "profiles"}:
        raise ValueError('the seed must be an object with "databases" and "profiles"')
    for db_id in document.get("databases", []):
        if not isinstance(db_id, int) or db_id <= 0:
            raise ValueError(f"database ids must be positive integers, got {db_id!r}")
        emulator.add_database(db_id)
    for item in document.get("profiles", []):
        if not isinstance(item, dict) or not isinstance(item.get("db_id"), int):
            raise ValueError("each profile needs an integer db_id")
        fields = item.get("fields", {})
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise ValueError("profile fields must be an object of strings")
        subscriptions = []
        for sub in item.get("subscriptions", []):
            if not isinstance(sub, dict):
                raise ValueError("each subscription must be an object")
            channel = str(sub.get("channel", ""))
            subscriptions.append(
                Subscription(
                    channel,
                    int(sub.get("resource_id", 0)),
                    str(sub.get(channel, "")),
                    str(sub.get("status", "subscribed")),
                )
            )
        emulator.seed(item["db_id"], fields, subscriptions)
