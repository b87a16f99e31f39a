"""NBPHS-2017 HTN 5/6, DM 5/6 and the HEARTS cohort view, per patient."""

from __future__ import annotations

from kangqiao.chronic.rules import (
    CountyPolicy,
    annual_check_due,
    controlled_at_latest_visit,
    hearts_status,
    standardised_management,
)
from tests.chronic.helpers import DM, HTN, PATIENT, d, dm, htn, phone

YEAR = [
    htn("2024-01-15", 150, 95),
    htn("2024-01-29", 135, 85),
    htn("2024-04-29", 132, 84),
    htn("2024-07-29", 138, 86),
]


def test_four_face_to_face_visits_are_standard_management() -> None:
    got = standardised_management(YEAR, HTN, 2024, enrolled_on=d("2020-01-01"))
    assert got.standardised and got.visits_counted == 4 and got.visits_required == 4
    assert got.decision.code == "htn.indicator.standardised"
    assert not got.decision.citation.verified  # local assessment practice


def test_phone_visits_and_same_day_duplicates_do_not_count() -> None:
    visits = [*YEAR[:3], phone(htn("2024-10-29", 130, 80)), htn("2024-04-29", 130, 80)]
    got = standardised_management(visits, HTN, 2024, enrolled_on=d("2020-01-01"))
    assert not got.standardised and got.visits_counted == 3
    assert "3 of 4" in got.decision.reason_en
    lenient = CountyPolicy(count_phone_visits=True)
    assert standardised_management(visits, HTN, 2024, d("2020-01-01"), policy=lenient).standardised


def test_other_year_and_other_disease_do_not_count() -> None:
    visits = [*YEAR[:3], htn("2023-12-30", 130, 80), dm("2024-10-01", 6.0)]
    assert not standardised_management(visits, HTN, 2024, d("2020-01-01")).standardised


def test_county_options_quarter_annual_check_and_prorating() -> None:
    quarterly = CountyPolicy(require_each_quarter=True)
    got = standardised_management(YEAR, HTN, 2024, d("2020-01-01"), policy=quarterly)
    assert not got.standardised and "quarter(s) [4]" in got.decision.reason_en
    checked = CountyPolicy(require_annual_check=True)
    assert not standardised_management(
        YEAR, HTN, 2024, d("2020-01-01"), policy=checked
    ).standardised
    assert standardised_management(
        YEAR, HTN, 2024, d("2020-01-01"), [d("2024-05-01")], policy=checked
    ).standardised
    prorate = CountyPolicy(prorate_by_enrolment=True, require_each_quarter=True)
    late = [htn("2024-08-01", 150, 95), htn("2024-11-01", 130, 80)]
    got = standardised_management(late, HTN, 2024, d("2024-07-20"), policy=prorate)
    assert got.visits_required == 2 and got.standardised  # 6 months left: ceil(4 * 6 / 12)


def test_control_rate_uses_latest_measured_visit_and_age_target() -> None:
    assert controlled_at_latest_visit(PATIENT, YEAR, HTN, 2024).code == "htn.indicator.controlled"
    visits = [*YEAR, htn("2024-10-29", 140, 80), phone(htn("2024-11-29", None))]
    assert controlled_at_latest_visit(PATIENT, visits, HTN, 2024).code == (
        "htn.indicator.not-controlled"
    )
    # 149/85 is at target from the 65th birthday (2025-06-15).
    assert controlled_at_latest_visit(PATIENT, [htn("2025-06-15", 149, 85)], HTN, 2025).code == (
        "htn.indicator.controlled"
    )
    none = controlled_at_latest_visit(PATIENT, [], DM, 2024)
    assert none.code == "dm.indicator.no-measurement" and not none.citation.verified
    assert controlled_at_latest_visit(PATIENT, [dm("2024-05-01", 6.9)], DM, 2024).code == (
        "dm.indicator.controlled"
    )


def test_annual_check_calendar_year_and_rolling() -> None:
    due = annual_check_due(d("2023-11-01"), d("2024-03-01"), HTN)
    assert due.code == "htn.annual-check.due" and due.due_date == d("2024-12-31")
    assert due.citation.label == "NBPHS-2017 HTN 5"
    done = annual_check_due(d("2024-02-01"), d("2024-03-01"), DM)
    assert done.code == "dm.annual-check.done" and done.due_date == d("2025-12-31")
    rolling = CountyPolicy(annual_check_basis="rolling-12-months")
    r = annual_check_due(d("2023-11-01"), d("2024-03-01"), HTN, rolling)
    assert r.code == "htn.annual-check.done" and r.due_date == d("2024-11-01")
    assert annual_check_due(None, d("2024-03-01"), HTN, rolling).code == "htn.annual-check.due"


def test_hearts_cohort_states() -> None:
    today = d("2024-12-01")
    assert hearts_status(YEAR, d("2024-10-01"), today).code == "hearts.recently-registered"
    assert hearts_status(YEAR, d("2020-01-01"), today).code == "hearts.missed-visit"
    assert hearts_status(YEAR, d("2020-01-01"), d("2025-08-01")).code == "hearts.lost-to-follow-up"
    recent = [*YEAR, htn("2024-11-01", 145, 80)]
    # HEARTS uses < 140/90 at every age.
    assert hearts_status(recent, d("2020-01-01"), today).code == "hearts.uncontrolled"
    good = [*YEAR, htn("2024-11-01", 139, 89)]
    assert hearts_status(good, d("2020-01-01"), today).code == "hearts.controlled"
    no_bp = [*YEAR, phone(htn("2024-11-01", None))]
    assert hearts_status(no_bp, d("2020-01-01"), today).code == "hearts.visit-no-bp"
