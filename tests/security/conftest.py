"""A small county to test the policy on (ids as the synthetic county names them), accounts of
every role, and tokens for them.

    org-county-hospital ─┬─ org-dept-cardiology            (specialist "spec")
                         ├─ org-thc-01 ── org-vc-01-01       (gp1, nurse1 | village doctor vd1)
                         └─ org-thc-02 ── org-vc-02-01       (gp2)
    org-cdc (govt)                                           (public-health "ph": county-wide)
    org-health-commission (govt)                             (countyadmin)

    p1: managed by thc-01, GP gp1, family-doctor contract with gp1 (team: gp1, vd1, nurse1)
    p3: managed by thc-01, no GP, refused sharing beyond treating institutions (Consent deny)
    p2: managed by thc-02, GP gp2
    p4: managed by thc-02, referred to cardiology 2 days ago (active ServiceRequest)
    p5: managed by thc-02, referred to cardiology 60 days ago (expired)
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from kangqiao.app import create_app
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security import accounts, passwords, rules
from kangqiao.security.gate import SYSTEM
from kangqiao.security.oauth import user_claims
from kangqiao.security.tokens import Tokens
from kangqiao.settings import Settings

ROLE_SYSTEM = "https://kangqiao.example/fhir/CodeSystem/practitioner-role"
PASSWORD = "Kq-test-Pa55word"
FHIR = "application/fhir+json"


def org(oid: str, parent: str | None = None, kind: str = "prov") -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Organization", "id": oid, "name": oid,
                            "type": [{"coding": [{"system": "http://terminology.hl7.org/"
                                                  "CodeSystem/organization-type",
                                                  "code": kind}]}]}
    if parent:
        body["partOf"] = {"reference": f"Organization/{parent}"}
    return body


def staff(rid: str, code: str, organization: str) -> list[dict[str, Any]]:
    return [{"resourceType": "Practitioner", "id": f"prac-{rid}",
             "name": [{"text": rid}]},
            {"resourceType": "PractitionerRole", "id": f"role-{rid}", "active": True,
             "practitioner": {"reference": f"Practitioner/prac-{rid}", "display": rid},
             "organization": {"reference": f"Organization/{organization}"},
             "code": [{"coding": [{"system": ROLE_SYSTEM, "code": code}]}]}]


def patient(pid: str, managed_by: str, gp: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "id": pid, "gender": "female",
                            "birthDate": "1960-01-01", "name": [{"text": pid}],
                            "managingOrganization": {"reference": f"Organization/{managed_by}"}}
    if gp:
        body["generalPractitioner"] = [{"reference": f"PractitionerRole/role-{gp}"}]
    return body


def observation(oid: str, pid: str, category: str = "vital-signs") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                      "observation-category", "code": category}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": "2026-11-01",
            "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org",
                              "code": "/min"}}


def _iso(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(timespec="seconds")


def referral(sid: str, pid: str, to: str, days_ago: int, status: str) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "id": sid, "status": status, "intent": "order",
            "subject": {"reference": f"Patient/{pid}"}, "authoredOn": _iso(days_ago),
            "performer": [{"reference": f"Organization/{to}"}],
            "code": {"text": "referral"}}


def county_resources() -> list[dict[str, Any]]:
    out = [org("org-county-hospital"), org("org-dept-cardiology", "org-county-hospital"),
           org("org-thc-01", "org-county-hospital"), org("org-thc-02", "org-county-hospital"),
           org("org-vc-01-01", "org-thc-01"), org("org-vc-02-01", "org-thc-02"),
           org("org-cdc", kind="govt"), org("org-health-commission", kind="govt")]
    out += staff("gp1", "gp", "org-thc-01") + staff("gp2", "gp", "org-thc-02")
    out += staff("vd1", "village-doctor", "org-vc-01-01")
    out += staff("nurse1", "nurse", "org-thc-01")
    out += staff("spec", "specialist", "org-dept-cardiology")
    out += staff("ph", "public-health", "org-cdc")
    out += staff("hospdoc", "clinician", "org-county-hospital")
    out.append({"resourceType": "CareTeam", "id": "team-01-01", "status": "active",
                "managingOrganization": [{"reference": "Organization/org-thc-01"}],
                "participant": [{"member": {"reference": f"PractitionerRole/role-{r}"}}
                                for r in ("gp1", "vd1", "nurse1")]})
    out += [patient("p1", "org-thc-01", "gp1"), patient("p2", "org-thc-02", "gp2"),
            patient("p3", "org-thc-01"), patient("p4", "org-thc-02"),
            patient("p5", "org-thc-02")]
    out.append({"resourceType": "EpisodeOfCare", "id": "eoc1", "status": "active",
                "patient": {"reference": "Patient/p1"},
                "careManager": {"reference": "PractitionerRole/role-gp1"},
                "team": [{"reference": "CareTeam/team-01-01"}]})
    out.append({"resourceType": "Consent", "id": "c3", "status": "active",
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                      "consentscope", "code": "patient-privacy"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                "patient": {"reference": "Patient/p3"},
                "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                           "v3-ActCode", "code": "OPTOUT"}]},
                "provision": {"type": "deny"}})
    out += [referral("sr4", "p4", "org-dept-cardiology", 2, "active"),
            referral("sr5", "p5", "org-dept-cardiology", 60, "completed")]
    out += [observation("o1", "p1"), observation("o1lab", "p1", "laboratory"),
            observation("o2", "p2"), observation("o3", "p3"), observation("o4", "p4"),
            observation("o5", "p5")]
    return out


# username -> (role, PractitionerRole or patient, organization)
USERS: dict[str, tuple[str, str | None, str | None]] = {
    "gp1": (rules.GP, "gp1", "org-thc-01"),
    "gp2": (rules.GP, "gp2", "org-thc-02"),
    "vd1": (rules.VILLAGE_DOCTOR, "vd1", "org-vc-01-01"),
    "nurse1": (rules.NURSE, "nurse1", "org-thc-01"),
    "spec": (rules.SPECIALIST, "spec", "org-dept-cardiology"),
    "ph": (rules.PUBLIC_HEALTH, "ph", "org-cdc"),
    "hospdoc": (rules.CLINICIAN, "hospdoc", "org-county-hospital"),
    "countyadmin": (rules.COUNTY_ADMIN, None, "org-health-commission"),
    "admin": (rules.PLATFORM_ADMIN, None, None),
    "resident1": (rules.RESIDENT, None, None),
}


@dataclass
class County:
    engine: Engine
    settings: Settings
    tokens: Tokens

    def account(self, username: str) -> accounts.Account:
        found = accounts.find(self.engine, username=username)
        assert found is not None
        return found

    def token(self, username: str, scope: str | None = None, **claims: Any) -> str:
        """What the token endpoint would issue this user's app."""
        account = self.account(username)
        if scope is None:
            scope = "patient/*.cruds" if account.role == rules.RESIDENT else "user/*.cruds"
        county_wide = account.organization in ("Organization/org-cdc",
                                               "Organization/org-health-commission")
        purpose = rules.purposes(account.role, county_wide)[0]
        body = {**user_claims(account, purpose, account.patient), **claims}
        token, _ = self.tokens.issue(self.engine, subject=account.id, scope=scope,
                                     client_id="test-app", minutes=5, claims=body)
        return token

    def headers(self, username: str, scope: str | None = None, **extra: str
                ) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username, scope)}", **extra}


@functools.cache
def _hash(password: str) -> str:
    return _argon2(password)


_argon2 = passwords.hash_password


@pytest.fixture
def county(engine: Engine, store: FhirStore, settings: Settings,
           monkeypatch: pytest.MonkeyPatch) -> County:
    # Argon2id takes ~0.1 s by design; ten accounts per test need it only once.
    monkeypatch.setattr(passwords, "hash_password", _hash)
    with store.write(SYSTEM) as uow:
        for resource in county_resources():
            uow.update(resource["resourceType"], resource["id"], resource)
    for username, (role, who, organization) in USERS.items():
        accounts.create(
            engine, settings, username=username, password=PASSWORD, role=role,
            organization=f"Organization/{organization}" if organization else None,
            practitioner=f"Practitioner/prac-{who}" if who else None,
            practitioner_role=f"PractitionerRole/role-{who}" if who else None,
            patient="Patient/p1" if role == rules.RESIDENT else None, must_change=False)
    return County(engine, settings, Tokens(settings))


@pytest.fixture
def app_client(settings: Settings, store: FhirStore, county: County) -> Iterator[TestClient]:
    """The real app, with no credentials of its own (each test says who it is)."""
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as c:
        yield c
