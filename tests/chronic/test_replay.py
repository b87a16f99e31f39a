"""Replay four years of one synthetic patient and check every classification and due date.

The patient has hypertension and type 2 diabetes and turns 65 on 2024-09-20, so the
history crosses the age-65 target, a missed 2-week recheck, referrals, urgent visits, an
unmeasured phone contact and a month-end routine date.
"""

from __future__ import annotations

from datetime import date

from kangqiao.chronic.rules import (
    Patient,
    assess_history,
    controlled_at_latest_visit,
    protocol_state,
    standardised_management,
)
from tests.chronic.helpers import DM, HTN, d, dm, htn, phone

P = Patient(date(1959, 9, 20), conditions=frozenset({HTN, DM}))

# (visit, classification code, uncontrolled run, referral, next due)
HTN_HISTORY = [
    (htn("2022-01-10", 152, 94), "2", 1, None, "2022-01-24"),  # first uncontrolled
    (htn("2022-01-24", 138, 86), "1", 0, None, "2022-04-24"),
    (htn("2022-04-22", 142, 88), "2", 1, None, "2022-05-06"),
    # 2022-05-06 recheck missed: the next uncontrolled visit is still the second in a row.
    (htn("2022-07-15", 146, 92), "2", 2, "routine", "2022-07-29"),
    (htn("2022-07-29", 144, 90), "2", 1, None, "2022-08-12"),  # run restarted by referral
    (htn("2022-08-12", 134, 84), "1", 0, None, "2022-11-12"),
    (phone(htn("2022-11-10", None)), None, 0, None, "2022-11-24"),  # nothing measured
    (htn("2022-11-24", 136, 82, adverse_reaction=True), "3", 0, None, "2022-12-08"),
    (htn("2022-12-08", 130, 80), "1", 0, None, "2023-03-08"),
    (htn("2023-03-08", 128, 78), "1", 0, None, "2023-06-08"),
    (htn("2023-06-05", 185, 105), "2", 1, "urgent", "2023-06-19"),
    (htn("2023-06-19", 150, 95), "2", 1, None, "2023-07-03"),
    (htn("2023-07-03", 136, 84, new_or_worse_complication=True), "4", 0, "routine", "2023-07-17"),
    (htn("2023-07-17", 132, 80), "1", 0, None, "2023-10-17"),
    (htn("2023-10-16", 138, 88), "1", 0, None, "2024-01-16"),
    (htn("2024-01-20", 139, 89), "1", 0, None, "2024-04-20"),
    (htn("2024-04-19", 140, 89), "2", 1, None, "2024-05-03"),
    (htn("2024-05-03", 138, 86), "1", 0, None, "2024-08-03"),
    (htn("2024-09-19", 149, 89), "2", 1, None, "2024-10-03"),  # 64: target < 140/90
    (htn("2024-10-03", 149, 89), "1", 0, None, "2025-01-03"),  # 65: target < 150/90
    (htn("2025-01-03", 149, 90), "2", 1, None, "2025-01-17"),  # DBP 90 fails at any age
    (htn("2025-01-17", 155, 88), "2", 2, "routine", "2025-01-31"),
    (htn("2025-01-31", 148, 86), "1", 0, None, "2025-04-30"),  # 31 Jan + 3 months
]

DM_HISTORY = [
    (dm("2022-01-10", 7.8), "2", 1, None, "2022-01-24"),
    (dm("2022-01-24", 6.8), "1", 0, None, "2022-04-24"),
    (dm("2022-04-22", 6.9), "1", 0, None, "2022-07-22"),
    (dm("2022-07-15", 7.0), "2", 1, None, "2022-07-29"),
    (dm("2022-07-29", 7.5), "2", 2, "routine", "2022-08-12"),
    (dm("2022-08-12", 3.9), "1", 0, "urgent", "2022-08-26"),  # hypoglycaemia
    (dm("2022-08-26", 5.6), "1", 0, None, "2022-11-26"),
    (dm("2022-11-24", 16.7), "2", 1, "urgent", "2022-12-08"),
    (dm("2022-12-08", 8.1), "2", 1, None, "2022-12-22"),
    # 2022-12-22 missed; back at target in March.
    (dm("2023-03-08", 6.2), "1", 0, None, "2023-06-08"),
    (dm("2023-06-05", 6.5, heart_rate=104), "1", 0, "urgent", "2023-06-19"),
    (dm("2023-06-19", 16.6), "2", 1, None, "2023-07-03"),
    (dm("2023-07-03", 6.6, adverse_reaction=True), "3", 0, None, "2023-07-17"),
    (dm("2023-07-17", 6.4, adverse_reaction_uncontrolled=True), "3", 0, "routine", "2023-07-31"),
    (dm("2024-03-01", 6.1), "1", 0, None, "2024-06-01"),
    (dm("2024-05-31", 4.0), "1", 0, None, "2024-08-31"),
]


def test_replay_every_visit() -> None:
    table = HTN_HISTORY + DM_HISTORY
    assessed = {id(a.visit): a for a in assess_history(P, [row[0] for row in table])}
    for visit, cls, run, referral, due in table:
        a = assessed[id(visit)]
        where = f"{visit.disease.value} {visit.date}"
        assert (a.classification.code if a.classification else None) == cls, where
        assert a.uncontrolled_run == run, where
        got_referral = a.referral.code.rsplit(".", 1)[1] if a.referral else None
        assert got_referral == referral, where
        assert a.due_date == d(due), where


def test_replay_indicators_per_year() -> None:
    visits = [row[0] for row in HTN_HISTORY + DM_HISTORY]
    managed = {
        year: standardised_management(visits, HTN, year, enrolled_on=d("2022-01-10")).visits_counted
        for year in (2022, 2023, 2024, 2025)
    }
    assert managed == {2022: 8, 2023: 6, 2024: 5, 2025: 3}  # the phone contact does not count
    controlled = {
        year: controlled_at_latest_visit(P, visits, HTN, year).code for year in (2022, 2023, 2024)
    }
    assert set(controlled.values()) == {"htn.indicator.controlled"}
    assert controlled_at_latest_visit(P, visits, DM, 2024).code == "dm.indicator.controlled"


def test_replay_state_on_a_later_day() -> None:
    visits = [row[0] for row in HTN_HISTORY + DM_HISTORY]
    htn_state = protocol_state(P, visits, HTN, d("2025-05-10"), enrolled_on=d("2022-01-10"))
    assert htn_state.next_due == d("2025-04-30") and htn_state.overdue_days == 10
    dm_state = protocol_state(P, visits, DM, d("2025-05-10"), enrolled_on=d("2022-01-10"))
    assert dm_state.next_due == d("2024-08-31") and dm_state.overdue_days == 252
