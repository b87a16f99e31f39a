"""The FHIRPath a shareable view needs, each function and operator from the spec list."""

from __future__ import annotations

from typing import Any

import pytest

from tests.analytics.conftest import rows

pytestmark = pytest.mark.usefixtures("view_engine")

OBS = [
    {"resourceType": "Observation", "id": "o1", "status": "final",
     "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
     "subject": {"reference": "Patient/pt1"},
     "performer": [{"reference": "Practitioner/dr1"}, {"reference": "Organization/org1"}],
     "effectiveDateTime": "2024-03-05T08:30:00+08:00",
     "valueQuantity": {"value": 1.5, "unit": "mmol/L"},
     "component": [
         {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
          "valueQuantity": {"value": 140, "unit": "mmHg"}},
         {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
          "valueQuantity": {"value": 90, "unit": "mmHg"}}]},
    {"resourceType": "Observation", "id": "o2", "status": "final",
     "code": {"text": "x"}, "subject": {"reference": "http://h/fhir/Group/g1/_history/2"},
     "valueInteger": 12, "effectivePeriod": {"start": "2024-02", "end": "2024-02-10"}},
    {"resourceType": "Observation", "id": "o3", "status": "preliminary", "code": {"text": "y"},
     "subject": {"reference": "urn:uuid:0f3c"}, "valueString": "high"},
]  # fmt: skip


def one(path: str, resources: list[dict[str, Any]] = OBS, resource: str = "Observation",
        **column: Any) -> dict[str, Any]:  # fmt: skip
    v = {"resource": resource, "select": [{"column": [
        {"name": "id", "path": "id"}, {"name": "v", "path": path, **column}]}]}
    return {r["id"]: r["v"] for r in rows(v, resources)}


def test_literals() -> None:
    assert one("'a\\'b'")["o1"] == "a'b"
    assert one("42")["o1"] == 42
    assert one("4.5")["o1"] == 4.5
    assert one("true")["o1"] is True
    assert one("{}")["o1"] is None


def test_path_navigation_and_resource_keys() -> None:
    assert one("subject.reference")["o1"] == "Patient/pt1"
    assert one("getResourceKey()") == {"o1": "o1", "o2": "o2", "o3": "o3"}
    assert one("code.coding.code.first()")["o1"] == "85354-9"


def test_get_reference_key_with_and_without_type() -> None:
    assert one("subject.getReferenceKey()") == {"o1": "pt1", "o2": "g1", "o3": None}
    assert one("subject.getReferenceKey(Patient)") == {"o1": "pt1", "o2": None, "o3": None}
    assert one("subject.getReferenceKey('Group')")["o2"] == "g1"
    got = one("performer.getReferenceKey(Practitioner)", collection=True)
    assert got["o1"] == ["dr1"]
    assert one("performer.getReferenceKey()", collection=True)["o1"] == ["dr1", "org1"]


def test_get_reference_key_of_a_type_beside_the_plain_form() -> None:
    # The plain Type/id form is keyed by a prefix test; every other form must still go
    # through the general split.
    refs = {"a": "Patient/p1", "b": "Patient/p2/_history/3", "c": "http://h/fhir/Patient/p4",
            "d": "Patient/", "e": "PatientX/p5", "f": "Patient/p6/extra", "g": None,
            # rejected without the split (no "Patient/" in them) or split and refused
            "h": "Practitioner/x", "i": "RelatedPatient/p7", "j": "urn:uuid:Patient/p9"}
    docs = [{"resourceType": "Observation", "id": k, "status": "final", "code": {"text": "x"},
             **({"subject": {"reference": r}} if r else {}),
             "performer": [{"display": "no reference"}, {"reference": r or "Group/g"}]}
            for k, r in refs.items()]  # fmt: skip
    want = {"a": "p1", "b": "p2", "c": "p4", "d": None, "e": None, "f": None, "g": None,
            "h": None, "i": None, "j": None}
    assert one("subject.getReferenceKey(Patient)", docs) == want
    assert one("performer.getReferenceKey(Patient).first()", docs) == want


def test_of_type_selects_the_choice_element() -> None:
    assert one("value.ofType(Quantity).value") == {"o1": 1.5, "o2": None, "o3": None}
    assert one("value.ofType(integer)") == {"o1": None, "o2": 12, "o3": None}
    assert one("value.ofType(string)")["o3"] == "high"
    assert one("effective.ofType(dateTime)")["o1"] == "2024-03-05T08:30:00+08:00"


def test_where_exists_empty_first_and_indexers() -> None:
    bp = "component.where(code.coding.exists(system='http://loinc.org' and code='8480-6'))"
    assert one(f"{bp}.value.ofType(Quantity).value.first()")["o1"] == 140
    assert one("component.exists()") == {"o1": True, "o2": False, "o3": False}
    assert one("component.empty()") == {"o1": False, "o2": True, "o3": True}
    assert one("component.exists(code.coding.code = '8462-4')")["o1"] is True
    assert one("component[1].value.ofType(Quantity).value")["o1"] == 90
    assert one("component[5].value.ofType(Quantity).value")["o1"] is None
    assert one("component[-1].value.ofType(Quantity).value")["o1"] is None
    assert one("component[0 - 2].value.ofType(Quantity).value")["o1"] is None
    assert one("component.code.coding.code.first()")["o1"] == "8480-6"


def test_extension_function(patients: list[dict[str, Any]]) -> None:
    got = one("extension('http://example.org/ethnicity').value.ofType(code)", patients, "Patient")
    assert got == {"pt1": "han", "pt2": None, "pt3": None}
    got = one("extension('http://example.org/none').exists()", patients, "Patient")
    assert got["pt1"] is False


def test_a_choice_element_without_of_type_is_whichever_value_is_present() -> None:
    assert one("value") == {"o1": {"value": 1.5, "unit": "mmol/L"}, "o2": 12, "o3": "high"}
    assert one("value.exists()") == {"o1": True, "o2": True, "o3": True}
    assert one("component.value", collection=True)["o1"] == [
        {"value": 140, "unit": "mmHg"}, {"value": 90, "unit": "mmHg"}]
    assert one("effective.exists()") == {"o1": True, "o2": True, "o3": False}


def test_boolean_logic_three_valued() -> None:
    assert one("status = 'final' and value.ofType(integer) > 10") == {
        "o1": None, "o2": True, "o3": False}  # true and {} is {}
    assert one("status = 'final' or {}")["o3"] is None
    assert one("(status = 'final').not()")["o3"] is True
    assert one("status = 'preliminary' implies value.exists()") == {
        "o1": True, "o2": True, "o3": True}
    assert one("{} implies false")["o1"] is None


def test_arithmetic_and_comparison() -> None:
    assert one("value.ofType(integer) + 3")["o2"] == 15
    assert one("value.ofType(integer) - 2 * 3")["o2"] == 6
    assert one("value.ofType(integer) / 8")["o2"] == 1.5
    assert one("value.ofType(integer) div 5")["o2"] == 2
    assert one("value.ofType(integer) mod 5")["o2"] == 2
    assert one("value.ofType(integer) / 0")["o2"] is None
    assert one("value.ofType(Quantity).value * 2")["o1"] == 3.0
    assert one("status + '-' + id")["o1"] == "final-o1"
    assert one("status != 'final'") == {"o1": False, "o2": False, "o3": True}
    assert one("value.ofType(integer) >= 12")["o2"] is True
    assert one("value.ofType(integer) < 12")["o2"] is False
    assert one("value.ofType(integer) <= 11")["o2"] is False


def test_join(patients: list[dict[str, Any]]) -> None:
    assert one("name.given.join(',')", patients, "Patient") == {
        "pt1": "Xiu,Ying,Ying", "pt2": None, "pt3": None}
    assert one("name.first().given.join()", patients, "Patient")["pt1"] == "XiuYing"


def test_low_and_high_boundary() -> None:
    assert one("value.ofType(Quantity).value.lowBoundary()")["o1"] == pytest.approx(1.45)
    assert one("value.ofType(Quantity).value.highBoundary()")["o1"] == pytest.approx(1.55)
    assert one("component.first().value.ofType(Quantity).value.lowBoundary()")["o1"] == (
        pytest.approx(139.95))
    assert one("effective.ofType(dateTime).lowBoundary()")["o1"] == "2024-03-05T08:30:00.000+08:00"
    assert one("effective.ofType(dateTime).highBoundary()")["o1"] == (
        "2024-03-05T08:30:00.999+08:00")
    assert one("effective.ofType(Period).lowBoundary()")["o2"] == "2024-02-01T00:00:00.000+14:00"
    assert one("effective.ofType(Period).highBoundary()")["o2"] == "2024-02-10T23:59:59.999-12:00"
    assert one("birthDate.lowBoundary()", [{"resourceType": "Patient", "id": "p",
                                            "birthDate": "1950-02"}], "Patient")["p"] == (
        "1950-02-01")  # fmt: skip
    assert one("birthDate.highBoundary()", [{"resourceType": "Patient", "id": "p",
                                             "birthDate": "1952-02"}], "Patient")["p"] == (
        "1952-02-29")  # fmt: skip


def test_column_types_cast_values() -> None:
    assert one("value.ofType(integer)", type="string")["o2"] == "12"
    assert one("value.ofType(Quantity).value", type="decimal")["o1"] == 1.5
    assert one("status = 'final'", type="boolean")["o1"] is True


def test_complex_values_come_back_as_objects() -> None:
    assert one("subject")["o1"] == {"reference": "Patient/pt1"}
    assert one("component.code", collection=True)["o1"][1] == {
        "coding": [{"system": "http://loinc.org", "code": "8462-4"}]}
