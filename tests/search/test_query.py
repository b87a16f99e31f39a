"""Search semantics, executed against SQLite and PostgreSQL on the resources in data.py."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.search.query import build_search
from tests.search.conftest import search, store
from tests.search.data import RESOURCES

SYS_BP = "http://loinc.org|8480-6"
MMHG = "http://unitsofmeasure.org|mm[Hg]"


@pytest.fixture(scope="module")
def db(engine: Engine) -> Engine:
    store(engine, RESOURCES)
    return engine


CASES: list[tuple[str | None, list[tuple[str, str]], list[str]]] = [
    # token
    ("Observation", [("code", "http://loinc.org|85354-9")], ["bp1", "bp2", "bp3"]),
    ("Observation", [("code", "85354-9")], ["bp1", "bp2", "bp3"]),
    ("Observation", [("code", "|85354-9")], []),
    ("Observation", [("code", "http://loinc.org|")],
     ["bp1", "bp2", "bp3", "ext1", "glu1", "glu2", "wt1"]),
    ("Observation", [("code:not", "85354-9")], ["ext1", "glu1", "glu2", "log1", "wt1"]),
    ("Observation", [("code:text", "blood")], ["bp1", "bp2", "bp3"]),
    ("Observation", [("code:text", "血压")], ["bp1", "bp2", "bp3"]),
    ("Condition", [("code:text", "高血压")], ["c1"]),
    ("Patient", [("gender", "male,female")], ["p1", "p2"]),
    ("Patient", [("active", "true")], ["p1"]),
    ("Patient", [("phone", "13800000001")], ["p1"]),
    ("Patient", [("email", "jose@example.org")], ["p2"]),
    ("Patient", [("identifier", "urn:oid:2.16.156.10011.1.2|110101196005120011")], ["p1"]),
    ("Patient", [("identifier:of-type",
                  "http://terminology.hl7.org/CodeSystem/v2-0203|NI|110101196005120011")],
     ["p1"]),
    ("Patient", [("deceased", "true")], ["p2"]),  # fhirpathpy fallback expression
    ("Patient", [("_tag", "http://kangqiao/tags|hypertension")], ["p1"]),
    # string
    ("Patient", [("name", "张")], ["p1"]),
    ("Patient", [("name", "张三")], ["p1"]),
    ("Patient", [("name", "jose")], ["p2"]),
    ("Patient", [("family", "MUL")], ["p2"]),
    ("Patient", [("name", "john smith")], ["p3"]),
    ("Patient", [("name:exact", "smith")], ["p3"]),
    ("Patient", [("name:exact", "smit")], []),
    ("Patient", [("name:contains", "ull")], ["p2"]),
    ("Patient", [("name", "j"), ("name", "smi")], ["p3"]),  # AND across repeats
    ("Patient", [("name", "z\\,y")], []),  # escaped comma: one value
    ("Patient", [("address-city", "北京")], ["p1"]),
    ("Patient", [("address", "东城")], ["p1"]),
    ("Patient", [("address", "和平里")], []),  # the line is protected: not indexed
    # date: partial dates are ranges; eq = contained, gt/lt = overlap beyond
    ("Patient", [("birthdate", "1960")], ["p1"]),
    ("Patient", [("birthdate", "1975")], ["p2"]),
    ("Patient", [("birthdate", "1975-11")], ["p2"]),
    ("Patient", [("birthdate", "1975-11-15")], []),
    ("Patient", [("birthdate", "ge1975-11-15")], ["p2", "p3"]),
    ("Patient", [("birthdate", "le1975-11-15")], ["p1", "p2"]),
    ("Patient", [("birthdate", "lt1970")], ["p1"]),
    ("Patient", [("birthdate", "gt1990-01-01")], []),
    ("Patient", [("birthdate", "ge1990-01-01")], ["p3"]),
    ("Patient", [("birthdate", "ne1960")], ["p2", "p3"]),
    ("Patient", [("birthdate", "sa1975-10-31")], ["p2", "p3"]),
    ("Patient", [("birthdate", "eb1975-12-01")], ["p1", "p2"]),
    ("Patient", [("birthdate", "ap1960-06")], ["p1"]),
    ("Patient", [("birthdate", "1960-05-12T12:00:00Z")], []),
    ("Encounter", [("date", "2024-03-01")], ["e1"]),
    ("Encounter", [("date", "ge2024-03-01")], ["e1", "e2"]),  # open period end
    ("Encounter", [("date", "gt2030")], ["e2"]),
    ("Encounter", [("date", "lt2024-02-01")], []),
    ("Encounter", [("date", "2024-03-01T08:00:00Z")], []),
    ("Encounter", [("date", "sa2024-02-29")], ["e1"]),
    ("Observation", [("date", "2024-03-05")], ["bp1", "bp2"]),
    ("Observation", [("date", "2024-03-05T10:30:00+08:00")], ["bp1"]),
    ("Observation", [("date", "2024-03-05T02:30:00Z")], ["bp1"]),
    ("Observation", [("date", "2024-03-05T23:00:00Z")], ["bp2"]),
    ("Observation", [("date", "2024-03-06T07:00+08:00")], ["bp2"]),
    ("Observation", [("date", "2024-03-06")], []),  # 07:00 Beijing = 2024-03-05 23:00 UTC
    ("Observation", [("date", "2024-03")], ["bp1", "bp2", "bp3", "ext1"]),
    ("Condition", [("onset-date", "2015")], ["c1"]),
    ("Condition", [("onset-date", "ge2020")], ["c2"]),
    # quantity: canonical units
    ("Observation", [("value-quantity", "gt6|http://unitsofmeasure.org|mmol/L")], ["glu1"]),
    ("Observation", [("value-quantity", "126|http://unitsofmeasure.org|mg/dL")], ["glu1"]),
    ("Observation", [("value-quantity", "lt100|http://unitsofmeasure.org|mg/dL")], ["glu2"]),
    ("Observation", [("value-quantity", "ge69|http://unitsofmeasure.org|kg")],
     ["ext1", "wt1"]),
    ("Observation", [("value-quantity", "154")], ["wt1"]),
    # 70 kg is 154.3 lb: equal at the precision of "154"
    ("Observation", [("value-quantity", "154||[lb_av]")], ["ext1", "wt1"]),
    ("Observation", [("value-quantity", "ap70||kg")], ["ext1", "wt1"]),
    ("Observation", [("value-quantity", "ne5.5")], ["ext1", "glu1", "wt1"]),
    ("Observation", [("component-value-quantity", f"gt145|{MMHG}")], ["bp3"]),
    ("Observation", [("component-value-quantity", "20|http://unitsofmeasure.org|kPa")],
     ["bp3"]),
    # composite: code and value must come from the same component
    ("Observation", [("component-code-value-quantity", f"{SYS_BP}$140")], ["bp1"]),
    ("Observation", [("component-code-value-quantity", f"{SYS_BP}$ge140|{MMHG}")],
     ["bp1", "bp3"]),
    ("Observation", [("component-code-value-quantity", f"{SYS_BP}$lt130,{SYS_BP}$gt145")],
     ["bp2", "bp3"]),
    ("Observation", [("component-code-value-quantity", "http://loinc.org|8462-4$140")],
     ["bp2"]),
    ("Observation", [("code-value-quantity", "http://loinc.org|2345-7$gt100||mg/dL")],
     ["glu1"]),
    # number (implicit precision)
    ("RiskAssessment", [("probability", "0.25")], ["ra1"]),
    ("RiskAssessment", [("probability", "0.3")], ["ra1"]),
    ("RiskAssessment", [("probability", "0.30")], []),
    ("RiskAssessment", [("probability", "gt0.5")], ["ra2"]),
    ("RiskAssessment", [("probability", "le0.25")], ["ra1"]),
    # reference
    ("Observation", [("subject", "Patient/p1")], ["bp1", "glu1"]),
    ("Observation", [("subject", "p1")], ["bp1", "glu1"]),
    ("Observation", [("subject:Patient", "p1")], ["bp1", "glu1"]),
    ("Observation", [("patient", "p1,p3")], ["bp1", "bp3", "glu1", "wt1"]),
    ("Observation", [("subject", "http://127.0.0.1:8000/Patient/p1")], ["bp1", "glu1"]),
    ("Observation", [("subject", "http://other.org/fhir/Patient/p1")], ["ext1"]),
    ("Observation", [("subject:Group", "p1")], []),
    ("Patient", [("organization", "Organization/o1")], ["p1"]),
    ("Observation", [("subject:identifier", "urn:oid:2.16.156.10011.1.2|110101196005120011")],
     ["log1"]),
    # chains
    ("Observation", [("subject:Patient.name", "张")], ["bp1", "glu1"]),
    ("Observation", [("subject.name", "muller")], ["bp2", "glu2"]),
    ("Observation", [("patient.birthdate", "lt1980")], ["bp1", "bp2", "glu1", "glu2"]),
    ("Observation", [("patient.organization.name", "kangqiao")], ["bp1", "glu1"]),
    ("Encounter", [("participant.name", "李")], ["e1"]),
    ("Condition", [("subject:Patient._id", "p2")], ["c2"]),
    # reverse chains
    ("Patient", [("_has:Observation:patient:code", "2345-7")], ["p1", "p2"]),
    ("Patient", [("_has:Observation:subject:component-code-value-quantity",
                  f"{SYS_BP}$gt145|{MMHG}")], ["p3"]),
    ("Patient", [("_has:Condition:subject:code", "I10"), ("_has:Observation:patient:code",
                                                            "2345-7")], ["p1"]),
    ("Organization", [("_has:Patient:organization:_has:Observation:patient:code", "2345-7")],
     ["o1"]),
    # :missing
    ("Patient", [("gender:missing", "true")], ["p3"]),
    ("Patient", [("gender:missing", "false")], ["p1", "p2"]),
    ("Observation", [("value-quantity:missing", "true")], ["bp1", "bp2", "bp3", "log1"]),
    ("Observation", [("component-code-value-quantity:missing", "false")],
     ["bp1", "bp2", "bp3"]),
    ("Patient", [("birthdate:missing", "true")], []),
    # uri
    ("Observation", [("_profile", "http://hl7.org/fhir/StructureDefinition/bp")],
     ["bp1", "bp2", "bp3"]),
    ("Observation", [("_profile:below", "http://hl7.org/fhir/StructureDefinition/")],
     ["bp1", "bp2", "bp3"]),
    ("Observation", [("_profile:above", "http://hl7.org/fhir/StructureDefinition/bp/x")],
     ["bp1", "bp2", "bp3"]),
    ("Observation", [("_profile", "http://hl7.org/fhir/StructureDefinition/")], []),
    # resource columns and system-level search
    ("Patient", [("_id", "p1,p3")], ["p1", "p3"]),
    ("Patient", [("_lastUpdated", "2024-03-10")], ["p1", "p2", "p3"]),
    ("Patient", [("_lastUpdated", "gt2024-03-10T12:00:00Z")], []),
    (None, [("_id", "p1,o1")], ["o1", "p1"]),
    (None, [("_tag", "hypertension")], ["p1"]),
    (None, [("_type", "Organization,Practitioner")], ["d1", "o1"]),
    # result parameters are left to the caller
    ("Patient", [("_count", "1"), ("_include", "Patient:organization"), ("gender", "male")],
     ["p1"]),
]


@pytest.mark.parametrize(("rtype", "params", "expected"), CASES,
                         ids=[f"{c[0]}?{c[1]}" for c in CASES])
def test_search(db: Engine, rtype: str | None, params: list[tuple[str, str]],
                expected: list[str]) -> None:
    assert search(db, rtype, params) == expected


def test_sort(db: Engine) -> None:
    assert search(db, "Patient", [("_sort", "birthdate")]) == ["p1", "p2", "p3"]
    assert search(db, "Patient", [("_sort", "-birthdate")]) == ["p3", "p2", "p1"]
    assert search(db, "Patient", [("_sort", "family")]) == ["p2", "p3", "p1"]
    assert search(db, "Patient", [("_sort", "gender,-_id")]) == ["p2", "p1", "p3"]
    assert search(db, "Observation", [("code", "85354-9"), ("_sort", "-date")]) == [
        "bp3", "bp2", "bp1"]


@pytest.mark.parametrize(("params", "fragment"), [
    ([("birthdate", "1960-13")], "birthdate"),
    ([("birthdate", "xx1960")], "prefix"),
    ([("birthdate", "soon")], "birthdate"),
    ([("name:below", "x")], "name:below"),
    ([("gender:exact", "x")], "gender:exact"),
    ([("general-practitioner", "Observation/x")], "general-practitioner"),
    ([("gender:missing", "maybe")], "missing"),
    ([("_has:Observation:code:code", "x")], "_has"),
    ([("gender.name", "x")], "gender.name"),
])
def test_invalid_values_raise_400(params: list[tuple[str, str]], fragment: str) -> None:
    with pytest.raises(FhirError) as err:
        build_search("Patient", params)
    assert err.value.status == 400
    assert fragment in str(err.value)


def test_invalid_number_and_composite() -> None:
    with pytest.raises(FhirError, match="value-quantity"):
        build_search("Observation", [("value-quantity", "abc")])
    with pytest.raises(FhirError, match="component-code-value-quantity"):
        build_search("Observation", [("component-code-value-quantity", "8480-6")])


def test_unknown_params_warn_or_fail() -> None:
    spec = build_search("Patient", [("shoe-size", "42"), ("gender", "male")])
    assert len(spec.where) == 1
    assert [w.severity for w in spec.warnings] == ["warning"]
    assert "shoe-size" in spec.warnings[0].diagnostics
    with pytest.raises(FhirError) as err:
        build_search("Patient", [("shoe-size", "42")], strict=True)
    assert err.value.status == 400
    # system search: only the common parameters
    assert build_search(None, [("name", "x")]).warnings


def test_lenient_search_ignores_unknown(db: Engine) -> None:
    assert search(db, "Patient", [("shoe-size", "42"), ("gender", "male")],
                  strict=False) == ["p1"]
