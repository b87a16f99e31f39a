"""Common antihypertensive and antidiabetic drugs as MedicationRequests (ATC coded)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from kangqiao.synth.common import ATC, Resource, coding, dt, quantity, ref, weighted
from kangqiao.synth.context import Ctx
from kangqiao.synth.institutions import Staff
from kangqiao.synth.residents import Person

COURSE = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy"
ROUTE_ORAL = ("http://snomed.info/sct", "26643006", "Oral route")
ROUTE_SC = ("http://snomed.info/sct", "34206005", "Subcutaneous route")


@dataclass(frozen=True, slots=True)
class Drug:
    atc: str
    name: str  # English generic name
    zh: str  # Chinese product form
    dose: float
    unit: str
    per_day: int
    drug_class: str


HTN_DRUGS: list[tuple[Drug, float]] = [
    (Drug("C08CA01", "amlodipine", "苯磺酸氨氯地平片", 5, "mg", 1, "CCB"), 0.30),
    (Drug("C08CA05", "nifedipine", "硝苯地平控释片", 30, "mg", 1, "CCB"), 0.14),
    (Drug("C08CA02", "felodipine", "非洛地平缓释片", 5, "mg", 1, "CCB"), 0.05),
    (Drug("C09CA01", "losartan", "氯沙坦钾片", 50, "mg", 1, "ARB"), 0.10),
    (Drug("C09CA03", "valsartan", "缬沙坦胶囊", 80, "mg", 1, "ARB"), 0.08),
    (Drug("C09CA04", "irbesartan", "厄贝沙坦片", 150, "mg", 1, "ARB"), 0.06),
    (Drug("C09AA02", "enalapril", "马来酸依那普利片", 10, "mg", 1, "ACEI"), 0.07),
    (Drug("C09AA01", "captopril", "卡托普利片", 25, "mg", 2, "ACEI"), 0.04),
    (Drug("C03AA03", "hydrochlorothiazide", "氢氯噻嗪片", 12.5, "mg", 1, "diuretic"), 0.07),
    (Drug("C03BA11", "indapamide", "吲达帕胺片", 2.5, "mg", 1, "diuretic"), 0.04),
    (Drug("C07AB02", "metoprolol", "酒石酸美托洛尔片", 25, "mg", 2, "beta-blocker"), 0.05),
]
DM_DRUGS: list[tuple[Drug, float]] = [
    (Drug("A10BB12", "glimepiride", "格列美脲片", 2, "mg", 1, "SU"), 0.25),
    (Drug("A10BB09", "gliclazide", "格列齐特缓释片", 30, "mg", 1, "SU"), 0.20),
    (Drug("A10BF01", "acarbose", "阿卡波糖片", 50, "mg", 3, "AGI"), 0.30),
    (Drug("A10BH01", "sitagliptin", "磷酸西格列汀片", 100, "mg", 1, "DPP-4"), 0.12),
    (Drug("A10BK01", "dapagliflozin", "达格列净片", 10, "mg", 1, "SGLT2"), 0.13),
]
METFORMIN = Drug("A10BA02", "metformin", "盐酸二甲双胍片", 500, "mg", 3, "biguanide")
GLARGINE = Drug("A10AE04", "insulin glargine", "甘精胰岛素注射液", 12, "[IU]", 1, "insulin")


def initial_regimen(rng: random.Random, disease: str) -> list[Drug]:
    if disease == "htn":
        first: Drug = weighted(rng, HTN_DRUGS)
        regimen = [first]
        if rng.random() < 0.3:
            second = add_on(rng, disease, regimen)
            if second:
                regimen.append(second)
        return regimen
    regimen = [METFORMIN] if rng.random() < 0.8 else [weighted(rng, DM_DRUGS)]
    if rng.random() < 0.3:
        second = add_on(rng, disease, regimen)
        if second:
            regimen.append(second)
    if rng.random() < 0.06:
        regimen.append(GLARGINE)
    return regimen


def add_on(rng: random.Random, disease: str, current: list[Drug]) -> Drug | None:
    """A drug of a class the patient is not yet taking (guideline: add another class)."""
    classes = {d.drug_class for d in current}
    table = HTN_DRUGS if disease == "htn" else [*DM_DRUGS, (METFORMIN, 0.5)]
    options = [(d, w) for d, w in table if d.drug_class not in classes]
    return weighted(rng, options) if options else None


def medication_request(
    ctx: Ctx,
    person: Person,
    drug: Drug,
    authored: date,
    requester: Staff,
    condition: str,
    *,
    encounter: str | None = None,
    status: str = "active",
) -> Resource:
    times = {1: "每日1次", 2: "每日2次", 3: "每日3次"}[drug.per_day]
    unit_zh = "单位" if drug.unit == "[IU]" else drug.unit
    route = ROUTE_SC if drug.unit == "[IU]" else ROUTE_ORAL
    how = "皮下注射" if drug.unit == "[IU]" else "口服"
    dose_value: float = int(drug.dose) if float(drug.dose).is_integer() else drug.dose
    res: Resource = {
        "resourceType": "MedicationRequest",
        "id": ctx.ids.next("mr"),
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [coding(ATC, drug.atc, drug.name)],
            "text": drug.zh,
        },
        "subject": ref("Patient", person.pid),
        "authoredOn": dt(authored, 10 * 60),
        "requester": ref("PractitionerRole", requester.role_id, requester.name),
        "reasonReference": [ref("Condition", condition)],
        "courseOfTherapyType": {
            "coding": [coding(COURSE, "continuous", "Continuous long term therapy")]
        },
        "dosageInstruction": [
            {
                "text": f"{times}，每次{dose_value:g}{unit_zh}，{how}",
                "timing": {"repeat": {"frequency": drug.per_day, "period": 1, "periodUnit": "d"}},
                "route": {"coding": [coding(*route)]},
                "doseAndRate": [
                    {
                        "doseQuantity": quantity(
                            dose_value, "IU" if drug.unit == "[IU]" else drug.unit, drug.unit
                        )
                    }
                ],
            }
        ],
    }
    if encounter:
        res["encounter"] = ref("Encounter", encounter)
    return res
