"""The /chronic routes: record a follow-up and see the classification and the work list."""

from __future__ import annotations

from fastapi.testclient import TestClient

from kangqiao.fhir.store.store import FhirStore
from tests.cds.builders import ORG, ROLE, patient, put_all


def test_enrol_record_state_and_worklist(client: TestClient, store: FhirStore) -> None:
    put_all(store, [patient("p1", "1950-03-01")])
    enrolled = client.post("/chronic/patients/p1/enrolments", json={
        "disease": "htn", "practitioner": ROLE, "organization": ORG, "when": "2026-01-05"})
    assert enrolled.status_code == 201, enrolled.text
    done = client.post("/chronic/patients/p1/follow-ups", json={
        "disease": "htn", "practitioner": ROLE, "when": "2026-01-10T09:00:00+08:00",
        "answers": {"bp-systolic": 186, "bp-diastolic": 96}})
    assert done.status_code == 201, done.text
    body = done.json()
    assert body["classification"] == "2" and body["referral"]["severity"] == "critical"
    assert body["next_visit"]["due"] == "2026-01-24"
    state = client.get("/chronic/patients/p1/state", params={"today": "2026-01-30"}).json()
    assert state["diseases"]["htn"]["overdue_days"] == 6
    referred = client.post("/chronic/patients/p1/referrals", json={
        "disease": "htn", "practitioner": ROLE, "performer": "Organization/cardio",
        "when": "2026-01-10"})
    assert referred.status_code == 201, referred.text
    lists = client.get("/chronic/worklists", params={
        "scope": "organization", "ref": ORG, "today": "2026-01-30"}).json()
    assert lists["counts"]["overdue"] == 1 and lists["counts"]["referral_follow_up"] == 1
    assert client.get("/chronic/citations").json()["citations"]


def test_bad_input_is_a_4xx(client: TestClient, store: FhirStore) -> None:
    put_all(store, [patient("p1")])
    assert client.post("/chronic/patients/p1/follow-ups", json={
        "disease": "copd", "practitioner": ROLE, "answers": {}}).status_code == 400
    assert client.post("/chronic/patients/p1/follow-ups", json={
        "disease": "htn", "practitioner": ROLE, "when": "yesterday",
        "answers": {}}).status_code == 400
    assert client.post("/chronic/patients/p1/follow-ups", json={
        "disease": "htn", "practitioner": ROLE,
        "answers": {"bp-systolic": 20, "bp-diastolic": 80}}).status_code == 422
    assert client.get("/chronic/worklists", params={
        "scope": "doctor", "ref": "Patient/x"}).status_code == 400
    assert client.get("/chronic/patients/nobody/state").status_code == 404
