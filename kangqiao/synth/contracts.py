"""Family-doctor contracts (家庭医生签约服务).

Representation (see docs/synthetic-county.md): a contract is an EpisodeOfCare of type
``family-doctor-contract`` whose ``team`` is the family-doctor CareTeam and whose
``careManager`` is the team's lead GP, for the contract year; ``Patient.generalPractitioner``
points at the same PractitionerRole; and a Consent (signed with the contract) permits the
institutions of the medical community to share the resident's record for treatment.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from kangqiao.synth.common import (
    ACT_REASON,
    CONSENT_CATEGORY,
    CONSENT_SCOPE,
    CS_EPISODE_TYPE,
    V3_ACT_CODE,
    Resource,
    coding,
    concept,
    dt,
    ref,
)
from kangqiao.synth.context import Ctx
from kangqiao.synth.residents import Person

# Contract shares by group: assumptions in the range counties report for key groups.
SHARE_ELDERLY = 0.70
SHARE_MANAGED_CHRONIC = 0.80
SHARE_CHILD_UNDER_7 = 0.45
SHARE_OTHER = 0.15
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


def contract_share(person: Person) -> float:
    managed = any(d.managed for d in person.facts.get("diseases", []))
    if managed:
        return SHARE_MANAGED_CHRONIC
    if person.age >= 65:
        return SHARE_ELDERLY
    if person.age < 7:
        return SHARE_CHILD_UNDER_7
    return SHARE_OTHER


def contract(ctx: Ctx, rng: random.Random, person: Person) -> list[Resource]:
    """Decide whether the resident has a contract this year; emit EpisodeOfCare + Consent."""
    if rng.random() >= contract_share(person):
        person.facts["contract"] = None
        return []
    team = person.place.team
    # contracts are signed or renewed each year, mostly in the first quarter
    year = ctx.end.year if ctx.end >= date(ctx.end.year, 4, 1) else ctx.end.year - 1
    signed = date(year, 1, 2) + timedelta(days=rng.randint(0, 88))
    end = date(year + 1, 1, 1) + timedelta(days=(signed - date(year, 1, 2)).days)
    episode_id = ctx.ids.next("eoc")
    person.facts["contract"] = team.leader.role_id
    person.facts["contract_team"] = team.id
    episode: Resource = {
        "resourceType": "EpisodeOfCare",
        "id": episode_id,
        "status": "active",
        "type": [concept(CS_EPISODE_TYPE, "family-doctor-contract", "家庭医生签约服务")],
        "patient": ref("Patient", person.pid),
        "managingOrganization": ref("Organization", person.place.centre.org_id),
        "period": {"start": signed.isoformat(), "end": end.isoformat()},
        "careManager": ref("PractitionerRole", team.leader.role_id, team.leader.name),
        "team": [ref("CareTeam", team.id)],
    }
    consent: Resource = {
        "resourceType": "Consent",
        "id": ctx.ids.next("consent"),
        "status": "active",
        "scope": concept(CONSENT_SCOPE, "patient-privacy", "Privacy Consent"),
        "category": [concept(CONSENT_CATEGORY, "59284-0", "Patient Consent")],
        "patient": ref("Patient", person.pid),
        "dateTime": dt(signed, rng.randint(9 * 60, 16 * 60)),
        "performer": [ref("Patient", person.pid)],
        "organization": [ref("Organization", person.place.centre.org_id)],
        "policyRule": concept(V3_ACT_CODE, "OPTIN"),
        "provision": {
            "type": "permit",
            "period": {"start": signed.isoformat(), "end": end.isoformat()},
            "actor": [
                {
                    "role": concept(PARTICIPATION, "IRCP", "information recipient"),
                    "reference": ref("Organization", ctx.inst.county_hospital),
                },
                {
                    "role": concept(PARTICIPATION, "IRCP", "information recipient"),
                    "reference": ref("CareTeam", team.id),
                },
            ],
            "purpose": [coding(ACT_REASON, "TREAT", "treatment")],
        },
    }
    return [episode, consent]
