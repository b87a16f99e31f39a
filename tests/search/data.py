"""A small, hand-checked set of resources used by the search tests."""

from __future__ import annotations

from typing import Any

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
PROFILE_BP = "http://hl7.org/fhir/StructureDefinition/bp"


def _bp(id_: str, subject: str, when: str, sys_: float, dia: float, unit: str) -> dict[str, Any]:
    def comp(code: str, v: float) -> dict[str, Any]:
        return {"code": {"coding": [{"system": LOINC, "code": code}]},
                "valueQuantity": {"value": v, "unit": unit, "system": UCUM, "code": unit}}

    return {
        "resourceType": "Observation", "id": id_, "status": "final",
        "meta": {"profile": [PROFILE_BP]},
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "85354-9",
                             "display": "Blood pressure panel"}], "text": "血压"},
        "subject": {"reference": subject}, "effectiveDateTime": when,
        "component": [comp("8480-6", sys_), comp("8462-4", dia)],
    }


def _value(id_: str, subject: str, code: str, when: Any, value: float, unit: str
           ) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation", "id": id_, "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": subject},
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }
    if isinstance(when, dict):
        obs["effectivePeriod"] = when
    else:
        obs["effectiveDateTime"] = when
    return obs


RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": "o1", "name": "Kangqiao County Hospital"},
    {"resourceType": "Practitioner", "id": "d1", "name": [{"family": "李", "given": ["医生"]}]},
    {
        "resourceType": "Patient", "id": "p1", "active": True, "gender": "male",
        "meta": {"tag": [{"system": "http://kangqiao/tags", "code": "hypertension"}]},
        "birthDate": "1960-05-12",
        "name": [{"family": "张", "given": ["三"]}],
        "identifier": [{
            "system": "urn:oid:2.16.156.10011.1.2", "value": "110101196005120011",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                 "code": "NI"}]}}],
        "telecom": [{"system": "phone", "value": "13800000001"}],
        "address": [{"city": "北京", "district": "东城区", "line": ["和平里 1 号"]}],
        "managingOrganization": {"reference": "Organization/o1"},
    },
    {
        "resourceType": "Patient", "id": "p2", "gender": "female", "birthDate": "1975-11",
        "name": [{"family": "Müller", "given": ["José"]}],
        "deceasedDateTime": "2020-01-01",
        "telecom": [{"system": "email", "value": "jose@example.org"}],
    },
    {"resourceType": "Patient", "id": "p3", "birthDate": "1990-01-01",
     "name": [{"family": "Smith", "given": ["John"], "text": "John Smith"}]},
    {
        "resourceType": "Encounter", "id": "e1", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "participant": [{"individual": {"reference": "Practitioner/d1"}}],
        "period": {"start": "2024-03-01T08:00:00Z", "end": "2024-03-01T09:00:00Z"},
    },
    {
        "resourceType": "Encounter", "id": "e2", "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p2"}, "period": {"start": "2024-02-01"},
    },
    # 10:30 in Beijing is 02:30 UTC on the same day; 07:00 in Beijing is the previous UTC day.
    _bp("bp1", "Patient/p1", "2024-03-05T10:30:00+08:00", 140, 90, "mm[Hg]"),
    _bp("bp2", "Patient/p2", "2024-03-06T07:00:00+08:00", 120, 140, "mm[Hg]"),
    _bp("bp3", "Patient/p3", "2024-03-07", 20, 12, "kPa"),  # 150 / 90 mmHg
    _value("glu1", "Patient/p1", "2345-7", "2024-01-15", 126, "mg/dL"),  # 6.99 mmol/L
    _value("glu2", "Patient/p2", "2345-7", "2023", 5.5, "mmol/L"),  # 99.1 mg/dL
    _value("wt1", "Patient/p3", "29463-7", {"start": "2024-03-01"}, 154, "[lb_av]"),  # 69.9 kg
    _value("ext1", "http://other.org/fhir/Patient/p1", "29463-7", "2024-03-01", 70, "kg"),
    {"resourceType": "Observation", "id": "log1", "status": "final", "code": {"text": "note"},
     "subject": {"identifier": {"system": "urn:oid:2.16.156.10011.1.2",
                                "value": "110101196005120011"}}},
    {
        "resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}],
                 "text": "原发性高血压"},
        "onsetDateTime": "2015",
    },
    {
        "resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p2"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}],
                 "text": "2型糖尿病"},
        "onsetPeriod": {"start": "2018-06"},
    },
    {"resourceType": "RiskAssessment", "id": "ra1", "status": "final",
     "subject": {"reference": "Patient/p1"}, "prediction": [{"probabilityDecimal": 0.25}]},
    {"resourceType": "RiskAssessment", "id": "ra2", "status": "final",
     "subject": {"reference": "Patient/p2"}, "prediction": [{"probabilityDecimal": 0.7}]},
]
