"""NBPHS-2017 HTN 3(1), 4(1), 4(2): BP targets, control and the urgent screen."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kangqiao.chronic.rules import (
    BloodPressure,
    ControlStatus,
    Patient,
    Symptom,
    VisitClass,
    assess_visit,
    bp_control,
    bp_target,
    htn_urgent_findings,
    is_elevated,
)
from kangqiao.chronic.rules.model import age_on, birthday
from tests.chronic.helpers import PATIENT, SIXTY_FIFTH, d, htn


# NBPHS-2017 HTN 4(1): < 140/90 under 65.
@pytest.mark.parametrize(
    ("sbp", "dbp", "expected"),
    [
        (139, 89, ControlStatus.CONTROLLED),
        (140, 89, ControlStatus.UNCONTROLLED),
        (139, 90, ControlStatus.UNCONTROLLED),
        (140, 90, ControlStatus.UNCONTROLLED),
        (100, 60, ControlStatus.CONTROLLED),
    ],
)
def test_target_under_65(sbp: int, dbp: int, expected: ControlStatus) -> None:
    status, decision = bp_control(PATIENT, htn("2024-03-01", sbp, dbp))
    assert status is expected
    assert decision.citation.clause.startswith("HTN 4(")


# NBPHS-2017 HTN 4(1): < 150/90 from 65; the DBP limit stays 90.
@pytest.mark.parametrize(
    ("sbp", "dbp", "at_64", "at_65"),
    [
        (149, 89, ControlStatus.UNCONTROLLED, ControlStatus.CONTROLLED),
        (149, 90, ControlStatus.UNCONTROLLED, ControlStatus.UNCONTROLLED),
        (150, 89, ControlStatus.UNCONTROLLED, ControlStatus.UNCONTROLLED),
        (145, 85, ControlStatus.UNCONTROLLED, ControlStatus.CONTROLLED),
        (139, 89, ControlStatus.CONTROLLED, ControlStatus.CONTROLLED),
    ],
)
def test_age_65_target_switches_on_the_birthday(
    sbp: int, dbp: int, at_64: ControlStatus, at_65: ControlStatus
) -> None:
    eve = SIXTY_FIFTH - timedelta(days=1)
    assert bp_control(PATIENT, htn(eve.isoformat(), sbp, dbp))[0] is at_64
    assert bp_control(PATIENT, htn(SIXTY_FIFTH.isoformat(), sbp, dbp))[0] is at_65


def test_target_values_and_reason_name_the_age() -> None:
    assert bp_target(64) == BloodPressure(140, 90)
    assert bp_target(65) == BloodPressure(150, 90)
    _, decision = bp_control(PATIENT, htn(SIXTY_FIFTH.isoformat(), 149, 89))
    assert "65岁" in decision.reason_zh and "age 65" in decision.reason_en
    assert "150/90" in decision.reason_en


def test_leap_day_birthday_turns_65_on_first_of_march() -> None:
    leap = Patient(d("1960-02-29"))
    assert birthday(leap.birth_date, 65) == d("2025-03-01")
    assert age_on(leap.birth_date, d("2025-02-28")) == 64
    assert age_on(leap.birth_date, d("2025-03-01")) == 65
    assert bp_control(leap, htn("2025-02-28", 149, 85))[0] is ControlStatus.UNCONTROLLED
    assert bp_control(leap, htn("2025-03-01", 149, 85))[0] is ControlStatus.CONTROLLED


def test_unmeasured_bp_is_unknown_not_uncontrolled() -> None:
    status, decision = bp_control(PATIENT, htn("2024-03-01", None))
    assert status is ControlStatus.UNKNOWN
    assert decision.severity == "warning"


# NBPHS-2017 HTN 2: the screening threshold is 140/90 at any age.
def test_elevated_reading_threshold() -> None:
    assert not is_elevated(BloodPressure(139, 89))
    assert is_elevated(BloodPressure(140, 60))
    assert is_elevated(BloodPressure(120, 90))


# NBPHS-2017 HTN 3(1): SBP ≥ 180 and/or DBP ≥ 110.
@pytest.mark.parametrize(
    ("sbp", "dbp", "urgent"),
    [(179, 109, False), (180, 100, True), (170, 110, True), (180, 110, True), (179, 110, True)],
)
def test_urgent_bp(sbp: int, dbp: int, urgent: bool) -> None:
    codes = [f.code for f in htn_urgent_findings(htn("2024-03-01", sbp, dbp))]
    assert ("htn.urgent.bp" in codes) is urgent


@pytest.mark.parametrize(
    "symptom",
    [
        Symptom.ALTERED_CONSCIOUSNESS,
        Symptom.SEVERE_HEADACHE_OR_DIZZINESS,
        Symptom.NAUSEA,
        Symptom.VOMITING,
        Symptom.BLURRED_VISION,
        Symptom.EYE_PAIN,
        Symptom.PALPITATIONS,
        Symptom.CHEST_TIGHTNESS,
        Symptom.ORTHOPNOEA,
    ],
)
def test_each_listed_symptom_is_urgent(symptom: Symptom) -> None:
    visit = htn("2024-03-01", 130, 80, symptoms=frozenset({symptom}))
    findings = htn_urgent_findings(visit)
    assert [f.code for f in findings] == [f"htn.urgent.symptom.{symptom.value}"]
    assert findings[0].severity == "critical"
    assert findings[0].citation.label == "NBPHS-2017 HTN 3(1)"


def test_diabetes_only_symptoms_do_not_trigger_the_hypertension_screen() -> None:
    visit = htn("2024-03-01", 130, 80, symptoms=frozenset({Symptom.POLYURIA, Symptom.SWEATING}))
    assert htn_urgent_findings(visit) == []


def test_pregnancy_with_raised_bp_and_other_unmanageable() -> None:
    assert htn_urgent_findings(htn("2024-03-01", 139, 89, pregnant_or_breastfeeding=True)) == []
    codes = [
        f.code
        for f in htn_urgent_findings(
            htn("2024-03-01", 140, 85, pregnant_or_breastfeeding=True, other_unmanageable=True)
        )
    ]
    assert codes == ["htn.urgent.pregnancy", "htn.urgent.other"]


def test_urgent_visit_is_referred_urgently_with_two_week_follow_up() -> None:
    a = assess_visit(PATIENT, htn("2024-01-25", 185, 100))
    assert a.classification is VisitClass.UNCONTROLLED
    assert a.referral is not None and a.referral.code == "htn.referral.urgent"
    assert a.referral.severity == "critical"
    assert "SBP ≥ 180" in a.referral.reason_en
    assert a.due_date == d("2024-02-08")
    assert a.next_visit.code == "htn.next.referral-follow-up"
