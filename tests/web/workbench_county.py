"""The security tests' small county, with gp1's patient p1 made a hypertensive under
management with one controlled visit two months ago, a county-hospital lab result and an
antihypertensive: enough for the workbench to show every part of its pages."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from kangqiao.chronic.records import COUNTY_TZ
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM
from tests.cds.builders import bp, condition, encounter, episode, lab

ID_NUMBER = "110101196001011234"


def today() -> date:
    return datetime.now(COUNTY_TZ).date()


def hypertensive_p1(store: FhirStore) -> None:
    past = (today() - timedelta(days=60)).isoformat()
    start = (today() - timedelta(days=200)).isoformat()
    p1: dict[str, Any] = {
        "resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1960-01-01",
        "name": [{"family": "王", "given": ["秀英"]}],
        "identifier": [{"system": "https://kangqiao.example/fhir/sid/resident-id",
                        "value": ID_NUMBER}],
        "managingOrganization": {"reference": "Organization/org-thc-01"},
        "generalPractitioner": [{"reference": "PractitionerRole/role-gp1"}]}
    ep = episode("eoc-htn", "p1", "htn", start, manager="PractitionerRole/role-gp1")
    ep["managingOrganization"] = {"reference": "Organization/org-thc-01"}
    glucose = lab("glu1", "p1", None, past, "14771-0", 6.1, "mmol/L")
    glucose["performer"] = [{"reference": "Organization/org-county-hospital"}]
    glucose["category"] = [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": "laboratory"}]}]
    report = {"resourceType": "DiagnosticReport", "id": "dr1", "status": "final",
              "code": {"text": "血脂四项"}, "subject": {"reference": "Patient/p1"},
              "effectiveDateTime": past, "conclusion": "LDL-C 3.2 mmol/L",
              "performer": [{"reference": "Organization/org-county-hospital"}]}
    med = {"resourceType": "MedicationRequest", "id": "mr1", "status": "active",
           "intent": "order", "subject": {"reference": "Patient/p1"},
           "medicationCodeableConcept": {"text": "氨氯地平片 5mg"},
           "dosageInstruction": [{"text": "每日1次，每次5mg"}]}
    visit = encounter("enc-past", "p1", past, "htn-followup")
    visit["serviceProvider"] = {"reference": "Organization/org-thc-01"}
    visit["type"][0]["coding"][0]["display"] = "高血压患者随访"
    with store.write(SYSTEM) as uow:
        for res in (p1, condition("c-htn", "p1"), ep, visit,
                    bp("bp-past", "p1", "enc-past", past, 132, 82), glucose, report, med):
            uow.update(res["resourceType"], res["id"], res)
