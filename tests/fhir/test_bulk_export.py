"""Bulk Data $export (IG 2.0) over HTTP on SQLite and PostgreSQL: kick-off, polling, manifest,
files, cancellation, compartments, filters, the gate, resuming, and serving while exporting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import ColumnElement, update

from kangqiao.fhir.bulk import export
from kangqiao.fhir.bulk import export_jobs as jobs
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.records import utcnow
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM, Access, TrustedGate
from kangqiao.settings import Settings

FHIR = {"Content-Type": "application/fhir+json"}
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
LOINC = "http://loinc.org"
Client = TestClient | httpx.Client


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"export_dir": tmp_path / "exports"})


@pytest.fixture(autouse=True)
def _no_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    # nothing is in flight in these tests; the production wait would only slow them down
    monkeypatch.setattr(export, "SETTLE", 0.0)


def _put(client: Client, resource: dict[str, Any]) -> dict[str, Any]:
    r = client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource,
                   headers=FHIR)
    assert r.status_code in (200, 201), r.text
    body: dict[str, Any] = r.json()
    return body


def _obs(oid: str, patient: str, code: str = "85354-9") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "subject": {"reference": f"Patient/{patient}"}}


def _county(client: Client) -> None:
    _put(client, {"resourceType": "Organization", "id": "thc1", "name": "青山镇卫生院"})
    _put(client, {"resourceType": "Practitioner", "id": "gp1", "name": [{"text": "李医生"}]})
    for pid in ("a", "b"):
        _put(client, {"resourceType": "Patient", "id": pid, "gender": "female",
                      "managingOrganization": {"reference": "Organization/thc1"}})
    for n, pid in enumerate(["a", "a", "b", "b"]):
        _put(client, _obs(f"o{n}", pid, "85354-9" if n % 2 == 0 else "2339-0"))
    _put(client, {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/a"},
                  "code": {"text": "高血压"}})
    _put(client, {"resourceType": "Group", "id": "g1", "type": "person", "actual": True,
                  "member": [{"entity": {"reference": "Patient/a"}}]})
    _put(client, {**_obs("o0", "a"), "valueString": "updated"})  # version 2 is exported
    assert client.delete("/fhir/Observation/o1").status_code == 204


def _kickoff(client: Client, path: str = "/fhir/$export", params: Any = None,
             headers: dict[str, str] | None = None) -> str:
    r = client.get(path, params=params, headers=ASYNC if headers is None else headers)
    assert r.status_code == 202, r.text
    url: str = r.headers["Content-Location"]
    assert "/fhir/bulk-status/" in url
    return url


def _wait(client: Client, url: str, on_progress: Callable[[], None] | None = None
          ) -> httpx.Response:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = client.get(url)
        if r.status_code != 202:
            return r
        assert r.headers["Retry-After"] and r.headers["X-Progress"]
        if on_progress is not None:
            on_progress()
        else:
            time.sleep(0.02)
    raise AssertionError("export did not finish")


def _export(client: Client, path: str = "/fhir/$export", params: Any = None
            ) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    r = _wait(client, _kickoff(client, path, params))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    manifest: dict[str, Any] = r.json()
    files: dict[str, list[dict[str, Any]]] = {}
    for out in manifest["output"]:
        f = client.get(out["url"])
        assert f.status_code == 200
        assert f.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [orjson.loads(line) for line in f.content.splitlines()]
        assert len(lines) == out["count"] and all(r["resourceType"] == out["type"] for r in lines)
        files.setdefault(out["type"], []).extend(lines)
    return manifest, files


def _ids(files: dict[str, list[dict[str, Any]]]) -> set[str]:
    return {f"{t}/{r['id']}" for t, rs in files.items() for r in rs}


def test_round_trip_exports_exactly_the_current_resources(client: TestClient) -> None:
    _county(client)
    manifest, files = _export(client)
    assert manifest["request"].endswith("/fhir/$export")
    assert manifest["requiresAccessToken"] is True and manifest["error"] == []
    assert manifest["transactionTime"].endswith("Z")
    assert _ids(files) == {"Organization/thc1", "Practitioner/gp1", "Patient/a", "Patient/b",
                           "Observation/o0", "Observation/o2", "Observation/o3",
                           "Condition/c1", "Group/g1"}  # o1 is deleted
    for rtype, resources in files.items():
        assert len(resources) == len({r["id"] for r in resources})  # each once
        for resource in resources:  # the current version, as a read returns it
            assert resource == client.get(f"/fhir/{rtype}/{resource['id']}").json()
    assert next(r for r in files["Observation"] if r["id"] == "o0")["meta"]["versionId"] == "2"


def test_type_and_since(client: TestClient) -> None:
    _county(client)
    _, files = _export(client, params={"_type": "Observation,Condition"})
    assert set(files) == {"Observation", "Condition"}
    since = _put(client, _obs("o5", "a"))["meta"]["lastUpdated"]
    _put(client, _obs("o6", "b"))
    _put(client, {**_obs("o2", "b"), "valueString": "changed"})
    _, files = _export(client, params={"_since": since})
    assert _ids(files) == {"Observation/o6", "Observation/o2"}  # strictly after _since
    manifest, files = _export(client, params={"_since": "2999-01-01T00:00:00Z"})
    assert manifest["output"] == [] and files == {}


def test_type_filter_runs_search_queries_ored_per_type(client: TestClient) -> None:
    _county(client)
    _put(client, _obs("o7", "a", "1234-5"))
    query = {"_type": "Observation,Patient",
             "_typeFilter": f"Observation?code={LOINC}|2339-0,Observation?code={LOINC}|1234-5"}
    _, files = _export(client, params=query)
    assert _ids(files) == {"Observation/o3", "Observation/o7", "Patient/a", "Patient/b"}
    # AND inside one query; an escaped comma is an OR inside a parameter
    query = {"_typeFilter": f"Observation?code={LOINC}|85354-9%2C{LOINC}|1234-5"
                            "&subject=Patient/a", "_type": "Observation"}
    _, files = _export(client, params=query)
    assert _ids(files) == {"Observation/o0", "Observation/o7"}
    # chained parameters work as in a search
    _, files = _export(client, params=[("_type", "Observation"),
                                       ("_typeFilter", "Observation?subject:Patient._id=b")])
    assert _ids(files) == {"Observation/o2", "Observation/o3"}


def test_patient_and_group_level_compartments(client: TestClient) -> None:
    _county(client)
    _, files = _export(client, "/fhir/Patient/$export")
    assert _ids(files) == {"Patient/a", "Patient/b", "Observation/o0", "Observation/o2",
                           "Observation/o3", "Condition/c1", "Group/g1"}
    _, files = _export(client, "/fhir/Group/g1/$export")
    assert _ids(files) == {"Patient/a", "Observation/o0", "Condition/c1", "Group/g1"}
    _, files = _export(client, "/fhir/Group/g1/$export", {"_type": "Observation"})
    assert _ids(files) == {"Observation/o0"}
    r = client.get("/fhir/Group/nope/$export", headers=ASYNC)
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    r = client.get("/fhir/Patient/$export", params={"_type": "Organization"}, headers=ASYNC)
    assert r.status_code == 400


@pytest.mark.parametrize(("params", "headers"), [
    ({}, {"Accept": "application/fhir+json"}),  # no Prefer: respond-async
    ({"_type": "Observation,Nonsense"}, ASYNC),
    ({"_since": "yesterday"}, ASYNC),
    ({"_since": "2024-13-45"}, ASYNC),
    ({"_outputFormat": "text/csv"}, ASYNC),
    ({"_elements": "id"}, ASYNC),  # not supported: refused unless handling=lenient
    ({"_typeFilter": "Observation?bogus=1"}, ASYNC),
    ({"_typeFilter": "Observation"}, ASYNC),
    ({"_typeFilter": "Observation?_sort=date"}, ASYNC),
    ({"_type": "Patient", "_typeFilter": "Observation?code=x"}, ASYNC),
])
def test_bad_kickoffs_are_400_with_an_outcome(client: TestClient, params: dict[str, str],
                                              headers: dict[str, str]) -> None:
    r = client.get("/fhir/$export", params=params, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


def test_kickoff_variants_that_are_accepted_or_refused(client: TestClient) -> None:
    for fmt in ("application/fhir+ndjson", "application/ndjson", "ndjson"):
        _kickoff(client, params={"_outputFormat": fmt, "_type": "Patient"})
    _kickoff(client, params={"_elements": "id"},
             headers={**ASYNC, "Prefer": "respond-async, handling=lenient"})
    r = client.get("/fhir/$export", headers={**ASYNC, "Accept": "application/fhir+xml"})
    assert r.status_code == 406


def test_cancel_deletes_the_job_and_its_files(client: TestClient, settings: Settings) -> None:
    _county(client)
    url = _kickoff(client)
    r = client.delete(url)
    assert r.status_code == 202 and r.json()["resourceType"] == "OperationOutcome"
    assert client.get(url).status_code == 404
    assert client.delete(url).status_code == 404
    manifest, _ = _export(client, params={"_type": "Patient"})
    url = manifest["output"][0]["url"]
    job = url.split("/")[-2]
    assert (settings.export_dir / job).is_dir()
    assert client.delete(url.replace("bulk-files", "bulk-status").rsplit("/", 1)[0]
                         ).status_code == 202
    assert client.get(url).status_code == 404
    assert not (settings.export_dir / job).exists()


def test_jobs_and_files_belong_to_their_requester(client: TestClient) -> None:
    _county(client)
    manifest, _ = _export(client, params={"_type": "Patient"})
    file_url = manifest["output"][0]["url"]
    status_url = file_url.replace("bulk-files", "bulk-status").rsplit("/", 1)[0]
    assert client.get(file_url.rsplit("/", 1)[0] + "/../../x").status_code == 404
    client.app.state.access_resolver = lambda _r: Access(actor="Practitioner/other")  # type: ignore[attr-defined]
    assert client.get(status_url).status_code == 404
    assert client.get(file_url).status_code == 404
    assert client.delete(status_url).status_code == 404


class _HidingGate(TrustedGate):
    """Hides Patient/b in SQL and Observation/o0 item by item: both paths must hold."""

    def may_read(self, access: Access, resource: dict[str, Any]) -> bool:
        return resource.get("id") != "o0"

    def search_filter(self, access: Access, resource_type: str | None, *,
                      anchored: bool = False, few: bool = False) -> ColumnElement[bool] | None:
        return schema.resource.c.id != "b"


def test_the_gate_applies_to_what_is_exported(client: TestClient, store: FhirStore) -> None:
    _county(client)
    client.app.state.store.gate = _HidingGate()  # type: ignore[attr-defined]  # the app's store
    _, files = _export(client, params={"_type": "Patient,Observation"})
    assert _ids(files) == {"Patient/a", "Observation/o2", "Observation/o3"}


def test_a_job_resumes_after_interruption_without_duplicates(
        client: TestClient, store: FhirStore, settings: Settings) -> None:
    client.app.state.export_runner.stop()  # type: ignore[attr-defined]  # run it by hand
    for n in range(23):
        _put(client, _obs(f"r{n:02d}", "a"))
    req = export.parse_kickoff("system", None, [("_type", "Observation")])
    job = jobs.create(store.engine, req.to_json(), SYSTEM, "http://x/fhir/$export",
                      export.Progress().to_json())
    assert jobs.claim(store.engine, "first") == job
    assert jobs.claim(store.engine, "second") is None  # it is being run
    calls = iter(range(100))
    status = export.run_job(store, settings.export_dir, job, "first", chunk=3, file_max=10,
                            should_stop=lambda: next(calls) >= 5)
    assert status == "running"  # handed back after a few chunks
    row = jobs.get(store.engine, job)
    assert row is not None and row.owner is None
    progress = export.Progress.from_json(row.progress)
    assert 0 < progress.exported < 23
    open_file = settings.export_dir / job / export.file_name("Observation", progress.part)
    with open_file.open("ab") as f:  # a crash after writing, before the checkpoint
        f.write(b'{"resourceType": "Observation", "id": "half-written"')
    # a process that died holding the job: its heartbeat goes stale, another takes over
    assert jobs.claim(store.engine, "dead") == job
    with store.engine.begin() as conn:
        conn.execute(update(schema.export_job).values(heartbeat=utcnow() - timedelta(hours=1)))
    assert jobs.claim(store.engine, "second") == job
    status = export.run_job(store, settings.export_dir, job, "second", chunk=3, file_max=10)
    assert status == "completed"
    row = jobs.get(store.engine, job)
    assert row is not None
    outputs = row.progress["outputs"]
    assert [o["count"] for o in outputs] == [10, 10, 3]
    ids = [orjson.loads(line)["id"] for o in outputs
           for line in (settings.export_dir / job / o["file"]).read_bytes().splitlines()]
    assert ids == [f"r{n:02d}" for n in range(23)]


def test_the_api_keeps_answering_while_a_large_export_runs(
        live_server: str, system_token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "CHUNK", 100)  # many chunks
    # The job is held inside its read transaction at its second chunk while the API is used,
    # so "during the export" does not depend on how fast this machine happens to be.
    inside, resume, chunks = threading.Event(), threading.Event(), []
    load = export.load

    def held_load(*args: Any, **kwargs: Any) -> list[Any]:
        chunks.append(1)
        if len(chunks) == 2:
            inside.set()
            assert resume.wait(60), "the test never let the export go on"
        return load(*args, **kwargs)

    monkeypatch.setattr(export, "load", held_load)
    with httpx.Client(base_url=live_server, timeout=60,
                      headers={"Authorization": f"Bearer {system_token}"}) as http:
        _put(http, {"resourceType": "Patient", "id": "p"})
        for batch in range(3):
            entries = [{"resource": _obs(f"b{batch}-{n}", "p"),
                        "request": {"method": "PUT", "url": f"Observation/b{batch}-{n}"}}
                       for n in range(1000)]
            r = http.post("/fhir", json={"resourceType": "Bundle", "type": "transaction",
                                         "entry": entries}, headers=FHIR)
            assert r.status_code == 200, r.text[:500]
        status_url = _kickoff(http, params={"_type": "Patient,Observation"})
        assert inside.wait(60), "the export never reached its second chunk"
        try:
            assert http.get(status_url).status_code == 202
            assert http.get("/fhir/Patient/p").status_code == 200
            r = http.get("/fhir/Observation", params={"subject": "Patient/p", "_count": "5"})
            assert r.status_code == 200 and r.json()["total"] == 3000
            _put(http, {"resourceType": "Patient", "id": "q"})  # writers are not blocked either
            assert http.get(status_url).status_code == 202
        finally:
            resume.set()
        r = _wait(http, status_url)
        assert r.status_code == 200
        # the export's snapshot time precedes Patient/q
        assert sum(o["count"] for o in r.json()["output"]) == 3001
