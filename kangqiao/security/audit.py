"""The audit trail: append-only rows in ``audit_log``, chained so that tampering shows.

Each row carries ``hash = HMAC-SHA256(key, prev_hash || canonical JSON of the row)`` and the
previous row's hash; ``seq`` numbers are consecutive. Changing, inserting or deleting a row in
the middle breaks the chain at that row, which ``verify`` (``kangqiao audit verify``) reports.
The key is kept outside the database (a key file under ``secrets_dir`` or a setting), so
someone holding only a copy of the database cannot rebuild a consistent chain after editing
it; truncating the newest rows is caught by comparing the head hash that ``verify`` prints with
an earlier one kept elsewhere. UPDATE on ``audit_log`` is refused by a database trigger.

Appends are serialised (SQLite's single writer; a transaction-scoped advisory lock on
PostgreSQL) so the chain never forks. Writes append their records inside the writing
transaction (security/store.py); reads append theirs in a short transaction right after.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, func, insert, select, text

from kangqiao.fhir.store.db import bulk_insert, is_sqlite, write_transaction
from kangqiao.fhir.store.records import utcnow
from kangqiao.security.schema import audit_anchor, audit_log, audit_patient
from kangqiao.security.secret_files import hex_key
from kangqiao.settings import Settings

GENESIS = "0" * 64
_LOCK_KEY = 0x6B71_6175_6469_74  # "kqaudit": one chain, one lock
A = audit_log


@dataclass
class Record:
    """One audited event (see AuditEvent mapping in audit_fhir.py)."""

    category: str  # rest | login | logout | token | admin
    action: str  # C R U D E
    subtype: str  # read, search-type, create, login, ...
    outcome: str  # 0 success, 4 denied / failed, 8 serious failure
    actor: str
    status: int | None = None
    username: str | None = None
    role: str | None = None
    organization: str | None = None
    client_id: str | None = None
    remote_addr: str | None = None
    purpose: str | None = None
    break_glass: str | None = None
    patients: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


def hmac_key(settings: Settings) -> bytes:
    """The chain's key: the setting, or a key file created (mode 600) on first use."""
    return hex_key(settings.audit_hmac_key, Path(settings.secrets_dir) / "audit-hmac.key")


def _canonical(row: dict[str, Any]) -> bytes:
    # str(k): result rows name their columns with str subclasses orjson will not take
    fields = {str(k): v for k, v in row.items() if k not in ("hash", "prev_hash")}
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS | orjson.OPT_NAIVE_UTC)


def _mac(key: bytes, prev: str, row: dict[str, Any]) -> str:
    return hmac.new(key, prev.encode() + _canonical(row), hashlib.sha256).hexdigest()


def _lock(conn: Connection) -> None:
    if not is_sqlite(conn):  # SQLite: the write transaction already excludes other writers
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


def _head(conn: Connection) -> tuple[int, str]:
    row = conn.execute(select(A.c.seq, A.c.hash).order_by(A.c.seq.desc()).limit(1)).first()
    if row is not None:
        return int(row.seq), str(row.hash)
    anchor = conn.execute(select(audit_anchor.c.seq, audit_anchor.c.hash)).first()
    return (int(anchor.seq), str(anchor.hash)) if anchor else (0, GENESIS)


def append(conn: Connection, key: bytes, records: list[Record],
           now: datetime | None = None) -> None:
    """Append ``records`` to the chain inside the caller's (write) transaction."""
    if not records:
        return
    _lock(conn)
    seq, prev = _head(conn)
    now = now or utcnow()
    rows: list[dict[str, Any]] = []
    patients: list[dict[str, Any]] = []
    for rec in records:
        seq += 1
        row: dict[str, Any] = {"seq": seq, "recorded": now, **asdict(rec)}
        row["patients"] = sorted(set(rec.patients))
        row["prev_hash"] = prev
        row["hash"] = prev = _mac(key, prev, row)
        rows.append(row)
        patients.extend({"seq": seq, "patient_id": p} for p in row["patients"])
    conn.execute(insert(A), rows)
    bulk_insert(conn, audit_patient, patients)


def write(engine: Engine, key: bytes, records: list[Record]) -> None:
    """Append in a transaction of its own (reads, logins, denied requests)."""
    if records:
        with write_transaction(engine) as conn:
            append(conn, key, records)


@dataclass
class Verification:
    checked: int
    head_seq: int
    head_hash: str
    broken_at: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def _rows(conn: Connection, batch: int = 2000) -> Iterator[Any]:
    last = -1
    while True:
        rows = conn.execute(select(A).where(A.c.seq > last).order_by(A.c.seq).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(engine: Engine, key: bytes) -> Verification:
    """Recompute the chain from the anchor (or the start) to the newest row."""
    with engine.connect() as conn:
        anchor = conn.execute(select(audit_anchor)).first()
        seq, prev = 0, GENESIS
        if anchor is not None:
            expected = hmac.new(key, f"{anchor.seq}:{anchor.hash}".encode(),
                                hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, anchor.mac):
                return Verification(0, anchor.seq, anchor.hash, anchor.seq,
                                    "the retention anchor was altered")
            seq, prev = int(anchor.seq), str(anchor.hash)
        checked = 0
        for row in _rows(conn):
            data = dict(row._mapping)
            if row.seq != seq + 1:
                return Verification(checked, seq, prev, seq + 1,
                                    f"records {seq + 1}..{row.seq - 1} are missing")
            if row.prev_hash != prev:
                return Verification(checked, seq, prev, row.seq,
                                    "the link to the previous record is broken")
            if not hmac.compare_digest(_mac(key, prev, data), row.hash):
                return Verification(checked, seq, prev, row.seq,
                                    "the record's content does not match its hash")
            seq, prev = int(row.seq), str(row.hash)
            checked += 1
        return Verification(checked, seq, prev)


def purge(engine: Engine, key: bytes, before: datetime) -> int:
    """Remove records older than ``before`` (retention); the chain stays verifiable from the
    anchor, which records the last removed row."""
    with write_transaction(engine) as conn:
        _lock(conn)
        last = conn.execute(select(func.max(A.c.seq)).where(A.c.recorded < before)).scalar()
        if last is None:
            return 0
        row = conn.execute(select(A.c.seq, A.c.hash).where(A.c.seq == last)).one()
        mac = hmac.new(key, f"{row.seq}:{row.hash}".encode(), hashlib.sha256).hexdigest()
        conn.execute(delete(audit_anchor))
        conn.execute(insert(audit_anchor).values(id=1, seq=row.seq, hash=row.hash, mac=mac))
        conn.execute(delete(audit_patient).where(audit_patient.c.seq <= last))
        removed = conn.execute(delete(A).where(A.c.seq <= last)).rowcount
        return int(removed)
