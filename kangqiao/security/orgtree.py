"""The county's organisation tree (county hospital -> township centre -> village clinic, and
the hospital's departments), read from ``Organization.partOf`` in the search index.

Policy decisions need "this organisation and everything below it" on every request, and the
tree changes rarely, so it is cached: dropped by this process right after it commits a change
to an Organization, and reloaded at the latest after ``ttl`` seconds (which bounds how long
another worker process may use a stale tree).
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import Connection, select

from kangqiao.fhir.store import schema

REF = schema.search_reference
TOK = schema.search_token


class OrgTree:
    def __init__(self, ttl_seconds: float = 300.0) -> None:
        self.ttl = ttl_seconds
        self._lock = threading.Lock()
        self._children: dict[str, list[str]] | None = None
        self._parents: dict[str, str] = {}
        self._loaded = 0.0
        self._subtrees: dict[str, frozenset[str]] = {}
        self._government: frozenset[str] = frozenset()
        self.generation = 0  # bumped at every reload: keys of caches built on the tree

    def invalidate(self) -> None:
        with self._lock:
            self._children = None
            self._subtrees = {}

    def _ensure(self, conn: Connection) -> dict[str, list[str]]:
        with self._lock:
            if self._children is not None and time.monotonic() - self._loaded < self.ttl:
                return self._children
        rows = conn.execute(select(REF.c.resource_id, REF.c.target_id).where(
            REF.c.resource_type == "Organization", REF.c.param == "partof",
            REF.c.target_type == "Organization")).all()
        children: dict[str, list[str]] = {}
        parents: dict[str, str] = {}
        for child, parent in rows:
            if parent is not None and child != parent:
                children.setdefault(parent, []).append(child)
                parents[child] = parent
        # Government bodies (organization-type ``govt``: the CDC, the health commission)
        government = frozenset(conn.execute(select(TOK.c.resource_id).where(
            TOK.c.resource_type == "Organization", TOK.c.param == "type",
            TOK.c.code == "govt")).scalars())
        with self._lock:
            self._children, self._parents = children, parents
            self._government = government
            self.generation += 1
            self._loaded = time.monotonic()
            self._subtrees = {}
        return children

    def subtree(self, conn: Connection, org_id: str) -> frozenset[str]:
        """``org_id`` and every organisation below it (cycles in bad data are cut)."""
        children = self._ensure(conn)
        with self._lock:
            cached = self._subtrees.get(org_id)
        if cached is not None:
            return cached
        seen = {org_id}
        frontier = [org_id]
        while frontier:
            nxt = []
            for org in frontier:
                for child in children.get(org, ()):
                    if child not in seen:
                        seen.add(child)
                        nxt.append(child)
            frontier = nxt
        result = frozenset(seen)
        with self._lock:
            self._subtrees[org_id] = result
        return result

    def parent(self, conn: Connection, org_id: str) -> str | None:
        self._ensure(conn)
        with self._lock:
            return self._parents.get(org_id)

    def government(self, conn: Connection) -> frozenset[str]:
        self._ensure(conn)
        with self._lock:
            return self._government
