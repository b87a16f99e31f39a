"""Invalid views are rejected before any data is read, with the element path named."""

from __future__ import annotations

from typing import Any

import pytest

from kangqiao.analytics import ViewDefinitionError, ViewEvaluationError, compile_view, run_view


def _view(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"resourceType": "ViewDefinition", "resource": "Patient",
                            "status": "active", "select": [{"column": [
                                {"name": "id", "path": "id"}]}]}  # fmt: skip
    return {**base, **over}


@pytest.mark.parametrize(("view", "message"), [
    ("nope", "expected a JSON object"),
    (_view(resourceType="Patient"), "resourceType"),
    (_view(resource="Patiente"), "resource: 'Patiente'"),
    (_view(select=[]), "select: at least one"),
    (_view(select=[{"column": [{"name": "1id", "path": "id"}]}]), "select[0].column[0].name"),
    (_view(select=[{"column": [{"name": "id-x", "path": "id"}]}]), "must match"),
    (_view(select=[{"column": [{"path": "id"}]}]), "select[0].column[0].name"),
    (_view(select=[{"column": [{"name": "id", "path": "id"}, {"name": "id", "path": "gender"}]}]),
     "'id' is defined more than once"),
    (_view(select=[{"column": [{"name": "a", "path": "id"}]},
                   {"forEach": "name", "column": [{"name": "a", "path": "family"}]}]),
     "more than once"),
    (_view(select=[{"column": [{"name": "a", "path": "name.("}]}]),
     "select[0].column[0].path: invalid FHIRPath"),
    (_view(select=[{"column": [{"name": "a", "path": "name.resolve()"}]}]),
     "select[0].column[0].path: unsupported FHIRPath function resolve()"),
    (_view(select=[{"column": [{"name": "a", "path": "id"}], "forEach": "name",
                    "forEachOrNull": "address"}]), "cannot be used together"),
    (_view(select=[{"unionAll": [{"column": [{"name": "a", "path": "id"}]},
                                 {"column": [{"name": "b", "path": "id"}]}]}]),
     "select[0].unionAll[1]: union branches must have the same columns"),
    (_view(select=[{"unionAll": [{"column": [{"name": "a", "path": "id"},
                                             {"name": "b", "path": "id"}]},
                                 {"column": [{"name": "b", "path": "id"},
                                             {"name": "a", "path": "id"}]}]}]), "same order"),
    (_view(constant=[{"name": "x"}]), "constant[0]: constant 'x' needs exactly one value"),
    (_view(constant=[{"name": "x", "valueQuantity": {"value": 1}}]), "not an allowed"),
    (_view(constant=[{"name": "x", "valueInteger": "1"}]), "not a valid integer"),
    (_view(constant=[{"name": "x", "valueInteger64": "²"}]), "not a valid integer64"),
    (_view(constant=[{"name": "x", "valueInteger64": "9223372036854775808"}]),
     "not a valid integer64"),
    (_view(select=[{"column": [{"name": "a", "path": "%nope"}]}]), "undefined constant %nope"),
    (_view(where=[{"path": "name.family"}]), "where[0].path: must evaluate to a boolean"),
    (_view(select=[{"column": [{"name": "a", "path": "id", "collection": "yes"}]}]),
     "select[0].column[0].collection"),
    (_view(select=[{"repeat": [], "column": [{"name": "a", "path": "id"}]}]), "repeat"),
])  # fmt: skip
def test_invalid_views_are_rejected(view: Any, message: str) -> None:
    with pytest.raises(ViewDefinitionError) as err:
        compile_view(view)
    assert message in str(err.value)


def test_several_values_in_a_single_column_is_an_error() -> None:
    view = _view(select=[{"column": [{"name": "family", "path": "name.family"}]}])
    patient = {"resourceType": "Patient", "id": "p", "name": [{"family": "a"}, {"family": "b"}]}
    with pytest.raises(ViewEvaluationError, match="multiple values"):
        run_view(view, [patient])
    assert run_view(view, [{"resourceType": "Patient", "name": [{"family": "a"}]}]) == [
        {"family": "a"}]


def test_an_unknown_engine_is_a_clear_error() -> None:
    with pytest.raises(ViewDefinitionError, match="unknown engine 'presto'"):
        run_view(_view(), [], engine="presto")


def test_a_view_spark_cannot_compile_says_so_before_starting_spark() -> None:
    # Spark follows plain repeat paths only (DuckDB's JSONPath mode takes any): refused at
    # compile time
    from kangqiao.analytics.spark import SparkViewError

    view = {"resource": "QuestionnaireResponse", "select": [{
        "repeat": ["item.where(linkId != 'x')"], "column": [{"name": "link", "path": "linkId"}]}]}
    with pytest.raises(SparkViewError, match="cannot run on the Spark engine"):
        run_view(view, [], engine="spark")


@pytest.mark.spark
def test_multiple_values_in_a_single_column_fail_on_spark_too(spark_session: Any) -> None:
    view = {"resource": "Patient", "select": [{"column": [{"name": "family",
                                                            "path": "name.family"}]}]}
    patient = {"resourceType": "Patient", "name": [{"family": "a"}, {"family": "b"}]}
    with pytest.raises(ViewEvaluationError, match="multiple values"):
        run_view(view, [patient], engine="spark")


def test_an_invalid_view_fails_before_reading_data(tmp_path: Any) -> None:
    from kangqiao.analytics import run_view_files

    with pytest.raises(ViewDefinitionError):
        run_view_files(_view(resource="Nope"), [tmp_path / "missing.ndjson"])
