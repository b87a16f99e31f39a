"""Batch and transaction Bundles (FHIR R4 http.html#transaction).

A transaction runs in one unit of work: entries are processed DELETE, POST, PUT/PATCH, GET (then
HEAD), ``urn:uuid:`` full URLs and conditional references (``Patient?identifier=...``) are
resolved across the whole bundle before anything is written, and any failure rolls everything
back with an OperationOutcome naming the entry. A batch runs each entry in its own unit of work.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from kangqiao.fhir import definitions
from kangqiao.fhir.outcome import FhirError, Issue, operation_outcome
from kangqiao.fhir.rest import interactions as ix
from kangqiao.fhir.store.records import check_id, instant, is_valid_id, new_id
from kangqiao.fhir.store.store import FhirStore, Prepared, UnitOfWork, prepare
from kangqiao.security.gate import Access
from kangqiao.settings import get_settings

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 4}
CONDITIONAL_HEADERS = ("ifNoneMatch", "ifModifiedSince", "ifMatch", "ifNoneExist")


@dataclass
class Entry:
    index: int
    method: str
    url: str
    path: list[str]
    query: str
    resource: Any
    request: dict[str, Any]
    full_url: str | None
    prefer: str


def process(store: FhirStore, access: Access, bundle: Any, base: str, *,
            prefer: str = "representation") -> dict[str, Any]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError.of(400, "invalid", "POST to the base URL takes a Bundle", "resourceType")
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise FhirError.of(400, "invalid", f"Bundle.type must be batch or transaction, "
                           f"not {kind!r}", "Bundle.type")
    raw = bundle.get("entry", [])
    if not isinstance(raw, list):
        raise FhirError.of(400, "structure", "Bundle.entry must be an array", "Bundle.entry")
    if len(raw) > get_settings().max_bundle_entries:
        raise FhirError.of(413, "too-costly", f"A bundle may hold at most "
                           f"{get_settings().max_bundle_entries} entries", "Bundle.entry")
    if kind == "transaction":
        entries = [_parse(i, e, prefer) for i, e in enumerate(raw)]
        return _transaction(store, access, entries, base)
    return _batch(store, access, raw, base, prefer)


def _parse(index: int, raw: Any, prefer: str) -> Entry:
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise _entry_error(index, 400, "required", "entry.request is required", where)
    request = raw["request"]
    method, url = request.get("method"), request.get("url")
    if method not in ORDER or not isinstance(url, str) or not url:
        raise _entry_error(index, 400, "invalid", "entry.request needs a method "
                           "(GET, HEAD, POST, PUT, PATCH, DELETE) and a url", f"{where}.request")
    for name in CONDITIONAL_HEADERS:
        if not isinstance(request.get(name, ""), str):
            raise _entry_error(index, 400, "invalid", f"entry.request.{name} must be a string",
                               f"{where}.request.{name}")
    parts = urlsplit(url)
    path = [p for p in parts.path.split("/") if p]
    if parts.scheme or not path:
        raise _entry_error(index, 400, "invalid", f"entry.request.url {url!r} must be relative "
                           "to the server base (e.g. 'Patient/123')", f"{where}.request.url")
    full_url = raw.get("fullUrl")
    return Entry(index, method, url, path, parts.query, raw.get("resource"), dict(request),
                 full_url if isinstance(full_url, str) else None, prefer)


def _entry_error(index: int, status: int, code: str, message: str,
                 expression: str | None = None) -> FhirError:
    return FhirError(status, [Issue("error", code, f"Bundle.entry[{index}]: {message}",
                                    expression)])


def _transaction(store: FhirStore, access: Access, entries: list[Entry], base: str
                 ) -> dict[str, Any]:
    responses: dict[int, dict[str, Any]] = {}
    offline = _prepare_offline(entries)
    with store.write(access) as uow:
        ordered = sorted(entries, key=lambda e: (ORDER[e.method], e.index))
        deletes = [e for e in ordered if e.method == "DELETE"]
        for entry in deletes:
            responses[entry.index] = _run(uow, entry, base, _execute)
        ids = offline if offline is not None else _assign_ids(uow, entries)
        for entry in ordered:
            if entry.method == "DELETE":
                continue
            if entry.resource is not None and not isinstance(entry.resource, Prepared):
                entry.resource = _resolve_references(uow, entry, ids)
            responses[entry.index] = _run(uow, entry, base, _execute, ids)
    return _response_bundle("transaction-response", [responses[e.index] for e in entries])


def _batch(store: FhirStore, access: Access, raw: list[Any], base: str, prefer: str
           ) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        try:
            entry = _parse(index, item, prefer)
            with store.write(access) as uow:
                ids = _assign_ids(uow, [entry])
                if entry.resource is not None:
                    entry.resource = _resolve_references(uow, entry, ids)
                out.append(_run(uow, entry, base, _execute, ids))
        except FhirError as exc:
            out.append({"response": {"status": str(exc.status), "outcome": exc.outcome()}})
    return _response_bundle("batch-response", out)


def _run(uow: UnitOfWork, entry: Entry, base: str,
         execute: Callable[..., ix.Result], *args: Any) -> dict[str, Any]:
    try:
        result = execute(uow, entry, base, *args)
    except FhirError as exc:
        raise _named(entry, exc) from exc
    return _entry(result, entry, base)


def _named(entry: Entry, exc: FhirError) -> FhirError:
    """The error with the entry named, keeping the element path inside the entry."""
    issues = [Issue(i.severity, i.code, f"Bundle.entry[{entry.index}] ({entry.method} "
                    f"{entry.url}): {i.diagnostics}", _in_entry(entry.index, i.expression))
              for i in exc.issues]
    return FhirError(exc.status, issues, exc.headers)


class _NeedsDatabase(Exception):
    """The bundle has conditional parts that only the database can resolve."""


def _preparable(entry: Entry) -> bool:
    """A create or update by id of a known type, with a JSON object as its body."""
    if not isinstance(entry.resource, dict) or entry.path[0] not in definitions.resource_types():
        return False
    if entry.method == "POST":
        return len(entry.path) == 1
    return entry.method == "PUT" and len(entry.path) == 2 and is_valid_id(entry.path[1])


def _prepare_offline(entries: list[Entry]) -> dict[str, str] | None:
    """When nothing in a transaction needs the database to be understood (no conditional
    operations or references), resolve its urn:uuid references and validate and index every
    resource before the transaction opens: that CPU work then does not hold the database's
    write lock, so several server processes can share a SQLite file or a PostgreSQL server
    without queueing behind each other's validation. Returns fullUrl -> Type/id, or None to
    leave everything to the transaction."""
    if any(e.query or e.request.get("ifNoneExist") for e in entries):
        return None
    ids: dict[str, str] = {}
    writes = [e for e in entries if _preparable(e)]
    for entry in writes:
        if entry.method == "POST":
            entry.request["_id"] = new_id()
            if entry.full_url:
                ids[entry.full_url] = f"{entry.path[0]}/{entry.request['_id']}"
        elif entry.full_url:
            ids[entry.full_url] = "/".join(entry.path)
    try:
        resolved = [(e, _resolve_references(None, e, ids)) for e in writes]
    except _NeedsDatabase:
        return None
    for entry, body in sorted(resolved, key=lambda pair: (ORDER[pair[0].method],
                                                          pair[0].index)):
        resource_id = entry.request["_id"] if entry.method == "POST" else entry.path[1]
        try:
            entry.resource = prepare(entry.path[0], body, resource_id)
        except FhirError as exc:
            raise _named(entry, exc) from exc
    return ids


def _in_entry(index: int, expression: str | None) -> str | None:
    """``Patient.name[0]`` inside entry 3 is ``Bundle.entry[3].resource.name[0]``."""
    if not expression or expression.startswith("Bundle.entry["):
        return expression
    _, dot, rest = expression.partition(".")
    return f"Bundle.entry[{index}].resource" + (dot + rest if rest else "")


def _assign_ids(uow: UnitOfWork, entries: list[Entry]) -> dict[str, str]:
    """fullUrl -> ``Type/id`` for every entry that creates or names a resource."""
    ids: dict[str, str] = {}
    for entry in entries:
        if not entry.full_url or not isinstance(entry.resource, dict):
            continue
        resource_type = entry.path[0]
        if entry.method == "POST":
            target = None
            criteria = entry.request.get("ifNoneExist")
            if isinstance(criteria, str) and criteria:
                matches = uow.match(resource_type, criteria)
                if len(matches) > 1:
                    raise _entry_error(entry.index, 412, "multiple-matches",
                                       f"ifNoneExist '{criteria}' matched {len(matches)}")
                target = matches[0] if matches else None
            entry.request["_id"] = target or new_id()
            ids[entry.full_url] = f"{resource_type}/{entry.request['_id']}"
        elif entry.method == "PUT" and len(entry.path) == 2:
            ids[entry.full_url] = "/".join(entry.path)
    return ids


def _resolve_references(uow: UnitOfWork | None, entry: Entry, ids: dict[str, str]) -> Any:
    def walk(node: Any, key: str | None = None) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if isinstance(node, str):
            if node in ids:
                return ids[node]
            if key == "reference" and "?" in node and not node.startswith(("http:", "https:")):
                if uow is None:
                    raise _NeedsDatabase
                return _conditional_reference(uow, entry, node)
        return node

    return walk(entry.resource)


def _conditional_reference(uow: UnitOfWork, entry: Entry, reference: str) -> str:
    resource_type, _, criteria = reference.partition("?")
    ix.known_type(resource_type)
    matches = uow.match(resource_type, criteria)
    if len(matches) != 1:
        raise _entry_error(entry.index, 412, "multiple-matches" if matches else "not-found",
                           f"conditional reference {reference!r} matched {len(matches)} "
                           "resources (exactly one needed)")
    return f"{resource_type}/{matches[0]}"


def _execute(uow: UnitOfWork, entry: Entry, base: str, ids: dict[str, str] | None = None
             ) -> ix.Result:
    request, path, method = entry.request, entry.path, entry.method
    resource_type = path[0]
    if method in ("GET", "HEAD"):
        return _get(uow, entry, base)
    if method == "POST":
        if len(path) != 1:
            raise _entry_error(entry.index, 400, "invalid", "POST url must be a resource type")
        ix.known_type(resource_type)
        assigned = request.get("_id")
        criteria = request.get("ifNoneExist")
        if assigned and criteria:
            try:
                return ix.read(uow, resource_type, assigned)
            except FhirError as exc:
                if exc.status != 404:
                    raise
        if assigned:  # the id reserved when urn:uuid references were resolved
            return ix.Result.of(uow.create(resource_type, entry.resource,
                                           resource_id=assigned), 201, created=True)
        return ix.create(uow, resource_type, entry.resource)
    if_match = request.get("ifMatch")
    if method == "PUT":
        if len(path) == 2:
            check_id(path[1])
            return ix.update(uow, resource_type, path[1], entry.resource, if_match=if_match)
        return ix.conditional_update(uow, resource_type, entry.query, entry.resource,
                                     if_match=if_match)
    if method == "PATCH":
        operations = _patch_operations(entry)
        if len(path) == 2:
            return ix.patch(uow, resource_type, path[1], operations, if_match=if_match)
        return ix.conditional_patch(uow, resource_type, entry.query, operations,
                                    if_match=if_match)
    if len(path) == 2:
        return ix.delete(uow, resource_type, path[1])
    return ix.conditional_delete(uow, resource_type, entry.query)


def _patch_operations(entry: Entry) -> Any:
    """In a bundle a JSON Patch travels as a Binary whose ``data`` is the base64 patch."""
    resource = entry.resource
    if isinstance(resource, dict) and resource.get("resourceType") == "Binary":
        try:
            return orjson.loads(base64.b64decode(resource.get("data", ""), validate=True))
        except (TypeError, ValueError, orjson.JSONDecodeError) as exc:
            raise _entry_error(entry.index, 400, "invalid",
                               "Binary.data is not a base64 JSON Patch") from exc
    if isinstance(resource, list):
        return resource
    raise _entry_error(entry.index, 400, "invalid",
                       "PATCH entries carry a JSON Patch as a Binary resource")


def _get(uow: UnitOfWork, entry: Entry, base: str) -> ix.Result:
    path, params = entry.path, parse_qsl(entry.query, keep_blank_values=True)
    request = entry.request
    if len(path) == 1:
        if path[0] == "_history":
            return ix.history(uow, None, None, params, base)
        return ix.search(uow, path[0], params, base)
    if len(path) == 2 and path[1] == "_history":
        return ix.history(uow, path[0], None, params, base)
    if len(path) == 2:
        return ix.read(uow, path[0], path[1], if_none_match=request.get("ifNoneMatch"),
                       if_modified_since=request.get("ifModifiedSince"))
    if len(path) == 3 and path[2] == "_history":
        return ix.history(uow, path[0], path[1], params, base)
    if len(path) == 4 and path[2] == "_history":
        return ix.vread(uow, path[0], path[1], path[3])
    raise _entry_error(entry.index, 400, "not-supported", f"Unsupported GET url {entry.url!r}")


def _entry(result: ix.Result, entry: Entry, base: str) -> dict[str, Any]:
    response: dict[str, Any] = {"status": str(result.status)}
    out: dict[str, Any] = {}
    if result.stored is not None:
        s = result.stored
        out["fullUrl"] = f"{base}/{s.resource_type}/{s.id}"
        response["etag"] = s.etag
        response["lastModified"] = instant(s.last_updated)
        if entry.method in ("POST", "PUT", "PATCH"):
            response["location"] = f"{base}/{s.location}"
    if result.body is not None and entry.method != "HEAD":
        if entry.method == "GET" or entry.prefer == "representation":
            out["resource"] = result.body
        elif entry.prefer == "OperationOutcome":
            response["outcome"] = operation_outcome([Issue("information", "informational",
                                                           f"{entry.method} succeeded")])
    out["response"] = response
    return out


def _response_bundle(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "id": new_id(), "type": kind, "entry": entries}

