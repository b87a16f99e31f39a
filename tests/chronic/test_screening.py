"""NBPHS-2017 HTN 2 and DM 2: screening before management."""

from __future__ import annotations

from kangqiao.chronic.rules import (
    BloodPressure,
    ConfirmationReferral,
    Disease,
    Patient,
    ScreeningReading,
    dm_screening,
    htn_screening,
)
from tests.chronic.helpers import d

RESIDENT = Patient(d("1980-05-10"))  # 35 on 2015-05-10


def r(day: str, sbp: int, dbp: int) -> ScreeningReading:
    return ScreeningReading(d(day), BloodPressure(sbp, dbp))


def test_under_35_not_screened_until_the_birthday() -> None:
    young = Patient(d("1990-05-10"))
    got = htn_screening(young, [], d("2025-05-09"))
    assert got.code == "htn.screening.not-eligible" and got.due_date == d("2025-05-10")
    assert htn_screening(young, [], d("2025-05-10")).code == "htn.screening.due"


def test_high_risk_under_35_screened_every_six_months() -> None:
    young = Patient(d("1995-01-01"), htn_high_risk=True)
    got = htn_screening(young, [r("2024-01-31", 130, 85)], d("2024-03-01"))
    assert got.code == "htn.screening.up-to-date" and got.due_date == d("2024-07-31")


def test_yearly_screening_due_date() -> None:
    got = htn_screening(RESIDENT, [r("2024-02-29", 128, 80)], d("2024-06-01"))
    assert got.code == "htn.screening.up-to-date" and got.due_date == d("2025-02-28")
    late = htn_screening(RESIDENT, [r("2023-02-01", 128, 80)], d("2024-06-01"))
    assert late.code == "htn.screening.due" and late.due_date == d("2024-02-01")


def test_first_elevated_reading_asks_for_recheck_on_another_day() -> None:
    got = htn_screening(RESIDENT, [r("2024-03-01", 140, 85)], d("2024-03-01"))
    assert got.code == "htn.screening.recheck" and got.due_date is None
    assert htn_screening(RESIDENT, [r("2024-03-01", 139, 89)], d("2024-03-01")).code == (
        "htn.screening.up-to-date"
    )


def test_three_elevated_days_give_a_preliminary_diagnosis() -> None:
    readings = [r("2024-03-01", 150, 95), r("2024-03-08", 145, 92), r("2024-03-15", 142, 90)]
    got = htn_screening(RESIDENT, readings, d("2024-03-15"))
    assert got.code == "htn.screening.refer-for-confirmation"
    assert got.citation.label == "NBPHS-2017 HTN 2"
    assert got.due_date == d("2024-03-15")


def test_three_readings_on_two_days_are_not_enough() -> None:
    readings = [r("2024-03-01", 150, 95), r("2024-03-01", 152, 96), r("2024-03-08", 145, 92)]
    assert htn_screening(RESIDENT, readings, d("2024-03-08")).code == "htn.screening.recheck"


def test_same_day_readings_are_averaged() -> None:
    # 150/95 and 128/80 average 139/88 (rounded): a normal day, which resets the count.
    readings = [
        r("2024-03-01", 150, 95),
        r("2024-03-08", 150, 95),
        r("2024-03-08", 128, 80),
        r("2024-03-15", 150, 95),
    ]
    assert htn_screening(RESIDENT, readings, d("2024-03-15")).code == "htn.screening.recheck"


def test_normal_day_resets_the_count() -> None:
    readings = [
        r("2024-03-01", 150, 95),
        r("2024-03-08", 130, 80),
        r("2024-03-15", 150, 95),
        r("2024-03-22", 150, 95),
    ]
    assert htn_screening(RESIDENT, readings, d("2024-03-22")).code == "htn.screening.recheck"
    more = [*readings, r("2024-03-29", 141, 70)]
    assert htn_screening(RESIDENT, more, d("2024-03-29")).code == (
        "htn.screening.refer-for-confirmation"
    )


def test_referral_result_followed_up_within_two_weeks_across_month_end() -> None:
    got = htn_screening(RESIDENT, [], d("2024-02-01"), ConfirmationReferral(d("2024-01-25")))
    assert got.code == "htn.screening.awaiting-referral-result"
    assert got.due_date == d("2024-02-08")


def test_confirmed_is_enrolled_and_not_confirmed_starts_again() -> None:
    readings = [r("2024-03-01", 150, 95), r("2024-03-08", 145, 92), r("2024-03-15", 142, 90)]
    yes = ConfirmationReferral(d("2024-03-16"), d("2024-03-20"), True)
    got = htn_screening(RESIDENT, readings, d("2024-03-21"), yes)
    assert got.code == "htn.screening.enrol" and got.due_date == d("2024-03-20")
    no = ConfirmationReferral(d("2024-03-16"), d("2024-03-20"), False)
    again = htn_screening(RESIDENT, readings, d("2024-03-21"), no)
    assert again.code == "htn.screening.due"


def test_already_diagnosed_is_managed_not_screened() -> None:
    patient = Patient(d("1960-01-01"), conditions=frozenset({Disease.HYPERTENSION}))
    assert htn_screening(patient, [], d("2024-01-01")).code == "htn.screening.managed"


def test_diabetes_screening_only_for_high_risk_yearly() -> None:
    assert dm_screening(RESIDENT, None, d("2024-01-01")).code == "dm.screening.not-indicated"
    risky = Patient(d("1970-01-01"), dm_high_risk=True)
    due = dm_screening(risky, None, d("2024-01-01"))
    assert due.code == "dm.screening.due" and due.citation.label == "NBPHS-2017 DM 2"
    ok = dm_screening(risky, d("2023-06-30"), d("2024-01-01"))
    assert ok.code == "dm.screening.up-to-date" and ok.due_date == d("2024-06-30")
    managed = Patient(d("1970-01-01"), conditions=frozenset({Disease.DIABETES_T2}))
    assert dm_screening(managed, None, d("2024-01-01")).code == "dm.screening.managed"
