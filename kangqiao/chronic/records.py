"""One patient's chronic-care record, read through a unit of work into the rules' inputs.

The FHIR shapes are the synthetic county's conventions (docs/synthetic-county.md), which are
also what ``chronic.service`` writes: ICD-10 ``I10``/``E11`` Conditions, management
``EpisodeOfCare`` of type ``htn-management`` / ``dm-management``, follow-up ``Encounter`` of
type ``htn-followup`` / ``dm-followup`` with their Observations (BP panel 85354-9, fasting
glucose 14771-0 in mmol/L, HbA1c 4548-4 ...), and, when the visit was recorded on the
national form, a ``QuestionnaireResponse`` naming the encounter (it carries what no
Observation does: symptoms, adverse reactions, complications).

Loading is a fixed number of indexed searches per patient (one per resource type), never one
query per encounter. Every search passes the security gate like any other read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from kangqiao.chronic.forms import MEASURES, visit_from_answers
from kangqiao.chronic.forms.items import bp_reversed
from kangqiao.chronic.rules import (
    BloodPressure,
    Disease,
    FollowUpVisit,
    Implausible,
    Patient,
    Sex,
    VisitMode,
)
from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.store.store import UnitOfWork

Json = dict[str, Any]

KQ = "https://kangqiao.example/fhir"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
CS_ENCOUNTER_TYPE = f"{KQ}/CodeSystem/encounter-type"
CS_EPISODE_TYPE = f"{KQ}/CodeSystem/episode-type"
CS_CAREPLAN_CATEGORY = f"{KQ}/CodeSystem/careplan-category"
CS_SERVICE_CATEGORY = f"{KQ}/CodeSystem/service-request-category"
# The county's wall clock (China Standard Time has no daylight saving): a visit at 07:30
# local time is stored as the previous day in UTC, so dates are read back in local time.
COUNTY_TZ = timezone(timedelta(hours=8))

# ICD-10 prefixes of each disease's family (I10-I15 hypertensive diseases, E11 type 2 DM).
ICD_PREFIXES: dict[Disease, tuple[str, ...]] = {
    Disease.HYPERTENSION: ("I10", "I11", "I12", "I13", "I15"),
    Disease.DIABETES_T2: ("E11",),
}
ASCVD_PREFIXES = ("I20", "I21", "I22", "I23", "I24", "I25", "I63", "I64", "I69")
FOLLOWUP_TYPE = {Disease.HYPERTENSION: "htn-followup", Disease.DIABETES_T2: "dm-followup"}
EPISODE_TYPE = {Disease.HYPERTENSION: "htn-management", Disease.DIABETES_T2: "dm-management"}
# A fairly complete annual check (NBPHS-2017 HTN 5 / DM 5); the synthetic county writes
# none yet, so every managed patient starts with the check due.
HEALTH_CHECK_TYPE = "health-check"

BP_PANEL, SBP, DBP = "85354-9", "8480-6", "8462-4"
HEART_RATE, BMI, TEMPERATURE = "8867-4", "39156-5", "8310-5"
FASTING_GLUCOSE, HBA1C, LDL = "14771-0", "4548-4", "22748-8"
MEASURED = (BP_PANEL, HEART_RATE, BMI, TEMPERATURE, FASTING_GLUCOSE, HBA1C, LDL)
MAX_ROWS = 5000  # far above a lifetime of follow-ups; a page bound, not a clinical limit


@dataclass(frozen=True, slots=True)
class Lab:
    code: str
    value: float
    on: date
    resource_id: str


@dataclass(frozen=True, slots=True)
class Referral:
    id: str
    authored: date
    priority: str
    status: str


@dataclass
class ChronicRecord:
    """What the rules need about one patient, with the ids the workbench links to."""

    patient_id: str
    patient: Patient
    conditions: dict[Disease, str] = field(default_factory=dict)  # disease -> Condition id
    episodes: dict[Disease, tuple[str, date]] = field(default_factory=dict)  # id, enrolled on
    visits: list[FollowUpVisit] = field(default_factory=list)
    visit_encounters: dict[int, str] = field(default_factory=dict)  # id(visit) -> Encounter
    labs: list[Lab] = field(default_factory=list)
    medications: list[Json] = field(default_factory=list)  # active MedicationRequests
    referrals: list[Referral] = field(default_factory=list)
    annual_checks: list[date] = field(default_factory=list)
    organization: str | None = None  # Patient.managingOrganization reference

    def visits_of(self, disease: Disease) -> list[FollowUpVisit]:
        return sorted((v for v in self.visits if v.disease is disease), key=lambda v: v.date)

    def last_lab(self, code: str) -> Lab | None:
        return max((x for x in self.labs if x.code == code), key=lambda x: x.on, default=None)


def local_date(value: str | datetime | None) -> date | None:
    """The county-local calendar date of a FHIR date or dateTime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(COUNTY_TZ).date()
    if len(value) <= 10:
        return date.fromisoformat(value[:10]) if len(value) == 10 else None
    try:
        return local_date(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def codes(concept: Json | None, system: str | None = None) -> list[str]:
    return [
        str(c.get("code"))
        for c in (concept or {}).get("coding", [])
        if c.get("code") and (system is None or c.get("system") == system)
    ]


def disease_of_icd(code: str) -> Disease | None:
    return next((d for d, p in ICD_PREFIXES.items() if code.startswith(p)), None)


def quantity_of(obs: Json, code: str) -> float | None:
    """The value of ``code``: the Observation's own value, or one of its components."""
    if code in codes(obs.get("code"), LOINC):
        value = (obs.get("valueQuantity") or {}).get("value")
        return float(value) if isinstance(value, int | float) else None
    for comp in obs.get("component") or []:
        if code in codes(comp.get("code"), LOINC):
            value = (comp.get("valueQuantity") or {}).get("value")
            return float(value) if isinstance(value, int | float) else None
    return None


MEASURED_VALUES = (SBP, DBP, *MEASURED[1:])


def _value(element: Json) -> float | None:
    value = (element.get("valueQuantity") or {}).get("value")
    return float(value) if isinstance(value, int | float) else None


def measurements(observations: Iterable[Json]) -> dict[str, float]:
    """LOINC code -> value over one encounter's Observations (BP split into SBP/DBP): for
    each code what ``quantity_of`` gives, with each Observation's codes read once (a work
    list reads this for thousands of Observations)."""
    out: dict[str, float] = {}
    for obs in observations:
        if obs.get("status") in ("entered-in-error", "cancelled"):
            continue
        own = codes(obs.get("code"), LOINC)
        parts = [(codes(c.get("code"), LOINC), c) for c in obs.get("component") or []]
        for code in MEASURED_VALUES:
            if code in own:
                value = _value(obs)
            else:
                value = next((_value(c) for found, c in parts if code in found), None)
            if value is not None:
                out[code] = value
    return out


def visit_from_resources(
    disease: Disease, day: date, klass: str | None, values: dict[str, float], form: Json | None
) -> FollowUpVisit:
    """A follow-up as the rules see it: the form's answers when there is one, else what the
    coded Observations say (the synthetic county and other systems write no form)."""
    if form is not None:
        try:
            visit = visit_from_answers(form, disease)
        except ValueError:
            visit = None  # a damaged form: fall back to the Observations
        if visit is not None:
            return visit
    values, implausible = plausible(values)
    sbp, dbp = values.get(SBP), values.get(DBP)
    hr = values.get(HEART_RATE)
    mode = {"HH": VisitMode.HOME, "VR": VisitMode.PHONE}.get(klass or "", VisitMode.CLINIC)
    return FollowUpVisit(
        date=day,
        disease=disease,
        mode=mode,
        bp=BloodPressure(round(sbp), round(dbp)) if sbp is not None and dbp is not None else None,
        fasting_glucose=values.get(FASTING_GLUCOSE),
        hba1c=values.get(HBA1C),
        heart_rate=round(hr) if hr is not None else None,
        temperature=values.get(TEMPERATURE),
        bmi=values.get(BMI),
        ldl_c=values.get(LDL),
        implausible=implausible,
    )


# The form's data-entry ranges (HEARTS DHIS2 package: SBP 60-260, DBP 40-260 mmHg), by LOINC.
RANGES = {m.loinc: m for m in MEASURES.values() if m.minimum is not None or m.maximum is not None}


def plausible(values: dict[str, float]) -> tuple[dict[str, float], tuple[Implausible, ...]]:
    """``values`` without those outside the range the form itself would refuse, and those
    set aside. Readings from other systems (and old paper records typed in) reach the record
    without the form's check: an extra digit (1389 mmHg) must not fire an urgent referral.
    A blood pressure is one reading: either half out of range, or a systolic not above the
    diastolic (the two fields swapped; the form refuses it too), sets both aside."""
    kept, out = dict(values), []
    for code, m in RANGES.items():
        value = kept.get(code)
        if value is None:
            continue
        if not m.plausible(value):
            out.append(Implausible(m.zh, m.display, f"{value:g}", m.unit, m.minimum, m.maximum))
            del kept[code]
    sbp, dbp = kept.get(SBP), kept.get(DBP)
    swapped = sbp is not None and dbp is not None and bp_reversed(sbp, dbp)
    if swapped:
        out.append(Implausible("血压（收缩压不高于舒张压）",
                               "Blood pressure (systolic not above diastolic)",
                               f"{sbp:g}/{dbp:g}", "mmHg", None, None))
    if swapped or (out and (SBP in kept) != (DBP in kept)):
        kept.pop(SBP, None)
        kept.pop(DBP, None)
    return kept, tuple(out)


def _all(uow: UnitOfWork, resource_type: str, params: list[tuple[str, str]]) -> list[Json]:
    page = uow.search(resource_type, params, count=MAX_ROWS, total="none")
    return [s.content for s in page.items if s.content is not None]


def _ref_id(reference: Json | None, resource_type: str) -> str | None:
    ref = str((reference or {}).get("reference") or "")
    kind, _, rid = ref.partition("/")
    return rid if kind == resource_type and rid else None


# The searches that read one patient's record; CDS Hooks prefetch templates use the same.
SEARCHES: dict[str, tuple[str, str]] = {
    "conditions": ("Condition", "patient={id}"),
    "episodes": ("EpisodeOfCare", "patient={id}&status=active"),
    "encounters": ("Encounter", "patient={id}&type=" + ",".join(
        [*FOLLOWUP_TYPE.values(), HEALTH_CHECK_TYPE])),
    "observations": ("Observation", "patient={id}&code=" + ",".join(MEASURED)),
    "forms": ("QuestionnaireResponse", "subject=Patient/{id}"),
    "medications": ("MedicationRequest", "patient={id}&status=active"),
    "referrals": ("ServiceRequest", "patient={id}&category=referral-up"),
}


def load_record(uow: UnitOfWork, patient_id: str) -> ChronicRecord:
    """Read one patient's chronic-care record (404 when the patient is not visible): one
    read and one indexed search per resource type."""
    patient = uow.read("Patient", patient_id).content or {}
    found: dict[str, list[Json]] = {}
    for key, (rtype, query) in SEARCHES.items():
        params = [tuple(p.split("=", 1)) for p in query.format(id=patient_id).split("&")]
        found[key] = _all(uow, rtype, params)  # type: ignore[arg-type]
    return assemble(patient_id, patient, found)


def assemble(patient_id: str, patient: Json, found: dict[str, list[Json]]) -> ChronicRecord:
    """The record from resources already fetched (by ``load_record``, or by a CDS client's
    prefetch): ``found`` maps the keys of ``SEARCHES`` to resource lists."""
    birth = local_date(patient.get("birthDate"))
    if birth is None:
        raise FhirError.of(422, "required", f"Patient/{patient_id} has no full birthDate")
    conditions: dict[Disease, str] = {}
    ascvd = False
    for cond in found.get("conditions", []):
        active = codes(cond.get("clinicalStatus")) in (["active"], ["recurrence"], ["relapse"])
        for code in codes(cond.get("code"), ICD10):
            disease = disease_of_icd(code)
            if active and disease is not None:
                conditions.setdefault(disease, str(cond["id"]))
            ascvd = ascvd or (active and code.startswith(ASCVD_PREFIXES))
    episodes: dict[Disease, tuple[str, date]] = {}
    for ep in found.get("episodes", []):
        start = local_date((ep.get("period") or {}).get("start"))
        for d, kind in EPISODE_TYPE.items():
            if start and ep.get("status") == "active" and any(
                    kind in codes(t, CS_EPISODE_TYPE) for t in ep.get("type") or []):
                episodes.setdefault(d, (str(ep["id"]), start))
    record = ChronicRecord(
        patient_id,
        Patient(
            birth_date=birth,
            sex=Sex(patient["gender"]) if patient.get("gender") in set(Sex) else Sex.UNKNOWN,
            conditions=frozenset(conditions),
            ascvd=ascvd,
        ),
        conditions,
        episodes,
        organization=(patient.get("managingOrganization") or {}).get("reference"),
    )
    _visits(record, found)
    record.medications = [m for m in found.get("medications", []) if m.get("status") == "active"]
    for sr in found.get("referrals", []):
        authored = local_date(sr.get("authoredOn"))
        if authored is not None:
            record.referrals.append(
                Referral(str(sr["id"]), authored, str(sr.get("priority", "routine")),
                         str(sr.get("status")))
            )
    record.referrals.sort(key=lambda r: r.authored)
    return record


def _visits(record: ChronicRecord, found: dict[str, list[Json]]) -> None:
    encounters = found.get("encounters", [])
    observations = found.get("observations", [])
    forms = found.get("forms", [])
    by_encounter: dict[str, list[Json]] = defaultdict(list)
    for obs in observations:
        linked = _ref_id(obs.get("encounter"), "Encounter")
        if linked:
            by_encounter[linked].append(obs)
        on = local_date(obs.get("effectiveDateTime"))
        for code in (HBA1C, LDL, FASTING_GLUCOSE):
            value = quantity_of(obs, code)
            if value is not None and on is not None:
                record.labs.append(Lab(code, value, on, str(obs["id"])))
    # One form per disease: a visit for both diseases fills in both national forms.
    form_of: dict[tuple[str, Disease | None], Json] = {}
    for f in forms:
        linked = _ref_id(f.get("encounter"), "Encounter")
        if linked and f.get("status") in ("completed", "amended"):
            form_of[(linked, _form_disease(f))] = f
    for enc in encounters:
        if enc.get("status") in ("cancelled", "entered-in-error"):
            continue
        day = local_date((enc.get("period") or {}).get("start"))
        if day is None:
            continue
        kinds = {c for t in enc.get("type") or [] for c in codes(t, CS_ENCOUNTER_TYPE)}
        if HEALTH_CHECK_TYPE in kinds:
            record.annual_checks.append(day)
        values = measurements(by_encounter.get(str(enc["id"]), []))
        klass = (enc.get("class") or {}).get("code")
        for disease, kind in FOLLOWUP_TYPE.items():
            if kind in kinds:
                form = form_of.get((str(enc["id"]), disease))
                visit = visit_from_resources(disease, day, klass, values, form)
                record.visits.append(visit)
                record.visit_encounters[id(visit)] = str(enc["id"])
    record.visits.sort(key=lambda v: v.date)
    record.annual_checks.sort()


def _form_disease(form: Json) -> Disease | None:
    url = str(form.get("questionnaire") or "")
    if url.endswith("/htn-followup"):
        return Disease.HYPERTENSION
    if url.endswith("/dm-followup"):
        return Disease.DIABETES_T2
    return None
