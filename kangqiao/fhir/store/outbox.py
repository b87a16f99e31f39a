"""Consumers of the transactional outbox: every committed write left one event, in commit
order per resource; a consumer claims a batch, acts, and acknowledges it, so a change is never
missed and, once acknowledged, never processed again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from kangqiao.fhir.store import schema
from kangqiao.fhir.store.db import is_sqlite
from kangqiao.fhir.store.records import utcnow

OUTBOX = schema.outbox


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    seq: int
    resource_type: str
    resource_id: str
    version_id: int
    action: str  # create | update | delete
    occurred_at: datetime


def claim(conn: Connection, limit: int = 100) -> list[ChangeEvent]:
    """The oldest unprocessed events, locked for this transaction on PostgreSQL (SKIP LOCKED
    lets several workers share the outbox); call inside a write transaction."""
    stmt = (select(OUTBOX).where(OUTBOX.c.processed_at.is_(None))
            .order_by(OUTBOX.c.seq).limit(limit))
    if not is_sqlite(conn):
        stmt = stmt.with_for_update(skip_locked=True)
    return [ChangeEvent(r.seq, r.resource_type, r.resource_id, r.version_id, r.action,
                        r.occurred_at) for r in conn.execute(stmt)]


def acknowledge(conn: Connection, seqs: Sequence[int]) -> None:
    if seqs:
        conn.execute(update(OUTBOX).where(OUTBOX.c.seq.in_(list(seqs))).values(processed_at=utcnow()))
