"""The yearly health check of residents aged 65+ (国家基本公共卫生服务规范（第三版）,
老年人健康管理服务规范, 健康体检): who gets one, and that each carries the listed items."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from tests.synth.conftest import County, age_on, codes

# 一般体格检查 and 辅助检查 as the standard lists them, by LOINC code.
REQUIRED = {
    "8310-5": "体温",
    "8867-4": "脉搏",
    "9279-1": "呼吸",
    "85354-9": "血压",
    "8302-2": "身高",
    "29463-7": "体重",
    "8280-0": "腰围",
    "718-7": "血常规: 血红蛋白",
    "6690-2": "血常规: 白细胞",
    "777-3": "血常规: 血小板",
    "20454-5": "尿常规: 尿蛋白",
    "25428-4": "尿常规: 尿糖",
    "2514-8": "尿常规: 尿酮体",
    "5794-3": "尿常规: 尿潜血",
    "1920-8": "肝功能: 谷草转氨酶",
    "1742-6": "肝功能: 谷丙转氨酶",
    "14631-6": "肝功能: 总胆红素",
    "14682-9": "肾功能: 肌酐",
    "22664-7": "肾功能: 尿素",
    "14771-0": "空腹血糖",
    "14647-2": "血脂: 总胆固醇",
    "14927-8": "血脂: 甘油三酯",
    "22748-8": "血脂: 低密度脂蛋白胆固醇",
    "14646-4": "血脂: 高密度脂蛋白胆固醇",
    "8601-7": "心电图",
}


def _checks(county: County) -> list[dict[str, Any]]:
    return [
        e
        for e in county.by_type["Encounter"]
        if "elderly-health-check" in codes(e["type"][0])
    ]


def _by_encounter(county: County, rtype: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in county.by_type[rtype]:
        if "encounter" in r:
            out[r["encounter"]["reference"].split("/")[1]].append(r)
    return out


def test_only_residents_aged_65_are_checked_about_two_thirds_a_year(county: County) -> None:
    checks = _checks(county)
    patients = {p["id"]: p for p in county.by_type["Patient"]}
    for e in checks:
        birth = patients[e["subject"]["reference"].split("/")[1]].get("birthDate")
        if birth and len(birth) == 10:  # an injected defect may have cut the birth date
            assert age_on(birth, date.fromisoformat(e["period"]["start"][:10])) >= 65
    elderly = [
        p for p in county.residents() if len(p.get("birthDate", "")) == 10
        and age_on(p["birthDate"]) >= 67
    ]  # fmt: skip
    checked = defaultdict(int)
    for e in checks:
        checked[e["subject"]["reference"].split("/")[1]] += 1
    # Two years of history, a check in each with probability 0.68.
    per_person = sum(checked.get(p["id"], 0) for p in elderly) / len(elderly)
    assert 1.2 < per_person < 1.55, per_person
    assert max(checked.values()) <= 2


def test_each_check_has_the_items_the_standard_lists(county: County) -> None:
    observations = _by_encounter(county, "Observation")
    reports = _by_encounter(county, "DiagnosticReport")
    ids = {o["id"] for o in county.by_type["Observation"]}
    checks = _checks(county)
    assert len(checks) > 300
    complete = 0
    for e in checks:
        mine = observations[e["id"]]
        found = set().union(*(codes(o["code"]) for o in mine))
        if set(REQUIRED) <= found:
            complete += 1
        else:  # only an injected defect may lose an item
            assert any(("Observation", o["id"]) in county.defect_ids for o in mine), e["id"]
        for r in reports[e["id"]]:
            assert {x["reference"].split("/")[1] for x in r["result"]} <= ids
        assert {c for r in reports[e["id"]] for c in codes(r["code"])} == {
            "57021-8", "24357-6", "24325-3", "24362-6", "24331-1"
        }  # fmt: skip
    assert complete / len(checks) > 0.5


def test_the_blood_count_differential_adds_up(county: County) -> None:
    pct = {"770-8", "5905-5", "713-8", "706-2", "736-9"}
    absolute = {"751-8", "742-7", "711-2", "704-7", "731-0"}
    seen = 0
    defects = county.defect_ids
    for mine in _by_encounter(county, "Observation").values():
        if any(("Observation", o["id"]) in defects for o in mine):
            continue
        values = {
            c: o["valueQuantity"]["value"]
            for o in mine
            if "valueQuantity" in o
            for c in codes(o["code"])
        }
        if not (pct | absolute | {"6690-2"}) <= set(values):
            continue
        seen += 1
        assert abs(sum(values[c] for c in pct) - 100) < 0.6
        assert abs(sum(values[c] for c in absolute) - values["6690-2"]) < 0.06
    assert seen > 300
