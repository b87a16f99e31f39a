"""Selection structures, per the ViewDefinition notes and the processing model."""

from __future__ import annotations

from typing import Any

import pytest

from tests.analytics.conftest import rows, same

pytestmark = pytest.mark.usefixtures("view_engine")


def view(*select: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"resourceType": "ViewDefinition", "resource": "Patient", "status": "active",
            "select": list(select), **extra}  # fmt: skip


def col(name: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "path": path, **extra}


def test_columns_one_row_per_resource_of_the_view_type(patients: list[dict[str, Any]]) -> None:
    got = rows(view({"column": [col("id", "id"), col("gender", "gender"),
                                col("birth", "birthDate"), col("active", "active")]}), patients)
    same(got, [
        {"id": "pt1", "gender": "female", "birth": "1950-01-01", "active": True},
        {"id": "pt2", "gender": "male", "birth": None, "active": False},
        {"id": "pt3", "gender": None, "birth": None, "active": None},
    ])  # fmt: skip


def test_column_order_follows_the_definition(patients: list[dict[str, Any]]) -> None:
    # "Column Ordering": parent columns, then nested selects, then unionAll; siblings after.
    v = view({"column": [col("a", "'A'"), col("b", "'B'")],
              "select": [{"column": [col("c", "'C'"), col("d", "'D'")]}],
              "unionAll": [{"column": [col("e", "'E1'"), col("f", "'F1'")]},
                           {"column": [col("e", "'E2'"), col("f", "'F2'")]}]},
             {"column": [col("g", "'G'"), col("h", "'H'")]})  # fmt: skip
    got = rows(v, patients[:1])
    assert [list(r) for r in got] == [list("abcdefgh")] * 2
    assert sorted(r["e"] for r in got) == ["E1", "E2"]


def test_for_each_is_an_inner_join(patients: list[dict[str, Any]]) -> None:
    v = view({"column": [col("id", "getResourceKey()")]},
             {"forEach": "address", "column": [col("city", "city"), col("zip", "postalCode")]})
    same(rows(v, patients), [{"id": "pt1", "city": "Qingshan", "zip": "100001"},
                             {"id": "pt1", "city": "Dongcun", "zip": None}])  # fmt: skip


def test_for_each_or_null_keeps_resources_with_an_empty_collection(
    patients: list[dict[str, Any]],
) -> None:
    v = view({"column": [col("id", "id")]},
             {"forEachOrNull": "address", "column": [col("city", "city"), col("k", "'x'")]})
    same(rows(v, patients), [
        {"id": "pt1", "city": "Qingshan", "k": "x"}, {"id": "pt1", "city": "Dongcun", "k": "x"},
        {"id": "pt2", "city": None, "k": None}, {"id": "pt3", "city": None, "k": None},
    ])  # fmt: skip


def test_for_each_or_null_null_row_covers_nested_selects(patients: list[dict[str, Any]]) -> None:
    v = view({"column": [col("id", "id")]},
             {"forEachOrNull": "contact", "column": [col("city", "address.city")],
              "select": [{"forEach": "telecom", "column": [col("tel", "value")]}]})
    got = rows(v, patients)
    assert {"id": "pt3", "city": None, "tel": None} in got
    assert len([r for r in got if r["id"] == "pt1"]) == 5


def test_for_each_on_the_select_applies_to_nested_selects(patients: list[dict[str, Any]]) -> None:
    a = view({"forEach": "address", "column": [col("zip", "postalCode")]})
    b = view({"forEach": "address", "select": [{"column": [col("zip", "postalCode")]}]})
    same(rows(a, patients), rows(b, patients))


def test_nested_for_each_repeats_parent_values(patients: list[dict[str, Any]]) -> None:
    v = view({"column": [col("id", "id")],
              "select": [{"forEach": "name", "column": [col("family", "family")],
                          "select": [{"forEach": "given", "column": [col("g", "$this")]}]}]})
    same(rows(v, patients), [{"id": "pt1", "family": "Wang", "g": "Xiu"},
                             {"id": "pt1", "family": "Wang", "g": "Ying"},
                             {"id": "pt1", "family": "Xiao", "g": "Ying"}])  # fmt: skip


def test_sibling_selects_are_cross_joined(patients: list[dict[str, Any]]) -> None:
    v = view({"forEach": "name", "column": [col("family", "family")]},
             {"forEach": "address", "column": [col("city", "city")]})
    got = rows(v, patients)
    assert len(got) == 4
    assert {(r["family"], r["city"]) for r in got} == {
        ("Wang", "Qingshan"), ("Wang", "Dongcun"), ("Xiao", "Qingshan"), ("Xiao", "Dongcun")}


def test_union_all_with_for_each(patients: list[dict[str, Any]]) -> None:
    v = view({"column": [col("id", "id")],
              "unionAll": [{"forEach": "address", "column": [col("zip", "postalCode"),
                                                             col("is_patient", "true")]},
                           {"forEach": "contact.address",
                            "column": [col("zip", "postalCode"), col("is_patient", "false")]}]})
    same(rows(v, patients), [{"id": "pt1", "zip": "100001", "is_patient": True},
                             {"id": "pt1", "zip": None, "is_patient": True},
                             {"id": "pt1", "zip": "100002", "is_patient": False}])  # fmt: skip


def test_nested_union_all_equals_flat_union_all(patients: list[dict[str, Any]]) -> None:
    a, b, c = ({"forEach": p, "column": [col("x", "family")]}
               for p in ("name", "name.where(use='official')", "name.where(use='nickname')"))
    flat = view({"unionAll": [a, b, c]})
    nested = view({"unionAll": [a, {"select": [{"unionAll": [b, c]}]}]})
    same(rows(flat, patients), rows(nested, patients))
    assert len(rows(flat, patients)) == 5


def test_union_all_keeps_duplicates_and_empty_branches(patients: list[dict[str, Any]]) -> None:
    branch = {"column": [col("x", "gender")]}
    v = view({"column": [col("id", "id")], "unionAll": [branch, branch]})
    got = rows(v, patients)
    assert len(got) == 6 and [r["x"] for r in got if r["id"] == "pt1"] == ["female", "female"]


def test_collection_columns_are_lists(patients: list[dict[str, Any]]) -> None:
    v = view({"column": [col("id", "id"), col("family", "name.family", collection=True),
                         col("given", "name.given", collection=True)]})
    same(rows(v, patients), [
        {"id": "pt1", "family": ["Wang", "Xiao"], "given": ["Xiu", "Ying", "Ying"]},
        {"id": "pt2", "family": ["Li"], "given": None},
        {"id": "pt3", "family": None, "given": None},
    ])  # fmt: skip


def test_collection_false_is_relative_to_the_for_each_focus(
    patients: list[dict[str, Any]],
) -> None:
    v = view({"forEach": "name", "column": [col("family", "family", collection=False),
                                            col("given", "given", collection=True)]})
    same(rows(v, patients), [{"family": "Wang", "given": ["Xiu", "Ying"]},
                             {"family": "Xiao", "given": ["Ying"]},
                             {"family": "Li", "given": None}])  # fmt: skip


def test_row_index_in_nested_iterations(patients: list[dict[str, Any]]) -> None:
    # 2 contacts with 3 and 2 telecoms: each level has its own 0-based %rowIndex.
    v = view({"column": [col("top", "%rowIndex")]},
             {"forEach": "contact", "column": [col("c", "%rowIndex")],
              "select": [{"forEach": "telecom", "column": [col("t", "%rowIndex"),
                                                           col("v", "value")]}]})
    got = rows(v, patients[:1], ordered=True)
    assert [(r["top"], r["c"], r["t"], r["v"]) for r in got] == [
        (0, 0, 0, "1"), (0, 0, 1, "2"), (0, 0, 2, "3"), (0, 1, 0, "4"), (0, 1, 1, "5")]


def test_row_index_is_zero_on_the_null_row_of_for_each_or_null(
    patients: list[dict[str, Any]],
) -> None:
    v = view({"column": [col("id", "id")]},
             {"forEachOrNull": "identifier", "column": [col("i", "%rowIndex", type="integer"),
                                                        col("v", "value")]})  # fmt: skip
    same(rows(v, patients), [{"id": p, "i": 0, "v": None} for p in ("pt1", "pt2", "pt3")])


def _questionnaire_response() -> dict[str, Any]:
    return {"resourceType": "QuestionnaireResponse", "id": "qr1", "status": "completed",
            "item": [
                {"linkId": "1", "item": [
                    {"linkId": "1.1", "answer": [{"valueString": "yes",
                                                  "item": [{"linkId": "1.1.1"}]}]},
                    {"linkId": "1.2", "item": [{"linkId": "1.2.1"}]}]},
                {"linkId": "2", "answer": [{"valueInteger": 3}]}]}  # fmt: skip


def test_repeat_walks_nested_items_depth_first() -> None:
    v = {"resource": "QuestionnaireResponse",
         "select": [{"column": [col("id", "id")]},
                    {"repeat": ["item"], "column": [col("link", "linkId"),
                                                    col("i", "%rowIndex")]}]}  # fmt: skip
    got = rows(v, [_questionnaire_response()], ordered=True)
    assert [r["link"] for r in got] == ["1", "1.1", "1.2", "1.2.1", "2"]
    assert [r["i"] for r in got] == [0, 1, 2, 3, 4]


def test_repeat_over_several_paths_and_with_for_each_or_null() -> None:
    v = {"resource": "QuestionnaireResponse",
         "select": [{"repeat": ["item", "answer.item"],
                     "select": [{"column": [col("link", "linkId")]},
                                {"forEachOrNull": "answer",
                                 "column": [col("s", "value.ofType(string)")]}]}]}  # fmt: skip
    got = rows(v, [_questionnaire_response()])
    same(got, [{"link": "1", "s": None}, {"link": "1.1", "s": "yes"},
               {"link": "1.1.1", "s": None}, {"link": "1.2", "s": None},
               {"link": "1.2.1", "s": None}, {"link": "2", "s": None}])  # fmt: skip


def test_repeat_follows_deep_trees_and_nests_other_selections() -> None:
    def level(n: int) -> dict[str, Any]:
        node: dict[str, Any] = {"linkId": f"L{n}", "answer": [{"valueInteger": n}]}
        if n < 6:
            node["item"] = [level(n + 1)]
        return node

    qr = {"resourceType": "QuestionnaireResponse", "id": "deep", "status": "completed",
          "item": [level(1)]}
    v = {"resource": "QuestionnaireResponse",
         "select": [{"repeat": ["item"], "column": [col("link", "linkId")],
                     "select": [{"forEach": "answer",
                                 "column": [col("n", "value.ofType(integer)")]}]}]}  # fmt: skip
    got = rows(v, [qr], ordered=True)
    assert [(r["link"], r["n"]) for r in got] == [(f"L{n}", n) for n in range(1, 7)]
    whole = {"resource": "QuestionnaireResponse",
             "select": [{"repeat": ["item"],
                         "column": [col("answers", "answer", collection=True)]}]}  # fmt: skip
    assert rows(whole, [qr], ordered=True)[5] == {"answers": [{"valueInteger": 6}]}


def test_repeat_with_no_matches_gives_no_rows() -> None:
    v = {"resource": "QuestionnaireResponse",
         "select": [{"column": [col("id", "id")]},
                    {"repeat": ["item"], "column": [col("link", "linkId")]}]}  # fmt: skip
    empty = {"resourceType": "QuestionnaireResponse", "id": "q", "status": "completed"}
    assert rows(v, [empty]) == []


def test_view_where_filters_resources(patients: list[dict[str, Any]]) -> None:
    v = view({"column": [col("id", "id")]},
             where=[{"path": "name.where(use = 'official').exists()"},
                    {"path": "active"}])
    assert rows(v, patients) == [{"id": "pt1"}]
    v = view({"column": [col("id", "id")]}, where=[{"path": "name.where(family = 'Li').empty()"}])
    same(rows(v, patients), [{"id": "pt1"}, {"id": "pt3"}])


def test_constants_of_several_types(patients: list[dict[str, Any]]) -> None:
    v = view({"column": [col("id", "id"), col("s", "%s"), col("n", "%n + 1"), col("d", "%d * 2"),
                         col("b", "%b"), col("dt", "%when"), col("c", "gender = %code")]},
             constant=[{"name": "s", "valueString": "it's"}, {"name": "n", "valueInteger": 41},
                       {"name": "d", "valueDecimal": 1.25}, {"name": "b", "valueBoolean": True},
                       {"name": "when", "valueDate": "2024-01-01"},
                       {"name": "code", "valueCode": "female"}],
             where=[{"path": "id = %pid"}])  # fmt: skip
    v["constant"].append({"name": "pid", "valueId": "pt1"})
    assert rows(v, patients) == [{"id": "pt1", "s": "it's", "n": 42, "d": 2.5, "b": True,
                                  "dt": "2024-01-01", "c": True}]  # fmt: skip
