"""The national follow-up forms as Questionnaires, and their answers as Observations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from kangqiao.chronic.forms import (
    MEASURES,
    answers_from_response,
    observations_from_answers,
    questionnaire,
    visit_from_answers,
)
from kangqiao.chronic.forms.items import TRANSLATION
from kangqiao.chronic.rules import (
    Adherence,
    BloodPressure,
    Symptom,
    VisitClass,
    VisitMode,
    assess_visit,
)
from kangqiao.fhir.validation import validate_resource
from tests.chronic.helpers import PATIENT


def walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for it in items:
        yield it
        yield from walk(it.get("item", []))


def english(element: dict[str, Any]) -> str:
    (ext,) = element["extension"]
    assert ext["url"] == TRANSLATION
    parts = {e["url"]: e for e in ext["extension"]}
    assert parts["lang"]["valueCode"] == "en"
    return str(parts["content"]["valueString"])


@pytest.mark.parametrize("disease", ["htn", "dm"])
def test_questionnaire_is_valid_fhir(disease: str) -> None:
    q = questionnaire(disease)
    assert validate_resource(q) == []
    assert q["status"] == "active" and q["language"] == "zh-CN"


@pytest.mark.parametrize("disease", ["htn", "dm"])
def test_every_item_and_option_is_bilingual_and_link_ids_unique(disease: str) -> None:
    q = questionnaire(disease)
    items = list(walk(q["item"]))
    ids = [it["linkId"] for it in items]
    assert len(ids) == len(set(ids))
    for it in items:
        assert it["text"] and english(it["_text"])
        for opt in it.get("answerOption", []):
            coding = opt["valueCoding"]
            assert coding["code"] and coding["display"] and english(coding["_display"])
    assert english(q["_title"])


# linkIds are an interface to stored QuestionnaireResponses: changing one is a migration.
COMMON = {
    "visit-date", "visit-mode", "urgent-screen", "urgent-symptoms", "temperature",
    "pregnant-or-breastfeeding", "other-unmanageable", "new-or-worse-complication",
    "symptoms", "symptoms-other", "signs", "bp-systolic", "bp-diastolic", "weight",
    "weight-target", "height", "bmi", "bmi-target", "heart-rate", "signs-other", "lifestyle",
    "smoking", "smoking-target", "drinking", "drinking-target", "exercise-times",
    "exercise-times-target", "exercise-minutes", "exercise-minutes-target",
    "psychological-adjustment", "compliance", "medication-adherence", "adverse-reaction",
    "adverse-reaction-detail", "adverse-reaction-uncontrolled", "classification",
    "medication", "medication-name", "medication-times-per-day", "medication-dose",
    "referral", "referral-reason", "referral-facility", "next-visit-date", "doctor",
}  # fmt: skip
ONLY = {
    "htn": {"salt-intake", "salt-intake-target", "auxiliary-exams"},
    "dm": {
        "foot-pulse", "foot-pulse-side", "staple-food", "staple-food-target", "tests",
        "fasting-glucose", "hba1c", "hba1c-date", "tests-other", "hypoglycaemia",
        "medications", "insulin-type", "insulin-usage",
    },
}  # fmt: skip


@pytest.mark.parametrize("disease", ["htn", "dm"])
def test_link_ids_are_stable(disease: str) -> None:
    ids = {it["linkId"] for it in walk(questionnaire(disease)["item"])}
    assert ids == COMMON | ONLY[disease]


def test_classification_options_are_the_form_codes() -> None:
    for disease in ("htn", "dm"):
        items = {it["linkId"]: it for it in walk(questionnaire(disease)["item"])}
        got = [
            (o["valueCoding"]["code"], o["valueCoding"]["display"])
            for o in items["classification"]["answerOption"]
        ]
        assert got == [("1", "控制满意"), ("2", "控制不满意"), ("3", "不良反应"), ("4", "并发症")]
        modes = [o["valueCoding"]["display"] for o in items["visit-mode"]["answerOption"]]
        assert modes == ["门诊", "家庭", "电话"]


def test_coded_items_carry_loinc_and_ucum() -> None:
    items = {it["linkId"]: it for d in ("htn", "dm") for it in walk(questionnaire(d)["item"])}
    coded = {k for k, it in items.items() if "code" in it}
    assert coded == set(MEASURES)
    assert items["bp-systolic"]["code"][0]["code"] == "8480-6"
    unit = items["bp-systolic"]["extension"][0]["valueCoding"]
    assert unit == {"system": "http://unitsofmeasure.org", "code": "mm[Hg]", "display": "mmHg"}
    # HEARTS plausibility range for data entry.
    bounds = {
        e["url"].rsplit("/", 1)[1]: e["valueInteger"] for e in items["bp-systolic"]["extension"][1:]
    }
    assert bounds == {"minValue": 60, "maxValue": 260}


ANSWERS: dict[str, Any] = {
    "visit-date": "2024-03-05",
    "visit-mode": {"code": "2"},
    "bp-systolic": 152,
    "bp-diastolic": 94,
    "heart-rate": 78,
    "weight": 68.0,
    "height": 165.0,
    "fasting-glucose": 7.4,
    "hba1c": 7.6,
    "hba1c-date": "2024-02-20",
    "temperature": 36.8,
    "medication-adherence": {"code": "2"},
    "adverse-reaction": {"code": "1"},
    "urgent-symptoms": [{"code": "palpitations"}],
}

EXPECTED = {
    "85354-9": None,
    "8867-4": (78, "/min"),
    "29463-7": (68.0, "kg"),
    "8302-2": (165.0, "cm"),
    "39156-5": (25.0, "kg/m2"),  # computed: 68 / 1.65²
    "8310-5": (36.8, "Cel"),
    "14771-0": (7.4, "mmol/L"),
    "4548-4": (7.6, "%"),
}


def test_observations_are_coded_and_valid() -> None:
    out = observations_from_answers(ANSWERS, "Patient/p1", "Encounter/e1", date(2024, 3, 5))
    by_code = {o["code"]["coding"][0]["code"]: o for o in out}
    assert set(by_code) == set(EXPECTED)
    for code, expected in EXPECTED.items():
        o = by_code[code]
        assert validate_resource(o) == [], code
        assert o["subject"] == {"reference": "Patient/p1"}
        assert o["encounter"] == {"reference": "Encounter/e1"}
        if expected:
            q = o["valueQuantity"]
            assert (q["value"], q["code"], q["system"]) == (*expected, "http://unitsofmeasure.org")
    panel = by_code["85354-9"]
    comps = {c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in panel["component"]}
    assert comps["8480-6"]["value"] == 152 and comps["8462-4"]["value"] == 94
    assert {c["code"] for c in comps.values()} == {"mm[Hg]"}
    assert by_code["4548-4"]["effectiveDateTime"] == "2024-02-20"
    assert by_code["8867-4"]["effectiveDateTime"] == "2024-03-05"
    assert by_code["14771-0"]["category"][0]["coding"][0]["code"] == "laboratory"


def response(answers: dict[str, Any]) -> dict[str, Any]:
    def answer(value: Any) -> list[dict[str, Any]]:
        values = value if isinstance(value, list) else [value]
        out: list[dict[str, Any]] = []
        for v in values:
            if isinstance(v, dict):
                out.append({"valueCoding": {"system": "urn:x", **v}})
            elif isinstance(v, int):
                out.append({"valueInteger": v})
            elif isinstance(v, float):
                out.append({"valueDecimal": v})
            else:
                out.append({"valueString" if "date" not in v else "valueDate": v})
        return out

    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "https://kangqiao.example/fhir/Questionnaire/dm-followup",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "item": [
            {
                "linkId": "signs",
                "item": [
                    {"linkId": k, "answer": answer(v)} for k, v in answers.items() if k in MEASURES
                ],
            },
            *({"linkId": k, "answer": answer(v)} for k, v in answers.items() if k not in MEASURES),
        ],
    }


def test_questionnaire_response_gives_the_same_observations() -> None:
    qr = response(ANSWERS)
    assert validate_resource(qr) == []
    assert answers_from_response(qr)["urgent-symptoms"] == {
        "system": "urn:x",
        "code": "palpitations",
    }
    when = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)
    from_qr = observations_from_answers(qr, "Patient/p1", None, when)
    from_map = observations_from_answers(ANSWERS, "Patient/p1", None, when)
    assert from_qr == from_map
    assert all("encounter" not in o for o in from_qr)
    assert from_qr[0]["effectiveDateTime"] == "2024-03-05T09:30:00+00:00"


@pytest.mark.parametrize("bad", ["150", True, float("nan"), {"value": 1}])
def test_non_numeric_measurement_is_a_clear_error(bad: object) -> None:
    with pytest.raises(ValueError, match="bp-systolic"):
        observations_from_answers({"bp-systolic": bad}, "Patient/p1", None, "2024-03-05")


def test_blank_answers_are_skipped_and_naive_datetime_rejected() -> None:
    assert observations_from_answers({"weight": None, "bmi": ""}, "Patient/p", None, "2024") == []
    with pytest.raises(ValueError, match="time zone"):
        observations_from_answers({"weight": 60}, "Patient/p", None, datetime(2024, 3, 5, 9))


def test_form_answers_become_a_visit_the_rules_classify() -> None:
    visit = visit_from_answers(ANSWERS, "htn")
    assert visit.bp == BloodPressure(152, 94)
    assert visit.mode is VisitMode.HOME
    assert visit.adherence is Adherence.INTERMITTENT
    assert visit.symptoms == {Symptom.PALPITATIONS}
    assert not visit.adverse_reaction
    a = assess_visit(PATIENT, visit)
    assert a.classification is VisitClass.UNCONTROLLED
    assert a.referral is not None and a.referral.code == "htn.referral.urgent"  # palpitations
    dm_visit = visit_from_answers(response(ANSWERS), "dm")
    assert dm_visit.fasting_glucose == 7.4 and dm_visit.hba1c == 7.6


def test_unreadable_answers_name_the_field() -> None:
    with pytest.raises(ValueError, match="visit-date"):
        visit_from_answers({"bp-systolic": 140}, "htn")
    with pytest.raises(ValueError, match="unknown answer code"):
        visit_from_answers({"visit-date": "2024-03-05", "visit-mode": {"code": "9"}}, "htn")
