"""Accounts of the demo county, one per role, created only by ``kangqiao demo``.

Passwords are random, never in the repository: an account still on its initial password gets
a fresh one at every demo start (so the console can show it again); once a user has changed it,
it is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from kangqiao.fhir.store.store import FhirStore
from kangqiao.security import accounts, passwords, rules
from kangqiao.security.directory import staff_with_role
from kangqiao.security.gate import SYSTEM
from kangqiao.settings import Settings

TOWNSHIP = "Organization/org-thc-01"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    password: str | None  # None: the user changed it
    linked: str  # the FHIR reference the account acts as
    name: str  # the person's name ("" for accounts without one)
    organization: str | None


# username, role, PractitionerRole code (None: no practitioner), organisation to look in
PLAN = [("village", rules.VILLAGE_DOCTOR, "village-doctor", None),
        ("gp", rules.GP, "gp", TOWNSHIP),
        ("specialist", rules.SPECIALIST, "specialist", None),
        ("nurse", rules.NURSE, "nurse", TOWNSHIP),
        ("publichealth", rules.PUBLIC_HEALTH, "public-health", "Organization/org-cdc"),
        ("countyadmin", rules.COUNTY_ADMIN, None, "Organization/org-health-commission"),
        ("admin", rules.PLATFORM_ADMIN, None, None),
        ("resident", rules.RESIDENT, None, TOWNSHIP)]


def _first_patient(engine: Engine) -> str | None:
    with FhirStore(engine).read(SYSTEM) as uow:
        page = uow.search("Patient", [("organization", TOWNSHIP)], count=1, total="none")
    return f"Patient/{page.items[0].id}" if page.items else None


def ensure_demo_accounts(engine: Engine, settings: Settings) -> list[DemoAccount]:
    out = []
    for username, role, code, org in PLAN:
        existing = accounts.find(engine, username=username)
        if existing is not None:
            password = None
            if existing.must_change_password:
                password = passwords.generate(username)
                accounts.set_password(engine, username, password, must_change=True)
            out.append(DemoAccount(username, role, password, existing.actor,
                                   existing.display_name, existing.organization))
            continue
        password = passwords.generate(username)
        organization, practitioner, practitioner_role, name, patient = org, None, None, None, None
        if code is not None:
            staff = staff_with_role(engine, code, org) or staff_with_role(engine, code)
            if staff is None:
                continue
            organization, practitioner = staff.organization, staff.practitioner
            practitioner_role, name = staff.practitioner_role, staff.name
        elif role == rules.RESIDENT:
            organization, patient = None, _first_patient(engine)
            if patient is None:
                continue
        account = accounts.create(engine, settings, username=username, password=password,
                                  role=role, display_name=name, organization=organization,
                                  practitioner=practitioner,
                                  practitioner_role=practitioner_role, patient=patient)
        out.append(DemoAccount(username, role, password, account.actor, account.display_name,
                               account.organization))
    return out
