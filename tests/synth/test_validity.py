"""Every generated resource is valid FHIR R4 and every reference resolves."""

from __future__ import annotations

import re
from typing import Any

from kangqiao.fhir.validation import validate_resource
from tests.synth.conftest import County, codes
from tests.synth.fhir_check import check_resource

REF_RE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")


def _references(node: Any) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                out.append(v)
            else:
                out += _references(v)
    elif isinstance(node, list):
        for v in node:
            out += _references(v)
    return out


def test_every_resource_passes_the_store_validator(county: County) -> None:
    problems = []
    for items in county.by_type.values():
        for r in items:
            issues = validate_resource(r)
            if issues:
                problems.append((r["resourceType"], r["id"], issues[:3]))
    assert not problems, problems[:5]


def test_every_resource_passes_the_schema_check(county: County) -> None:
    problems = []
    for items in county.by_type.values():
        for r in items[:3000]:
            errors = check_resource(r)
            if errors:
                problems.append((r["resourceType"], r["id"], errors[:3]))
    assert not problems, problems[:5]


def test_ids_unique_and_references_resolve(county: County) -> None:
    for rtype, items in county.by_type.items():
        ids = [r["id"] for r in items]
        assert len(ids) == len(set(ids)), rtype
    dangling = []
    for items in county.by_type.values():
        for r in items:
            for ref in _references(r):
                assert REF_RE.match(ref), ref
                if tuple(ref.split("/")) not in county.index:
                    dangling.append((r["id"], ref))
    assert not dangling, dangling[:5]


def test_dependency_order(county: County) -> None:
    """Every reference points at a resource that came earlier in the stream."""
    from kangqiao.synth import iter_resources

    seen: set[str] = set()
    for r in iter_resources(400, 3):
        for ref in _references(r):
            assert ref in seen, (r["resourceType"], r["id"], ref)
        seen.add(f"{r['resourceType']}/{r['id']}")


def test_codes_and_units(county: County) -> None:
    obs = county.by_type["Observation"]
    bp = [o for o in obs if "85354-9" in codes(o["code"])]
    assert bp
    for o in bp:
        comp = {next(iter(codes(c["code"]))): c["valueQuantity"] for c in o["component"]}
        assert set(comp) == {"8480-6", "8462-4"}
        assert all(
            q["code"] == "mm[Hg]" and q["system"] == "http://unitsofmeasure.org"
            for q in comp.values()
        )
        assert o["category"][0]["coding"][0]["code"] == "vital-signs"
    units = {
        "14771-0": "mmol/L",
        "4548-4": "%",
        "14682-9": "umol/L",
        "14647-2": "mmol/L",
        "8867-4": "/min",
        "29463-7": "kg",
        "39156-5": "kg/m2",
        "14743-9": "mmol/L",
    }
    seen = set()
    for o in obs:
        for code in codes(o["code"]) & set(units):
            assert o["valueQuantity"]["code"] == units[code], code
            seen.add(code)
    assert seen == set(units)
    conditions = {c for cond in county.by_type["Condition"] for c in codes(cond["code"])}
    assert {"I10", "E11"} <= conditions
    for cond in county.by_type["Condition"]:
        assert cond["code"]["coding"][0]["system"] == "http://hl7.org/fhir/sid/icd-10"
        assert codes(cond["clinicalStatus"]) == {"active"}


def test_patient_shape(county: County) -> None:
    for p in county.residents()[:500]:
        official = p["name"][0]
        assert official["text"] == official["family"] + official["given"][0]
        assert p["gender"] in ("male", "female")
        assert p["identifier"][0]["system"] == "https://kangqiao.example/fhir/sid/resident-id"
