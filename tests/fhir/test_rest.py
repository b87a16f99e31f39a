"""The FHIR RESTful interactions over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient

FHIR = "application/fhir+json"


def patient(family: str = "王", given: str = "秀英", ident: str | None = None,
            **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "gender": "female",
                            "birthDate": "1958-03-02",
                            "name": [{"text": family + given, "family": family,
                                      "given": [given]}], **extra}
    if ident:
        body["identifier"] = [{"system": "urn:oid:2.16.156.10011.1.1", "value": ident}]
    return body


def post(client: TestClient, body: Any, path: str = "/fhir/Patient",
         **headers: str) -> Any:
    return client.post(path, json=body, headers={"Content-Type": FHIR, **headers})


def test_create_read_vread(client: TestClient) -> None:
    r = post(client, patient(id="ignored"))
    assert r.status_code == 201
    body = r.json()
    pid = body["id"]
    assert pid != "ignored"
    assert body["meta"]["versionId"] == "1"
    assert r.headers["ETag"] == 'W/"1"'
    assert r.headers["Location"].endswith(f"/fhir/Patient/{pid}/_history/1")
    assert "Last-Modified" in r.headers
    assert r.headers["content-type"].startswith("application/fhir+json")

    got = client.get(f"/fhir/Patient/{pid}")
    assert got.status_code == 200 and got.json() == body
    assert client.get(f"/fhir/Patient/{pid}/_history/1").json() == body
    assert client.get(f"/fhir/Patient/{pid}/_history/2").status_code == 404
    assert client.get("/fhir/Patient/nope").status_code == 404


def test_update_versions_and_update_as_create(client: TestClient) -> None:
    r = client.put("/fhir/Patient/p1", json=patient(id="p1"), headers={"Content-Type": FHIR})
    assert r.status_code == 201 and r.json()["meta"]["versionId"] == "1"
    r = client.put("/fhir/Patient/p1", json=patient(id="p1", given="桂兰"),
                   headers={"Content-Type": FHIR})
    assert r.status_code == 200 and r.json()["meta"]["versionId"] == "2"
    assert r.headers["ETag"] == 'W/"2"'
    # id in body must agree with the URL
    bad = client.put("/fhir/Patient/p1", json=patient(id="p2"), headers={"Content-Type": FHIR})
    assert bad.status_code == 400
    assert bad.json()["resourceType"] == "OperationOutcome"


def test_if_match_and_conditional_reads(client: TestClient) -> None:
    client.put("/fhir/Patient/p1", json=patient(id="p1"), headers={"Content-Type": FHIR})
    stale = client.put("/fhir/Patient/p1", json=patient(id="p1"),
                       headers={"Content-Type": FHIR, "If-Match": 'W/"7"'})
    assert stale.status_code == 412
    ok = client.put("/fhir/Patient/p1", json=patient(id="p1"),
                    headers={"Content-Type": FHIR, "If-Match": 'W/"1"'})
    assert ok.status_code == 200
    assert client.get("/fhir/Patient/p1", headers={"If-None-Match": 'W/"2"'}).status_code == 304
    assert client.get("/fhir/Patient/p1", headers={"If-None-Match": 'W/"1"'}).status_code == 200
    modified = ok.headers["Last-Modified"]
    assert client.get("/fhir/Patient/p1",
                      headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get("/fhir/Patient/p1", headers={
        "If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200


def test_delete_is_logical_and_gives_410(client: TestClient) -> None:
    client.put("/fhir/Patient/p1", json=patient(id="p1"), headers={"Content-Type": FHIR})
    r = client.delete("/fhir/Patient/p1")
    assert r.status_code == 204 and r.headers["ETag"] == 'W/"2"'
    gone = client.get("/fhir/Patient/p1")
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert client.get("/fhir/Patient/p1/_history/1").status_code == 200
    assert client.get("/fhir/Patient/p1/_history/2").status_code == 410
    assert client.delete("/fhir/Patient/p1").status_code == 204  # idempotent
    history = client.get("/fhir/Patient/p1/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT"]
    # re-create after delete continues the version sequence
    again = client.put("/fhir/Patient/p1", json=patient(id="p1"), headers={"Content-Type": FHIR})
    assert again.status_code == 201 and again.json()["meta"]["versionId"] == "3"


def test_history_levels_since_at_and_paging(client: TestClient) -> None:
    first = post(client, patient()).json()
    t1 = first["meta"]["lastUpdated"]
    for i in range(4):
        client.put(f"/fhir/Patient/{first['id']}",
                   json={**patient(given=f"名{i}"), "id": first["id"]},
                   headers={"Content-Type": FHIR})
    post(client, {"resourceType": "Organization", "name": "青山镇卫生院"},
         path="/fhir/Organization")
    inst = client.get(f"/fhir/Patient/{first['id']}/_history").json()
    assert inst["type"] == "history" and inst["total"] == 5
    assert [e["resource"]["meta"]["versionId"] for e in inst["entry"]] == ["5", "4", "3", "2",
                                                                          "1"]
    assert client.get("/fhir/Patient/_history").json()["total"] == 5
    assert client.get("/fhir/_history").json()["total"] == 6
    since = client.get("/fhir/_history", params={"_since": t1}).json()
    assert since["total"] == 6  # _since is inclusive
    at = client.get(f"/fhir/Patient/{first['id']}/_history", params={"_at": t1}).json()
    assert [e["resource"]["meta"]["versionId"] for e in at["entry"]] == ["1"]
    page = client.get("/fhir/_history", params={"_count": 2}).json()
    assert len(page["entry"]) == 2
    nxt = next(link["url"] for link in page["link"] if link["relation"] == "next")
    page2 = client.get(nxt.replace("http://testserver", "")).json()
    seen = {e["fullUrl"] + e["response"]["etag"] for e in page["entry"] + page2["entry"]}
    assert len(seen) == 4
    assert client.get("/fhir/_history", params={"_since": "yesterday"}).status_code == 400


def test_conditional_create_update_delete(client: TestClient) -> None:
    h = {"If-None-Exist": "identifier=urn:oid:2.16.156.10011.1.1|110101195803021234"}
    a = post(client, patient(ident="110101195803021234"), **h)
    assert a.status_code == 201
    b = post(client, patient(ident="110101195803021234"), **h)
    assert b.status_code == 200 and b.json()["id"] == a.json()["id"]
    # conditional update: 1 match updates it
    url = "/fhir/Patient?identifier=urn:oid:2.16.156.10011.1.1|110101195803021234"
    u = client.put(url, json=patient(ident="110101195803021234", given="兰"),
                   headers={"Content-Type": FHIR})
    assert u.status_code == 200 and u.json()["id"] == a.json()["id"]
    # 0 matches creates
    c = client.put("/fhir/Patient?identifier=urn:oid:2.16.156.10011.1.1|9",
                   json=patient(ident="9"), headers={"Content-Type": FHIR})
    assert c.status_code == 201
    # many matches: 412 for create, update and delete
    post(client, patient(family="李"))
    post(client, patient(family="李"))
    # header values are ASCII: non-ASCII criteria travel percent-encoded
    assert post(client, patient(), **{"If-None-Exist": "family=" + quote("李")}
                ).status_code == 412
    assert client.put("/fhir/Patient?family=李", json=patient(),
                      headers={"Content-Type": FHIR}).status_code == 412
    assert client.delete("/fhir/Patient?family=李").status_code == 412
    assert client.delete(url).status_code == 204
    assert client.get(f"/fhir/Patient/{a.json()['id']}").status_code == 410
    assert client.delete("/fhir/Patient?family=无此人").status_code == 204
    # unknown parameter in a condition is an error, not "match everything"
    assert client.delete("/fhir/Patient?nonsense=1").status_code == 400


def test_prefer_return(client: TestClient) -> None:
    minimal = post(client, patient(), Prefer="return=minimal")
    assert minimal.status_code == 201 and minimal.content == b""
    assert minimal.headers["Location"]
    oo = post(client, patient(), Prefer="return=OperationOutcome")
    assert oo.json()["resourceType"] == "OperationOutcome"
    full = post(client, patient(), Prefer="return=representation")
    assert full.json()["resourceType"] == "Patient"


def test_json_patch(client: TestClient) -> None:
    pid = post(client, patient()).json()["id"]
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    r = client.patch(f"/fhir/Patient/{pid}", json=ops,
                     headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 200 and r.json()["gender"] == "male"
    assert r.json()["meta"]["versionId"] == "2"
    bad_code = [{"op": "replace", "path": "/gender", "value": "m"}]
    r = client.patch(f"/fhir/Patient/{pid}", json=bad_code,
                     headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Patient.gender"]
    r = client.patch(f"/fhir/Patient/{pid}", json=[{"op": "remove", "path": "/nope"}],
                     headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 422
    r = client.patch(f"/fhir/Patient/{pid}", json=ops, headers={"Content-Type": FHIR})
    assert r.status_code == 415
    assert client.get(f"/fhir/Patient/{pid}").json()["meta"]["versionId"] == "2"


def test_bad_input_is_a_clear_4xx(client: TestClient) -> None:
    assert client.get("/fhir/Nonsense/1").status_code == 404
    assert post(client, patient(), path="/fhir/Nonsense").status_code == 404
    r = client.post("/fhir/Patient", content=b"{not json", headers={"Content-Type": FHIR})
    assert r.status_code == 400
    r = client.post("/fhir/Patient", content=b"<Patient/>",
                    headers={"Content-Type": "application/fhir+xml"})
    assert r.status_code == 415
    r = post(client, {"resourceType": "Observation", "status": "final"},
             path="/fhir/Patient")
    assert r.status_code == 400
    r = post(client, {"resourceType": "Patient", "birthDate": "1958-02-30"})
    assert r.status_code == 422
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["Patient.birthDate"]
    r = post(client, {"resourceType": "Observation", "status": "final"},
             path="/fhir/Observation")
    assert r.status_code == 422
    assert "Observation.code" in {e for i in r.json()["issue"] for e in i["expression"]}
    assert client.get("/fhir/Patient", params={"_format": "xml"}).status_code == 406
    assert client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"}
                      ).status_code == 406


def test_summary_and_elements(client: TestClient) -> None:
    body = patient(text={"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/"
                         "xhtml\">王秀英</div>"}, maritalStatus={"text": "已婚"})
    pid = post(client, body).json()["id"]
    summary = client.get(f"/fhir/Patient/{pid}", params={"_summary": "true"}).json()
    assert "name" in summary and "maritalStatus" not in summary and "text" not in summary
    assert summary["meta"]["tag"][-1]["code"] == "SUBSETTED"
    data = client.get(f"/fhir/Patient/{pid}", params={"_summary": "data"}).json()
    assert "text" not in data and "maritalStatus" in data
    el = client.get(f"/fhir/Patient/{pid}", params={"_elements": "gender"}).json()
    assert set(el) == {"resourceType", "id", "meta", "gender"}
    pretty = client.get(f"/fhir/Patient/{pid}", params={"_pretty": "true"})
    assert b"\n  " in pretty.content
    assert client.get(f"/fhir/Patient/{pid}", params={"_summary": "bogus"}).status_code == 400


def test_capability_statement(client: TestClient) -> None:
    cs = client.get("/fhir/metadata").json()
    assert cs["fhirVersion"] == "4.0.1"
    assert cs["format"] == ["application/fhir+json", "json"]
    types = {r["type"] for r in cs["rest"][0]["resource"]}
    assert {"Patient", "Claim", "Provenance", "DocumentReference", "Observation"} <= types
    patient_entry = next(r for r in cs["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "identifier", "definition":
            "http://hl7.org/fhir/SearchParameter/Patient-identifier",
            "type": "token"} in patient_entry["searchParam"]
