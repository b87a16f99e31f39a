"""Properties that must hold for every input, not just the boundary cases."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from kangqiao.chronic.rules import (
    BloodPressure,
    ControlStatus,
    Disease,
    FollowUpVisit,
    Patient,
    add_months,
    assess_history,
    assess_visit,
    bp_control,
    dm_urgent_findings,
    glucose_control,
    htn_urgent_findings,
)

PATIENT = Patient(date(1960, 6, 15))
days = st.dates(min_value=date(1996, 1, 1), max_value=date(2040, 12, 31))
sbp = st.integers(60, 260)
dbp = st.integers(40, 260)
glucose = st.floats(1.0, 35.0, allow_nan=False)


def hv(day: date, s: int, d: int) -> FollowUpVisit:
    return FollowUpVisit(day, Disease.HYPERTENSION, bp=BloodPressure(s, d))


@given(days, sbp, dbp, st.integers(0, 60), st.integers(0, 60))
def test_bp_classification_is_monotone(day: date, s: int, d: int, ds: int, dd: int) -> None:
    lower = bp_control(PATIENT, hv(day, s, d))[0]
    higher = bp_control(PATIENT, hv(day, s + ds, d + dd))[0]
    if lower is ControlStatus.UNCONTROLLED:
        assert higher is ControlStatus.UNCONTROLLED
    if htn_urgent_findings(hv(day, s, d)):
        assert htn_urgent_findings(hv(day, s + ds, d + dd))


@given(sbp, dbp, st.integers(35, 100))
def test_older_is_never_held_to_a_stricter_target(s: int, d: int, age: int) -> None:
    on = date(1960 + age, 7, 1)
    if bp_control(PATIENT, hv(on, s, d))[0] is ControlStatus.CONTROLLED:
        assert bp_control(PATIENT, hv(date(1961 + age, 7, 1), s, d))[0] is ControlStatus.CONTROLLED


@given(days, glucose, st.floats(0.0, 10.0, allow_nan=False))
def test_glucose_classification_is_monotone(day: date, g: float, dg: float) -> None:
    low = FollowUpVisit(day, Disease.DIABETES_T2, fasting_glucose=g)
    high = FollowUpVisit(day, Disease.DIABETES_T2, fasting_glucose=g + dg)
    if glucose_control(low)[0] is ControlStatus.UNCONTROLLED:
        assert glucose_control(high)[0] is ControlStatus.UNCONTROLLED
    if any(f.code == "dm.urgent.glucose-high" for f in dm_urgent_findings(low)):
        assert any(f.code == "dm.urgent.glucose-high" for f in dm_urgent_findings(high))


@given(days, sbp, dbp, st.booleans(), st.booleans())
def test_due_date_is_two_weeks_or_three_months(
    day: date, s: int, d: int, reaction: bool, complication: bool
) -> None:
    visit = FollowUpVisit(
        day,
        Disease.HYPERTENSION,
        bp=BloodPressure(s, d),
        adverse_reaction=reaction,
        new_or_worse_complication=complication,
    )
    a = assess_visit(PATIENT, visit)
    if a.referral is not None or a.control is not ControlStatus.CONTROLLED or reaction:
        assert a.due_date == day + timedelta(days=14)
    else:
        assert a.due_date == add_months(day, 3)
    if a.urgent or complication:
        assert a.referral is not None


@given(st.lists(st.tuples(sbp, dbp), min_size=1, max_size=12))
def test_no_referral_for_consecutive_without_two_uncontrolled_in_a_row(
    readings: list[tuple[int, int]],
) -> None:
    start = date(2020, 1, 1)
    visits = [hv(start + timedelta(days=30 * i), s, d) for i, (s, d) in enumerate(readings)]
    history = assess_history(PATIENT, visits)
    for prev, cur in zip([None, *history], history, strict=False):
        routine = cur.referral is not None and cur.referral.code == "htn.referral.routine"
        if routine:
            assert prev is not None and prev.control is ControlStatus.UNCONTROLLED
            assert cur.control is ControlStatus.UNCONTROLLED


@given(days, st.integers(-240, 240))
def test_add_months_lands_in_the_right_month_and_never_overshoots(day: date, n: int) -> None:
    got = add_months(day, n)
    assert (got.year * 12 + got.month) - (day.year * 12 + day.month) == n
    assert got.day <= day.day
