"""Micro-benchmark of kangqiao.fhir.validation: µs per resource for realistic resources.

Run with ``.venv/bin/python bench/validation.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kangqiao.fhir import definitions
from kangqiao.fhir.validation import validate_resource

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p-1001",
    "meta": {"versionId": "3", "lastUpdated": "2024-05-01T08:30:00+08:00"},
    "extension": [
        {
            "url": "http://kangqiao.example/fhir/StructureDefinition/ethnicity",
            "valueCoding": {"system": "urn:oid:2.16.156.10011.2.3.3.3", "code": "01"},
        }
    ],
    "identifier": [
        {
            "use": "official",
            "system": "urn:oid:1.2.156.112604.1.2.1",
            "value": "330102197001011234",
        }
    ],
    "active": True,
    "name": [{"use": "official", "text": "张三", "family": "张", "given": ["三"]}],
    "telecom": [{"system": "phone", "value": "13800000000", "use": "mobile"}],
    "gender": "male",
    "birthDate": "1970-01-01",
    "address": [
        {
            "use": "home",
            "text": "浙江省杭州市桐庐县富春江镇康桥村1号",
            "line": ["康桥村1号"],
            "city": "杭州市",
            "district": "桐庐县",
            "state": "浙江省",
            "country": "CN",
        }
    ],
    "managingOrganization": {"reference": "Organization/th-01", "display": "富春江镇卫生院"},
}

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "bp-1",
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                }
            ]
        }
    ],
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}], "text": "血压"},
    "subject": {"reference": "Patient/p-1001"},
    "effectiveDateTime": "2024-05-01T09:00:00+08:00",
    "performer": [{"reference": "Practitioner/dr-1"}],
    "component": [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "valueQuantity": {
                "value": 142,
                "unit": "mmHg",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        },
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
            "valueQuantity": {
                "value": 91,
                "unit": "mmHg",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        },
    ],
}

CONDITION: dict[str, Any] = {
    "resourceType": "Condition",
    "clinicalStatus": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active",
            }
        ]
    },
    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]},
    "subject": {"reference": "Patient/p-1001"},
    "onsetDateTime": "2019-03-01",
}


def bench(name: str, resource: dict[str, Any], rounds: int = 20_000) -> float:
    assert validate_resource(resource) == [], validate_resource(resource)
    start = time.perf_counter()
    for _ in range(rounds):
        validate_resource(resource)
    micros = (time.perf_counter() - start) / rounds * 1e6
    print(f"{name:<12} {micros:7.1f} µs/resource")
    return micros


def main() -> None:
    start = time.perf_counter()
    definitions.preload()
    print(
        f"load definitions       {(time.perf_counter() - start) * 1e3:7.1f} ms (once per process)"
    )
    start = time.perf_counter()
    for resource in (PATIENT, OBSERVATION, CONDITION):
        validate_resource(resource)
    print(f"first validation       {(time.perf_counter() - start) * 1e3:7.1f} ms (compiles types)")
    bench("Patient", PATIENT)
    bench("Observation", OBSERVATION)
    bench("Condition", CONDITION)
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in (PATIENT, OBSERVATION, CONDITION) * 10],
    }
    bench("Bundle x30", bundle, rounds=1_000)


if __name__ == "__main__":
    main()
