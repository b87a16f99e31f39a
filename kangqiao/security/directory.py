"""Looking up staff in the store's directory (PractitionerRole) to link accounts to them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM

ROLE_SYSTEM = "https://kangqiao.example/fhir/CodeSystem/practitioner-role"


@dataclass(frozen=True)
class StaffRole:
    practitioner_role: str
    practitioner: str | None
    organization: str | None
    name: str | None


def _staff(content: dict[str, Any]) -> StaffRole:
    who = content.get("practitioner") or {}
    org = content.get("organization") or {}
    return StaffRole(f"PractitionerRole/{content['id']}", who.get("reference"),
                     org.get("reference"), who.get("display"))


def practitioner_of(engine: Engine, reference: str) -> StaffRole | None:
    rtype, _, rid = reference.partition("/")
    if rtype != "PractitionerRole" or not rid:
        return None
    with FhirStore(engine).read(SYSTEM) as uow:
        try:
            stored = uow.read("PractitionerRole", rid)
        except FhirError:
            return None
    return _staff(stored.content or {})


def staff_with_role(engine: Engine, code: str, organization: str | None = None
                    ) -> StaffRole | None:
    """The first PractitionerRole with role ``code`` (at ``organization`` if given)."""
    params = [("role", f"{ROLE_SYSTEM}|{code}")]
    if organization:
        params.append(("organization", organization))
    with FhirStore(engine).read(SYSTEM) as uow:
        page = uow.search("PractitionerRole", params, count=1, total="none")
    return _staff(page.items[0].content or {}) if page.items else None
