"""What index_rows extracts, per parameter type."""

from __future__ import annotations

import decimal
from datetime import datetime
from typing import Any

import orjson
import pytest
from fhirpathpy import evaluate
from fhirpathpy.models import models

from kangqiao.fhir.search.dates import HIGH, LOW, parse_range
from kangqiao.fhir.search.index import index_rows
from kangqiao.fhir.search.params import search_params
from kangqiao.fhir.search.paths import branches_for, compile_expression
from kangqiao.fhir.store import schema
from kangqiao.security.fieldcrypt import blind
from tests.search.data import RESOURCES

BY_ID = {r["id"]: r for r in RESOURCES}


def rows(resource: dict[str, Any], table: str, param: str) -> list[dict[str, Any]]:
    return [r for r in index_rows(resource)[table] if r["param"] == param]


def test_keys_and_columns_match_schema() -> None:
    out = index_rows(BY_ID["bp1"])
    assert set(out) == set(schema.INDEX_TABLES)
    for key, table_rows in out.items():
        cols = {c.name for c in schema.INDEX_TABLES[key].c} - {"resource_type", "resource_id"}
        for row in table_rows:
            assert set(row) == cols, key


def test_id_and_last_updated_are_not_indexed() -> None:
    r = dict(BY_ID["p1"], meta={"lastUpdated": "2024-01-01T00:00:00Z"})
    params = {row["param"] for table in index_rows(r).values() for row in table}
    assert "_id" not in params and "_lastUpdated" not in params


def test_strings_humanname_parts_normalised() -> None:
    values = {r["value"] for r in rows(BY_ID["p2"], "string", "name")}
    assert values == {"muller", "jose"}
    assert {r["value"] for r in rows(BY_ID["p1"], "string", "name")} == {"张", "三", "张三"}
    assert {r["value"] for r in rows(BY_ID["p3"], "string", "name")} == {
        "smith", "john", "john smith"}
    # the address line is protected (kangqiao.security.fieldcrypt): not in the index
    assert {r["value"] for r in rows(BY_ID["p1"], "string", "address")} == {"北京", "东城区"}
    full_width = {"resourceType": "Patient", "id": "x", "name": [{"text": "  ＡＢＣ  Ｄ "}]}
    assert [r["value"] for r in rows(full_width, "string", "name")] == ["abc d"]


def test_tokens() -> None:
    code = rows(BY_ID["bp1"], "token", "code")
    assert {(r["system"], r["code"], r["display"]) for r in code} == {
        ("http://loinc.org", "85354-9", "blood pressure panel"), (None, None, "血压")}
    assert [(r["system"], r["code"]) for r in rows(BY_ID["p1"], "token", "gender")] == [
        (None, "male")]
    assert [r["code"] for r in rows(BY_ID["p1"], "token", "active")] == ["true"]
    # phone numbers and resident IDs are indexed as a keyed blind index, never in clear
    assert [(r["system"], r["code"]) for r in rows(BY_ID["p1"], "token", "phone")] == [
        (None, blind("13800000001"))]
    assert rows(BY_ID["p1"], "token", "email") == []
    of_type = rows(BY_ID["p1"], "token", "identifier:of-type")
    assert [r["code"] for r in of_type] == [
        f"http://terminology.hl7.org/CodeSystem/v2-0203|NI|{blind('110101196005120011')}"]
    assert [r["code"] for r in rows(BY_ID["p1"], "token", "_tag")] == ["hypertension"]


def test_references() -> None:
    def ref(value: str) -> tuple[Any, ...]:
        obs = {"resourceType": "Observation", "id": "x", "subject": {"reference": value}}
        (row,) = rows(obs, "reference", "subject")
        return row["target_type"], row["target_id"], row["target_version"], row["url"]

    assert ref("Patient/p1") == ("Patient", "p1", None, None)
    assert ref("Patient/p1/_history/3") == ("Patient", "p1", "3", None)
    assert ref("http://127.0.0.1:8000/Patient/p1") == ("Patient", "p1", None, None)
    assert ref("http://other.org/fhir/Patient/p1") == (
        None, None, None, "http://other.org/fhir/Patient/p1")
    assert ref("#contained1") == (None, None, None, "#contained1")
    assert ref("urn:uuid:0b4e1c34-1d4e-4b8e-9d4e-1a2b3c4d5e6f")[3].startswith("urn:uuid:")
    # where(resolve() is Patient): the patient param only takes Patient references
    group = {"resourceType": "Observation", "id": "x", "subject": {"reference": "Group/g"}}
    assert rows(group, "reference", "patient") == []
    assert len(rows(group, "reference", "subject")) == 1
    logical = {"resourceType": "Observation", "id": "x",
               "subject": {"identifier": {"system": "urn:id", "value": "42"}}}
    assert [(r["system"], r["code"]) for r in rows(logical, "token", "subject:identifier")] == [
        ("urn:id", "42")]


def test_dates_are_implicit_ranges() -> None:
    (birth,) = rows(BY_ID["p2"], "date", "birthdate")
    assert (birth["low"], birth["high"]) == (
        datetime(1975, 11, 1), datetime(1975, 11, 30, 23, 59, 59, 999999))
    (eff,) = rows(BY_ID["bp1"], "date", "date")
    assert eff["low"] == datetime(2024, 3, 5, 2, 30)  # +08:00 -> UTC
    assert eff["high"] == datetime(2024, 3, 5, 2, 30, 0, 999999)
    (period,) = rows(BY_ID["wt1"], "date", "date")
    assert (period["low"], period["high"]) == (datetime(2024, 3, 1), HIGH)
    (onset,) = rows(BY_ID["c2"], "date", "onset-date")
    assert onset["low"] == datetime(2018, 6, 1) and onset["high"] == HIGH
    no_start = {"resourceType": "Encounter", "id": "x", "period": {"end": "2024"}}
    (r,) = rows(no_start, "date", "date")
    assert (r["low"], r["high"]) == (LOW, datetime(2024, 12, 31, 23, 59, 59, 999999))
    timing = {"resourceType": "CarePlan", "id": "x", "activity": [{"detail": {
        "scheduledTiming": {"event": ["2024-01-05T10:00:00Z", "2024-01-02"],
                            "repeat": {"boundsPeriod": {"end": "2024-02"}}}}}]}
    (t,) = rows(timing, "date", "activity-date")
    assert (t["low"], t["high"]) == (LOW, datetime(2024, 2, 29, 23, 59, 59, 999999))
    bad = {"resourceType": "Patient", "id": "x", "birthDate": "1960-13-01"}
    assert rows(bad, "date", "birthdate") == []


@pytest.mark.parametrize(("text", "expected"), [
    ("2024", (datetime(2024, 1, 1), datetime(2024, 12, 31, 23, 59, 59, 999999))),
    ("2024-02", (datetime(2024, 2, 1), datetime(2024, 2, 29, 23, 59, 59, 999999))),
    ("2024-03-01T10:00:00Z", (datetime(2024, 3, 1, 10), datetime(2024, 3, 1, 10, 0, 0, 999999))),
    ("2024-03-01T10:00:00.5+01:00",
     (datetime(2024, 3, 1, 9, 0, 0, 500000), datetime(2024, 3, 1, 9, 0, 0, 599999))),
    ("2024-03-01T10:00", (datetime(2024, 3, 1, 10), datetime(2024, 3, 1, 10, 0, 59, 999999))),
    ("2024-13", None), ("24", None), ("2024-02-30", None), ("yesterday", None),
])
def test_parse_range(text: str, expected: tuple[datetime, datetime] | None) -> None:
    assert parse_range(text) == expected


def test_quantities_canonical() -> None:
    (sys_kpa,) = [r for r in rows(BY_ID["bp3"], "quantity", "component-value-quantity")
                  if r["value"] == 20]
    assert sys_kpa["canonical_code"] == "mm[Hg]"
    assert sys_kpa["canonical_value"] == pytest.approx(150.01, abs=0.01)
    (glu,) = rows(BY_ID["glu1"], "quantity", "value-quantity")
    assert glu["code"] == "mg/dL"
    assert glu["canonical_code"] == "mmol/L{glucose}"
    assert glu["canonical_value"] == pytest.approx(6.99, abs=0.01)
    (wt,) = rows(BY_ID["wt1"], "quantity", "value-quantity")
    assert (wt["canonical_code"], round(wt["canonical_value"])) == ("g", 69853)
    chol = {"resourceType": "Observation", "id": "x", "code": {"text": "cholesterol"},
            "valueQuantity": {"value": 200, "system": "http://unitsofmeasure.org",
                              "code": "mg/dL"}}
    (c,) = rows(chol, "quantity", "value-quantity")
    assert (c["canonical_value"], c["canonical_code"]) == (200, "mg/dL")
    unknown = {"resourceType": "Observation", "id": "x",
               "valueQuantity": {"value": 3, "unit": "片"}}
    (u,) = rows(unknown, "quantity", "value-quantity")
    assert (u["code"], u["canonical_value"], u["canonical_code"]) == ("片", 3, "片")


def test_composite_rows_share_a_group() -> None:
    out = index_rows(BY_ID["bp2"])
    codes = {r["grp"]: r["code"] for r in out["token"]
             if r["param"] == "component-code-value-quantity$0"}
    values = {r["grp"]: r["value"] for r in out["quantity"]
              if r["param"] == "component-code-value-quantity$1"}
    assert {codes[g]: values[g] for g in codes} == {"8480-6": 120, "8462-4": 140}
    assert all(r["grp"] is None for r in out["token"] if r["param"] == "code")


def test_number_and_uri() -> None:
    assert [r["value"] for r in rows(BY_ID["ra1"], "number", "probability")] == [0.25]
    assert [r["value"] for r in rows(BY_ID["bp1"], "uri", "_profile")] == [
        "http://hl7.org/fhir/StructureDefinition/bp"]


def test_exists_and_not_false() -> None:
    # "Patient.deceased.exists() and Patient.deceased != false": deceasedDateTime => true
    assert [r["code"] for r in rows(BY_ID["p2"], "token", "deceased")] == ["true"]
    assert [r["code"] for r in rows(BY_ID["p1"], "token", "deceased")] == ["false"]


def test_every_spec_param_compiles() -> None:
    # indexing an empty resource of each type compiles every expression once
    for rtype in ("Patient", "Observation", "Encounter", "Condition", "MedicationRequest",
                  "Questionnaire", "CarePlan", "ServiceRequest", "Task", "Appointment",
                  "MolecularSequence", "Bundle", "Group"):
        assert search_params(rtype)
        index_rows({"resourceType": rtype, "id": "x"})


def _canon(values: list[Any]) -> list[bytes]:
    def default(o: Any) -> Any:
        return float(o) if isinstance(o, decimal.Decimal) else str(o)

    return sorted({orjson.dumps(v, default=default, option=orjson.OPT_SORT_KEYS)
                   for v in values})


def test_fast_paths_agree_with_fhirpathpy() -> None:
    """The hand-rolled evaluator returns what fhirpathpy returns for every spec expression
    applying to the test resources (resolve() and Resource.* are not evaluable there)."""
    checked = 0
    for r in RESOURCES:
        rtype = r["resourceType"]
        for sp in search_params(rtype).values():
            if not sp.expression or "resolve()" in sp.expression:
                continue
            extract = compile_expression(sp.expression, rtype)
            branches = [b.replace("Resource.", rtype + ".")
                        for b in branches_for(sp.expression, rtype)]
            if extract is None or not branches:
                continue
            expected = evaluate(r, " | ".join(branches), model=models["r4"])
            assert _canon([v for v, _ in extract(r)]) == _canon(expected), (rtype, sp.code)
            checked += 1
    assert checked > 400


def test_malformed_values_do_not_raise() -> None:
    odd = {"resourceType": "Observation", "id": "x", "code": {"coding": ["8480-6", 3]},
           "component": ["oops", {"code": 5}], "identifier": [{"type": "NI", "value": "1"}],
           "subject": "Patient/p1", "effectiveDateTime": 20240101,
           "valueQuantity": {"value": "high"}}
    out = index_rows(odd)
    assert out["quantity"] == [] and out["date"] == []
