"""NBPHS-2017 DM 3 and DM 4: glucose control and the urgent screen."""

from __future__ import annotations

import pytest

from kangqiao.chronic.rules import (
    BloodPressure,
    ControlStatus,
    Symptom,
    VisitClass,
    assess_visit,
    dm_urgent_findings,
    glucose_control,
)
from tests.chronic.helpers import PATIENT, d, dm


# NBPHS-2017 DM 4: controlled = fasting glucose < 7.0 mmol/L.
@pytest.mark.parametrize(
    ("fpg", "expected"),
    [
        (6.9, ControlStatus.CONTROLLED),
        (6.99, ControlStatus.CONTROLLED),
        (7.0, ControlStatus.UNCONTROLLED),
        (7.01, ControlStatus.UNCONTROLLED),
        (None, ControlStatus.UNKNOWN),
    ],
)
def test_glucose_control(fpg: float | None, expected: ControlStatus) -> None:
    assert glucose_control(dm("2024-03-01", fpg))[0] is expected


# NBPHS-2017 DM 3: glucose ≥ 16.7 or ≤ 3.9 mmol/L is urgent.
@pytest.mark.parametrize(
    ("fpg", "code"),
    [
        (16.6, None),
        (16.7, "dm.urgent.glucose-high"),
        (16.8, "dm.urgent.glucose-high"),
        (3.8, "dm.urgent.glucose-low"),
        (3.9, "dm.urgent.glucose-low"),
        (4.0, None),
        (7.0, None),
    ],
)
def test_urgent_glucose(fpg: float, code: str | None) -> None:
    codes = [f.code for f in dm_urgent_findings(dm("2024-03-01", fpg))]
    assert codes == ([code] if code else [])


def test_low_glucose_is_classified_literally_but_referred_urgently() -> None:
    # The standard defines "controlled" as < 7.0 only; the urgent screen carries the danger.
    a = assess_visit(PATIENT, dm("2024-03-01", 3.9))
    assert a.control is ControlStatus.CONTROLLED
    assert a.classification is VisitClass.CONTROLLED
    assert a.referral is not None and a.referral.code == "dm.referral.urgent"
    assert a.due_date == d("2024-03-15")


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"bp": BloodPressure(180, 90)}, "dm.urgent.bp"),
        ({"bp": BloodPressure(150, 110)}, "dm.urgent.bp"),
        ({"heart_rate": 101}, "dm.urgent.tachycardia"),
        ({"temperature": 39.1}, "dm.urgent.fever"),
        ({"other_unmanageable": True}, "dm.urgent.other"),
        ({"symptoms": frozenset({Symptom.ACETONE_BREATH})}, "dm.urgent.symptom.acetone-breath"),
        (
            {"symptoms": frozenset({Symptom.SUDDEN_VISION_LOSS})},
            "dm.urgent.symptom.sudden-vision-loss",
        ),
    ],
)
def test_other_urgent_criteria(kw: dict[str, object], code: str) -> None:
    findings = dm_urgent_findings(dm("2024-03-01", 6.0, **kw))
    assert [f.code for f in findings] == [code]
    assert findings[0].citation.label == "NBPHS-2017 DM 3"


@pytest.mark.parametrize(
    "kw",
    [{"bp": BloodPressure(179, 109)}, {"heart_rate": 100}, {"temperature": 39.0}],
)
def test_just_below_urgent(kw: dict[str, object]) -> None:
    assert dm_urgent_findings(dm("2024-03-01", 6.0, **kw)) == []


def test_every_listed_diabetes_symptom_is_urgent_and_hypertension_only_ones_are_not() -> None:
    listed = {
        Symptom.ALTERED_CONSCIOUSNESS,
        Symptom.ALTERED_BEHAVIOUR,
        Symptom.ACETONE_BREATH,
        Symptom.PALPITATIONS,
        Symptom.SWEATING,
        Symptom.LOSS_OF_APPETITE,
        Symptom.NAUSEA,
        Symptom.VOMITING,
        Symptom.POLYDIPSIA,
        Symptom.POLYURIA,
        Symptom.ABDOMINAL_PAIN,
        Symptom.DEEP_RAPID_BREATHING,
        Symptom.FLUSHED_SKIN,
        Symptom.SUDDEN_VISION_LOSS,
    }
    found = dm_urgent_findings(dm("2024-03-01", 6.0, symptoms=frozenset(Symptom)))
    assert {f.code.removeprefix("dm.urgent.symptom.") for f in found} == {s.value for s in listed}


def test_pregnancy_with_glucose_above_normal() -> None:
    assert dm_urgent_findings(dm("2024-03-01", 6.9, pregnant_or_breastfeeding=True)) == []
    found = dm_urgent_findings(dm("2024-03-01", 7.0, pregnant_or_breastfeeding=True))
    assert [f.code for f in found] == ["dm.urgent.pregnancy"]


def test_first_uncontrolled_glucose_rechecks_in_two_weeks() -> None:
    a = assess_visit(PATIENT, dm("2024-03-01", 7.0))
    assert a.classification is VisitClass.UNCONTROLLED
    assert a.referral is None
    assert a.due_date == d("2024-03-15")
    assert a.classification_decision.citation.label == "NBPHS-2017 DM 4"
