"""Deterministic contact files for the benchmarks: a local CSV and a provider export.

The two sides describe the same base the way a nightly sync sees it: most contacts
unchanged, ``changed`` of them edited locally, ``new`` only local, ``removed`` only at
the provider. Values are realistic rather than uniform: a share of local emails in mixed
case and of local phones written for humans, Cyrillic names, tags in any order, a few
contacts unsubscribed at the provider, a few invalid and duplicate local rows. Files are
written once per (size, seed) and reused, since generating 10M rows takes a while.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = [
    "DATA_DIR",
    "EXPORT_FIELDS",
    "LIST_ID",
    "LOCAL_COLUMNS",
    "MAPPING",
    "PlanningFiles",
    "Shares",
    "export_file",
    "insert_file",
    "planning_files",
    "write_planning_files",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
LIST_ID = 1

# Six mapped fields, phone and tags among them (issue #7); the synced list adds
# email_list_ids implicitly.
MAPPING = {
    "email": "email",
    "phone": "phone",
    "tags": "tags",
    "Name": "name",
    "City": "city",
    "Segment": "segment",
}
LOCAL_COLUMNS = ("email", "phone", "name", "city", "segment", "tags")
# What the engine asks the export for: the synced fields plus what consent needs.
EXPORT_FIELDS = (
    "email",
    "phone",
    "tags",
    "Name",
    "City",
    "Segment",
    "email_list_ids",
    "email_status",
    "email_unsubscribed_list_ids",
    "phone_status",
)

_FIRST = ("anna", "boris", "kate", "li", "zoe", "ivan", "maria", "oleg", "sara", "tom")
_LAST = ("ivanova", "petrov", "smith", "wei", "muller", "rossi", "novak", "kim", "garcia")
_FIRST_RU = ("Анна", "Борис", "Иван", "Мария", "Олег", "Ольга", "Пётр", "Юлия")
_LAST_RU = ("Иванова", "Петров", "Смирнов", "Кузнецова", "Соколов", "Попова")
_CITIES = (
    "Moscow",
    "London",
    "Berlin",
    "Москва",
    "Санкт-Петербург",
    "Zürich",
    "New York",
    "Kazan",
    "Paris",
    "Almaty",
)
_DOMAINS = ("example.com", "mail.example.org", "corp.example.net", "example.ru")
_SEGMENTS = ("retail", "wholesale", "partner", "A", "B")
_TAGS = ("vip", "newsletter", "promo", "b2b", "trial", "churn-risk", "beta", "events")


@dataclass(frozen=True, kw_only=True)
class Shares:
    """Shares of the base, as fractions; the defaults are issue #7's."""

    changed: float = 0.01
    new: float = 0.005
    removed: float = 0.005
    locked: float = 0.002  # unsubscribed at the provider
    mixed_case_email: float = 0.01  # local side only: normalises to the remote value
    human_phone: float = 0.01  # local side only: "+7 916 123-45-67"
    invalid: float = 0.0001  # local rows with a broken email
    duplicate: float = 0.0001  # local rows that repeat an earlier key


@dataclass(frozen=True)
class PlanningFiles:
    """A generated pair and what it holds."""

    local: Path
    export: Path
    contacts: int

    @property
    def bytes(self) -> int:
        return self.local.stat().st_size + self.export.stat().st_size


@dataclass(slots=True)
class _Contact:
    email: str
    phone: str
    name: str
    city: str
    segment: str
    tags: tuple[str, ...]


def _phone(i: int) -> str:
    """Unique, possible E.164 numbers from several countries (none hit a national prefix)."""
    country = i % 10
    if country == 0:
        return f"+447{i:09d}"  # GB mobile, 10-digit national number
    if country == 1:
        return f"+12{i:09d}"  # NANPA, area code 2xx
    if country == 2:
        return f"+49151{i:08d}"  # DE mobile
    return f"+79{i % 90 + 10:02d}{i % 10**7:07d}"  # RU mobile (10 digits past 10M too)


def _contact(i: int, rng: random.Random) -> _Contact:
    first, last = _FIRST[i % len(_FIRST)], _LAST[(i // 10) % len(_LAST)]
    if rng.random() < 0.1:
        name = f"{rng.choice(_FIRST_RU)} {rng.choice(_LAST_RU)}"
    else:
        name = f"{first.title()} {last.title()}"
    tags = tuple(sorted(rng.sample(_TAGS, rng.randrange(4))))
    return _Contact(
        email=f"{first}.{last}{i}@{_DOMAINS[i % len(_DOMAINS)]}",
        phone=_phone(i),
        name=name,
        city=rng.choice(_CITIES),
        segment=rng.choice(_SEGMENTS),
        tags=tags,
    )


def _human_phone(phone: str) -> str:
    """The same number as a person types it: spaces and dashes, still with its plus."""
    digits = phone[1:]
    return f"+{digits[:-10]} {digits[-10:-7]} {digits[-7:-4]}-{digits[-4:-2]}-{digits[-2:]}"


def _mixed_case(email: str) -> str:
    local, domain = email.split("@")
    return f"{local.title()}@{domain.upper()}"


def _changed(contact: _Contact, rng: random.Random) -> _Contact:
    kind = rng.randrange(4)
    if kind == 0:
        return replace(contact, name=contact.name + " Jr")
    if kind == 1:
        return replace(contact, city=next(c for c in _CITIES if c != contact.city))
    if kind == 2:
        extra = next((t for t in _TAGS if t not in contact.tags), None)
        tags = (*contact.tags, extra) if extra else contact.tags
        return replace(contact, tags=tags, segment="changed")
    return replace(contact, segment="changed")


def _local_rows(count: int, seed: int, shares: Shares) -> Iterator[list[str]]:
    rng = random.Random(seed)
    base = random.Random(seed + 1)
    pending_duplicates: list[list[str]] = []
    for i in range(count):
        contact = _contact(i, base)
        draw = rng.random()
        if draw < shares.removed:
            continue  # gone locally: a removal in mirror mode
        if draw < shares.removed + shares.changed:
            contact = _changed(contact, rng)
        email, phone = contact.email, contact.phone
        if rng.random() < shares.mixed_case_email:
            email = _mixed_case(email)
        if rng.random() < shares.human_phone:
            phone = _human_phone(phone)
        if rng.random() < shares.invalid:
            email = email.replace("@", " at ")
        tags = (", " if i % 3 == 0 else ",").join(reversed(contact.tags))
        row = [email, phone, contact.name, contact.city, contact.segment, tags]
        if rng.random() < shares.duplicate:
            pending_duplicates.append([*row[:2], contact.name + " (again)", *row[3:]])
        yield row
        if pending_duplicates and rng.random() < 0.01:
            yield pending_duplicates.pop()
    yield from pending_duplicates
    extra = random.Random(seed + 2)
    for i in range(count, count + round(count * shares.new)):
        contact = _contact(i, extra)
        yield [
            contact.email,
            contact.phone,
            contact.name,
            contact.city,
            contact.segment,
            ",".join(contact.tags),
        ]


def _export_rows(count: int, seed: int, shares: Shares) -> Iterator[list[str]]:
    base = random.Random(seed + 1)
    locks = random.Random(seed + 3)
    for i in range(count):
        contact = _contact(i, base)
        status = "unsubscribed" if locks.random() < shares.locked else "active"
        yield [
            contact.email,
            contact.phone,
            ",".join(contact.tags),
            contact.name,
            contact.city,
            contact.segment,
            str(LIST_ID) if i % 7 else f"{LIST_ID},3",
            status,
            "",
            "active",
        ]


def write_planning_files(
    directory: Path, count: int, *, seed: int = 7, shares: Shares | None = None
) -> PlanningFiles:
    """Write both files (overwriting): the export in the emulator's format (CRLF, header)."""
    shares = shares or Shares()
    directory.mkdir(parents=True, exist_ok=True)
    local = directory / f"local-{count}-{seed}.csv"
    export = directory / f"export-{count}-{seed}.csv"
    with local.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(LOCAL_COLUMNS)
        writer.writerows(_local_rows(count, seed, shares))
    with export.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(EXPORT_FIELDS)
        writer.writerows(_export_rows(count, seed, shares))
    return PlanningFiles(local, export, count)


def planning_files(count: int, *, seed: int = 7, directory: Path = DATA_DIR) -> PlanningFiles:
    """The pair for (count, seed), generated on first use and reused afterwards."""
    local = directory / f"local-{count}-{seed}.csv"
    export = directory / f"export-{count}-{seed}.csv"
    if local.exists() and export.exists():
        return PlanningFiles(local, export, count)
    tmp = directory / f".tmp-{count}-{seed}"
    written = write_planning_files(tmp, count, seed=seed)
    directory.mkdir(parents=True, exist_ok=True)
    written.local.replace(local)
    written.export.replace(export)
    tmp.rmdir()
    return PlanningFiles(local, export, count)


def insert_file(count: int, *, seed: int = 11, directory: Path = DATA_DIR) -> Path:
    """A local CSV of ``count`` contacts that no provider has yet: a first full sync."""
    path = directory / f"inserts-{count}-{seed}.csv"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    rng = random.Random(seed)
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(LOCAL_COLUMNS)
        for i in range(count):
            contact = _contact(i, rng)
            writer.writerow(
                [
                    contact.email,
                    contact.phone,
                    contact.name,
                    contact.city,
                    contact.segment,
                    ",".join(contact.tags),
                ]
            )
    tmp.replace(path)
    return path


def export_file(megabytes: int, *, seed: int = 7, directory: Path = DATA_DIR) -> Path:
    """An export in the emulator's format of at least ``megabytes`` MB (for download and
    parse throughput), generated on first use."""
    path = directory / f"export-{megabytes}MB-{seed}.csv"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    limit = megabytes * 1_000_000
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(EXPORT_FIELDS)
        rows = _export_rows(10**9, seed, Shares())
        while handle.tell() < limit:
            writer.writerows(row for row, _ in zip(rows, range(10_000), strict=False))
    tmp.replace(path)
    return path
