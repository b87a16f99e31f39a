"""NBPHS-2017 HTN 4 / DM 4: classification, "two consecutive", referral, next visit."""

from __future__ import annotations

import pytest

from kangqiao.chronic.rules import (
    Adherence,
    CountyPolicy,
    FollowUpVisit,
    VisitClass,
    assess_history,
    assess_visit,
    protocol_state,
)
from tests.chronic.helpers import DM, HTN, PATIENT, d, dm, htn, phone


def classes(*visits: FollowUpVisit) -> list[tuple[str | None, int, str | None]]:
    out = []
    for a in assess_history(PATIENT, visits):
        out.append(
            (
                a.classification.zh if a.classification else None,
                a.uncontrolled_run,
                a.referral.code if a.referral else None,
            )
        )
    return out


# NBPHS-2017 HTN 4(1): controlled -> next routine follow-up (quarterly).
def test_controlled_books_routine_visit_three_months_on() -> None:
    a = assess_visit(PATIENT, htn("2024-03-05", 128, 78))
    assert a.classification is VisitClass.CONTROLLED
    assert a.next_visit.code == "htn.next.routine"
    assert a.due_date == d("2024-06-05")
    assert a.referral is None


# NBPHS-2017 HTN 4(2): first uncontrolled -> 2 weeks.
@pytest.mark.parametrize(
    ("day", "due"),
    [
        ("2024-01-25", "2024-02-08"),  # across a month end
        ("2024-02-20", "2024-03-05"),  # across a leap February
        ("2023-02-20", "2023-03-06"),  # across a common February
        ("2024-12-25", "2025-01-08"),  # across a year end
    ],
)
def test_first_uncontrolled_two_weeks_across_month_ends(day: str, due: str) -> None:
    a = assess_visit(PATIENT, htn(day, 150, 95))
    assert a.classification is VisitClass.UNCONTROLLED
    assert a.due_date == d(due)
    assert a.next_visit.citation.label == "NBPHS-2017 HTN 4(2)"


@pytest.mark.parametrize(
    ("day", "due"),
    [("2024-11-30", "2025-02-28"), ("2023-11-30", "2024-02-29"), ("2024-05-31", "2024-08-31")],
)
def test_routine_visit_clamps_to_month_end(day: str, due: str) -> None:
    assert assess_visit(PATIENT, htn(day, 120, 70)).due_date == d(due)


# NBPHS-2017 HTN 4(2): adverse reaction -> adjust, 2 weeks, even when BP is at target.
def test_adverse_reaction_two_weeks() -> None:
    a = assess_visit(PATIENT, htn("2024-03-05", 128, 78, adverse_reaction=True))
    assert a.classification is VisitClass.ADVERSE_REACTION
    assert a.referral is None
    assert a.due_date == d("2024-03-19")


# NBPHS-2017 HTN 4(3): uncontrollable reaction or new/worse complication -> refer.
@pytest.mark.parametrize(
    ("kw", "cls"),
    [
        ({"adverse_reaction_uncontrolled": True}, VisitClass.ADVERSE_REACTION),
        ({"new_or_worse_complication": True}, VisitClass.COMPLICATION),
        (
            {"new_or_worse_complication": True, "adverse_reaction": True},
            VisitClass.COMPLICATION,
        ),
    ],
)
def test_refer_for_reaction_or_complication(kw: dict[str, object], cls: VisitClass) -> None:
    a = assess_visit(PATIENT, htn("2024-03-05", 128, 78, **kw))
    assert a.classification is cls
    assert a.referral is not None and a.referral.code == "htn.referral.routine"
    assert a.referral.citation.label == "NBPHS-2017 HTN 4(3)"
    assert a.due_date == d("2024-03-19")


def test_adverse_reaction_with_high_bp_still_counts_as_uncontrolled() -> None:
    got = classes(htn("2024-01-10", 150, 95, adverse_reaction=True), htn("2024-01-24", 150, 95))
    assert got == [("不良反应", 1, None), ("控制不满意", 2, "htn.referral.routine")]


# NBPHS-2017 HTN 4(3): two consecutive uncontrolled visits -> refer.
def test_two_consecutive_uncontrolled_refers() -> None:
    got = classes(htn("2024-01-10", 150, 95), htn("2024-01-24", 145, 92))
    assert got == [("控制不满意", 1, None), ("控制不满意", 2, "htn.referral.routine")]


def test_a_controlled_visit_breaks_the_run() -> None:
    got = classes(
        htn("2024-01-10", 150, 95), htn("2024-01-24", 135, 85), htn("2024-04-24", 150, 95)
    )
    assert [g[2] for g in got] == [None, None, None]
    assert [g[1] for g in got] == [1, 0, 1]


def test_missing_scheduled_visit_does_not_break_consecutive() -> None:
    # The 2-week recheck due 2024-01-24 never happened; the next visit is months later.
    got = classes(htn("2024-01-10", 150, 95), htn("2024-04-20", 152, 96))
    assert got[1] == ("控制不满意", 2, "htn.referral.routine")


def test_unmeasured_contact_neither_counts_nor_breaks() -> None:
    got = classes(
        htn("2024-01-10", 150, 95),
        phone(htn("2024-01-24", None)),
        htn("2024-02-07", 150, 95),
    )
    assert got == [
        ("控制不满意", 1, None),
        (None, 1, None),
        ("控制不满意", 2, "htn.referral.routine"),
    ]


def test_unmeasured_visit_is_unclassified_and_rechecked_in_two_weeks() -> None:
    a = assess_visit(PATIENT, htn("2024-01-24", None))
    assert a.classification is None
    assert a.classification_decision.code == "htn.visit.unclassified"
    assert a.due_date == d("2024-02-07")
    assert not a.next_visit.citation.verified  # a Kangqiao decision, not the standard's


def test_county_may_cap_the_gap_between_consecutive_visits() -> None:
    visits = [htn("2024-01-10", 150, 95), htn("2024-06-20", 150, 95)]
    capped = assess_history(PATIENT, visits, CountyPolicy(consecutive_max_gap_days=120))
    assert [a.uncontrolled_run for a in capped] == [1, 1]
    assert capped[1].referral is None
    national = assess_history(PATIENT, visits)
    assert national[1].referral is not None


def test_run_restarts_after_a_referral() -> None:
    got = classes(
        htn("2024-01-10", 150, 95),
        htn("2024-01-24", 150, 95),  # second -> refer
        htn("2024-02-07", 146, 92),  # first under the specialist's plan -> 2 weeks
        htn("2024-02-21", 146, 92),  # second again -> refer again
    )
    assert [g[1:] for g in got] == [
        (1, None),
        (2, "htn.referral.routine"),
        (1, None),
        (2, "htn.referral.routine"),
    ]


def test_diseases_keep_separate_runs() -> None:
    got = classes(
        htn("2024-01-10", 150, 95),
        dm("2024-01-10", 8.0),
        dm("2024-01-24", 6.5),
        htn("2024-01-24", 150, 95),
    )
    assert got[-1] == ("控制不满意", 2, "htn.referral.routine")
    assert got[2] == ("控制满意", 0, None)


def test_dm_two_consecutive_uncontrolled() -> None:
    got = classes(dm("2024-01-10", 7.0), dm("2024-04-10", 9.5))
    assert got[1] == ("控制不满意", 2, "dm.referral.routine")


def test_assess_visit_uses_previous_regardless_of_order_and_disease() -> None:
    previous = [dm("2024-01-05", 9.0), htn("2024-01-10", 150, 95), htn("2023-10-10", 150, 95)]
    a = assess_visit(PATIENT, htn("2024-01-24", 150, 95), previous)
    # 2023-10-10 first, 2024-01-10 second (referred, run restarts), 2024-01-24 first again;
    # the diabetes visit in between does not touch the hypertension run.
    assert a.uncontrolled_run == 1
    assert a.referral is None


def test_urgent_and_consecutive_together_give_one_urgent_referral() -> None:
    got = assess_history(PATIENT, [htn("2024-01-10", 150, 95), htn("2024-01-24", 182, 100)])
    assert got[1].referral is not None and got[1].referral.code == "htn.referral.urgent"
    assert got[1].referral.citation.label == "NBPHS-2017 HTN 3(1)"


def test_decisions_are_bilingual_and_cited() -> None:
    a = assess_visit(PATIENT, htn("2024-01-24", 150, 95, adherence=Adherence.INTERMITTENT))
    for decision in a.decisions:
        assert decision.label_zh and decision.label_en
        assert decision.reason_zh and decision.reason_en
        assert decision.citation.label
    assert a.education.citation.label == "NBPHS-2017 HTN 4(4)"


# Protocol state for the worklists: overdue days counted from the due date.
def test_protocol_state_overdue_and_first_visit() -> None:
    visits = [htn("2024-01-10", 150, 95)]
    state = protocol_state(PATIENT, visits, HTN, d("2024-02-01"), enrolled_on=d("2023-12-01"))
    assert state.next_due == d("2024-01-24") and state.overdue_days == 8 and state.overdue
    fresh = protocol_state(PATIENT, [], DM, d("2024-02-01"), enrolled_on=d("2024-01-30"))
    assert fresh.decision.code == "dm.next.first" and fresh.overdue_days == 2
    ahead = protocol_state(PATIENT, visits, HTN, d("2024-01-20"), enrolled_on=d("2023-12-01"))
    assert ahead.overdue_days == 0 and not ahead.overdue
