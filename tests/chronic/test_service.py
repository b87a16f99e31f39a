"""Service verbs on both backends: one transaction per follow-up, immediate classification,
nothing half-saved, referral only on the standard's criteria, enrolment."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from kangqiao.chronic import service
from kangqiao.chronic.rules import VisitClass
from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.store import FhirStore, UnitOfWork
from kangqiao.security.gate import SYSTEM
from tests.cds.builders import ORG, ROLE, patient, put_all

CST = timezone(timedelta(hours=8))


def _count(engine: Engine, rtype: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.resource).where(
            schema.resource.c.resource_type == rtype)).scalar_one())


@pytest.fixture
def enrolled(store: FhirStore) -> FhirStore:
    put_all(store, [patient("p1", "1966-05-01")])
    with store.write(SYSTEM) as uow:
        service.enrol(uow, "p1", "htn", ROLE, ORG, date(2026, 1, 5))
    return store


def _visit(store: FhirStore, answers: dict[str, Any], when: date | datetime
           ) -> service.FollowUpRecorded:
    with store.write(SYSTEM) as uow:
        return service.record_follow_up(uow, "p1", "htn", answers, ROLE, when)


def test_follow_up_writes_encounter_form_observations_and_classifies(
        enrolled: FhirStore, engine: Engine) -> None:
    done = _visit(enrolled, {"bp-systolic": 152, "bp-diastolic": 95, "heart-rate": 80,
                             "visit-mode": "1", "medication-adherence": "1"},
                  datetime(2026, 1, 10, 7, 30, tzinfo=CST))
    # NBPHS-2017 HTN 4(2): first uncontrolled -> within 2 weeks of the local visit date.
    assert done.assessment.classification is VisitClass.UNCONTROLLED
    assert done.next_visit.due_date == date(2026, 1, 24)
    assert (_count(engine, "Encounter"), _count(engine, "QuestionnaireResponse"),
            _count(engine, "Observation")) == (1, 1, 2)
    with enrolled.read(SYSTEM) as uow:
        form = uow.read("QuestionnaireResponse", done.response_id).content or {}
        assert form["encounter"]["reference"] == f"Encounter/{done.encounter_id}"
        flat = {i["linkId"] for i in form["item"]}
        assert {"classification", "next-visit-date", "visit-date"} <= flat
        state = service.protocol_state_for(uow, "p1", date(2026, 1, 30))
    htn = next(iter(state.states.values()))
    assert htn.next_due == date(2026, 1, 24) and htn.overdue_days == 6
    assert htn.last is not None and htn.last.visit.date == date(2026, 1, 10)  # local date


def test_second_uncontrolled_visit_refers_and_refer_writes_request_and_task(
        enrolled: FhirStore, engine: Engine) -> None:
    _visit(enrolled, {"bp-systolic": 150, "bp-diastolic": 92}, date(2026, 1, 10))
    with enrolled.write(SYSTEM) as uow, pytest.raises(FhirError) as refused:
        service.refer(uow, "p1", "htn", ROLE, "Organization/cardio", date(2026, 1, 10))
    assert refused.value.status == 422  # one uncontrolled visit is no criterion
    second = _visit(enrolled, {"bp-systolic": 148, "bp-diastolic": 92}, date(2026, 1, 24))
    assert second.assessment.referral is not None  # HTN 4(3): two consecutive
    with enrolled.write(SYSTEM) as uow:
        made = service.refer(uow, "p1", "htn", ROLE, "Organization/cardio", date(2026, 1, 24))
    assert made.decision.citation.clause == "HTN 4(3)"
    assert made.decision.due_date == date(2026, 2, 7)
    assert (_count(engine, "ServiceRequest"), _count(engine, "Task")) == (1, 1)


def test_urgent_reading_is_an_urgent_referral(enrolled: FhirStore) -> None:
    done = _visit(enrolled, {"bp-systolic": 182, "bp-diastolic": 100}, date(2026, 2, 1))
    with enrolled.write(SYSTEM) as uow:
        made = service.refer(uow, "p1", "htn", ROLE, "Organization/cardio", date(2026, 2, 1))
        sr = uow.read("ServiceRequest", made.service_request_id).content or {}
    assert done.assessment.urgent and sr["priority"] == "urgent"
    assert made.decision.severity == "critical"


def test_a_failing_write_leaves_nothing(enrolled: FhirStore, engine: Engine,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real = UnitOfWork.create

    def failing(self: UnitOfWork, rtype: str, body: Any, **kw: Any) -> Any:
        if rtype == "Observation":
            raise FhirError.of(500, "exception", "disk full")
        return real(self, rtype, body, **kw)

    monkeypatch.setattr(UnitOfWork, "create", failing)
    with pytest.raises(FhirError):
        _visit(enrolled, {"bp-systolic": 130, "bp-diastolic": 80}, date(2026, 2, 1))
    assert (_count(engine, "Encounter"), _count(engine, "QuestionnaireResponse"),
            _count(engine, "Observation")) == (0, 0, 0)


@pytest.mark.parametrize(("answers", "status"), [
    ({"bp-systolic": 300, "bp-diastolic": 80}, 422),  # HEARTS plausibility: SBP 60-260
    ({"bp-systolic": 85, "bp-diastolic": 138}, 422),  # the two fields swapped
    ({"bp-systolic": 120, "bp-diastolic": 120}, 422),
    ({"bp-systolic": "high", "bp-diastolic": 80}, 400),
    ({"bp-systolic": 130, "bp-diastolic": 80, "visit-mode": "9"}, 400),
])
def test_bad_answers_are_refused_before_writing(enrolled: FhirStore, engine: Engine,
                                                answers: dict[str, Any], status: int) -> None:
    with pytest.raises(FhirError) as bad:
        _visit(enrolled, answers, date(2026, 2, 1))
    assert bad.value.status == status
    assert _count(engine, "Encounter") == 0


def test_enrol_creates_condition_episode_plan_once(store: FhirStore, engine: Engine) -> None:
    put_all(store, [patient("p2")])
    with store.write(SYSTEM) as uow:
        first = service.enrol(uow, "p2", "dm", ROLE, ORG, date(2026, 3, 1), team_ref="CareTeam/t1")
        again = service.enrol(uow, "p2", "dm", ROLE, ORG, date(2026, 3, 2))
    assert first.created == ["Condition", "EpisodeOfCare", "CarePlan"]
    assert again.episode_id == first.episode_id and again.created == []
    assert (_count(engine, "Condition"), _count(engine, "EpisodeOfCare")) == (1, 1)
    with store.read(SYSTEM) as uow:
        state = service.protocol_state_for(uow, "p2", date(2026, 3, 10))
    dm = next(iter(state.states.values()))
    assert dm.decision.code == "dm.next.first" and dm.overdue_days == 9
