"""Chronic-disease use cases: named verbs that read and write through the caller's unit of
work (one request = one transaction, committed by the caller: a verb never commits, so an
error anywhere leaves nothing half-saved).

* ``protocol_state_for`` - where each managed disease stands today (NBPHS-2017 HTN 3-5, DM 3-5)
* ``record_follow_up`` - the national form -> Encounter + QuestionnaireResponse + coded
  Observations, classified by the rules on the spot
* ``enrol`` - Condition (if missing) + management EpisodeOfCare + CarePlan (HTN 2 / DM 2)
* ``refer`` - ServiceRequest + Task, only when the standard's referral criteria hold
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from kangqiao.chronic.forms import (
    MEASURES,
    observations_from_answers,
    questionnaire,
    visit_from_answers,
)
from kangqiao.chronic.forms.items import bp_reversed
from kangqiao.chronic.forms.observations import answers_from_response
from kangqiao.chronic.records import (
    CS_CAREPLAN_CATEGORY,
    CS_ENCOUNTER_TYPE,
    CS_EPISODE_TYPE,
    CS_SERVICE_CATEGORY,
    EPISODE_TYPE,
    FOLLOWUP_TYPE,
    ICD10,
    ChronicRecord,
    load_record,
    local_date,
)
from kangqiao.chronic.rules import (
    CountyPolicy,
    Decision,
    Disease,
    ProtocolState,
    VisitAssessment,
    annual_check_due,
    assess_visit,
    protocol_state,
)
from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.store.store import UnitOfWork

Json = dict[str, Any]
SNOMED = "http://snomed.info/sct"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
DIAGNOSIS = {
    Disease.HYPERTENSION: ("I10", "Essential (primary) hypertension", "原发性高血压"),
    Disease.DIABETES_T2: ("E11", "Type 2 diabetes mellitus", "2型糖尿病"),
}
LABEL = {Disease.HYPERTENSION: "高血压患者健康管理", Disease.DIABETES_T2: "2型糖尿病患者健康管理"}
VISIT_LABEL = {Disease.HYPERTENSION: "高血压患者随访", Disease.DIABETES_T2: "2型糖尿病患者随访"}
ENCOUNTER_CLASS = {"1": ("AMB", "ambulatory"), "2": ("HH", "home health"), "3": ("VR", "virtual")}
V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


@dataclass(frozen=True, slots=True)
class ChronicState:
    """The protocol state of each managed disease and its annual check."""

    record: ChronicRecord
    states: dict[Disease, ProtocolState]
    annual_checks: dict[Disease, Decision]


@dataclass(frozen=True, slots=True)
class FollowUpRecorded:
    encounter_id: str
    response_id: str
    observation_ids: list[str]
    assessment: VisitAssessment

    @property
    def next_visit(self) -> Decision:
        return self.assessment.next_visit


@dataclass(frozen=True, slots=True)
class Enrolment:
    condition_id: str
    episode_id: str
    careplan_id: str | None
    created: list[str] = field(default_factory=list)  # "Condition", "EpisodeOfCare", ...


@dataclass(frozen=True, slots=True)
class ReferralMade:
    service_request_id: str
    task_id: str
    decision: Decision


def _ref(reference: str) -> Json:
    kind, _, rid = reference.partition("/")
    if not kind or not rid:
        raise FhirError.of(400, "invalid", f"{reference!r} is not a relative reference (Type/id)")
    return {"reference": reference}


def _when(when: date | datetime) -> str:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise FhirError.of(400, "invalid", "when: a date-time needs a time zone")
        return when.isoformat()
    return when.isoformat()


def _day(when: date | datetime) -> date:
    return local_date(when) if isinstance(when, datetime) else when  # type: ignore[return-value]


def protocol_state_for(
    uow: UnitOfWork, patient_id: str, today: date, policy: CountyPolicy | None = None
) -> ChronicState:
    """Where each managed disease of the patient stands on ``today`` (next visit, days
    overdue and why; NBPHS-2017 HTN 3-4 / DM 3-4) and whether the annual check is due
    (HTN 5 / DM 5)."""
    record = load_record(uow, patient_id)
    states: dict[Disease, ProtocolState] = {}
    checks: dict[Disease, Decision] = {}
    last_check = record.annual_checks[-1] if record.annual_checks else None
    for disease, (_, enrolled_on) in record.episodes.items():
        states[disease] = protocol_state(
            record.patient, record.visits, disease, today, enrolled_on, policy
        )
        checks[disease] = annual_check_due(last_check, today, disease, policy)
    return ChronicState(record, states, checks)


# ---- record a follow-up ------------------------------------------------------------------


def _checked_answers(answers: Mapping[str, Any], when: date | datetime) -> dict[str, Any]:
    flat = dict(answers_from_response(answers) if answers.get("resourceType") else answers)
    flat.setdefault("visit-date", _day(when).isoformat())
    for link_id, measure in MEASURES.items():
        value = flat.get(link_id)
        if value in (None, ""):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FhirError.of(400, "invalid", f"{link_id}: expected a number, got {value!r}")
        # HEARTS DHIS2 plausibility ranges (SBP 60-260, DBP 40-260) catch typing errors.
        if not measure.plausible(value):
            raise FhirError.of(422, "value", f"{link_id}: {value} {measure.unit} is outside "
                               f"the plausible range {measure.minimum}-{measure.maximum}")
    sbp, dbp = flat.get("bp-systolic"), flat.get("bp-diastolic")
    if sbp not in (None, "") and dbp not in (None, "") and bp_reversed(sbp, dbp):
        raise FhirError.of(422, "value", f"bp-systolic: {sbp} mmHg must be above bp-diastolic "
                           f"{dbp} mmHg")
    return flat


def _answer(item: Json, value: Any) -> list[Json]:
    values = value if isinstance(value, list) else [value]
    kind = item["type"]
    out: list[Json] = []
    for v in values:
        if kind == "choice":
            code = v.get("code") if isinstance(v, Mapping) else v
            option = next((o["valueCoding"] for o in item.get("answerOption", [])
                           if o["valueCoding"]["code"] == str(code)), None)
            if option is None:
                raise FhirError.of(400, "code-invalid", f"{item['linkId']}: {code!r} is not "
                                   "one of the form's answers")
            out.append({"valueCoding": {k: option[k] for k in ("system", "code", "display")}})
        elif kind == "boolean":
            out.append({"valueBoolean": bool(v)})
        elif kind == "integer":
            out.append({"valueInteger": round(v)})
        elif kind == "decimal":
            out.append({"valueDecimal": v})
        elif kind == "date":
            out.append({"valueDate": v.isoformat() if isinstance(v, date) else str(v)[:10]})
        else:
            out.append({"valueString": str(v)})
    return out


def response_items(items: list[Json], answers: Mapping[str, Any]) -> list[Json]:
    """The QuestionnaireResponse items of ``answers`` (linkId -> value), in the form's order
    and nesting; unanswered items are left out."""
    out: list[Json] = []
    for item in items:
        if item["type"] == "group":
            children = response_items(item.get("item", []), answers)
            if children:
                out.append({"linkId": item["linkId"], "item": children})
            continue
        value = answers.get(item["linkId"])
        if value not in (None, "", []):
            out.append({"linkId": item["linkId"], "answer": _answer(item, value)})
    return out


def record_follow_up(
    uow: UnitOfWork,
    patient_id: str,
    disease: Disease | str,
    answers: Mapping[str, Any],
    practitioner_ref: str,
    when: date | datetime,
    *,
    organization_ref: str | None = None,
    policy: CountyPolicy | None = None,
) -> FollowUpRecorded:
    """Record one follow-up on the national form (NBPHS-2017 HTN 3-4 / DM 3-4) and return
    the standard's classification and next visit at once. Writes the Encounter, the
    QuestionnaireResponse and the coded Observations inside ``uow``; the caller commits."""
    disease = Disease(disease)
    record = load_record(uow, patient_id)
    flat = _checked_answers(answers, when)
    try:
        visit = visit_from_answers(flat, disease)
    except ValueError as exc:
        raise FhirError.of(400, "invalid", str(exc)) from exc
    previous = [v for v in record.visits if v.disease is disease]
    assessment = assess_visit(record.patient, visit, previous, policy)
    # The form's own classification and next date are required fields: the rules fill
    # them when the doctor left them blank (the doctor's entry wins when given).
    if assessment.classification is not None:
        flat.setdefault("classification", assessment.classification.code)
    flat.setdefault("next-visit-date", assessment.due_date.isoformat())
    flat.setdefault("doctor", practitioner_ref)
    patient_ref = f"Patient/{patient_id}"
    episode = record.episodes.get(disease)
    klass = ENCOUNTER_CLASS.get(visit.mode.value, ENCOUNTER_CLASS["1"])
    encounter: Json = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": V3_ACT, "code": klass[0], "display": klass[1]},
        "type": [{"coding": [{"system": CS_ENCOUNTER_TYPE, "code": FOLLOWUP_TYPE[disease],
                              "display": VISIT_LABEL[disease]}]}],
        "subject": {"reference": patient_ref},
        "participant": [{"individual": _ref(practitioner_ref)}],
        "period": {"start": _when(when)},
    }
    if episode is not None:
        encounter["episodeOfCare"] = [{"reference": f"EpisodeOfCare/{episode[0]}"}]
    if disease in record.conditions:
        encounter["reasonReference"] = [{"reference": f"Condition/{record.conditions[disease]}"}]
    if organization_ref or record.organization:
        encounter["serviceProvider"] = _ref(organization_ref or str(record.organization))
    enc = uow.create("Encounter", encounter)
    form = questionnaire(disease)
    response: Json = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": form["url"],
        "status": "completed",
        "subject": {"reference": patient_ref},
        "encounter": {"reference": f"Encounter/{enc.id}"},
        "authored": _when(when),
        "author": _ref(practitioner_ref),
        "item": response_items(form["item"], flat),
    }
    qr = uow.create("QuestionnaireResponse", response)
    try:
        observations = observations_from_answers(flat, patient_ref, f"Encounter/{enc.id}", when)
    except ValueError as exc:
        raise FhirError.of(400, "invalid", str(exc)) from exc
    obs_ids = []
    for obs in observations:
        obs["performer"] = [_ref(practitioner_ref)]
        obs_ids.append(uow.create("Observation", obs).id)
    return FollowUpRecorded(enc.id, qr.id, obs_ids, assessment)


# ---- enrolment and referral ---------------------------------------------------------------


def enrol(
    uow: UnitOfWork,
    patient_id: str,
    disease: Disease | str,
    practitioner_ref: str,
    organization_ref: str,
    when: date,
    *,
    team_ref: str | None = None,
) -> Enrolment:
    """Enrol a confirmed patient in management (NBPHS-2017 HTN 2 / DM 2: confirmed ->
    enrolled): the Condition when the record lacks it, the management EpisodeOfCare and its
    CarePlan of at least 4 face-to-face follow-ups a year (HTN 3 / DM 3). Enrolling twice
    returns the existing episode."""
    disease = Disease(disease)
    record = load_record(uow, patient_id)
    patient_ref = f"Patient/{patient_id}"
    created: list[str] = []
    if disease in record.episodes:
        return Enrolment(record.conditions.get(disease, ""), record.episodes[disease][0], None)
    condition_id = record.conditions.get(disease)
    if condition_id is None:
        code, display, text = DIAGNOSIS[disease]
        condition_id = uow.create("Condition", {
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active"}]},
            "verificationStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "code": "confirmed"}]},
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                "code": "problem-list-item"}]}],
            "code": {"coding": [{"system": ICD10, "code": code, "display": display}],
                     "text": text},
            "subject": {"reference": patient_ref},
            "recordedDate": when.isoformat(),
            "recorder": _ref(practitioner_ref),
        }).id
        created.append("Condition")
    kind, label = EPISODE_TYPE[disease], LABEL[disease]
    episode: Json = {
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "type": [{"coding": [{"system": CS_EPISODE_TYPE, "code": kind, "display": label}]}],
        "diagnosis": [{"condition": {"reference": f"Condition/{condition_id}"}, "rank": 1}],
        "patient": {"reference": patient_ref},
        "managingOrganization": _ref(organization_ref),
        "period": {"start": when.isoformat()},
        "careManager": _ref(practitioner_ref),
    }
    if team_ref:
        episode["team"] = [_ref(team_ref)]
    episode_id = uow.create("EpisodeOfCare", episode).id
    plan: Json = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": CS_CAREPLAN_CATEGORY, "code": kind,
                                  "display": label}]}],
        "title": f"{label}计划",
        "subject": {"reference": patient_ref},
        "period": {"start": when.isoformat()},
        "author": _ref(practitioner_ref),
        "addresses": [{"reference": f"Condition/{condition_id}"}],
        "activity": [{"detail": {
            "kind": "Appointment",
            "code": {"coding": [{"system": CS_ENCOUNTER_TYPE, "code": FOLLOWUP_TYPE[disease]}]},
            "status": "in-progress",
            "scheduledTiming": {"repeat": {"frequency": 1, "period": 3, "periodUnit": "mo"}},
            # NBPHS-2017 HTN 3 / DM 3: at least 4 face-to-face follow-ups a year.
            "description": "每年至少4次面对面随访",
        }}],
    }
    if team_ref:
        plan["careTeam"] = [_ref(team_ref)]
    careplan_id = uow.create("CarePlan", plan).id
    return Enrolment(condition_id, episode_id, careplan_id,
                     [*created, "EpisodeOfCare", "CarePlan"])


def refer(
    uow: UnitOfWork,
    patient_id: str,
    disease: Disease | str,
    practitioner_ref: str,
    performer_ref: str,
    when: date | datetime,
    *,
    policy: CountyPolicy | None = None,
) -> ReferralMade:
    """Refer up when the latest follow-up of ``disease`` meets the standard's criteria
    (urgent: NBPHS-2017 HTN 3(1) / DM 3; routine: HTN 4(3) / DM 4). Writes ServiceRequest +
    Task; the referral's own 2-week follow-up is then due (the decision's due date)."""
    disease = Disease(disease)
    record = load_record(uow, patient_id)
    visits = record.visits_of(disease)
    if not visits:
        raise FhirError.of(422, "business-rule", "No follow-up of this disease to refer from")
    last = assess_visit(record.patient, visits[-1], visits[:-1], policy)
    decision = last.referral
    if decision is None:
        raise FhirError.of(422, "business-rule", "The latest follow-up meets no referral "
                           f"criterion of the standard ({last.classification_decision.label_en})")
    urgent = decision.code.endswith(".urgent")
    patient_ref = f"Patient/{patient_id}"
    service_request: Json = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "category": [{"coding": [{"system": CS_SERVICE_CATEGORY, "code": "referral-up",
                                  "display": "上转"}]}],
        "priority": "urgent" if urgent else "routine",
        "code": {"coding": [{"system": SNOMED, "code": "3457005",
                             "display": "Patient referral"}], "text": "转诊"},
        "subject": {"reference": patient_ref},
        "authoredOn": _when(when),
        "requester": _ref(practitioner_ref),
        "performer": [_ref(performer_ref)],
        "reasonCode": [{"text": decision.reason_zh}],
    }
    encounter = record.visit_encounters.get(id(visits[-1]))
    if encounter:
        service_request["encounter"] = {"reference": f"Encounter/{encounter}"}
    if disease in record.conditions:
        service_request["reasonReference"] = [
            {"reference": f"Condition/{record.conditions[disease]}"}]
    sr = uow.create("ServiceRequest", service_request)
    task = uow.create("Task", {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": "urgent" if urgent else "routine",
        "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}]},
        "focus": {"reference": f"ServiceRequest/{sr.id}"},
        "for": {"reference": patient_ref},
        "authoredOn": _when(when),
        "requester": _ref(practitioner_ref),
        "owner": _ref(performer_ref),
    })
    return ReferralMade(sr.id, task.id, decision)
