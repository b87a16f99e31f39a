"""Shared helpers: run a view through every compilation mode and engine and compare.

Modules that ``pytest.mark.usefixtures("view_engine")`` run every test once per engine: on
``spark`` (marked ``spark``: ``pytest -m spark`` selects them, ``-m "not spark"`` leaves
them out) :func:`rows` also runs the view on Spark and requires the same rows. One local
SparkSession serves the whole test session (see :func:`spark_session`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kangqiao.analytics import run_view
from kangqiao.analytics.fhirpath_sql import NeedJson
from tests.security.conftest import app_client, county  # noqa: F401  (fixtures: $run tests)

ENGINE = {"name": "duckdb"}  # the running test's engine (set by ``view_engine``)


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    """One local Spark (local[2], loopback only, no UI) for every Spark test of a worker.

    Interpreted expressions (no code generation): the test data are tiny and compiling
    Java for every query would cost far more than running it."""
    from kangqiao.analytics import spark

    session = spark.session("local[2]")
    session.conf.set("spark.sql.codegen.wholeStage", "false")
    session.conf.set("spark.sql.codegen.factoryMode", "NO_CODEGEN")
    yield session


@pytest.fixture(params=["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def view_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    name = str(request.param)
    if name == "spark":
        request.getfixturevalue("spark_session")
    ENGINE["name"] = name
    yield name
    ENGINE["name"] = "duckdb"


def spark_rows(view: dict[str, Any], resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The view's rows on Spark; skips the test when the view cannot run there."""
    from kangqiao.analytics.spark import SparkViewError

    try:
        return run_view(view, resources, engine="spark")
    except SparkViewError as exc:
        pytest.skip(str(exc))


def _norm(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)  # 96 and 96.0 are the same FHIR decimal
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


def _key(row: dict[str, Any]) -> str:
    return repr(sorted(((k, _norm(v)) for k, v in row.items()), key=lambda kv: kv[0]))


def rows(view: dict[str, Any], resources: list[dict[str, Any]], ordered: bool = False
         ) -> list[dict[str, Any]]:  # fmt: skip
    """Rows of ``view`` from the JSON and (when the view allows it) struct compilations,
    which must agree; the JSON mode's rows are returned."""
    json_rows = run_view(view, resources, mode="json")
    try:
        struct_rows = run_view(view, resources, mode="struct")
    except NeedJson:
        struct_rows = json_rows
    if ordered:
        assert struct_rows == json_rows
    else:
        assert sorted(map(_key, struct_rows)) == sorted(map(_key, json_rows))
    if ENGINE["name"] == "spark":
        got = spark_rows(view, resources)
        if ordered:
            assert got == json_rows
        else:
            assert sorted(map(_key, got)) == sorted(map(_key, json_rows))
    return json_rows


def same(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Row order is not guaranteed by the specification (unionAll): compare as multisets."""
    assert sorted(map(_key, actual)) == sorted(map(_key, expected)), actual


@pytest.fixture
def patients() -> list[dict[str, Any]]:
    return [
        {"resourceType": "Patient", "id": "pt1", "gender": "female", "birthDate": "1950-01-01",
         "active": True,
         "name": [{"use": "official", "family": "Wang", "given": ["Xiu", "Ying"]},
                  {"use": "nickname", "family": "Xiao", "given": ["Ying"]}],
         "address": [{"city": "Qingshan", "postalCode": "100001"}, {"city": "Dongcun"}],
         "contact": [{"address": {"city": "Beijing", "postalCode": "100002"},
                      "telecom": [{"value": "1"}, {"value": "2"}, {"value": "3"}]},
                     {"telecom": [{"value": "4"}, {"value": "5"}]}],
         "extension": [{"url": "http://example.org/ethnicity", "valueCode": "han"},
                       {"url": "http://example.org/note", "valueString": "n"}]},
        {"resourceType": "Patient", "id": "pt2", "gender": "male", "active": False,
         "name": [{"family": "Li"}]},
        {"resourceType": "Patient", "id": "pt3"},
        {"resourceType": "Observation", "id": "o1", "status": "final"},
    ]  # fmt: skip
