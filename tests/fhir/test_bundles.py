"""Batch and transaction bundles: order, reference resolution, all-or-nothing."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from kangqiao.fhir.store import schema

FHIR = {"Content-Type": "application/fhir+json"}
ID_SYSTEM = "urn:oid:2.16.156.10011.1.1"


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post_entry(resource: dict[str, Any], full_url: str | None = None,
               **request: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"resource": resource,
                             "request": {"method": "POST", "url": resource["resourceType"],
                                         **request}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def bp(subject: str, systolic: float = 150) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": subject},
        "effectiveDateTime": "2026-11-01T09:00:00+08:00",
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": systolic, "unit": "mmHg",
                               "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 92, "unit": "mmHg",
                               "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
        ],
    }


def person(ident: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": ID_SYSTEM, "value": ident}],
            "name": [{"text": "张伟"}]}


def count(engine: Engine, table: Any = schema.resource) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_transaction_resolves_urn_uuid_and_returns_locations(client: TestClient) -> None:
    tx = bundle("transaction",
                post_entry(bp("urn:uuid:5c0b-p"), "urn:uuid:obs-1"),
                post_entry(person("1"), "urn:uuid:5c0b-p"))
    r = client.post("/fhir", json=tx, headers=FHIR)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "transaction-response"
    obs_entry, pat_entry = out["entry"]
    assert obs_entry["response"]["status"] == "201"
    assert pat_entry["response"]["location"].startswith("http://testserver/fhir/Patient/")
    assert pat_entry["response"]["etag"] == 'W/"1"'
    pid = pat_entry["resource"]["id"]
    assert obs_entry["resource"]["subject"]["reference"] == f"Patient/{pid}"


def test_transaction_is_all_or_nothing_and_names_the_entry(client: TestClient,
                                                           engine: Engine) -> None:
    bad = bp("urn:uuid:p")
    bad["status"] = "finished"  # not in the required ObservationStatus value set
    tx = bundle("transaction", post_entry(person("2"), "urn:uuid:p"),
                post_entry(bp("urn:uuid:p")), post_entry(bad))
    r = client.post("/fhir", json=tx, headers=FHIR)
    assert r.status_code == 422
    issue = r.json()["issue"][0]
    assert issue["diagnostics"].startswith("Bundle.entry[2]")
    assert issue["expression"] == ["Bundle.entry[2].resource.status"]
    assert count(engine) == 0
    assert count(engine, schema.outbox) == 0
    assert count(engine, schema.search_token) == 0


def test_transaction_order_delete_post_put_get(client: TestClient) -> None:
    client.put("/fhir/Patient/old", json={"resourceType": "Patient", "id": "old"}, headers=FHIR)
    tx = bundle(
        "transaction",
        {"request": {"method": "GET", "url": "Patient?identifier=" + ID_SYSTEM + "|3"}},
        {"resource": {"resourceType": "Patient", "id": "put1", "gender": "male"},
         "request": {"method": "PUT", "url": "Patient/put1"}},
        post_entry(person("3")),
        {"request": {"method": "DELETE", "url": "Patient/old"}},
    )
    out = client.post("/fhir", json=tx, headers=FHIR).json()
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses == ["200", "201", "201", "204"]
    # GET ran last, so it sees the POSTed patient
    assert out["entry"][0]["resource"]["total"] == 1
    assert client.get("/fhir/Patient/old").status_code == 410


def test_conditional_create_and_conditional_reference_in_transaction(client: TestClient) -> None:
    existing = client.post("/fhir/Patient", json=person("4"), headers=FHIR).json()
    tx = bundle("transaction",
                post_entry(person("4"), "urn:uuid:p4", ifNoneExist=f"identifier={ID_SYSTEM}|4"),
                post_entry(bp("urn:uuid:p4")),
                post_entry(bp(f"Patient?identifier={ID_SYSTEM}|4")))
    out = client.post("/fhir", json=tx, headers=FHIR).json()
    assert out["entry"][0]["response"]["status"] == "200"
    ref = f"Patient/{existing['id']}"
    assert out["entry"][1]["resource"]["subject"]["reference"] == ref
    assert out["entry"][2]["resource"]["subject"]["reference"] == ref
    missing = bundle("transaction", post_entry(bp(f"Patient?identifier={ID_SYSTEM}|none")))
    r = client.post("/fhir", json=missing, headers=FHIR)
    assert r.status_code == 412 and "Bundle.entry[0]" in r.json()["issue"][0]["diagnostics"]


def test_transaction_patch_entry(client: TestClient) -> None:
    client.put("/fhir/Patient/x", json={"resourceType": "Patient", "id": "x"}, headers=FHIR)
    ops = base64.b64encode(orjson.dumps([{"op": "add", "path": "/gender",
                                          "value": "female"}])).decode()
    tx = bundle("transaction", {"resource": {"resourceType": "Binary",
                                             "contentType": "application/json-patch+json",
                                             "data": ops},
                                "request": {"method": "PATCH", "url": "Patient/x"}})
    out = client.post("/fhir", json=tx, headers=FHIR).json()
    assert out["entry"][0]["resource"]["gender"] == "female"


def test_batch_entries_are_independent(client: TestClient, engine: Engine) -> None:
    bad = bp("Patient/p")
    del bad["code"]
    out = client.post("/fhir", json=bundle("batch", post_entry(person("5")), post_entry(bad),
                                           {"request": {"method": "GET",
                                                        "url": "Patient/none"}}),
                      headers=FHIR).json()
    assert out["type"] == "batch-response"
    assert [e["response"]["status"] for e in out["entry"]] == ["201", "422", "404"]
    assert out["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert count(engine) == 1


def test_bundle_shape_errors(client: TestClient) -> None:
    assert client.post("/fhir", json={"resourceType": "Patient"}, headers=FHIR
                       ).status_code == 400
    assert client.post("/fhir", json=bundle("collection"), headers=FHIR).status_code == 400
    r = client.post("/fhir", json=bundle("transaction", {"request": {"method": "FROB",
                                                                     "url": "Patient"}}),
                    headers=FHIR)
    assert r.status_code == 400
    r = client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction",
                                   "entry": "nope"}, headers=FHIR)
    assert r.status_code == 400
