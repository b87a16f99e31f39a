"""Treatment-intensification suggestions: NBPHS-2017 HTN 4(2) / DM 4 and the guidelines."""

from __future__ import annotations

import re

from kangqiao.chronic.rules import (
    Adherence,
    BloodPressure,
    FollowUpVisit,
    Patient,
    treatment_suggestions,
)
from tests.chronic.helpers import DM, HTN, PATIENT, d, dm, htn

HTN_ONLY = Patient(d("1970-01-01"), conditions=frozenset({HTN}))


def codes(patient: Patient, visit: FollowUpVisit) -> list[str]:
    return [s.code for s in treatment_suggestions(patient, visit)]


def test_uncontrolled_bp_intensify_and_recheck() -> None:
    got = treatment_suggestions(HTN_ONLY, htn("2024-03-01", 150, 95))
    assert [s.code for s in got] == ["treatment.htn.intensify", "treatment.htn.recheck-interval"]
    assert got[0].citation.label == "NBPHS-2017 HTN 4(2)"
    assert not got[1].citation.verified  # guideline clause not verified


def test_poor_adherence_comes_first() -> None:
    visit = htn("2024-03-01", 150, 95, adherence=Adherence.INTERMITTENT)
    assert codes(HTN_ONLY, visit)[0] == "treatment.adherence"


def test_tighter_target_if_tolerated_under_65_only() -> None:
    assert codes(HTN_ONLY, htn("2024-03-01", 135, 82)) == ["treatment.htn.tighter-target"]
    assert codes(HTN_ONLY, htn("2024-03-01", 129, 79)) == []
    old = Patient(d("1950-01-01"), conditions=frozenset({HTN}))
    assert codes(old, htn("2024-03-01", 135, 82)) == []


def test_diabetes_targets() -> None:
    visit = dm("2024-03-01", 7.2, hba1c=7.0, bp=BloodPressure(132, 78), ldl_c=2.6, bmi=24.0)
    got = codes(Patient(d("1970-01-01"), conditions=frozenset({DM})), visit)
    assert got == [
        "treatment.dm.intensify",
        "treatment.dm.hba1c-target",
        "treatment.dm.ldl-target",
        "treatment.dm.bmi-target",
        "treatment.dm.bp-target",
    ]
    at_target = dm("2024-03-01", 6.0, hba1c=6.9, bp=BloodPressure(129, 79), ldl_c=2.5, bmi=23.9)
    assert codes(Patient(d("1970-01-01")), at_target) == []


def test_ldl_target_lower_with_ascvd_and_low_glucose_warning() -> None:
    ascvd = Patient(d("1970-01-01"), ascvd=True)
    assert codes(ascvd, dm("2024-03-01", 6.0, ldl_c=1.8)) == ["treatment.dm.ldl-target"]
    assert codes(ascvd, dm("2024-03-01", 6.0, ldl_c=1.7)) == []
    assert codes(ascvd, dm("2024-03-01", 4.3)) == ["treatment.dm.low-glucose"]
    assert codes(ascvd, dm("2024-03-01", 4.4)) == []


def test_no_drug_doses_are_invented() -> None:
    visit = dm("2024-03-01", 12.0, hba1c=9.0, bp=BloodPressure(150, 95))
    for s in [
        *treatment_suggestions(PATIENT, visit),
        *treatment_suggestions(PATIENT, htn("2024-03-01", 170, 100)),
    ]:
        assert not re.search(r"\d\s*(mg|g|IU|U)\b", s.reason_en + s.reason_zh)
