"""``Policy.warm_patients`` decides many patients in one query: every answer must be the one
``patient_visible`` gives alone (the per-patient probe), for every role of the test county,
on both backends, and only inside a unit of work. ``visible_patients``, which the work lists
filter their scope with, must admit what the Patient search filter admits."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from kangqiao.fhir.store import schema
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security import rules
from kangqiao.security.context import UOW
from kangqiao.security.gate import SYSTEM, Access
from kangqiao.security.policy import Policy
from kangqiao.security.store import PolicyStore
from tests.security.conftest import USERS, County

R = schema.resource
PATIENTS = ["p1", "p2", "p3", "p4", "p5", "nobody"]  # "nobody" has no Patient row


def _access(username: str) -> Access:
    role, who, org = USERS[username]
    county_wide = org in ("org-cdc", "org-health-commission")
    return Access(
        actor=f"Practitioner/prac-{who}" if who else f"system/{username}",
        role=role, purpose=rules.purposes(role, county_wide)[0],
        organization=f"Organization/{org}" if org else None,
        practitioner_role=f"PractitionerRole/role-{who}" if who else None,
        patient="Patient/p1" if role == rules.RESIDENT else None,
        scopes=frozenset({"user/*.cruds"}))


@pytest.mark.parametrize("username", sorted(USERS))
def test_warm_answers_equal_the_probe(county: County, store: FhirStore, username: str) -> None:
    policy = Policy(store.engine)
    secured = PolicyStore(store.engine, policy, b"test-audit-key-0123456789abcdef0")
    access = _access(username)
    with secured.read(access):
        alone = {p: policy.patient_visible(access, p) for p in PATIENTS}
    with secured.read(access):
        policy.warm_patients(access, PATIENTS)
        state = UOW.get()
        assert state is not None
        warmed = dict(state.visible)
        assert set(warmed) >= {"p1", "p2", "p3", "p4", "p5"}  # decided without a probe
        assert all(warmed[p] == alone[p] for p in warmed)
        both = {p: policy.patient_visible(access, p) for p in PATIENTS}
    assert both == alone
    assert any(alone.values()) or username == "admin"


def test_outside_a_unit_of_work_nothing_is_kept(county: County, store: FhirStore) -> None:
    policy = Policy(store.engine)
    policy.warm_patients(_access("gp1"), PATIENTS)  # no unit of work: a no-op, no error
    assert UOW.get() is None


SCOPES = ["user/*.cruds", "user/Patient.rs?gender=female", "user/Patient.rs?gender=male",
          "user/Observation.rs", "patient/*.cruds"]


def _filtered(store: FhirStore, policy: Policy, access: Access, ids: list[str]) -> list[str]:
    """What ``search_filter(access, "Patient")`` admits among the Patient rows ``ids``."""
    where = policy.search_filter(access, "Patient")
    with store.engine.connect() as conn:
        return sorted(conn.execute(select(R.c.id).where(
            R.c.resource_type == "Patient", R.c.id.in_(ids),
            *([] if where is None else [where]))).scalars())


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("username", [*sorted(USERS), "system"])
def test_visible_patients_equal_the_filter(county: County, store: FhirStore, username: str,
                                           scope: str) -> None:
    """``visible_patients`` (the work lists' scope filter: the policy decided once for the
    list, the SMART scopes in SQL) admits exactly what the Patient search filter admits, for
    every role and kind of token, inside and outside a unit of work."""
    policy = Policy(store.engine)
    secured = PolicyStore(store.engine, policy, b"test-audit-key-0123456789abcdef0")
    access = SYSTEM if username == "system" else replace(
        _access(username), scopes=frozenset({scope}))
    ids = PATIENTS[:-1]  # Patient rows only (the filter tests rows)
    expected = _filtered(store, policy, access, ids)
    with secured.read(access):
        got = policy.visible_patients(access, reversed(ids))
        state = UOW.get()
        assert state is not None
        # whatever the policy decided on the way is the probe's answer (may_read reuses it)
        assert all(policy.patient_visible(access, p) == v for p, v in dict(
            state.visible).items())
    assert got == expected
    assert policy.visible_patients(access, ids) == expected  # no unit of work: the filter
