"""The view carries the user's care teams as lists read when it is built
(``visibility.teams_of``) and kept with the policy's cached SQL: a committed change to a
CareTeam must take effect at once in this process, both ways."""

from __future__ import annotations

from typing import Any

from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM
from kangqiao.security.policy import Policy
from kangqiao.security.store import PolicyStore
from tests.security.conftest import County
from tests.security.test_warm_patients import _access


def _team(members: tuple[str, ...]) -> dict[str, Any]:
    return {"resourceType": "CareTeam", "id": "team-01-01", "status": "active",
            "managingOrganization": [{"reference": "Organization/org-thc-01"}],
            "participant": [{"member": {"reference": f"PractitionerRole/role-{r}"}}
                            for r in members]}


def _sees_p1(secured: PolicyStore) -> bool:
    with secured.read(_access("vd1")) as uow:
        return [s.id for s in uow.search("Patient", [("_id", "p1")], count=10).items] == ["p1"]


def test_leaving_and_joining_a_team_take_effect_at_once(county: County,
                                                        store: FhirStore) -> None:
    # vd1 (village clinic) sees p1 only as a team mate of p1's GP, gp1
    secured = PolicyStore(store.engine, Policy(store.engine), b"test-audit-key-0123456789abcdef0")
    assert _sees_p1(secured)
    with secured.write(SYSTEM) as uow:
        uow.update("CareTeam", "team-01-01", _team(("gp1", "nurse1")))
    assert not _sees_p1(secured)
    with secured.write(SYSTEM) as uow:
        uow.update("CareTeam", "team-01-01", _team(("gp1", "vd1", "nurse1")))
    assert _sees_p1(secured)
