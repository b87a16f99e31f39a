"""HTTP routes of the chronic-disease capability (thin: parse, call one service verb in one
unit of work, shape the answer). Dates are county-local calendar dates."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kangqiao.chronic import service, worklists
from kangqiao.chronic.records import COUNTY_TZ
from kangqiao.chronic.rules import Citation, Decision, Disease
from kangqiao.chronic.rules import citations as cite
from kangqiao.fhir.api import access_of
from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.store.store import FhirStore, UnitOfWork

router = APIRouter(prefix="/chronic", tags=["Chronic disease"])
T = TypeVar("T")


def decision_json(d: Decision) -> dict[str, Any]:
    return {"code": d.code, "label": {"zh": d.label_zh, "en": d.label_en},
            "reason": {"zh": d.reason_zh, "en": d.reason_en}, "severity": d.severity,
            "due": d.due_date.isoformat() if d.due_date else None,
            "citation": {"label": d.citation.label, "title": d.citation.title_zh,
                         "verified": d.citation.verified}}


def _today(value: str | None) -> date:
    if value is None:
        return datetime.now(COUNTY_TZ).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise FhirError.of(400, "invalid", f"today: not a date: {value!r}") from None


def _disease(value: Any) -> Disease:
    try:
        return Disease(value)
    except ValueError:
        raise FhirError.of(400, "invalid", "disease must be 'htn' or 'dm'") from None


async def _run(request: Request, write: bool, work: Callable[[UnitOfWork], T]) -> T:
    store: FhirStore = request.app.state.store
    access = access_of(request)

    def inner() -> T:
        with (store.write(access) if write else store.read(access)) as uow:
            return work(uow)

    return await run_in_threadpool(inner)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise FhirError.of(400, "structure", "the body must be JSON") from None
    if not isinstance(body, dict):
        raise FhirError.of(400, "structure", "the body must be a JSON object")
    return body


def _when(body: dict[str, Any]) -> datetime | date:
    raw = body.get("when")
    if raw is None:
        return datetime.now(COUNTY_TZ).replace(microsecond=0)
    try:
        return datetime.fromisoformat(raw) if "T" in str(raw) else date.fromisoformat(raw)
    except (TypeError, ValueError):
        raise FhirError.of(400, "invalid", f"when: not a date or date-time: {raw!r}") from None


def _required(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise FhirError.of(400, "required", f"{key} is required (a reference Type/id)")
    return value


@router.get("/citations")
def citations() -> dict[str, Any]:
    """Every clause the rules cite (CDS cards link here by anchor)."""
    from kangqiao.cds.cards import anchor

    seen = {c for c in vars(cite).values() if isinstance(c, Citation)}
    return {"citations": [{"anchor": anchor(c), "label": c.label, "title": c.title_zh,
                           "verified": c.verified, "note": c.note_en}
                          for c in sorted(seen, key=lambda c: (c.source, c.clause))]}


@router.get("/patients/{patient_id}/state")
async def state(patient_id: str, request: Request, today: str | None = None) -> dict[str, Any]:
    day = _today(today)
    result = await _run(request, False,
                        lambda uow: service.protocol_state_for(uow, patient_id, day))
    return {"patient": patient_id, "today": day.isoformat(), "diseases": {
        d.value: {"next_due": s.next_due.isoformat(), "overdue_days": s.overdue_days,
                  "decision": decision_json(s.decision),
                  "last": None if s.last is None else {
                      "date": s.last.visit.date.isoformat(),
                      "decisions": [decision_json(x) for x in s.last.decisions]},
                  "annual_check": decision_json(result.annual_checks[d])}
        for d, s in result.states.items()}}


@router.post("/patients/{patient_id}/follow-ups", status_code=201)
async def follow_up(patient_id: str, request: Request) -> dict[str, Any]:
    body = await _body(request)
    disease, practitioner = _disease(body.get("disease")), _required(body, "practitioner")
    answers, when = body.get("answers"), _when(body)
    if not isinstance(answers, dict):
        raise FhirError.of(400, "required", "answers (linkId -> value) is required")
    done = await _run(request, True, lambda uow: service.record_follow_up(
        uow, patient_id, disease, answers, practitioner, when,
        organization_ref=body.get("organization")))
    a = done.assessment
    return {"encounter": f"Encounter/{done.encounter_id}",
            "questionnaireResponse": f"QuestionnaireResponse/{done.response_id}",
            "observations": [f"Observation/{i}" for i in done.observation_ids],
            "classification": None if a.classification is None else a.classification.code,
            "next_visit": decision_json(a.next_visit),
            "referral": None if a.referral is None else decision_json(a.referral),
            "decisions": [decision_json(x) for x in a.decisions]}


@router.post("/patients/{patient_id}/enrolments", status_code=201)
async def enrolment(patient_id: str, request: Request) -> dict[str, Any]:
    body = await _body(request)
    disease = _disease(body.get("disease"))
    practitioner, org = _required(body, "practitioner"), _required(body, "organization")
    when = _when(body)
    day = when.astimezone(COUNTY_TZ).date() if isinstance(when, datetime) else when
    done = await _run(request, True, lambda uow: service.enrol(
        uow, patient_id, disease, practitioner, org, day, team_ref=body.get("team")))
    return dataclasses.asdict(done)


@router.post("/patients/{patient_id}/referrals", status_code=201)
async def referral(patient_id: str, request: Request) -> dict[str, Any]:
    body = await _body(request)
    disease = _disease(body.get("disease"))
    practitioner, performer = _required(body, "practitioner"), _required(body, "performer")
    when = _when(body)
    done = await _run(request, True, lambda uow: service.refer(
        uow, patient_id, disease, practitioner, performer, when))
    return {"serviceRequest": f"ServiceRequest/{done.service_request_id}",
            "task": f"Task/{done.task_id}", "decision": decision_json(done.decision)}


@router.get("/worklists")
async def worklist(request: Request, scope: str, ref: str, today: str | None = None
                   ) -> dict[str, Any]:
    if scope not in ("doctor", "team", "organization"):
        raise FhirError.of(400, "invalid", "scope must be doctor, team or organization")
    where = worklists.Scope(scope, ref)  # type: ignore[arg-type]
    day = _today(today)
    lists = await _run(request, False, lambda uow: worklists.build(uow, where, day))
    return {"scope": {"kind": scope, "ref": ref}, "today": day.isoformat(),
            "patients": lists.patients, "counts": lists.counts(), "lists": {
                name: [{"patient": f"Patient/{e.patient_id}",
                        "disease": e.disease.value if e.disease else None,
                        "due": e.due.isoformat() if e.due else None,
                        "days_overdue": e.days_overdue, "risk": e.risk,
                        "last_visit": e.last_visit.isoformat() if e.last_visit else None,
                        "decision": decision_json(e.decision)} for e in entries]
                for name, entries in lists.lists.items()}}


def routes() -> APIRouter:
    """The chronic routes and the CDS Hooks service, for ``kangqiao.app``."""
    from kangqiao.cds.api import router as cds_router

    combined = APIRouter()
    combined.include_router(router)
    combined.include_router(cds_router)
    return combined
