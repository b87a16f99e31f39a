"""Masking per role over the real HTTP app: who sees the full resident ID number and phone,
who sees them masked (and the MASKED tag), and that a masked value written back never
replaces the stored one."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from kangqiao.fhir.store.store import FhirStore
from kangqiao.security import masking
from kangqiao.security.fieldcrypt import blind
from kangqiao.security.gate import SYSTEM
from tests.security.conftest import FHIR, County
from tests.security.test_fieldcrypt import raw_database

RESIDENT_ID = "https://kangqiao.example/fhir/sid/resident-id"
ID_NUMBER = {"p1": "431299195908150022", "p4": "431299197301130016"}
PHONE = {"p1": "19873654963", "p4": "13812345678"}
LINE = "城关镇柳寿村3组17号"


@pytest.fixture
def identified(county: County, store: FhirStore) -> County:
    with store.write(SYSTEM) as uow:
        for pid in ("p1", "p4"):
            body = dict(uow.read("Patient", pid).content or {})
            body.pop("meta", None)
            body["identifier"] = [{"system": RESIDENT_ID, "value": ID_NUMBER[pid]}]
            body["telecom"] = [{"system": "phone", "value": PHONE[pid]}]
            body["address"] = [{"line": [LINE], "district": "康桥县"}]
            uow.update("Patient", pid, body)
    return county


def _get(client: TestClient, county: County, user: str, path: str, **headers: str
         ) -> dict[str, Any]:
    r = client.get(f"/fhir/{path}", headers=county.headers(user, **headers))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _shown(patient: dict[str, Any]) -> tuple[str, str, str, bool]:
    tags = {t.get("code") for t in (patient.get("meta") or {}).get("security") or ()}
    return (patient["identifier"][0]["value"], patient["telecom"][0]["value"],
            patient["address"][0]["line"][0], "MASKED" in tags)


FULL = (ID_NUMBER["p1"], PHONE["p1"], LINE, False)
MASKED = ("431299********0022", "198****4963", "城关镇********", True)


@pytest.mark.parametrize(("user", "expected"), [
    ("gp1", FULL),  # the patient's GP at the managing township centre
    ("nurse1", FULL),  # staff of the managing organisation
    ("vd1", FULL),  # village doctor: the township centre above the clinic manages p1
    ("resident1", FULL),  # the resident themself
    ("hospdoc", MASKED),  # the supervising county hospital
    ("ph", MASKED),  # CDC, county-wide public health
    ("countyadmin", MASKED),
])
def test_read_and_search_mask_per_role(app_client: TestClient, identified: County, user: str,
                                       expected: tuple[str, str, str, bool]) -> None:
    assert _shown(_get(app_client, identified, user, "Patient/p1")) == expected
    bundle = _get(app_client, identified, user, f"Patient?identifier={ID_NUMBER['p1']}")
    assert [_shown(e["resource"]) for e in bundle["entry"]] == [expected]
    assert [_shown(e["resource"]) for e in _get(
        app_client, identified, user, f"Patient?phone={PHONE['p1']}")["entry"]] == [expected]


def test_everything_history_and_referral_recipient(app_client: TestClient,
                                                   identified: County) -> None:
    everything = _get(app_client, identified, "countyadmin", "Patient/p1/$everything")
    patients = [e["resource"] for e in everything["entry"]
                if e["resource"]["resourceType"] == "Patient"]
    assert [_shown(p) for p in patients] == [MASKED]
    history = _get(app_client, identified, "ph", "Patient/p1/_history")
    assert {_shown(e["resource"])[3] for e in history["entry"]
            if "identifier" in e["resource"]} == {True}
    # the cardiologist sees p4 through a referral: masked; breaking the glass: in full
    p4 = _get(app_client, identified, "spec", "Patient/p4")
    assert _shown(p4)[:2] == ("431299********0016", "138****5678")
    glass = _get(app_client, identified, "spec", "Patient/p1",
                 **{"X-Break-Glass": "chest%20pain%20in%20ED"})
    assert _shown(glass) == FULL


def test_a_masked_value_written_back_keeps_the_stored_one(
        app_client: TestClient, identified: County, store: FhirStore) -> None:
    shown = _get(app_client, identified, "hospdoc", "Patient/p1")
    assert _shown(shown) == MASKED
    shown["birthDate"] = "1959-08-16"
    r = app_client.put("/fhir/Patient/p1", json=shown, headers={
        **identified.headers("hospdoc"), "Content-Type": FHIR})
    assert r.status_code == 200, r.text
    assert _shown(r.json()) == MASKED  # the answer shows what a read would
    with store.read(SYSTEM) as uow:
        stored = uow.read("Patient", "p1").content or {}
    assert _shown(stored) == FULL  # the real values stay
    assert stored["birthDate"] == "1959-08-16"
    assert "security" not in stored["meta"]
    # a masked value that matches nothing stored is refused, not stored
    copy = {**shown, "id": "p9", "managingOrganization": {
        "reference": "Organization/org-county-hospital"}}
    r = app_client.put("/fhir/Patient/p9", json=copy, headers={
        **identified.headers("hospdoc"), "Content-Type": FHIR})
    assert r.status_code == 422, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


def test_masks_at_their_boundaries() -> None:
    assert masking.mask_id("110101199001011234") == "110101********1234"
    assert masking.mask_phone("13812345678") == "138****5678"
    assert masking.mask_phone("12345") == "***45"
    assert masking.mask_id("123456") == "**3456"
    for kind, value in [("id", "110101199001011234"), ("phone", "13812345678"),
                        ("line", "城关镇柳寿村3组17号"), ("text", "ab")]:
        shown = masking.MASKS[kind](value)
        assert masking.is_masked(shown) and not masking.is_masked(value)
        assert masking.MASKS[kind](shown) == shown or kind in ("line", "text")


def test_searched_numbers_stay_out_of_the_audit_trail(
        app_client: TestClient, identified: County, engine: Engine) -> None:
    for user in ("gp1", "countyadmin"):
        _get(app_client, identified, user, f"Patient?identifier={RESIDENT_ID}|{ID_NUMBER['p1']}")
        _get(app_client, identified, user, f"Observation?subject:Patient.phone={PHONE['p1']}")
    raw = raw_database(engine)
    assert ID_NUMBER["p1"].encode() not in raw and PHONE["p1"].encode() not in raw
    assert blind(ID_NUMBER["p1"]).encode() in raw  # the trail still says who was looked for
