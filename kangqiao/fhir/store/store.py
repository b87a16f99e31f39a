"""The FHIR store: versioned resources, their search index and the change outbox.

``FhirStore.write(access)`` / ``.read(access)`` open one unit of work (one database
transaction); every operation on it asks the security gate first. Index, history and outbox
rows are buffered and written with ``executemany`` when the unit of work needs them (before any
query) or commits, which is what makes 100-entry transaction bundles fast.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import jsonpatch
from sqlalchemy import Connection, Engine, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from kangqiao.fhir.outcome import FhirError, Issue
from kangqiao.fhir.search.index import index_rows
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.db import (
    bulk_insert,
    bulk_insert_tuples,
    is_sqlite,
    read_transaction,
    write_transaction,
)
from kangqiao.fhir.store.records import Stored, check_id, is_valid_id, new_id, stamp, utcnow
from kangqiao.fhir.store.searching import IncludeMixin, SearchMixin
from kangqiao.fhir.validation import validate_resource
from kangqiao.security.gate import Access, Action, Gate, TrustedGate, readable

R = schema.resource
_ONE_US = timedelta(microseconds=1)
IndexTuples = dict[str, list[tuple[Any, ...]]]  # index kind -> rows in INDEX_COLUMNS order


@dataclass
class _Pending:
    created: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    index: IndexTuples = field(default_factory=dict)
    unindex: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.history or self.unindex)



def index_tuples(resource_type: str, resource_id: str,
                 rows: dict[str, list[dict[str, Any]]]) -> IndexTuples:
    """Search-index rows as tuples in ``schema.INDEX_COLUMNS`` order (cheap to buffer, to
    pickle from bulk-import workers, and to insert)."""
    out: IndexTuples = {}
    key = (resource_type, resource_id)
    for kind, dicts in rows.items():
        if dicts:
            get = _ROW_GETTERS[kind]
            try:
                out[kind] = [key + get(r) for r in dicts]
            except KeyError:  # a row without some column: None there
                names = schema.INDEX_COLUMNS[kind][2:]
                out[kind] = [(*key, *[r.get(n) for n in names]) for r in dicts]
    return out


_ROW_GETTERS = {kind: operator.itemgetter(*columns[2:])
                for kind, columns in schema.INDEX_COLUMNS.items()}


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated resource with its id and search-index rows: what ``put_many`` takes, and
    what ``create`` / ``update`` accept instead of a body when the CPU-heavy checks were done
    before the transaction (so that they do not hold the database's write lock)."""

    resource_type: str
    id: str
    resource: dict[str, Any]
    index: IndexTuples


def checked_resource(resource_type: str, body: Any, resource_id: str | None) -> dict[str, Any]:
    """The body as it will be stored, or the FhirError that says why it cannot be."""
    if not isinstance(body, dict):
        raise FhirError.of(400, "structure", "The body must be a JSON object (a resource)")
    if body.get("resourceType") != resource_type:
        raise FhirError.of(400, "invalid", f"resourceType {body.get('resourceType')!r} does "
                           f"not match the URL type {resource_type!r}", "resourceType")
    resource = dict(body)
    if resource_id is None:
        resource.pop("id", None)  # create: the server assigns the id
    issues = validate_resource(resource, resource_type)
    errors = [i for i in issues if i.severity in ("error", "fatal")]
    if errors:
        raise FhirError(422, errors)
    return resource


def prepare(resource_type: str, body: Any, resource_id: str) -> Prepared:
    """Validate and index a body outside any transaction (no database access)."""
    resource = checked_resource(resource_type, body, resource_id)
    return Prepared(resource_type, resource_id, resource,
                    index_tuples(resource_type, resource_id, index_rows(resource)))


class FhirStore:
    """Entry point: owns the engine and the gate."""

    def __init__(self, engine: Engine, gate: Gate | None = None) -> None:
        self.engine = engine
        self.gate: Gate = gate or TrustedGate()

    @contextmanager
    def write(self, access: Access) -> Iterator[UnitOfWork]:
        with write_transaction(self.engine) as conn:
            uow = UnitOfWork(conn, access, self.gate, writable=True)
            yield uow
            uow.flush()

    @contextmanager
    def read(self, access: Access) -> Iterator[UnitOfWork]:
        with read_transaction(self.engine) as conn:
            yield UnitOfWork(conn, access, self.gate, writable=False)


class UnitOfWork(SearchMixin, IncludeMixin):
    """One transaction's view of the store. Not thread-safe; one per request."""

    # True in subclasses that record what is written (the audit trail): bulk import's fast
    # path, which inserts rows without ``_write``, then reports them to ``created_in_bulk``.
    watches_writes = False

    def __init__(self, conn: Connection, access: Access, gate: Gate, *, writable: bool) -> None:
        self.conn = conn
        self.access = access
        self.gate = gate
        self.writable = writable
        self._pending = _Pending()
        self._sqlite = is_sqlite(conn)

    # ---- reads -------------------------------------------------------------------------

    def _current(self, resource_type: str, resource_id: str, *, lock: bool = False
                 ) -> Stored | None:
        if not is_valid_id(resource_id):
            return None  # never stored (and PostgreSQL refuses e.g. NUL in a query)
        self.flush()
        stmt = select(R.c.version_id, R.c.last_updated, R.c.deleted, R.c.content).where(
            R.c.resource_type == resource_type, R.c.id == resource_id
        )
        if lock and not self._sqlite:
            stmt = stmt.with_for_update()
        row = self.conn.execute(stmt).first()
        if row is None:
            return None
        return Stored(resource_type, resource_id, row.version_id, row.last_updated,
                      row.deleted, row.content)

    def read(self, resource_type: str, resource_id: str) -> Stored:
        """The current version; 404 when unknown (or not visible), 410 when deleted."""
        current = self._current(resource_type, resource_id)
        if current is None or (current.content is not None
                               and not self.gate.may_read(self.access, current.content)):
            raise FhirError.of(404, "not-found", f"{resource_type}/{resource_id} is not known")
        if current.deleted:
            raise FhirError(410, [Issue("error", "deleted",
                                        f"{resource_type}/{resource_id} has been deleted")],
                            headers={"ETag": current.etag})
        return current

    def vread(self, resource_type: str, resource_id: str, version_id: int) -> Stored:
        self.flush()
        row = self.conn.execute(
            select(schema.resource_history).where(
                schema.resource_history.c.resource_type == resource_type,
                schema.resource_history.c.id == resource_id,
                schema.resource_history.c.version_id == version_id,
            )
        ).first() if is_valid_id(resource_id) else None
        if row is None or (row.content is not None
                           and not self.gate.may_read(self.access, row.content)):
            raise FhirError.of(404, "not-found",
                               f"{resource_type}/{resource_id}/_history/{version_id} is not known")
        stored = Stored(resource_type, resource_id, row.version_id, row.last_updated,
                        row.deleted, row.content, row.method)
        if row.deleted:
            raise FhirError(410, [Issue("error", "deleted", f"Version {version_id} of "
                                        f"{resource_type}/{resource_id} is a deletion")],
                            headers={"ETag": stored.etag})
        return stored

    # ---- writes ------------------------------------------------------------------------

    def create(self, resource_type: str, body: Any, *, resource_id: str | None = None
               ) -> Stored:
        """Create with a server-assigned id (or ``resource_id`` for update-as-create).
        ``body`` may be a ``Prepared`` (validated and indexed before the transaction)."""
        resource, index = self._resource_of(resource_type, body, resource_id)
        self.gate.check_write(self.access, "create", resource_type, resource, None)
        return self._write(resource_type, resource_id or new_id(), resource, None, "POST",
                           index=index)

    def conditional_create(self, resource_type: str, body: Any, criteria: str
                           ) -> tuple[Stored, bool]:
        """``If-None-Exist``: 0 matches create, 1 returns the match, more is 412."""
        self._serialise_on(resource_type, criteria)
        matches = self.match(resource_type, criteria)
        if len(matches) > 1:
            raise FhirError.of(412, "multiple-matches",
                               f"If-None-Exist '{criteria}' matched {len(matches)} resources")
        if matches:
            return self.read(resource_type, matches[0]), False
        return self.create(resource_type, body), True

    def update(self, resource_type: str, resource_id: str, body: Any, *,
               if_match: int | None = None) -> tuple[Stored, bool]:
        """Update (or create with a client id); returns (stored, created)."""
        check_id(resource_id)
        resource, index = self._resource_of(resource_type, body, resource_id)
        if resource.get("id") != resource_id:
            raise FhirError.of(400, "invalid", f"Resource id {resource.get('id')!r} does not "
                               f"match the URL id {resource_id!r}", f"{resource_type}.id")
        for _attempt in range(2):
            old = self._current(resource_type, resource_id, lock=True)
            self._check_version(old, if_match, resource_type, resource_id)
            action: Action = "create" if old is None or old.deleted else "update"
            self.gate.check_write(self.access, action, resource_type, resource,
                                  None if old is None else old.content)
            try:
                stored = self._write(resource_type, resource_id, resource, old, "PUT",
                                     index=index)
            except _CreatedConcurrently:
                continue  # another transaction created it first: update its version instead
            return stored, action == "create"
        raise FhirError.of(409, "conflict", f"{resource_type}/{resource_id} is being changed "
                           "concurrently; retry")

    def conditional_update(self, resource_type: str, criteria: str, body: Any, *,
                           if_match: int | None = None) -> tuple[Stored, bool]:
        self._serialise_on(resource_type, criteria)
        matches = self.match(resource_type, criteria)
        if len(matches) > 1:
            raise FhirError.of(412, "multiple-matches",
                               f"Conditional update '{criteria}' matched {len(matches)} resources")
        if not isinstance(body, dict):
            raise FhirError.of(400, "structure", "The body must be a JSON object (a resource)")
        body_id = body.get("id")
        if matches:
            if body_id is not None and body_id != matches[0]:
                raise FhirError.of(400, "invalid", f"Resource id {body_id!r} differs from the "
                                   f"matched {resource_type}/{matches[0]}", f"{resource_type}.id")
            body = {**body, "id": matches[0]}
            return self.update(resource_type, matches[0], body, if_match=if_match)
        if body_id is not None:
            return self.update(resource_type, body_id, body)
        return self.create(resource_type, body), True

    def patch(self, resource_type: str, resource_id: str, operations: Any, *,
              if_match: int | None = None) -> Stored:
        """Apply an RFC 6902 JSON Patch to the current version, then validate the result."""
        current = self.read(resource_type, resource_id)
        self._check_version(current, if_match, resource_type, resource_id)
        if not isinstance(operations, list):
            raise FhirError.of(400, "invalid", "A JSON Patch body must be an array of operations")
        try:
            patched = jsonpatch.JsonPatch(operations).apply(current.content)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError,
                ValueError, KeyError, IndexError, AttributeError) as exc:
            raise FhirError.of(422, "processing", f"JSON Patch failed: {exc}") from exc
        if not isinstance(patched, dict) or patched.get("id") != resource_id:
            raise FhirError.of(422, "processing", "JSON Patch may not change the resource id")
        resource = self._checked(resource_type, patched, resource_id)
        self.gate.check_write(self.access, "patch", resource_type, resource, current.content)
        return self._write(resource_type, resource_id, resource, current, "PATCH")

    def delete(self, resource_type: str, resource_id: str) -> Stored | None:
        """Logical delete; the history is kept. Deleting nothing (or twice) is not an error."""
        check_id(resource_id)
        old = self._current(resource_type, resource_id, lock=True)
        if old is None or old.deleted:
            return None
        self.gate.check_write(self.access, "delete", resource_type, None, old.content)
        return self._write(resource_type, resource_id, None, old, "DELETE")

    def conditional_delete(self, resource_type: str, criteria: str) -> Stored | None:
        matches = self.match(resource_type, criteria)
        if len(matches) > 1:
            raise FhirError.of(412, "multiple-matches",
                               f"Conditional delete '{criteria}' matched {len(matches)} resources")
        return self.delete(resource_type, matches[0]) if matches else None

    # ---- internals ---------------------------------------------------------------------

    def _checked(self, resource_type: str, body: Any, resource_id: str | None) -> dict[str, Any]:
        if not self.writable:
            raise RuntimeError("write on a read-only unit of work")
        return checked_resource(resource_type, body, resource_id)

    def _resource_of(self, resource_type: str, body: Any, resource_id: str | None
                     ) -> tuple[dict[str, Any], IndexTuples | None]:
        if isinstance(body, Prepared):
            if not self.writable:
                raise RuntimeError("write on a read-only unit of work")
            return body.resource, body.index
        return self._checked(resource_type, body, resource_id), None

    @staticmethod
    def _check_version(old: Stored | None, if_match: int | None, resource_type: str,
                       resource_id: str) -> None:
        if if_match is None:
            return
        current = None if old is None or old.deleted else old.version_id
        if current != if_match:
            raise FhirError.of(
                412, "conflict", f"If-Match version {if_match} is not the current version "
                f"({current}) of {resource_type}/{resource_id}")

    def _serialise_on(self, resource_type: str, criteria: str) -> None:
        """Make concurrent conditional writes with the same criteria run one after the other
        (SQLite's BEGIN IMMEDIATE already serialises all writers)."""
        if self._sqlite:
            return
        digest = hashlib.blake2b(f"{resource_type}?{criteria}".encode(), digest_size=8).digest()
        key = int.from_bytes(digest, "big", signed=True)
        self.conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    def put_many(self, items: Sequence[Prepared]) -> list[Stored]:
        """Update-as-create of already validated resources, in bulk (bulk import): one version
        lookup for the whole batch, and new rows inserted with the batch. If another
        transaction inserts one of these ids meanwhile, the commit fails with an integrity
        error and the caller retries the batch (which then sees the row)."""
        current = self._current_many({(i.resource_type, i.id) for i in items})
        out: list[Stored] = []
        for item in items:
            key = (item.resource_type, item.id)
            old = current.get(key)
            action: Action = "create" if old is None or old.deleted else "update"
            self.gate.check_write(self.access, action, item.resource_type, item.resource,
                                  None if old is None else old.content)
            stored = self._write(item.resource_type, item.id, item.resource, old, "PUT",
                                 index=item.index, batch_create=True)
            current[key] = stored
            out.append(stored)
        return out

    def created_in_bulk(self, created: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """(type, id, resource) of resources bulk import inserted as version 1 in this unit
        of work (kangqiao.fhir.bulk.loading); see ``watches_writes``."""

    def _current_many(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Stored]:
        self.flush()
        found: dict[tuple[str, str], Stored] = {}
        ordered = sorted(keys)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start:start + 500]
            stmt = select(R.c.resource_type, R.c.id, R.c.version_id, R.c.last_updated,
                          R.c.deleted, R.c.content).where(
                schema.keys_in(R.c.resource_type, R.c.id, chunk))
            if not self._sqlite:
                stmt = stmt.with_for_update()
            for r in self.conn.execute(stmt):
                found[(r.resource_type, r.id)] = Stored(r.resource_type, r.id, r.version_id,
                                                        r.last_updated, r.deleted, r.content)
        return found

    def _write(self, resource_type: str, resource_id: str, resource: dict[str, Any] | None,
               old: Stored | None, method: str, *,
               index: IndexTuples | None = None,
               batch_create: bool = False) -> Stored:
        """Write the next version. ``method`` is the HTTP verb that wrote it (kept in history);
        the outbox says what happened: create, update or delete. ``index`` may carry the
        search-index rows when they were computed elsewhere (bulk import workers)."""
        now = utcnow()
        if old is not None and now <= old.last_updated:  # clocks step back; history must not
            now = old.last_updated + _ONE_US
        version = 1 if old is None else old.version_id + 1
        content = None if resource is None else stamp(resource, resource_id, version, now)
        deleted = content is None
        values = {"version_id": version, "last_updated": now, "deleted": deleted,
                  "content": content}
        if old is None and (method == "POST" or batch_create):
            # A fresh server-assigned id cannot collide (and bulk import retries a batch that
            # does): batch these inserts.
            self._pending.created.append({"resource_type": resource_type, "id": resource_id,
                                          **values})
        elif old is None:
            # ON CONFLICT DO NOTHING: a concurrent create of the same id must not surface as a
            # database error (PostgreSQL would abort the whole transaction).
            stmt = _insert_ignore(self.conn)(R).values(resource_type=resource_type,
                                                       id=resource_id, **values)
            inserted = self.conn.execute(stmt.on_conflict_do_nothing().returning(R.c.id))
            if inserted.first() is None:
                raise _CreatedConcurrently(resource_type, resource_id)
        else:
            result = self.conn.execute(
                update(R).where(R.c.resource_type == resource_type, R.c.id == resource_id,
                                R.c.version_id == old.version_id).values(**values))
            if result.rowcount != 1:  # a concurrent writer won: never let both win
                raise FhirError.of(409, "conflict",
                                   f"{resource_type}/{resource_id} was changed concurrently")
        p = self._pending
        p.history.append({"resource_type": resource_type, "id": resource_id, **values,
                          "method": method})
        p.outbox.append({"resource_type": resource_type, "resource_id": resource_id,
                         "version_id": version, "action": _action(old, deleted),
                         "occurred_at": now})
        if old is not None and not old.deleted:
            p.unindex.append((resource_type, resource_id))
        if content is not None:
            rows = index_tuples(resource_type, resource_id, index_rows(content)) \
                if index is None else index
            for kind, tuples in rows.items():
                p.index.setdefault(kind, []).extend(tuples)
        return Stored(resource_type, resource_id, version, now, deleted, content, method)

    def flush(self) -> None:
        """Write buffered history, index and outbox rows (before queries and at commit)."""
        p = self._pending
        if not p:
            return
        self._pending = _Pending()
        stale: dict[str, list[str]] = {}
        for resource_type, resource_id in p.unindex:
            stale.setdefault(resource_type, []).append(resource_id)
        for resource_type, ids in stale.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                for table in schema.INDEX_TABLES.values():
                    self.conn.execute(delete(table).where(
                        table.c.resource_type == resource_type, table.c.resource_id.in_(chunk)))
        bulk_insert(self.conn, R, p.created)
        bulk_insert(self.conn, schema.resource_history, p.history)
        bulk_insert(self.conn, schema.outbox, p.outbox)
        for kind, tuples in p.index.items():
            bulk_insert_tuples(self.conn, schema.INDEX_TABLES[kind], schema.INDEX_COLUMNS[kind],
                               tuples)

    def resources(self, resource_type: str, ids: Sequence[str]) -> list[Stored]:
        """Current, visible, non-deleted versions of ``ids`` in the given order."""
        if not ids:
            return []
        self.flush()
        rows = self.conn.execute(
            select(R).where(R.c.resource_type == resource_type, R.c.id.in_(list(ids)),
                            R.c.deleted.is_(False))).all()
        by_id = {r.id: Stored(resource_type, r.id, r.version_id, r.last_updated, r.deleted,
                              r.content) for r in rows}
        found = [by_id[i] for i in ids if i in by_id]
        shown = readable(self.gate, self.access, [s.content or {} for s in found])
        return [s for s, ok in zip(found, shown, strict=True) if ok]


class _CreatedConcurrently(Exception):
    """The id was inserted by a concurrent transaction between our read and our insert."""


def _insert_ignore(conn: Connection) -> Any:
    return sqlite_insert if is_sqlite(conn) else pg_insert


def _action(old: Stored | None, deleted: bool) -> str:
    if deleted:
        return "delete"
    return "create" if old is None or old.deleted else "update"
