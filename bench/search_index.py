"""Time ``index_rows`` on realistic resources: prints µs per resource.

Run: .venv/bin/python bench/search_index.py [iterations]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kangqiao.fhir.search.index import index_rows

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

PATIENT: dict[str, Any] = {
    "resourceType": "Patient", "id": "p1",
    "meta": {"versionId": "1", "lastUpdated": "2024-03-01T08:00:00Z",
             "profile": ["http://kangqiao.example/fhir/StructureDefinition/cn-patient"],
             "tag": [{"system": "http://kangqiao.example/tags", "code": "hypertension"}]},
    "identifier": [
        {"use": "official", "system": "urn:oid:2.16.156.10011.1.2", "value": "110101196005120011",
         "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                              "code": "NI"}]}},
        {"system": "http://kangqiao.example/mrn", "value": "MRN-0001"}],
    "active": True,
    "name": [{"use": "official", "family": "张", "given": ["三"], "text": "张三"},
             {"use": "usual", "family": "Zhang", "given": ["San"]}],
    "telecom": [{"system": "phone", "value": "13800000001", "use": "mobile"}],
    "gender": "male", "birthDate": "1960-05-12",
    "address": [{"use": "home", "line": ["和平里街道 1 号"], "city": "北京市", "district": "东城区",
                 "state": "北京", "postalCode": "100010", "country": "CN"}],
    "maritalStatus": {"coding": [{"system":
                                  "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                                  "code": "M"}]},
    "generalPractitioner": [{"reference": "Practitioner/d1"}],
    "managingOrganization": {"reference": "Organization/o1"},
    "extension": [{"url": "http://kangqiao.example/fhir/StructureDefinition/ethnicity",
                   "valueCoding": {"system": "urn:oid:2.16.156.10011.2.3.3.3", "code": "01"}}],
}

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation", "id": "bp1",
    "meta": {"versionId": "1", "lastUpdated": "2024-03-05T02:30:00Z",
             "profile": ["http://hl7.org/fhir/StructureDefinition/bp"]},
    "status": "final",
    "category": [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": "vital-signs", "display": "Vital Signs"}]}],
    "code": {"coding": [{"system": LOINC, "code": "85354-9",
                         "display": "Blood pressure panel with all children optional"}],
             "text": "血压"},
    "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
    "effectiveDateTime": "2024-03-05T10:30:00+08:00", "issued": "2024-03-05T10:31:00+08:00",
    "performer": [{"reference": "Practitioner/d1"}],
    "interpretation": [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
        "code": "H"}]}],
    "component": [
        {"code": {"coding": [{"system": LOINC, "code": "8480-6",
                              "display": "Systolic blood pressure"}]},
         "valueQuantity": {"value": 142, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": LOINC, "code": "8462-4",
                              "display": "Diastolic blood pressure"}]},
         "valueQuantity": {"value": 91, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}}],
}

ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter", "id": "e1", "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    "type": [{"coding": [{"system": "http://kangqiao.example/encounter-type",
                          "code": "hypertension-followup", "display": "高血压随访"}]}],
    "subject": {"reference": "Patient/p1"},
    "episodeOfCare": [{"reference": "EpisodeOfCare/eoc1"}],
    "participant": [{"type": [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
        "code": "PPRF"}]}], "individual": {"reference": "Practitioner/d1"}}],
    "period": {"start": "2024-03-05T10:00:00+08:00", "end": "2024-03-05T10:40:00+08:00"},
    "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]}],
    "location": [{"location": {"reference": "Location/l1"}}],
    "serviceProvider": {"reference": "Organization/o1"},
}

CONDITION: dict[str, Any] = {
    "resourceType": "Condition", "id": "c1",
    "clinicalStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
    "verificationStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
        "code": "confirmed"}]},
    "category": [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
        "code": "problem-list-item"}]}],
    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10",
                         "display": "Essential (primary) hypertension"}], "text": "原发性高血压"},
    "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
    "onsetDateTime": "2015-06", "recordedDate": "2015-06-20T09:00:00+08:00",
    "recorder": {"reference": "Practitioner/d1"},
}


def bench(resource: dict[str, Any], n: int) -> tuple[float, int]:
    index_rows(resource)  # compile this type's expressions outside the timing
    start = time.perf_counter()
    for _ in range(n):
        out = index_rows(resource)
    elapsed = time.perf_counter() - start
    return elapsed / n * 1e6, sum(len(v) for v in out.values())


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    total = 0.0
    for r in (PATIENT, OBSERVATION, ENCOUNTER, CONDITION):
        us, rows = bench(r, n)
        total += us
        print(f"{r['resourceType']:<12} {us:8.1f} µs/resource  ({rows} index rows)")
    print(f"{'mean':<12} {total / 4:8.1f} µs/resource  (~{4e6 / total:,.0f} resources/s/core)")


if __name__ == "__main__":
    main()
