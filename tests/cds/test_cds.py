"""CDS Hooks: discovery, patient-view with and without prefetch (local store and a live
fhirServer), Accept-Language, order-select, and JSON errors for bad requests."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kangqiao.cds.hooks import ORDER_SELECT, PATIENT_VIEW, prefetch_templates
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM
from tests.cds.builders import bp, condition, encounter, episode, lab, patient, put_all

HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def urgent_patient(store: FhirStore) -> str:
    """Hypertension and diabetes, BP 185/112 at the last visit, HbA1c a year old."""
    put_all(store, [
        patient("C", "1966-05-01"), condition("c1", "C"), condition("c2", "C", "E11"),
        episode("e1", "C", "htn", "2024-01-01"), episode("e2", "C", "dm", "2024-01-01"),
        encounter("v1", "C", "2024-06-01", "htn-followup", "dm-followup"),
        bp("o1", "C", "v1", "2024-06-01", 185, 112),
        lab("g1", "C", "v1", "2024-06-01", "14771-0", 8.2, "mmol/L"),
        lab("a1", "C", None, "2024-05-20", "4548-4", 8.1, "%"),
    ])
    return "C"


def _last_reading(client: TestClient, store: FhirStore, sbp: int, dbp: int
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The cards of a managed hypertensive whose one visit recorded ``sbp``/``dbp`` (written
    as an Observation, not through the form), and among them the data-check cards."""
    put_all(store, [
        patient("C", "1966-05-01"), condition("c1", "C"),
        episode("e1", "C", "htn", "2024-01-01"),
        encounter("v1", "C", "2024-06-01", "htn-followup"),
        bp("o1", "C", "v1", "2024-06-01", sbp, dbp),
    ])
    cards = client.post(f"/cds-services/{PATIENT_VIEW}", json=_request()).json()["cards"]
    return cards, [c for c in cards if "数值可疑" in c["summary"]]


def test_an_implausible_reading_gets_a_check_card_not_an_urgent_referral(
        client: TestClient, store: FhirStore) -> None:
    # 1389 mmHg: 138 typed with a digit too many (not through the form, which refuses it)
    cards, check = _last_reading(client, store, 1389, 85)
    _check_cards(cards)
    assert len(check) == 1 and check[0]["indicator"] == "warning"
    assert "收缩压 1389 mmHg（合理范围 60-260）" in check[0]["detail"]
    assert "WHO HEARTS" in check[0]["source"]["label"]
    assert not any("HTN 3(1)" in c["source"]["label"] for c in cards)  # no urgent referral
    english = client.post(f"/cds-services/{PATIENT_VIEW}", json=_request(),
                          headers={"Accept-Language": "en"}).json()["cards"]
    assert any("Systolic blood pressure 1389 mmHg (plausible: 60-260)" in c["detail"]
               for c in english)


def test_swapped_blood_pressure_fields_are_set_aside(client: TestClient,
                                                     store: FhirStore) -> None:
    # 85/138 is 138/85 typed into the wrong fields: DBP >= 110 would be an urgent referral
    cards, check = _last_reading(client, store, 85, 138)
    assert len(check) == 1 and "血压（收缩压不高于舒张压） 85/138 mmHg" in check[0]["detail"]
    assert "合理范围" not in check[0]["detail"]  # no range: the rule is the two values' order
    assert not any("HTN 3(1)" in c["source"]["label"] for c in cards)


def _request(hook: str = "patient-view", **extra: Any) -> dict[str, Any]:
    return {"hook": hook, "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "PractitionerRole/r1", "patientId": "C"}, **extra}


def _check_cards(cards: list[dict[str, Any]]) -> None:
    assert cards
    assert len({c["uuid"] for c in cards}) == len(cards)
    for c in cards:
        assert c["indicator"] in ("info", "warning", "critical")
        assert c["source"]["label"] and c["source"]["url"].startswith("http")
        assert c["detail"] and len(c["summary"]) <= 140


def test_discovery_declares_both_hooks_and_prefetch(client: TestClient) -> None:
    services = {s["id"]: s for s in client.get("/cds-services").json()["services"]}
    assert services[PATIENT_VIEW]["hook"] == "patient-view"
    assert services[ORDER_SELECT]["hook"] == "order-select"
    prefetch = services[PATIENT_VIEW]["prefetch"]
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    assert {"conditions", "observations", "medications"} <= set(prefetch)


def test_patient_view_from_the_local_store_in_chinese(client: TestClient,
                                                      urgent_patient: str) -> None:
    response = client.post(f"/cds-services/{PATIENT_VIEW}", json=_request())
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    _check_cards(cards)
    assert all(HAN.search(c["summary"]) for c in cards)
    critical = [c for c in cards if c["indicator"] == "critical"]
    assert any("HTN 3(1)" in c["source"]["label"] for c in critical)  # SBP >= 180
    assert any("HbA1c" in c["detail"] for c in cards)  # a year old: missing recent result
    assert any("2周" in c["detail"] for c in cards)  # what to do next, and by when


def test_accept_language_english(client: TestClient, urgent_patient: str) -> None:
    cards = client.post(f"/cds-services/{PATIENT_VIEW}", json=_request(),
                        headers={"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"}).json()["cards"]
    _check_cards(cards)
    assert not any(HAN.search(c["summary"]) for c in cards)
    assert any(c["summary"].startswith("Hypertension: Urgent") for c in cards)


def test_prefetch_is_used_instead_of_fetching(client: TestClient, store: FhirStore,
                                              urgent_patient: str) -> None:
    prefetch: dict[str, Any] = {}
    with store.read(SYSTEM) as uow:
        for key, template in prefetch_templates().items():
            path = template.replace("{{context.patientId}}", "C")
            rtype, _, query = path.partition("?")
            if not query:
                prefetch[key] = uow.read(*rtype.split("/")).content
                continue
            params = [tuple(p.split("=", 1)) for p in query.split("&")]
            page = uow.search(rtype, params, count=100)  # type: ignore[arg-type]
            prefetch[key] = {"resourceType": "Bundle", "type": "searchset",
                             "entry": [{"resource": s.content} for s in page.items]}
    # An unreachable fhirServer proves nothing is fetched when everything is prefetched.
    body = _request(prefetch=prefetch, fhirServer="http://127.0.0.1:9/fhir")
    response = client.post(f"/cds-services/{PATIENT_VIEW}", json=body)
    assert response.status_code == 200, response.text
    _check_cards(response.json()["cards"])
    del prefetch["observations"]  # now one key must be fetched: the server is unreachable
    response = client.post(f"/cds-services/{PATIENT_VIEW}", json=body)
    assert response.status_code == 412 and "error" in response.json()


def test_missing_data_is_fetched_from_the_fhir_server(client: TestClient, live_server: str,
                                                      system_token: str,
                                                      urgent_patient: str) -> None:
    body = _request(fhirServer=f"{live_server}/fhir",
                    fhirAuthorization={"access_token": system_token, "token_type": "Bearer",
                                       "scope": "system/*.rs", "expires_in": 300,
                                       "subject": "cds"})
    response = client.post(f"/cds-services/{PATIENT_VIEW}", json=body)
    assert response.status_code == 200, response.text
    assert any(c["indicator"] == "critical" for c in response.json()["cards"])
    body["fhirAuthorization"]["access_token"] = "not-a-token"
    refused = client.post(f"/cds-services/{PATIENT_VIEW}", json=body)
    assert refused.status_code == 401 and "error" in refused.json()


def _order(atc: str) -> dict[str, Any]:
    draft = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "MedicationRequest", "id": "m1", "status": "draft", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc",
                                                  "code": atc}]},
        "subject": {"reference": "Patient/C"}}}]}
    body = _request("order-select")
    body["context"].update(selections=["MedicationRequest/m1"], draftOrders=draft)
    return body


def test_order_select_for_antihypertensives_only(client: TestClient,
                                                 urgent_patient: str) -> None:
    cards = client.post(f"/cds-services/{ORDER_SELECT}", json=_order("C08CA01"),
                        headers={"Accept-Language": "en"}).json()["cards"]
    _check_cards(cards)
    assert all(c["summary"].startswith("Hypertension") for c in cards)
    assert any("Intensify" in c["summary"] for c in cards)
    other = client.post(f"/cds-services/{ORDER_SELECT}", json=_order("J01CA04"))
    assert other.status_code == 200 and other.json()["cards"] == []


@pytest.mark.parametrize(("body", "status"), [
    (b"{not json", 400),
    (b"[]", 400),
    (b'{"hook": "order-sign", "hookInstance": "x", "context": {"patientId": "C"}}', 400),
    (b'{"hook": "patient-view", "context": {"patientId": "C"}}', 400),
    (b'{"hook": "patient-view", "hookInstance": "x", "context": {}}', 400),
    (b'{"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "C"},'
     b' "fhirServer": "ftp://x"}', 400),
    (b'{"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "C"},'
     b' "prefetch": {"patient": 5}}', 400),
    (b'{"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "nobody"}}',
     404),
])
def test_bad_requests_get_json_errors(client: TestClient, urgent_patient: str, body: bytes,
                                      status: int) -> None:
    response = client.post(f"/cds-services/{PATIENT_VIEW}", content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert isinstance(response.json()["error"], str)


def test_unknown_service_is_404(client: TestClient) -> None:
    response = client.post("/cds-services/nope", json=_request())
    assert response.status_code == 404 and "error" in response.json()
