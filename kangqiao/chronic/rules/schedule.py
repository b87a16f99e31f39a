"""Where a managed patient stands today: next follow-up, days overdue, annual check."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from kangqiao.chronic.rules import citations as cite
from kangqiao.chronic.rules.citations import Decision
from kangqiao.chronic.rules.followup import VisitAssessment, assess_history
from kangqiao.chronic.rules.model import (
    CountyPolicy,
    Disease,
    FollowUpVisit,
    Patient,
    add_months,
)


@dataclass(frozen=True, slots=True)
class ProtocolState:
    disease: Disease
    last: VisitAssessment | None
    next_due: date
    overdue_days: int  # 0 when not overdue
    decision: Decision  # why next_due is what it is

    @property
    def overdue(self) -> bool:
        return self.overdue_days > 0


def protocol_state(
    patient: Patient,
    visits: Iterable[FollowUpVisit],
    disease: Disease,
    today: date,
    enrolled_on: date,
    policy: CountyPolicy | None = None,
) -> ProtocolState:
    """The next follow-up of one disease as of ``today``: the due date set by the last
    visit, or the enrolment date when the patient has not been seen yet."""
    mine = [v for v in visits if v.disease is disease and v.date <= today]
    history = assess_history(patient, mine, policy)
    last = history[-1] if history else None
    if last is None:
        # NBPHS-2017 HTN 3 / DM 3: follow-up starts once the patient is enrolled.
        decision = Decision(
            f"{disease.value}.next.first",
            "首次随访",
            "First follow-up",
            "已纳入管理，尚未随访。",
            "Enrolled and not yet followed up.",
            cite.HTN_FOLLOW_UP if disease is Disease.HYPERTENSION else cite.DM_FOLLOW_UP,
            enrolled_on,
            "warning",
        )
    else:
        decision = last.next_visit
    due = decision.due_date or today
    return ProtocolState(disease, last, due, max(0, (today - due).days), decision)


def annual_check_due(
    last_check: date | None,
    today: date,
    disease: Disease,
    policy: CountyPolicy | None = None,
) -> Decision:
    """One fairly complete health check a year (NBPHS-2017 HTN 5 / DM 5).

    By default a check counts for its calendar year, as the annual assessment does; a
    county may choose a rolling 12 months instead."""
    policy = policy or CountyPolicy()
    where = cite.HTN_ANNUAL_CHECK if disease is Disease.HYPERTENSION else cite.DM_ANNUAL_CHECK
    if policy.annual_check_basis == "calendar-year":
        done = last_check is not None and last_check.year == today.year
        due = date(today.year + (1 if done else 0), 12, 31)
    else:
        due = add_months(last_check, 12) if last_check else today
        done = due > today
    d = disease.value
    if done:
        return Decision(
            f"{d}.annual-check.done",
            "年度体检已完成",
            "Annual health check done",
            f"本年度已完成健康体检（{last_check}）。",
            f"This year's health check was done on {last_check}.",
            where,
            due,
        )
    return Decision(
        f"{d}.annual-check.due",
        "年度体检待完成",
        "Annual health check due",
        "每年进行1次较全面的健康体检，可与随访相结合。",
        "One fairly complete health check a year, which may be combined with a follow-up.",
        where,
        due,
        "warning",
    )
