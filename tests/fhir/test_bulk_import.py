"""Bulk NDJSON import: rejected lines reported, gzip and folders, resumable without duplicates."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from kangqiao.fhir.bulk.importer import import_ndjson
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM
from kangqiao.settings import Settings
from tests.fhir.killed_import import kill_import_after


def _patient(n: int) -> dict[str, object]:
    return {"resourceType": "Patient", "id": f"p{n}", "name": [{"text": f"居民{n}"}],
            "gender": "female" if n % 2 else "male"}


def _write(path: Path, lines: list[bytes]) -> Path:
    data = b"\n".join(lines) + b"\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def _count(engine: Engine, table: object = schema.resource) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_import_reports_bad_lines_and_keeps_the_good(tmp_path: Path, store: FhirStore,
                                                     engine: Engine) -> None:
    lines = [orjson.dumps(_patient(n)) for n in range(10)]
    lines[3] = b"{not json"
    lines[5] = orjson.dumps({"resourceType": "Patient", "id": "p5", "gender": "m"})
    lines[7] = orjson.dumps({"resourceType": "Nonsense"})
    lines[8] = orjson.dumps({"resourceType": "Observation", "status": "final",
                             "code": {"text": "血压"}})  # no id: a derived, stable id
    src = tmp_path / "in"
    src.mkdir()
    _write(src / "Patient.ndjson.gz", lines)
    report = import_ndjson(store, SYSTEM, [src], workers=0, batch_size=4)
    assert report.accepted == 7
    assert [(r.line, r.reason.split(":")[0]) for r in report.rejected] == [
        (4, "not valid JSON"), (6, "Patient.gender"), (8, "unknown resourceType 'Nonsense'")]
    assert _count(engine) == 7
    assert _count(engine, schema.outbox) == 7
    again = import_ndjson(store, SYSTEM, [src], workers=0)
    assert again.accepted == 0 and again.skipped == 10
    restart = import_ndjson(store, SYSTEM, [src], workers=0, restart=True)
    assert restart.accepted == 7
    assert _count(engine) == 7  # same ids (including the derived one): new versions, no copies
    with store.read(SYSTEM) as uow:
        assert uow.read("Patient", "p0").version_id == 2


def test_import_with_worker_processes(tmp_path: Path, store: FhirStore, engine: Engine) -> None:
    path = _write(tmp_path / "p.ndjson", [orjson.dumps(_patient(n)) for n in range(300)])
    report = import_ndjson(store, SYSTEM, [path], workers=2, batch_size=50)
    assert report.accepted == 300 and not report.rejected
    with store.read(SYSTEM) as uow:
        page = uow.search("Patient", [("gender", "female")], count=0)
    assert page.total == 150


def test_import_resumes_after_a_crash_without_duplicates(tmp_path: Path, store: FhirStore,
                                                         engine: Engine) -> None:
    path = _write(tmp_path / "p.ndjson", [orjson.dumps(_patient(n)) for n in range(1000)])
    url = engine.url.render_as_string(hide_password=False)
    kill_import_after(url, path, 3, batch_size=100)
    assert _count(engine) == 300
    report = import_ndjson(store, SYSTEM, [path], workers=0, batch_size=100)
    assert report.skipped == 300 and report.accepted == 700
    assert _count(engine) == 1000
    assert _count(engine, schema.resource_history) == 1000  # nothing written twice


def test_cli_import(tmp_path: Path, engine: Engine) -> None:
    from kangqiao.cli import app
    from kangqiao.settings import get_settings

    path = _write(tmp_path / "p.ndjson", [orjson.dumps(_patient(1)), b"[]"])
    url = engine.url.render_as_string(hide_password=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["import", str(path), "--workers", "0"],
                                    env={"KANGQIAO_DATABASE_URL": url})
        missing = CliRunner().invoke(app, ["import", str(tmp_path / "nope.ndjson")],
                                     env={"KANGQIAO_DATABASE_URL": url})
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1  # some lines were rejected
    assert "1 resources imported" in result.output
    assert f"rejected {path}:2: a line must hold one JSON object" in result.output
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_http_import(client: TestClient, settings: Settings, engine: Engine) -> None:
    from tests.conftest import system_token_for

    lines = [orjson.dumps(_patient(n)) for n in range(5)] + [b"{broken"]
    body = b"\n".join(lines) + b"\n"
    r = client.post("/fhir/$import", content=body,
                    headers={"Content-Type": "application/fhir+ndjson"})
    assert r.status_code == 200, r.text
    issues = r.json()["issue"]
    assert issues[0]["diagnostics"].startswith("5 resources imported, 1 lines rejected")
    assert issues[1]["diagnostics"].startswith("line 6: not valid JSON")
    assert client.get("/fhir/Patient/p3").status_code == 200
    from kangqiao.security.schema import audit_log, audit_patient

    with engine.connect() as conn:  # one audit record for the batch, naming every patient
        created = [r for r in conn.execute(select(audit_log)) if r.subtype == "create"]
        audited = {r.patient_id for r in conn.execute(select(audit_patient).where(
            audit_patient.c.seq == created[0].seq))}
    assert len(created) == 1 and created[0].detail["count"] == 5
    assert audited == {f"p{n}" for n in range(5)}
    gz = client.post("/fhir/$import", content=gzip.compress(body),
                     headers={"Content-Type": "application/fhir+ndjson",
                              "Content-Encoding": "gzip"})
    assert gz.status_code == 200 and gz.json()["issue"][0]["diagnostics"].startswith("5 ")
    assert client.post("/fhir/$import", content=body, headers={
        "Content-Type": "application/json"}).status_code == 415
    assert client.post("/fhir/$import", content=b"", headers={
        "Content-Type": "application/fhir+ndjson"}).status_code == 400
    assert client.post("/fhir/$import", content=b"not gzip", headers={
        "Content-Type": "application/fhir+ndjson", "Content-Encoding": "gzip"}
    ).status_code == 400
    # a read-only token may not import: the gate refuses every write, nothing is stored
    reader = system_token_for(settings, engine, scope="system/*.rs")
    denied = client.post("/fhir/$import", content=orjson.dumps(_patient(99)), headers={
        "Content-Type": "application/fhir+ndjson", "Authorization": f"Bearer {reader}"})
    assert denied.status_code == 403
    assert client.get("/fhir/Patient/p99").status_code == 404
