"""Differential tests: the compiled engines (DuckDB in both compilation modes, Spark)
against the row-by-row reference evaluator (fhirpathpy, following the specification's
processing model literally) on generated resources."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import pytest

from kangqiao.analytics import run_view
from kangqiao.analytics.fhirpath_sql import NeedJson
from kangqiao.analytics.reference import reference_run
from tests.analytics.conftest import same, spark_rows

pytestmark = pytest.mark.usefixtures("view_engine")

LOINC = "http://loinc.org"


def _maybe(rng: random.Random, value: Any, p: float = 0.7) -> Any:
    return value if rng.random() < p else None


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, [], {})}


def patient(rng: random.Random, i: int) -> dict[str, Any]:
    names = [_clean({"use": _maybe(rng, rng.choice(["official", "nickname", "old"])),
                     "family": _maybe(rng, rng.choice(["Wang", "Li", "Zhang"])),
                     "given": [rng.choice(["Ming", "Hua", "Fang"])
                               for _ in range(rng.randrange(3))]})
             for _ in range(rng.randrange(3))]  # fmt: skip
    return _clean({
        "resourceType": "Patient", "id": f"p{i}",
        "gender": _maybe(rng, rng.choice(["male", "female", "unknown"])),
        "birthDate": _maybe(rng, f"19{rng.randrange(10, 99)}-0{rng.randrange(1, 10)}-1{i % 9}"),
        "active": _maybe(rng, rng.random() < 0.5),
        "name": [n for n in names if n],
        "address": [_clean({"city": _maybe(rng, rng.choice(["A", "B"])),
                            "postalCode": _maybe(rng, str(rng.randrange(100)))})
                    for _ in range(rng.randrange(3))],
        "identifier": [{"system": rng.choice(["urn:a", "urn:b"]), "value": str(rng.random())}
                       for _ in range(rng.randrange(3))],
        "generalPractitioner": [{"reference": rng.choice(["Practitioner/d1", "Organization/o1",
                                                          "urn:uuid:x"])}
                                for _ in range(rng.randrange(2))],
    })  # fmt: skip


def observation(rng: random.Random, i: int) -> dict[str, Any]:
    comps = [{"code": {"coding": [{"system": LOINC, "code": code}]},
              "valueQuantity": _clean({"value": _maybe(rng, rng.randrange(50, 200)),
                                       "unit": "mmHg"})}
             for code in rng.sample(["8480-6", "8462-4"], rng.randrange(3))]  # fmt: skip
    value = rng.choice([{"valueQuantity": {"value": rng.randrange(1, 99) / 4}},
                        {"valueInteger": rng.randrange(20)}, {"valueString": "s"}, {}])
    return _clean({
        "resourceType": "Observation", "id": f"o{i}", "status": rng.choice(["final", "amended"]),
        "code": {"coding": [{"system": LOINC, "code": rng.choice(["85354-9", "2345-7"])}]},
        "subject": _maybe(rng, {"reference": rng.choice(["Patient/p1", "Group/g", "p2"])}),
        "effectiveDateTime": _maybe(rng, f"2024-0{rng.randrange(1, 10)}-10T08:00:00Z"),
        "component": comps, **value,
    })  # fmt: skip


VIEWS: list[dict[str, Any]] = [
    {"resource": "Patient", "select": [{"column": [
        {"name": "id", "path": "getResourceKey()"}, {"name": "gender", "path": "gender"},
        {"name": "birth", "path": "birthDate"}, {"name": "active", "path": "active"},
        {"name": "official", "path": "name.where(use = 'official').family.first()"},
        {"name": "n_names", "path": "name.count()"},
        {"name": "has_a", "path": "identifier.exists(system = 'urn:a')"},
        {"name": "gp", "path": "generalPractitioner.getReferenceKey(Practitioner).first()"},
        {"name": "givens", "path": "name.given", "collection": True},
        {"name": "joined", "path": "name.given.join('|')"},
    ]}]},
    {"resource": "Patient", "where": [{"path": "gender = 'female' or active"}],
     "select": [{"column": [{"name": "id", "path": "id"}]},
                {"forEachOrNull": "name", "column": [{"name": "family", "path": "family"},
                                                     {"name": "i", "path": "%rowIndex"}],
                 "select": [{"forEach": "given", "column": [{"name": "g", "path": "$this"}]}]},
                {"forEach": "address", "column": [{"name": "city", "path": "city"}]}]},
    {"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id"}], "unionAll": [
        {"forEach": "address", "column": [{"name": "v", "path": "postalCode"},
                                          {"name": "k", "path": "'addr'"}]},
        {"forEach": "identifier", "column": [{"name": "v", "path": "value"},
                                             {"name": "k", "path": "system"}]}]}]},
    {"resource": "Observation",
     "constant": [{"name": "sys", "valueCode": "8480-6"}, {"name": "lim", "valueDecimal": 120}],
     "where": [{"path": "code.coding.exists(system = 'http://loinc.org' and code = '85354-9')"}],
     "select": [{"column": [
         {"name": "id", "path": "getResourceKey()"},
         {"name": "patient", "path": "subject.getReferenceKey(Patient)"},
         {"name": "any_key", "path": "subject.getReferenceKey()"},
         {"name": "when", "path": "effective.ofType(dateTime)"},
         {"name": "sys", "path": "component.where(code.coding.code = %sys)"
                                 ".value.ofType(Quantity).value.first()"},
         {"name": "high", "path": "component.where(code.coding.code = %sys)"
                                  ".value.ofType(Quantity).value.first() > %lim"},
         {"name": "q", "path": "value.ofType(Quantity).value * 2"},
         {"name": "int", "path": "value.ofType(integer) + 1"},
         {"name": "s", "path": "value.ofType(string)"},
         {"name": "no_comp", "path": "component.empty()"},
     ]}]},
    {"resource": "Observation", "select": [
        {"column": [{"name": "id", "path": "id"}]},
        {"forEach": "component", "column": [
            {"name": "code", "path": "code.coding.first().code"},
            {"name": "value", "path": "value.ofType(Quantity).value"},
            {"name": "idx", "path": "%rowIndex"}]}]},
]  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("index", range(len(VIEWS)))
def test_compiled_engine_matches_reference_evaluator(seed: int, index: int,
                                                     view_engine: str) -> None:
    rng = random.Random(seed)
    resources = [patient(rng, i) for i in range(40)] + [observation(rng, i) for i in range(40)]
    view = VIEWS[index]
    expected = reference_run(view, resources)
    if view_engine == "spark":
        same(spark_rows(view, resources), expected)
        return
    same(run_view(view, resources, mode="json"), expected)
    with contextlib.suppress(NeedJson):
        same(run_view(view, resources, mode="struct"), expected)
