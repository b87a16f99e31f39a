"""Work lists on a hand-built county with known answers (both backends), the gate's filter,
and the design claim that the latest visit alone sets the due date."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import ColumnElement, false

from kangqiao.chronic import worklists
from kangqiao.chronic.worklists import Scope, build
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM, Access, TrustedGate
from tests.cds.builders import (
    ORG,
    ROLE,
    TEAM,
    bp,
    care_team,
    condition,
    encounter,
    episode,
    lab,
    patient,
    put_all,
    referral,
)

TODAY = date(2026, 10, 28)
DOCTOR = Scope("doctor", ROLE)


def county() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [care_team()]

    def htn(pid: str, start: str, day: str | None, sbp: int = 0, dbp: int = 0,
            team: str | None = None) -> None:
        out.extend([patient(pid), condition(f"c-{pid}", pid), episode(f"e-{pid}", pid, "htn",
                                                                      start, team)])
        if day:
            out.append(encounter(f"v-{pid}", pid, day, "htn-followup"))
            out.append(bp(f"o-{pid}", pid, f"v-{pid}", day, sbp, dbp))

    htn("A", "2026-01-01", "2026-08-01", 130, 80, team=TEAM)  # due 11-01: this week
    out.append(encounter("hc-A", "A", "2026-03-01", "health-check"))
    htn("B", "2026-01-01", "2026-10-14", 150, 95)  # 2-week recheck due today (exactly 14 d)
    htn("C", "2026-01-01", "2026-10-13", 185, 112)  # urgent: referral follow-up, 1 day over
    out.extend([patient("D"), condition("c-D", "D", "E11"),
                episode("e-D", "D", "dm", "2026-01-01"),
                encounter("v-D", "D", "2026-06-01", "dm-followup"),
                lab("g-D", "D", "v-D", "2026-06-01", "14771-0", 6.0, "mmol/L")])
    htn("E", "2025-01-01", None)  # enrolled, never seen: first visit overdue, lost
    out.extend([patient("F", "1960-01-01"), condition("c-F", "F")])  # awaiting enrolment
    out.extend([patient("Y", "2000-01-01"), condition("c-Y", "Y")])  # 26: not yet managed
    htn("H", "2026-01-01", "2026-10-01", 128, 78)
    out.append(referral("sr-H", "H", "2026-10-20"))  # referred after the visit
    out.extend([patient("G", gp="PractitionerRole/other", org="Organization/o2"),
                condition("c-G", "G"),
                episode("e-G", "G", "htn", "2026-01-01", manager="PractitionerRole/other")])
    return out


@pytest.fixture
def loaded(store: FhirStore) -> FhirStore:
    put_all(store, county())
    return store


def _ids(lists: worklists.Worklists, name: str) -> list[str]:
    return [e.patient_id for e in lists.lists[name]]


def test_each_list_of_a_doctor(loaded: FhirStore) -> None:
    with loaded.read(SYSTEM) as uow:
        w = build(uow, DOCTOR, TODAY)
    assert w.patients == 8  # G belongs to another doctor
    assert _ids(w, "due_this_week") == ["B", "A"]  # by due date: 10-28, 11-01
    # HEARTS order: high risk first, then the longest overdue.
    assert _ids(w, "overdue") == ["C", "E", "D"]
    over = {e.patient_id: e.days_overdue for e in w.lists["overdue"]}
    assert over == {"C": 1, "E": 665, "D": 57}
    assert _ids(w, "uncontrolled") == ["C", "B"]
    assert _ids(w, "recheck_2w") == ["B"]
    assert sorted(_ids(w, "referral_follow_up")) == ["C", "H"]
    h = next(e for e in w.lists["referral_follow_up"] if e.patient_id == "H")
    assert h.due == date(2026, 11, 3)
    assert _ids(w, "not_seen_3m") == ["D"]  # 06-01 is more than 3 months before 10-28
    assert _ids(w, "not_seen_12m") == ["E"]
    assert "A" not in _ids(w, "annual_check_due") and "B" in _ids(w, "annual_check_due")
    assert [(e.patient_id, e.disease and e.disease.value)
            for e in w.lists["awaiting_enrolment"]] == [("F", "htn")]


def test_boundaries_move_with_today(loaded: FhirStore) -> None:
    def at(day: date) -> worklists.Worklists:
        with loaded.read(SYSTEM) as uow:
            return build(uow, DOCTOR, day)

    # B's recheck is due 10-28, 14 days after the uncontrolled visit of 10-14.
    assert "B" not in _ids(at(date(2026, 10, 28)), "overdue")
    assert "B" in _ids(at(date(2026, 10, 29)), "overdue")  # day 15
    assert "B" in _ids(at(date(2026, 10, 22)), "due_this_week")  # 6 days ahead
    assert "B" not in _ids(at(date(2026, 10, 21)), "due_this_week")  # 7 days ahead
    # D was seen on 06-01: "not seen in 3 months" from 09-01 on (HEARTS), not on 08-31.
    assert "D" not in _ids(at(date(2026, 8, 31)), "not_seen_3m")
    assert "D" in _ids(at(date(2026, 9, 1)), "not_seen_3m")


def test_team_and_organization_scopes(loaded: FhirStore) -> None:
    with loaded.read(SYSTEM) as uow:
        team = build(uow, Scope("team", TEAM), TODAY)
        clinic = build(uow, Scope("organization", ORG), TODAY)
        other = build(uow, Scope("organization", "Organization/o2"), TODAY)
    assert team.patients == 1 and _ids(team, "due_this_week") == ["A"]
    assert clinic.patients == 9  # G's episode is managed by o1 although G is registered at o2
    assert other.patients == 1


def test_doctor_and_team_scopes_find_episodes_by_manager_and_every_team(
        store: FhirStore) -> None:
    """Patients registered with another GP join a doctor's lists through their active
    episodes (the platform's ``care-manager-role`` / ``team`` index): any of an episode's
    teams counts, a finished episode does not."""
    other = "PractitionerRole/other"
    second_team = episode("e-J", "J", "htn", "2026-01-01", manager=other)
    second_team["team"] = [{"reference": "CareTeam/t2"}, {"reference": TEAM}]
    finished = dict(episode("e-K", "K", "htn", "2026-01-01"), status="finished")
    put_all(store, [
        care_team(), care_team("t2", other),
        patient("M", gp=other), episode("e-M", "M", "htn", "2026-01-01"),  # managed by r1
        patient("J", gp=other), second_team,
        patient("K", gp=other), finished,
        patient("N", gp=other), episode("e-N", "N", "htn", "2026-01-01", manager=other)])
    with store.read(SYSTEM) as uow:
        assert worklists.scope_patients(uow, DOCTOR) == ["J", "M"]
        assert worklists.scope_patients(uow, Scope("team", TEAM)) == ["J"]
        assert worklists.scope_patients(uow, Scope("team", "CareTeam/t2")) == ["J"]
    with store.write(SYSTEM) as uow:
        uow.delete("EpisodeOfCare", "e-M")
    with store.read(SYSTEM) as uow:
        assert worklists.scope_patients(uow, DOCTOR) == ["J"]


class HidingGate(TrustedGate):
    """Hides patient B, as the policy hides a patient outside the user's care."""

    def search_filter(self, access: Access, resource_type: str | None, *,
                      anchored: bool = False, few: bool = False) -> ColumnElement[bool] | None:
        r = schema.resource
        return (r.c.id != "B") if resource_type == "Patient" else None

    def may_read(self, access: Access, resource: dict[str, Any]) -> bool:
        subject = (resource.get("subject") or {}).get("reference")
        return resource.get("id") != "B" and subject != "Patient/B"


def test_the_gate_filter_applies(loaded: FhirStore) -> None:
    with FhirStore(loaded.engine, HidingGate()).read(SYSTEM) as uow:
        w = build(uow, DOCTOR, TODAY)
    assert w.patients == 7
    assert all("B" not in _ids(w, name) for name in worklists.LISTS)


def test_nothing_visible_is_an_empty_worklist(loaded: FhirStore) -> None:
    class Nobody(TrustedGate):
        def search_filter(self, access: Access, resource_type: str | None, *,
                          anchored: bool = False, few: bool = False) -> ColumnElement[bool] | None:
            return false()

    with FhirStore(loaded.engine, Nobody()).read(SYSTEM) as uow:
        w = build(uow, DOCTOR, TODAY)
    assert w.patients == 0 and not any(w.counts().values())


def test_a_bad_scope_reference_is_a_client_error() -> None:
    with pytest.raises(Exception, match="PractitionerRole"):
        Scope("doctor", "Patient/x")
