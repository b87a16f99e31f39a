"""The audit trail as FHIR AuditEvent resources (IHE Basic Audit Log Patterns where they fit),
for administrators: ``GET /fhir/AuditEvent`` and ``GET /fhir/AuditEvent/audit-<seq>``.

Search parameters: ``patient``, ``agent`` (username or reference), ``date`` (with ge/gt/le/lt),
``outcome``, ``action``, ``purpose`` (e.g. ``BTG`` / ``ETREAT`` for break-glass review),
``type`` (rest, login, logout, token), ``_count``, ``_offset``; newest first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import ColumnElement, Engine, func, or_, select
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.rest.formats import fhir_response
from kangqiao.fhir.rest.interactions import MAX_OFFSET
from kangqiao.fhir.search.dates import parse_range
from kangqiao.security import rules
from kangqiao.security.gate import Access
from kangqiao.security.schema import audit_log, audit_patient
from kangqiao.security.scopes import READ, granting, parse_scopes

router = APIRouter(prefix="/fhir", tags=["Audit"])
A = audit_log
DCM = "http://dicom.nema.org/resources/ontology/DCM"
TYPES = {"rest": ("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest",
                  "RESTful Operation"),
         "login": (DCM, "110114", "User Authentication"),
         "logout": (DCM, "110114", "User Authentication"),
         "token": (DCM, "110114", "User Authentication")}
SUBTYPES = {"login": (DCM, "110122", "Login"), "logout": (DCM, "110123", "Logout")}
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def _instant(value: datetime) -> str:
    return value.isoformat(timespec="microseconds") + "Z"


def to_audit_event(row: Any) -> dict[str, Any]:
    system, code, display = TYPES.get(row.category, TYPES["rest"])
    sub = SUBTYPES.get(row.category) or (
        "http://hl7.org/fhir/restful-interaction", row.subtype, None)
    subtype = {"system": sub[0], "code": sub[1], **({"display": sub[2]} if sub[2] else {})}
    purposes = [{"coding": [{"system": ACT_REASON, "code": row.purpose}]}] if row.purpose else []
    if row.break_glass:
        purposes.append({"coding": [{"system": ACT_REASON, "code": "BTG",
                                     "display": "break the glass"}]})
    user: dict[str, Any] = {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                             "v3-ParticipationType", "code": "IRCP"}]},
        "who": {"display": row.username or row.actor},
        "requestor": True,
    }
    if "/" in row.actor and not row.actor.startswith(("user/", "system/")):
        user["who"]["reference"] = row.actor
    if row.username:
        user["altId"] = row.username
    if row.role:
        user["role"] = [{"text": row.role}]
    if row.remote_addr:
        user["network"] = {"address": row.remote_addr, "type": "2"}
    if purposes:
        user["purposeOfUse"] = purposes
    agents = [user]
    if row.client_id:
        agents.append({"type": {"coding": [{"system": DCM, "code": "110150",
                                            "display": "Application"}]},
                       "who": {"identifier": {"value": row.client_id}}, "requestor": False})
    entities: list[dict[str, Any]] = [
        {"what": {"reference": f"Patient/{p}"},
         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                  "code": "1"},
         "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}}
        for p in (row.patients or [])[:50]]
    detail = row.detail or {}
    for ref in (detail.get("entities") or detail.get("read") or [])[:50]:
        entities.append({"what": {"reference": ref},
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/"
                                  "audit-entity-type", "code": "2"}})
    if detail.get("query"):
        entities.append({"type": {"system": "http://terminology.hl7.org/CodeSystem/"
                                  "audit-entity-type", "code": "2"},
                         "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role",
                                  "code": "24"},
                         "description": f"{detail.get('path', '')}?{detail['query']}"[:1000]})
    outcome_desc = "; ".join(filter(None, [
        f"HTTP {row.status}" if row.status else None,
        f"break-glass: {row.break_glass}" if row.break_glass else None,
        *(detail.get("denied") or []),
        f"{detail['withheld']} withheld by policy" if detail.get("withheld") else None,
        detail.get("message")]))
    event: dict[str, Any] = {
        "resourceType": "AuditEvent", "id": f"audit-{row.seq}",
        "type": {"system": system, "code": code, "display": display},
        "subtype": [subtype], "action": row.action, "recorded": _instant(row.recorded),
        "outcome": row.outcome,
        "agent": agents,
        "source": {"observer": {"display": "kangqiao"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/"
                             "security-source-type", "code": "4"}]},
    }
    if outcome_desc:
        event["outcomeDesc"] = outcome_desc[:1000]
    if purposes:
        event["purposeOfEvent"] = purposes
    if entities:
        event["entity"] = entities
    return event


def _may_read_audit(access: Access) -> bool:
    if access.role == rules.SYSTEM:
        return bool(granting(parse_scopes(access.scopes), frozenset({"system"}), "AuditEvent",
                             READ))
    return access.role in rules.AUDIT_READERS and bool(granting(
        parse_scopes(access.scopes), frozenset({"user"}), "AuditEvent", READ))


# audit sequence numbers are 64-bit: a larger number names no record (and would overflow
# the database driver)
MAX_SEQ = 2**63 - 1


def _access(request: Request) -> Access:
    access: Access = request.app.state.access_resolver(request)
    if not _may_read_audit(access):
        raise FhirError.of(403, "forbidden", "the audit trail is for administrators")
    return access


def _conditions(params: list[tuple[str, str]]) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    for name, value in params:
        if name == "patient":
            pid = value.rpartition("/")[2]
            where.append(A.c.seq.in_(select(audit_patient.c.seq).where(
                audit_patient.c.patient_id == pid)))
        elif name == "agent":
            where.append(or_(A.c.username == value, A.c.actor == value))
        elif name in ("outcome", "action"):
            where.append(A.c[name] == value)
        elif name == "type":
            where.append(A.c.category == value)
        elif name == "purpose":
            where.append(A.c.break_glass.is_not(None) if value == "BTG"
                         else A.c.purpose == value)
        elif name == "date":
            prefix, text = (value[:2], value[2:]) if value[:2] in ("ge", "gt", "le", "lt",
                                                                  "eq") else ("eq", value)
            bounds = parse_range(text)
            if bounds is None:
                raise FhirError.of(400, "invalid", f"date={value!r} is not a date")
            low, high = bounds
            where.append({"ge": A.c.recorded >= low, "gt": A.c.recorded > high,
                          "le": A.c.recorded <= high, "lt": A.c.recorded < low}.get(
                prefix, A.c.recorded.between(low, high)))
        elif name not in ("_count", "_offset", "_format", "_pretty"):
            raise FhirError.of(400, "not-supported", f"AuditEvent search parameter {name!r} "
                               "is not supported")
    return where


def _search(engine: Engine, params: list[tuple[str, str]], base: str) -> dict[str, Any]:
    singles = dict(params)
    try:
        count = min(max(int(singles.get("_count", 50)), 0), 500)
        offset = min(max(int(singles.get("_offset", 0)), 0), MAX_OFFSET)
    except ValueError as exc:
        raise FhirError.of(400, "invalid", "_count and _offset must be integers") from exc
    where = _conditions(params)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(A).where(*where)).scalar_one()
        rows = conn.execute(select(A).where(*where).order_by(A.c.seq.desc())
                            .limit(count).offset(offset)).all()
    entries = [{"fullUrl": f"{base}/AuditEvent/audit-{r.seq}", "resource": to_audit_event(r),
                "search": {"mode": "match"}} for r in rows]
    return {"resourceType": "Bundle", "type": "searchset", "total": total, "entry": entries}


@router.get("/AuditEvent", summary="Search the audit trail (administrators)")
async def search_audit(request: Request) -> Response:
    _access(request)
    base = str(request.base_url).rstrip("/") + "/fhir"
    params = list(request.query_params.multi_items())
    body = await run_in_threadpool(_search, request.app.state.store.engine, params, base)
    return fhir_response(body)


@router.get("/AuditEvent/{event_id}", summary="Read one audit record (administrators)")
async def read_audit(request: Request, event_id: str) -> Response:
    _access(request)
    seq = event_id.removeprefix("audit-")
    if not (seq.isascii() and seq.isdigit()) or int(seq) > MAX_SEQ:
        raise FhirError.of(404, "not-found", f"AuditEvent/{event_id} is not known")

    def load() -> Any:
        with request.app.state.store.engine.connect() as conn:
            return conn.execute(select(A).where(A.c.seq == int(seq))).first()

    row = await run_in_threadpool(load)
    if row is None:
        raise FhirError.of(404, "not-found", f"AuditEvent/{event_id} is not known")
    return fhir_response(to_audit_event(row))
