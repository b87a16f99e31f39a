"""_include / _revinclude and Patient/$everything over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

FHIR = {"Content-Type": "application/fhir+json"}


def _put(client: TestClient, resource: dict[str, Any]) -> None:
    r = client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource,
                   headers=FHIR)
    assert r.status_code in (200, 201), r.text


def _county(client: TestClient) -> None:
    _put(client, {"resourceType": "Organization", "id": "thc1", "name": "青山镇卫生院"})
    _put(client, {"resourceType": "Practitioner", "id": "gp1", "name": [{"text": "李医生"}]})
    for pid in ("a", "b"):
        _put(client, {"resourceType": "Patient", "id": pid,
                      "managingOrganization": {"reference": "Organization/thc1"},
                      "generalPractitioner": [{"reference": "Practitioner/gp1"}]})
    for n, pid in enumerate(["a", "a", "b"]):
        _put(client, {"resourceType": "Observation", "id": f"o{n}", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
                      "subject": {"reference": f"Patient/{pid}"},
                      "performer": [{"reference": "Practitioner/gp1"}]})
    _put(client, {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/a"},
                  "code": {"text": "高血压"}})
    client.delete("/fhir/Observation/o1")


def _ids(bundle: dict[str, Any], mode: str) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in bundle.get("entry", []) if e["search"]["mode"] == mode}


def test_include_and_revinclude(client: TestClient) -> None:
    _county(client)
    b = client.get("/fhir/Observation", params={"subject": "Patient/a",
                                                "_include": "Observation:subject"}).json()
    assert _ids(b, "match") == {"Observation/o0"}
    assert _ids(b, "include") == {"Patient/a"}
    assert b["total"] == 1  # includes do not count
    b = client.get("/fhir/Patient", params={"_id": "a",
                                            "_revinclude": "Observation:subject"}).json()
    assert _ids(b, "include") == {"Observation/o0"}  # o1 is deleted
    b = client.get("/fhir/Patient", params=[("_id", "a"), ("_include", "*"),
                                            ("_revinclude", "Condition:subject")]).json()
    assert _ids(b, "include") == {"Organization/thc1", "Practitioner/gp1", "Condition/c1"}
    b = client.get("/fhir/Observation", params=[
        ("_id", "o2"), ("_include", "Observation:subject"),
        ("_include:iterate", "Patient:organization")]).json()
    assert _ids(b, "include") == {"Patient/b", "Organization/thc1"}
    b = client.get("/fhir/Observation", params={"_id": "o2",
                                                "_include": "Observation:subject:Group"}).json()
    assert _ids(b, "include") == set()
    assert client.get("/fhir/Observation", params={"_include": "nonsense"}).status_code == 400


def test_patient_everything(client: TestClient) -> None:
    _county(client)
    b = client.get("/fhir/Patient/a/$everything").json()
    assert _ids(b, "match") == {"Patient/a", "Observation/o0", "Condition/c1"}
    assert b["total"] == 3
    b = client.get("/fhir/Patient/a/$everything", params={"_type": "Observation"}).json()
    assert _ids(b, "match") == {"Observation/o0"}
    page = client.get("/fhir/Patient/a/$everything", params={"_count": 2}).json()
    assert len(page["entry"]) == 2
    assert any(link["relation"] == "next" for link in page["link"])
    assert client.get("/fhir/Patient/zz/$everything").status_code == 404
    assert client.get("/fhir/Patient/a/$everything",
                      params={"_type": "Nope"}).status_code == 400
    assert client.get("/fhir/Patient/a/$everything",
                      params={"_since": "garbage"}).status_code == 400


def test_search_pages_stay_stable_while_data_changes(client: TestClient) -> None:
    for pid in ("p2", "p4", "p6", "p8", "pa"):
        _put(client, {"resourceType": "Patient", "id": pid, "gender": "male"})
    first = client.get("/fhir/Patient", params={"gender": "male", "_count": 2}).json()
    assert [e["resource"]["id"] for e in first["entry"]] == ["p2", "p4"]
    assert first["total"] == 5
    # a new match sorting before the cursor, and a deletion behind it, shift nothing
    _put(client, {"resourceType": "Patient", "id": "p1", "gender": "male"})
    client.delete("/fhir/Patient/p2")
    seen = [e["resource"]["id"] for e in first["entry"]]
    page = first
    while nxt := next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None):
        page = client.get(nxt.replace("http://testserver", "")).json()
        seen += [e["resource"]["id"] for e in page["entry"]]
    assert seen == ["p2", "p4", "p6", "p8", "pa"]
    prev = next(lk["url"] for lk in page["link"] if lk["relation"] == "previous")
    back = client.get(prev.replace("http://testserver", "")).json()
    assert [e["resource"]["id"] for e in back["entry"]] == ["p6", "p8"]
    assert client.get("/fhir/Patient", params={"_after": "nonsense"}).status_code == 400
