"""The ``export_job`` table: one row per Bulk Data export, holding everything needed to run,
resume, report and serve it.

A job is claimed by one process at a time (``owner``) and stays claimed while that process
keeps its ``heartbeat`` fresh (every checkpoint). A job whose owner stopped beating (crash,
restart, a worker that was killed) may be claimed by any process, which resumes it from its
last checkpoint. The table holds job bookkeeping, not clinical data, so it is read and written
on the engine directly (as the bulk importer's checkpoints are); the resources themselves are
only ever read through a ``UnitOfWork`` with the requester's ``Access``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, and_, or_, select, update

from kangqiao.fhir.store import schema
from kangqiao.fhir.store.db import read_transaction, write_transaction
from kangqiao.fhir.store.records import utcnow
from kangqiao.security.gate import Access

J = schema.export_job
ACTIVE = ("accepted", "running")
# A checkpoint is written after every chunk (a second or so); an owner silent for this long
# is gone, and its job is taken over.
STALE = timedelta(seconds=120)
JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def access_to_json(access: Access) -> dict[str, Any]:
    """The requester's ``Access`` as JSON, so a resumed job reads with the same rights."""
    out: dict[str, Any] = {}
    for f in fields(access):
        value = getattr(access, f.name)
        out[f.name] = sorted(value) if isinstance(value, frozenset | set | tuple) else value
    return out


def access_from_json(data: dict[str, Any]) -> Access:
    kwargs: dict[str, Any] = {}
    for f in fields(Access):
        if f.name not in data:
            continue  # a field added since the job was queued keeps its default
        value = data[f.name]
        if isinstance(value, list):
            value = tuple(value) if "tuple" in str(f.type) else frozenset(value)
        kwargs[f.name] = value
    return Access(**kwargs)


def requester_of(access: Access) -> str:
    """Whose job it is: only this requester may poll it, cancel it and fetch its files."""
    return access.actor if access.user is None else f"{access.actor}|{access.user}"


def create(engine: Engine, params: dict[str, Any], access: Access, request_url: str,
           progress: dict[str, Any]) -> str:
    job = uuid.uuid4().hex
    now = utcnow()
    with write_transaction(engine) as conn:
        conn.execute(J.insert().values(
            id=job, status="accepted", requester=requester_of(access),
            access=access_to_json(access), request=request_url, params=params,
            transaction_time=now, created_at=now, progress=progress))
    return job


def get(engine: Engine, job: str) -> Row[Any] | None:
    if not JOB_ID_RE.match(job):
        return None
    with read_transaction(engine) as conn:
        return conn.execute(select(J).where(J.c.id == job)).first()


def cancel(engine: Engine, job: str) -> bool:
    """Mark the job cancelled; its runner notices at its next checkpoint and stops."""
    with write_transaction(engine) as conn:
        result = conn.execute(update(J).where(J.c.id == job, J.c.status != "cancelled")
                              .values(status="cancelled", finished_at=utcnow(), owner=None))
    return result.rowcount == 1


def _claimable(now: datetime) -> Any:
    return and_(J.c.status.in_(ACTIVE),
                or_(J.c.owner.is_(None), J.c.heartbeat.is_(None), J.c.heartbeat < now - STALE))


def claim(engine: Engine, owner: str) -> str | None:
    """Take the oldest job nobody is running; None when there is none. The conditional UPDATE
    makes two processes racing for one job end with exactly one owner."""
    now = utcnow()
    with read_transaction(engine) as conn:
        candidates: list[str] = list(conn.execute(
            select(J.c.id).where(_claimable(now)).order_by(J.c.created_at).limit(5)).scalars())
    for job in candidates:
        with write_transaction(engine) as conn:
            result = conn.execute(update(J).where(J.c.id == job, _claimable(now))
                                  .values(owner=owner, heartbeat=now, status="running"))
        if result.rowcount == 1:
            return job
    return None


def checkpoint(engine: Engine, job: str, owner: str, progress: dict[str, Any]) -> bool:
    """Record progress and beat; False when the job was cancelled or taken over meanwhile."""
    with write_transaction(engine) as conn:
        result = conn.execute(update(J).where(J.c.id == job, J.c.owner == owner,
                                              J.c.status == "running")
                              .values(progress=progress, heartbeat=utcnow()))
    return result.rowcount == 1


def finish(engine: Engine, job: str, owner: str, status: str, progress: dict[str, Any],
           error: str | None = None) -> bool:
    with write_transaction(engine) as conn:
        result = conn.execute(update(J).where(J.c.id == job, J.c.owner == owner,
                                              J.c.status == "running")
                              .values(status=status, progress=progress, error=error,
                                      finished_at=utcnow(), owner=None))
    return result.rowcount == 1


def release(engine: Engine, job: str, owner: str, progress: dict[str, Any] | None = None
            ) -> None:
    """Give a job back (this process is stopping): any process may resume it at once."""
    values: dict[str, Any] = {"owner": None}
    if progress is not None:
        values["progress"] = progress
    with write_transaction(engine) as conn:
        conn.execute(update(J).where(J.c.id == job, J.c.owner == owner).values(**values))
