"""``$viewdefinition-run`` / ``$run`` over the real app: the security gate filters the rows
(the small county of tests/security, on SQLite and PostgreSQL), invalid input is a 400
OperationOutcome before any data is read, every output format parses back."""

from __future__ import annotations

import csv
import io
from typing import Any

import duckdb
import orjson
import pytest
from fastapi.testclient import TestClient

from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM
from tests.security.conftest import County

OBS_VIEW: dict[str, Any] = {
    "resourceType": "ViewDefinition", "name": "obs", "status": "active",
    "resource": "Observation",
    "select": [{"column": [
        {"name": "id", "path": "getResourceKey()"},
        {"name": "patient", "path": "subject.getReferenceKey(Patient)"},
        {"name": "value", "path": "value.ofType(Quantity).value"},
        {"name": "codes", "path": "code.coding.code", "collection": True}]}],
}  # fmt: skip


def params(*items: tuple[str, str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters",
            "parameter": [{"name": n, kind: v} for n, kind, v in items]}  # fmt: skip


def run(client: TestClient, county: County, user: str, *items: tuple[str, str, Any],
        path: str = "/fhir/ViewDefinition/$run", fmt: str = "json") -> Any:  # fmt: skip
    body = params(("viewResource", "resource", OBS_VIEW), ("_format", "valueCode", fmt), *items)
    r = client.post(path, json=body, headers=county.headers(user))
    assert r.status_code == 200, r.text
    return r


def visible_ids(client: TestClient, county: County, user: str, rtype: str) -> set[str]:
    r = client.get(f"/fhir/{rtype}?_count=1000", headers=county.headers(user))
    assert r.status_code == 200
    return {e["resource"]["id"] for e in r.json().get("entry", [])}


@pytest.mark.parametrize("user", ["gp1", "gp2", "ph"])
def test_rows_come_only_from_what_the_caller_may_read(
    app_client: TestClient, county: County, user: str
) -> None:
    got = run(app_client, county, user).json()
    ids = {r["id"] for r in got}
    assert ids == visible_ids(app_client, county, user, "Observation")
    patients = {r["patient"] for r in got}
    expected = {"gp1": {"p1", "p3"}, "gp2": {"p2", "p4", "p5"},
                "ph": {"p1", "p2", "p4", "p5"}}[user]  # fmt: skip
    assert patients == expected  # tests/security/test_policy_matrix.py: who sees whom
    row = next(r for r in got if r["id"] == sorted(ids)[0])
    assert row["value"] == 72 and row["codes"] == ["8867-4"]


def test_a_stored_view_by_id_and_by_reference(app_client: TestClient,
                                              county: County) -> None:
    h = county.headers("gp2")
    r = app_client.get("/fhir/ViewDefinition/patient/$run?_format=ndjson", headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    rows = [orjson.loads(line) for line in r.text.splitlines()]
    assert {row["id"] for row in rows} == {"p2", "p4", "p5"}
    body = params(("viewReference", "valueReference", {"reference": "ViewDefinition/patient"}))
    r = app_client.post("/fhir/$viewdefinition-run?_format=json", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert {row["id"] for row in r.json()} == {"p2", "p4", "p5"}


def test_patient_group_and_limit_filters(app_client: TestClient,
                                         county: County) -> None:
    got = run(app_client, county, "ph", ("patient", "valueReference",
                                         {"reference": "Patient/p2"})).json()
    assert {r["id"] for r in got} == {"o2"}
    # a patient the caller may not see yields nothing, not an error that reveals it
    got = run(app_client, county, "gp1", ("patient", "valueString", "Patient/p2")).json()
    assert got == []
    group = {"resourceType": "Group", "id": "g1", "type": "person", "actual": True,
             "member": [{"entity": {"reference": "Patient/p1"}},
                        {"entity": {"reference": "Patient/p4"}}]}  # fmt: skip
    with FhirStore(county.engine).write(SYSTEM) as uow:  # set-up, as the system
        uow.update("Group", "g1", group)
    got = run(app_client, county, "ph", ("group", "valueReference",
                                         {"reference": "Group/g1"})).json()
    assert {r["patient"] for r in got} == {"p1", "p4"}
    got = run(app_client, county, "ph", ("_limit", "valueInteger", 2)).json()
    assert len(got) == 2


def test_csv_and_parquet(app_client: TestClient, county: County) -> None:
    text = run(app_client, county, "gp2", fmt="csv").text
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == ["id", "patient", "value", "codes"]
    assert sorted(row[1] for row in table[1:]) == ["p2", "p4", "p5"]
    assert table[1][3] == '["8867-4"]'
    data = run(app_client, county, "gp2", fmt="parquet").content
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM read_parquet(?)", [_tmp_parquet(data)])
    assert con.execute("SELECT count(*) FROM t").fetchone() == (3,)


def _tmp_parquet(data: bytes) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".parquet", delete=False) as f:
        f.write(data)
        return f.name


@pytest.mark.parametrize(("body", "status", "says"), [
    (params(("viewResource", "resource", {**OBS_VIEW, "select": [{"column": [
        {"name": "x", "path": "name.resolve()"}]}]})), 400, "unsupported FHIRPath function"),
    (params(("viewResource", "resource", {**OBS_VIEW, "resource": "Nope"})), 400, "Nope"),
    (params(), 400, "exactly one of viewResource and viewReference"),
    (params(("viewReference", "valueString", "ViewDefinition/none")), 404, "No ViewDefinition"),
    (params(("viewResource", "resource", OBS_VIEW), ("_format", "valueCode", "xlsx")), 400,
     "_format 'xlsx'"),
    (params(("viewResource", "resource", OBS_VIEW), ("_limit", "valueInteger", 0)), 400,
     "_limit"),
    (params(("viewResource", "resource", OBS_VIEW), ("bogus", "valueString", "x")), 400,
     "bogus"),
    ({"resourceType": "Patient"}, 400, "Parameters"),
])  # fmt: skip
def test_bad_input_is_an_operation_outcome(app_client: TestClient, county: County,
                                           body: dict[str, Any], status: int, says: str) -> None:
    r = app_client.post("/fhir/ViewDefinition/$run", json=body, headers=county.headers("ph"))
    assert r.status_code == status, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert says in outcome["issue"][0]["diagnostics"]


def test_without_credentials_nothing_runs(app_client: TestClient) -> None:
    r = app_client.post("/fhir/ViewDefinition/$run",
                        json=params(("viewResource", "resource", OBS_VIEW)))
    assert r.status_code == 401


def test_the_capability_statement_lists_the_operation(app_client: TestClient) -> None:
    ops = app_client.get("/fhir/metadata").json()["rest"][0]["operation"]
    assert "viewdefinition-run" in {op["name"] for op in ops}
