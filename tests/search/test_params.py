"""SearchParameter registry, including custom (Chinese extension) parameters."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from kangqiao.fhir.search.index import index_rows
from kangqiao.fhir.search.params import PLATFORM_PREFIX, register_search_param, search_params
from kangqiao.security.fieldcrypt import blind
from tests.search.conftest import search, store

ETHNICITY = "http://kangqiao.example/fhir/StructureDefinition/ethnicity"


def test_spec_params() -> None:
    patient = search_params("Patient")
    assert patient["name"].type == "string"
    assert set(patient["general-practitioner"].targets) == {
        "Organization", "Practitioner", "PractitionerRole"}
    for common in ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"):
        assert common in patient
        assert common in search_params(None)
    assert "name" not in search_params(None)
    comp = search_params("Observation")["component-code-value-quantity"]
    assert comp.type == "composite"
    assert [e for _, e in comp.components] == ["code", "value.ofType(Quantity)"]
    assert search_params("Observation")["code"].url == (
        "http://hl7.org/fhir/SearchParameter/clinical-code")


def test_register_rejects_incomplete() -> None:
    with pytest.raises(ValueError, match="code"):
        register_search_param({"type": "token", "base": ["Patient"], "url": "urn:x"})


@pytest.fixture(scope="module")
def ethnicity() -> dict[str, Any]:
    register_search_param({
        "resourceType": "SearchParameter", "url": "http://kangqiao.example/sp/ethnicity",
        "code": "ethnicity", "type": "token", "base": ["Patient"],
        "expression": f"Patient.extension('{ETHNICITY}').value.ofType(Coding)",
    })
    return {"resourceType": "Patient", "id": "cn1", "extension": [{
        "url": ETHNICITY,
        "valueCoding": {"system": "urn:oid:2.16.156.10011.2.3.3.3", "code": "01",
                        "display": "汉族"}}]}


def test_custom_param_indexed_and_searchable(engine: Engine, ethnicity: dict[str, Any]) -> None:
    rows = [r for r in index_rows(ethnicity)["token"] if r["param"] == "ethnicity"]
    assert [(r["code"], r["display"]) for r in rows] == [("01", "汉族")]
    store(engine, [ethnicity, {"resourceType": "Patient", "id": "cn2"}])
    assert search(engine, "Patient", [("ethnicity", "01")]) == ["cn1"]
    assert search(engine, "Patient", [("ethnicity:text", "汉")]) == ["cn1"]
    assert search(engine, "Patient", [("ethnicity:missing", "true")]) == ["cn2"]


def test_custom_param_outside_fast_subset_uses_fhirpathpy(engine: Engine) -> None:
    register_search_param({
        "resourceType": "SearchParameter", "url": "http://kangqiao.example/sp/mobile",
        "code": "mobile", "type": "token", "base": ["Patient"],
        "expression": "Patient.telecom.where(system = 'phone' and use = 'mobile').value",
    })
    patient = {"resourceType": "Patient", "id": "m1", "telecom": [
        {"system": "phone", "use": "mobile", "value": "13900000000"},
        {"system": "phone", "use": "home", "value": "010-1234567"}]}
    rows = [r for r in index_rows(patient)["token"] if r["param"] == "mobile"]
    assert [r["code"] for r in rows] == [blind("13900000000")]  # phones: blind index only
    store(engine, [patient])
    assert search(engine, "Patient", [("mobile", "13900000000")]) == ["m1"]
    assert search(engine, "Patient", [("mobile", "010-1234567")]) == []


EPISODES = [
    {"resourceType": "EpisodeOfCare", "id": "e1", "status": "active",
     "patient": {"reference": "Patient/p1"},
     "careManager": {"reference": "PractitionerRole/r1"},
     "team": [{"reference": "CareTeam/t1"}]},
    {"resourceType": "EpisodeOfCare", "id": "e2", "status": "active",
     "patient": {"reference": "Patient/p2"},
     "careManager": {"reference": "Practitioner/d1"},
     "team": [{"reference": "CareTeam/t2"}, {"reference": "CareTeam/t1"}]},
]


def test_platform_episode_params_find_the_manager_role_and_every_team(engine: Engine) -> None:
    store(engine, EPISODES)
    assert search(engine, "EpisodeOfCare", [("care-manager-role", "PractitionerRole/r1")]) == [
        "e1"]
    assert search(engine, "EpisodeOfCare", [("care-manager-role", "r1")]) == ["e1"]
    assert search(engine, "EpisodeOfCare", [("team", "CareTeam/t1")]) == ["e1", "e2"]
    assert search(engine, "EpisodeOfCare", [("team", "t2")]) == ["e2"]
    # R4's care-manager keeps its meaning (a Practitioner only): the gate searches it.
    assert search(engine, "EpisodeOfCare", [("care-manager", "Practitioner/d1")]) == ["e2"]
    assert search(engine, "EpisodeOfCare", [("care-manager", "r1")]) == []


def test_platform_params_are_listed_with_the_spec_ones() -> None:
    episode = search_params("EpisodeOfCare")
    assert episode["team"].targets == ("CareTeam",)
    assert episode["care-manager-role"].url.startswith(PLATFORM_PREFIX)
    assert episode["care-manager"].url.startswith("http://hl7.org/fhir/SearchParameter/")
