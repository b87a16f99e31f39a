"""The FHIR RESTful interactions over a unit of work, shared by the HTTP routes and by
batch/transaction bundle entries. Each returns a ``Result``; adapters turn it into an HTTP
response or a bundle entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

from kangqiao.fhir import definitions
from kangqiao.fhir.outcome import FhirError, operation_outcome
from kangqiao.fhir.rest import formats
from kangqiao.fhir.search.dates import parse_range
from kangqiao.fhir.store.records import Stored, instant, parse_etag, utcnow
from kangqiao.fhir.store.searching import HistoryWindow, Page, parse_include
from kangqiao.fhir.store.store import UnitOfWork
from kangqiao.settings import get_settings

INCLUDE_PARAMS = {"_include", "_include:iterate", "_revinclude", "_revinclude:iterate"}
RESULT_PARAMS = {"_count", "_offset", "_total", "_summary", "_elements", "_format", "_pretty",
                 "_until", "_after", "_before"} | INCLUDE_PARAMS
MAX_OFFSET = 2**31 - 1


@dataclass
class Result:
    status: int
    stored: Stored | None = None
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    created: bool = False

    @classmethod
    def of(cls, stored: Stored, status: int = 200, *, created: bool = False) -> Result:
        return cls(status, stored, stored.content, version_headers(stored), created)


def version_headers(stored: Stored) -> dict[str, str]:
    return {"ETag": stored.etag, "Last-Modified": stored.last_modified}


def known_type(resource_type: str) -> str:
    if resource_type not in definitions.resource_types():
        raise FhirError.of(404, "not-supported", f"Unknown resource type {resource_type!r}")
    return resource_type


def etag_or_none(value: str | None) -> int | None:
    return None if value is None else parse_etag(value)


# ---- reads -----------------------------------------------------------------------------


def read(uow: UnitOfWork, resource_type: str, resource_id: str, *,
         if_none_match: str | None = None, if_modified_since: str | None = None) -> Result:
    stored = uow.read(known_type(resource_type), resource_id)
    if if_none_match is not None and if_none_match.strip() != "*" and \
            parse_etag(if_none_match) == stored.version_id:
        return Result(304, headers=version_headers(stored))
    if if_modified_since is not None:
        since = _http_date(if_modified_since)
        if since is not None and stored.last_updated.replace(microsecond=0) <= since:
            return Result(304, headers=version_headers(stored))
    return Result.of(stored)


def _http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None  # RFC 9110: an invalid date is ignored
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def vread(uow: UnitOfWork, resource_type: str, resource_id: str, version: str) -> Result:
    if not (version.isascii() and version.isdigit()) or len(version) > 9:  # not "²"
        raise FhirError.of(404, "not-found", f"Version {version!r} is not known")
    return Result.of(uow.vread(known_type(resource_type), resource_id, int(version)))


# ---- writes ----------------------------------------------------------------------------


def create(uow: UnitOfWork, resource_type: str, body: Any, *,
           if_none_exist: str | None = None) -> Result:
    known_type(resource_type)
    if if_none_exist:
        stored, created = uow.conditional_create(resource_type, body, if_none_exist)
        return Result.of(stored, 201 if created else 200, created=created)
    return Result.of(uow.create(resource_type, body), 201, created=True)


def update(uow: UnitOfWork, resource_type: str, resource_id: str, body: Any, *,
           if_match: str | None = None) -> Result:
    stored, created = uow.update(known_type(resource_type), resource_id, body,
                                 if_match=etag_or_none(if_match))
    return Result.of(stored, 201 if created else 200, created=created)


def conditional_update(uow: UnitOfWork, resource_type: str, criteria: str, body: Any, *,
                       if_match: str | None = None) -> Result:
    stored, created = uow.conditional_update(known_type(resource_type), criteria, body,
                                             if_match=etag_or_none(if_match))
    return Result.of(stored, 201 if created else 200, created=created)


def patch(uow: UnitOfWork, resource_type: str, resource_id: str, operations: Any, *,
          if_match: str | None = None) -> Result:
    return Result.of(uow.patch(known_type(resource_type), resource_id, operations,
                               if_match=etag_or_none(if_match)))


def conditional_patch(uow: UnitOfWork, resource_type: str, criteria: str, operations: Any, *,
                      if_match: str | None = None) -> Result:
    matches = uow.match(known_type(resource_type), criteria)
    if len(matches) != 1:
        raise FhirError.of(412 if matches else 404, "multiple-matches" if matches else
                           "not-found", f"Conditional patch '{criteria}' matched "
                           f"{len(matches)} resources (exactly one needed)")
    return patch(uow, resource_type, matches[0], operations, if_match=if_match)


def delete(uow: UnitOfWork, resource_type: str, resource_id: str) -> Result:
    stored = uow.delete(known_type(resource_type), resource_id)
    return _deleted(stored)


def conditional_delete(uow: UnitOfWork, resource_type: str, criteria: str) -> Result:
    return _deleted(uow.conditional_delete(known_type(resource_type), criteria))


def _deleted(stored: Stored | None) -> Result:
    if stored is None:
        return Result(204)
    return Result(204, stored, None, {"ETag": stored.etag})


# ---- search and history ----------------------------------------------------------------


def _date_range(text: str, name: str) -> tuple[datetime, datetime]:
    parsed = parse_range(text.strip())
    if parsed is None:
        raise FhirError.of(400, "invalid", f"{name}: {text!r} is not a FHIR date or instant")
    return parsed


def _page_size(params: dict[str, str]) -> tuple[int, int]:
    settings = get_settings()
    try:
        count = int(params.get("_count", settings.default_page_size))
        offset = int(params.get("_offset", 0))
    except ValueError as exc:
        raise FhirError.of(400, "invalid", "_count and _offset must be integers") from exc
    if count < 0 or offset < 0:
        raise FhirError.of(400, "invalid", "_count and _offset must not be negative")
    if offset > MAX_OFFSET:  # a larger one overflowed the 64-bit OFFSET of SQLite / PostgreSQL
        raise FhirError.of(400, "too-costly", f"_offset must be at most {MAX_OFFSET}")
    return min(count, settings.max_page_size), offset


def search(uow: UnitOfWork, resource_type: str | None, params: list[tuple[str, str]],
           base: str, *, strict: bool = False) -> Result:
    if resource_type is not None:
        known_type(resource_type)
    singles = dict(params)
    summary = singles.get("_summary")
    formats.check_summary(summary)
    count, offset = _page_size(singles)
    total_mode = singles.get("_total", "accurate")
    if total_mode not in ("none", "estimate", "accurate"):
        raise FhirError.of(400, "invalid", "_total must be none, estimate or accurate")
    if summary == "count":
        count = 0
    criteria = [(k, v) for k, v in params if k not in RESULT_PARAMS]
    page = uow.search(resource_type, criteria, count=count, offset=offset, total=total_mode,
                      strict=strict, after=_cursor(singles, "_after"),
                      before=_cursor(singles, "_before"))
    path = f"{base}/{resource_type}" if resource_type else base
    entries = [{"fullUrl": f"{base}/{s.resource_type}/{s.id}",
                "resource": formats.shape(s.content or {}, summary, singles.get("_elements")),
                "search": {"mode": "match"}} for s in page.items]
    entries.extend({"fullUrl": f"{base}/{s.resource_type}/{s.id}",
                    "resource": formats.shape(s.content or {}, summary, singles.get("_elements")),
                    "search": {"mode": "include"}} for s in _included(uow, page, params))
    if page.warnings:
        entries.append({"resource": operation_outcome(page.warnings),
                        "search": {"mode": "outcome"}})
    bundle = _bundle("searchset", page, entries, path, params, count, offset)
    return Result(200, body=bundle)


def _included(uow: UnitOfWork, page: Page, params: list[tuple[str, str]]) -> list[Stored]:
    """``_include`` / ``_revinclude`` (``:iterate`` repeats on what they add)."""
    wanted = [(k, v) for k, v in params if k in INCLUDE_PARAMS]
    if not wanted or not page.items:
        return []
    includes = [parse_include(v, False) for k, v in wanted if k.startswith("_include")]
    revincludes = [parse_include(v, True) for k, v in wanted if k.startswith("_revinclude")]
    iterate = any(k.endswith(":iterate") for k, _ in wanted)
    return uow.included(page.items, includes, revincludes, iterate=iterate)


def everything(uow: UnitOfWork, patient_id: str, params: list[tuple[str, str]],
               base: str) -> Result:
    """Patient/[id]/$everything with ``_since``, ``_type`` and paging."""
    singles = dict(params)
    for name in singles:
        if name not in ("_since", "_type", "_count", "_offset", "_format", "_pretty",
                        "start", "end"):
            raise FhirError.of(400, "not-supported", f"Parameter {name!r} is not supported "
                               "by $everything")
    uow.read("Patient", patient_id)  # 404 / 410 as for a read
    count, offset = _page_size(singles)
    types = None
    if "_type" in singles:
        types = {t.strip() for t in singles["_type"].split(",") if t.strip()}
        unknown = sorted(types - definitions.resource_types())
        if unknown:
            raise FhirError.of(400, "invalid", f"_type: unknown resource types {unknown}")
    since = _date_range(singles["_since"], "_since")[0] if "_since" in singles else None
    page = uow.everything(patient_id, types=types, since=since, count=count, offset=offset)
    entries = [{"fullUrl": f"{base}/{s.resource_type}/{s.id}", "resource": s.content,
                "search": {"mode": "match"}} for s in page.items]
    path = f"{base}/Patient/{patient_id}/$everything"
    return Result(200, body=_bundle("searchset", page, entries, path, params, count, offset))


def history(uow: UnitOfWork, resource_type: str | None, resource_id: str | None,
            params: list[tuple[str, str]], base: str) -> Result:
    if resource_type is not None:
        known_type(resource_type)
    singles = dict(params)
    for name in singles:
        if name not in ("_since", "_at", "_count", "_offset", "_until", "_format", "_pretty",
                        "_summary", "_elements", "_list", "_sort"):
            raise FhirError.of(400, "not-supported", f"Parameter {name!r} is not supported "
                               "on _history")
    count, offset = _page_size(singles)
    until_text = singles.get("_until")
    until = _date_range(until_text, "_until")[1] if until_text else utcnow()
    window = HistoryWindow(
        since=_date_range(singles["_since"], "_since")[0] if "_since" in singles
        else None,
        at=_date_range(singles["_at"], "_at") if "_at" in singles else None,
        until=until)
    page = uow.history(resource_type, resource_id, window, count=count, offset=offset)
    if resource_id is not None and page.total == 0:
        raise FhirError.of(404, "not-found", f"{resource_type}/{resource_id} is not known")
    parts = [p for p in (base, resource_type, resource_id) if p]
    path = "/".join(parts) + "/_history"
    entries = [_history_entry(s, base) for s in page.items]
    stable = [(k, v) for k, v in params if k != "_until"] + [("_until", instant(until))]
    return Result(200, body=_bundle("history", page, entries, path, stable, count, offset))


def _history_entry(s: Stored, base: str) -> dict[str, Any]:
    url = f"{s.resource_type}/{s.id}"
    method = s.method
    status = "204" if method == "DELETE" else "201" if method == "POST" or (
        method == "PUT" and s.version_id == 1) else "200"
    entry: dict[str, Any] = {
        "fullUrl": f"{base}/{url}",
        "request": {"method": method, "url": s.resource_type if method == "POST" else url},
        "response": {"status": status,
                     "etag": s.etag, "lastModified": instant(s.last_updated)},
    }
    if s.content is not None:
        entry["resource"] = s.content
    return entry


def _cursor(params: dict[str, str], name: str) -> tuple[str, str] | None:
    """``_after`` / ``_before`` = ``Type/id``: the key a keyset page starts after / ends
    before (the server writes these into next / previous links)."""
    value = params.get(name)
    if value is None:
        return None
    resource_type, _, resource_id = value.partition("/")
    if not resource_type or not resource_id:
        raise FhirError.of(400, "invalid", f"{name} must be Type/id")
    return resource_type, resource_id


def _bundle(kind: str, page: Page, entries: list[dict[str, Any]], path: str,
            params: list[tuple[str, str]], count: int, offset: int) -> dict[str, Any]:
    kept = [(k, v) for k, v in params if k not in ("_offset", "_count", "_after", "_before")]

    def link(relation: str, *extra: tuple[str, str]) -> dict[str, str]:
        query = urlencode([*kept, ("_count", str(count)), *extra])
        return {"relation": relation, "url": f"{path}?{query}"}

    keyset = page.first_key is not None or page.more_after or page.more_before
    cursor = [(k, v) for k, v in params if k in ("_after", "_before")]
    links = [link("self", *cursor) if keyset or cursor else link("self", ("_offset",
                                                                          str(offset)))]
    if keyset:
        if page.more_after and page.last_key:
            links.append(link("next", ("_after", "/".join(page.last_key))))
        if page.more_before and page.first_key:
            links.append(link("previous", ("_before", "/".join(page.first_key))))
    elif count:
        if (page.total is None or offset + count < page.total) and len(page.items) == count:
            links.append(link("next", ("_offset", str(offset + count))))
        if offset > 0:
            links.append(link("previous", ("_offset", str(max(0, offset - count)))))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": kind,
                              "meta": {"lastUpdated": instant(utcnow())}}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    return bundle
