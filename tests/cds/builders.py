"""Hand-built FHIR resources in the synthetic county's shapes, for chronic and CDS tests."""

from __future__ import annotations

from typing import Any

from kangqiao.chronic.records import (
    CS_ENCOUNTER_TYPE,
    CS_EPISODE_TYPE,
    CS_SERVICE_CATEGORY,
    ICD10,
    LOINC,
)
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM

Json = dict[str, Any]
ROLE, TEAM, ORG = "PractitionerRole/r1", "CareTeam/t1", "Organization/o1"


def patient(pid: str, birth: str = "1966-05-01", gp: str | None = ROLE, org: str = ORG) -> Json:
    out: Json = {"resourceType": "Patient", "id": pid, "birthDate": birth, "gender": "female",
                 "managingOrganization": {"reference": org}}
    if gp:
        out["generalPractitioner"] = [{"reference": gp}]
    return out


def condition(cid: str, pid: str, code: str = "I10") -> Json:
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": f"Patient/{pid}"},
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active"}]},
            "code": {"coding": [{"system": ICD10, "code": code}]}}


def episode(eid: str, pid: str, disease: str, start: str, team: str | None = None,
            manager: str = ROLE) -> Json:
    out: Json = {"resourceType": "EpisodeOfCare", "id": eid, "status": "active",
                 "type": [{"coding": [{"system": CS_EPISODE_TYPE,
                                       "code": f"{disease}-management"}]}],
                 "patient": {"reference": f"Patient/{pid}"},
                 "managingOrganization": {"reference": ORG},
                 "period": {"start": start}, "careManager": {"reference": manager}}
    if team:
        out["team"] = [{"reference": team}]
    return out


def encounter(eid: str, pid: str, day: str, *kinds: str) -> Json:
    return {"resourceType": "Encounter", "id": eid, "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                      "code": "AMB"},
            "type": [{"coding": [{"system": CS_ENCOUNTER_TYPE, "code": k}]} for k in kinds],
            "subject": {"reference": f"Patient/{pid}"},
            "period": {"start": f"{day}T09:00:00+08:00"}}


def bp(oid: str, pid: str, enc: str, day: str, sbp: int, dbp: int) -> Json:
    def comp(code: str, value: int) -> Json:
        return {"code": {"coding": [{"system": LOINC, "code": code}]},
                "valueQuantity": {"value": value, "unit": "mmHg",
                                  "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{enc}"},
            "effectiveDateTime": f"{day}T09:05:00+08:00",
            "component": [comp("8480-6", sbp), comp("8462-4", dbp)]}


def lab(oid: str, pid: str, enc: str | None, day: str, code: str, value: float,
        unit: str) -> Json:
    out: Json = {"resourceType": "Observation", "id": oid, "status": "final",
                 "code": {"coding": [{"system": LOINC, "code": code}]},
                 "subject": {"reference": f"Patient/{pid}"},
                 "effectiveDateTime": f"{day}T09:05:00+08:00",
                 "valueQuantity": {"value": value, "unit": unit,
                                   "system": "http://unitsofmeasure.org", "code": unit}}
    if enc:
        out["encounter"] = {"reference": f"Encounter/{enc}"}
    return out


def referral(sid: str, pid: str, day: str) -> Json:
    return {"resourceType": "ServiceRequest", "id": sid, "status": "active", "intent": "order",
            "category": [{"coding": [{"system": CS_SERVICE_CATEGORY, "code": "referral-up"}]}],
            "subject": {"reference": f"Patient/{pid}"}, "authoredOn": f"{day}T10:00:00+08:00"}


def care_team(tid: str = "t1", member: str = ROLE) -> Json:
    return {"resourceType": "CareTeam", "id": tid, "status": "active",
            "participant": [{"member": {"reference": member}}]}


def put_all(store: FhirStore, resources: list[Json]) -> None:
    with store.write(SYSTEM) as uow:
        for r in resources:
            uow.update(r["resourceType"], r["id"], r)
