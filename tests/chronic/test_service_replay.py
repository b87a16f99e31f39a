"""Replay synthetic patients through the store and the service, against the pure rules fed
straight from the generator's resources; and the work list's due date (latest visit only)
against the full-history rules."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

import pytest

from kangqiao.chronic import service, worklists
from kangqiao.chronic.rules import (
    BloodPressure,
    Disease,
    FollowUpVisit,
    Patient,
    assess_history,
    protocol_state,
)
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM
from kangqiao.synth.generate import iter_resources
from tests.cds.builders import put_all

END = date(2026, 11, 1)  # the generator's default end date
KINDS = {"htn-followup": Disease.HYPERTENSION, "dm-followup": Disease.DIABETES_T2}


def _subject(r: dict[str, Any]) -> str | None:
    for key in ("subject", "patient", "for"):
        ref = (r.get(key) or {}).get("reference", "")
        if ref.startswith("Patient/"):
            return str(ref[8:])
    return str(r["id"]) if r["resourceType"] == "Patient" else None


@pytest.fixture(scope="module")
def synthetic() -> dict[str, list[dict[str, Any]]]:
    """Managed patients with at least 6 follow-ups, each with their own resources."""
    by_patient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in iter_resources(400, 7, defect_rate=0.0, duplicate_rate=0.0):
        pid = _subject(r)
        if pid and r["resourceType"] in ("Patient", "Condition", "EpisodeOfCare", "Encounter",
                                         "Observation", "ServiceRequest"):
            by_patient[pid].append(r)
    chosen: dict[str, list[dict[str, Any]]] = {}
    for pid, rs in by_patient.items():
        visits = [r for r in rs if r["resourceType"] == "Encounter" and any(
            c["code"] in KINDS for t in r.get("type", []) for c in t["coding"])]
        if len(visits) >= 6 and len(chosen) < 3:
            chosen[pid] = rs
    assert len(chosen) == 3
    return chosen


def _raw_visits(resources: list[dict[str, Any]]) -> list[FollowUpVisit]:
    """The generator's follow-ups read directly (local date = the dateTime's own date)."""
    values: dict[str, dict[str, float]] = defaultdict(dict)
    for obs in resources:
        if obs["resourceType"] != "Observation" or "encounter" not in obs:
            continue
        enc = obs["encounter"]["reference"][10:]
        code = obs["code"]["coding"][0]["code"]
        if code == "85354-9":
            for comp in obs["component"]:
                values[enc][comp["code"]["coding"][0]["code"]] = comp["valueQuantity"]["value"]
        elif code == "14771-0":
            values[enc]["fpg"] = obs["valueQuantity"]["value"]
    out = []
    for enc in resources:
        if enc["resourceType"] != "Encounter":
            continue
        day = date.fromisoformat(enc["period"]["start"][:10])
        v = values[enc["id"]]
        for t in enc.get("type", []):
            disease = KINDS.get(t["coding"][0]["code"])
            if disease is not None:
                bp = BloodPressure(int(v["8480-6"]), int(v["8462-4"])) if "8480-6" in v else None
                out.append(FollowUpVisit(day, disease, bp=bp, fasting_glucose=v.get("fpg")))
    return out


def test_service_replays_every_visit_like_the_rules(
        store: FhirStore, synthetic: dict[str, list[dict[str, Any]]]) -> None:
    for pid, resources in synthetic.items():
        put_all(store, resources)
        person = next(r for r in resources if r["resourceType"] == "Patient")
        raw = _raw_visits(resources)
        with store.read(SYSTEM) as uow:
            state = service.protocol_state_for(uow, pid, END)
        stored_visits = state.record.visits
        assert sorted((v.date, v.disease, v.bp, v.fasting_glucose) for v in stored_visits) == \
            sorted((v.date, v.disease, v.bp, v.fasting_glucose) for v in raw), pid
        patient = Patient(date.fromisoformat(person["birthDate"]),
                          conditions=state.record.patient.conditions)
        expected = assess_history(patient, raw)
        got = assess_history(state.record.patient, stored_visits)
        assert [(a.visit.date, a.classification, a.due_date, a.uncontrolled_run) for a in got] \
            == [(a.visit.date, a.classification, a.due_date, a.uncontrolled_run)
                for a in expected], pid
        for disease, (_, enrolled) in state.record.episodes.items():
            full = protocol_state(patient, raw, disease, END, enrolled)
            assert state.states[disease].next_due == full.next_due, (pid, disease)


def test_worklist_due_dates_match_the_full_history(
        store: FhirStore, synthetic: dict[str, list[dict[str, Any]]]) -> None:
    for resources in synthetic.values():
        put_all(store, resources)
    org = next(r for r in next(iter(synthetic.values()))
               if r["resourceType"] == "Patient")["managingOrganization"]["reference"]
    for today in (date(2025, 6, 30), END):
        with store.read(SYSTEM) as uow:
            lists = worklists.build(uow, worklists.Scope("organization", org), today)
            due = {(e.patient_id, e.disease): e.due for name in ("overdue", "due_this_week")
                   for e in lists.lists[name]}
            for pid in synthetic:
                state = service.protocol_state_for(uow, pid, today)
                for disease, s in state.states.items():
                    if s.overdue or today <= s.next_due < date.fromordinal(
                            today.toordinal() + 7):
                        assert due.get((pid, disease)) == s.next_due, (pid, disease, today)
