"""The audit trail: every access and change recorded, in the writing transaction for changes;
tamper-evident (a broken chain is detected); append-only; retention; readable by
administrators as valid FHIR AuditEvents."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from kangqiao.cli import app as cli
from kangqiao.fhir.store.records import utcnow
from kangqiao.fhir.validation import validate_resource
from kangqiao.security import audit
from kangqiao.security.schema import audit_anchor, audit_log, audit_patient
from kangqiao.settings import get_settings
from tests.security.conftest import County, observation


def _rows(county: County) -> list[Any]:
    with county.engine.connect() as conn:
        return list(conn.execute(select(audit_log).order_by(audit_log.c.seq)))


def _key(county: County) -> bytes:
    return audit.hmac_key(county.settings)


def _some_activity(client: TestClient, county: County) -> None:
    h = county.headers("gp1")
    client.get("/fhir/Patient", headers=h)
    client.get("/fhir/Patient/p2", headers=h)  # withheld
    client.put("/fhir/Observation/a1", json=observation("a1", "p1"), headers=h)
    client.put("/fhir/Observation/a2", json=observation("a2", "p2"), headers=h)  # 403


def test_changes_are_recorded_in_their_transaction(app_client: TestClient,
                                                   county: County) -> None:
    _some_activity(app_client, county)
    rows = [r for r in _rows(county) if r.username == "gp1"]
    assert [(r.subtype, r.outcome, r.status) for r in rows] == [
        ("search-type", "0", 200), ("read", "4", 404), ("create", "0", None),
        ("update", "4", 403)]
    search, withheld, created, denied = rows
    assert set(search.patients) == {"p1", "p3"} and search.purpose == "TREAT"
    assert search.actor == "Practitioner/prac-gp1" and search.role == "gp"
    assert search.organization == "Organization/org-thc-01"
    assert search.remote_addr == "testclient"
    assert withheld.detail["withheld"] == 1 and withheld.patients == []
    assert created.patients == ["p1"]
    assert created.detail["entities"] == ["Observation/a1/_history/1"]
    assert "not in your care" in denied.detail["denied"][0]
    with county.engine.connect() as conn:
        indexed = conn.execute(select(audit_patient.c.seq).where(
            audit_patient.c.patient_id == "p1")).scalars().all()
    assert search.seq in indexed and created.seq in indexed


def test_a_rolled_back_write_leaves_no_change_record(app_client: TestClient,
                                                     county: County) -> None:
    bad = {**observation("a3", "p1"), "status": "not-a-status"}
    r = app_client.put("/fhir/Observation/a3", json=bad, headers=county.headers("gp1"))
    assert r.status_code == 422
    rows = [r for r in _rows(county) if r.username == "gp1"]
    assert [(r.subtype, r.outcome) for r in rows] == [("update", "4")]


def test_verify_detects_a_broken_chain(app_client: TestClient, county: County) -> None:
    _some_activity(app_client, county)
    key = _key(county)
    result = audit.verify(county.engine, key)
    assert result.ok and result.checked == len(_rows(county)) >= 4
    rows = _rows(county)
    victim = rows[1]
    # the database refuses to change a record
    with pytest.raises(DBAPIError), county.engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == victim.seq)
                     .values(username="someone-else"))
    # ... but someone with the database file could delete and re-insert one
    changed = {**victim._mapping, "username": "someone-else"}
    with county.engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == victim.seq))
        conn.execute(insert(audit_log).values(**changed))
    result = audit.verify(county.engine, key)
    assert not result.ok and result.broken_at == victim.seq
    assert "does not match" in (result.reason or "")
    with county.engine.begin() as conn:  # or remove it altogether
        conn.execute(delete(audit_log).where(audit_log.c.seq == victim.seq))
    result = audit.verify(county.engine, key)
    assert not result.ok and result.broken_at == victim.seq and "missing" in (result.reason or "")


def test_a_chain_rebuilt_without_the_key_is_detected(county: County) -> None:
    audit.write(county.engine, _key(county), [audit.Record(
        category="rest", action="R", subtype="read", outcome="0", actor="x")])
    rows = _rows(county)
    forged_key = b"\x00" * 32
    with county.engine.begin() as conn:
        conn.execute(delete(audit_log))
    audit.write(county.engine, forged_key, [audit.Record(
        category="rest", action="R", subtype="read", outcome="0", actor="x")] * len(rows))
    assert not audit.verify(county.engine, _key(county)).ok


def test_retention_purge_keeps_the_chain_verifiable(app_client: TestClient,
                                                    county: County) -> None:
    _some_activity(app_client, county)
    key = _key(county)
    with county.engine.begin() as conn:  # age the first two records (bypassing the trigger)
        rows = _rows(county)
        for r in rows[:2]:
            old = {**r._mapping, "recorded": utcnow() - timedelta(days=200)}
            conn.execute(delete(audit_log).where(audit_log.c.seq == r.seq))
            conn.execute(insert(audit_log).values(**old))
    assert not audit.verify(county.engine, key).ok  # re-dated records break the chain...
    removed = audit.purge(county.engine, key, utcnow() - timedelta(days=180))
    assert removed == 2
    result = audit.verify(county.engine, key)  # ...and once retention removed them, it holds
    assert result.ok and result.checked == len(rows) - 2
    with county.engine.begin() as conn:
        conn.execute(update(audit_anchor).values(hash="0" * 64))
    assert "anchor" in (audit.verify(county.engine, key).reason or "")


def test_cli_verify(county: County, monkeypatch: pytest.MonkeyPatch) -> None:
    audit.write(county.engine, _key(county), [audit.Record(
        category="rest", action="R", subtype="read", outcome="0", actor="x")])
    monkeypatch.setenv("KANGQIAO_DATABASE_URL", county.settings.database_url)
    monkeypatch.setenv("KANGQIAO_AUDIT_HMAC_KEY", county.settings.audit_hmac_key or "")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["audit", "verify"])
        assert result.exit_code == 0 and "ok: 1 records" in result.output, result.output
        with county.engine.begin() as conn:
            conn.execute(delete(audit_log))
            conn.execute(insert(audit_log).values(
                seq=1, recorded=utcnow(), category="rest", action="R", subtype="read",
                outcome="0", actor="x", patients=[], detail={}, prev_hash="0" * 64,
                hash="f" * 64))
        result = CliRunner().invoke(cli, ["audit", "verify"])
        assert result.exit_code == 1 and "BROKEN at record 1" in result.output
    finally:
        get_settings.cache_clear()


def test_administrators_read_the_trail_as_audit_events(app_client: TestClient,
                                                       county: County) -> None:
    _some_activity(app_client, county)
    from urllib.parse import quote

    app_client.get("/fhir/Patient/p3", headers=county.headers(
        "gp2", **{"X-Break-Glass": quote("急诊抢救")}))
    assert app_client.get("/fhir/AuditEvent", headers=county.headers("gp1")).status_code == 403
    h = county.headers("countyadmin")
    r = app_client.get("/fhir/AuditEvent", params={"patient": "Patient/p1"}, headers=h)
    assert r.status_code == 200
    events = [e["resource"] for e in r.json()["entry"]]
    assert events and all("Patient/p1" in str(e["entity"]) for e in events)
    for event in events:
        errors = [i for i in validate_resource(event, "AuditEvent") if i.severity == "error"]
        assert not errors, (event, errors)
    glass = app_client.get("/fhir/AuditEvent", params={"purpose": "BTG"}, headers=h).json()
    assert glass["total"] == 1
    event = glass["entry"][0]["resource"]
    assert "急诊抢救" in event["outcomeDesc"]
    assert {c["coding"][0]["code"] for c in event["purposeOfEvent"]} == {"ETREAT", "BTG"}
    one = app_client.get(f"/fhir/AuditEvent/{event['id']}", headers=h)
    assert one.status_code == 200 and one.json()["id"] == event["id"]
    # ids that name no record, beyond 64 bits or not ASCII digits, are a 404, not a 500
    for missing in ("audit-" + "9" * 30, "9223372036854775808", "audit-²", "audit-"):
        gone = app_client.get(f"/fhir/AuditEvent/{missing}", headers=h)
        assert gone.status_code == 404, missing
        assert gone.json()["resourceType"] == "OperationOutcome"
    far = app_client.get("/fhir/AuditEvent", params={"_offset": "9" * 30}, headers=h)
    assert far.status_code == 200 and far.json()["entry"] == []
    denied = app_client.get("/fhir/AuditEvent", params={"agent": "gp1", "outcome": "4"},
                            headers=h).json()
    assert denied["total"] == 3  # the withheld read, the refused write, the AuditEvent search
