"""Screening and diagnosis before management (NBPHS-2017 HTN 2, DM 2).

Decisions where the standard is silent:

* Several readings on one day are averaged (SBP and DBP separately): the standard counts
  *days* ("three different days"), and averaging repeated sittings is usual office practice.
* "Elevated on three different days" counts the elevated days since the most recent
  normal day: a normal day in between means the readings were not all above normal.
* A referral whose result is "not confirmed" resolves the readings before it; screening
  starts again from the result date.
* The standard sets no deadline for the recheck after a first elevated reading, so that
  decision carries no due date.
* High-risk residents are screened every 6 months whatever their age; the criteria for
  "high risk" are not in the reference and come in as ``Patient.htn_high_risk``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from kangqiao.chronic.rules import citations as cite
from kangqiao.chronic.rules.citations import Decision, Severity
from kangqiao.chronic.rules.hypertension import is_elevated
from kangqiao.chronic.rules.model import (
    BloodPressure,
    CountyPolicy,
    Disease,
    Patient,
    add_days,
    add_months,
    birthday,
)

SCREENING_AGE = 35  # NBPHS-2017 HTN 1 / HTN 2: residents aged 35 and over
ELEVATED_DAYS_FOR_DIAGNOSIS = 3  # NBPHS-2017 HTN 2: elevated on three different days


@dataclass(frozen=True, slots=True)
class ScreeningReading:
    date: date
    bp: BloodPressure


@dataclass(frozen=True, slots=True)
class ConfirmationReferral:
    """A referral to confirm a preliminary diagnosis, and what came back."""

    referred_on: date
    result_on: date | None = None
    confirmed: bool | None = None


def daily_means(readings: Iterable[ScreeningReading]) -> list[ScreeningReading]:
    """One reading per day, the mean of that day's readings (rounded to whole mmHg)."""
    by_day: dict[date, list[BloodPressure]] = defaultdict(list)
    for r in readings:
        by_day[r.date].append(r.bp)
    return [
        ScreeningReading(
            day,
            BloodPressure(
                round(sum(b.systolic for b in bps) / len(bps)),
                round(sum(b.diastolic for b in bps) / len(bps)),
            ),
        )
        for day, bps in sorted(by_day.items())
    ]


def elevated_days(readings: Iterable[ScreeningReading]) -> list[date]:
    """The elevated days since the last normal day (NBPHS-2017 HTN 2)."""
    run: list[date] = []
    for day in daily_means(readings):
        run = [*run, day.date] if is_elevated(day.bp) else []
    return run


def _decision(
    code: str, zh: str, en: str, why_zh: str, why_en: str, due: date | None, sev: Severity = "info"
) -> Decision:
    return Decision(f"htn.screening.{code}", zh, en, why_zh, why_en, cite.HTN_SCREENING, due, sev)


def htn_screening(
    patient: Patient,
    readings: Iterable[ScreeningReading],
    today: date,
    referral: ConfirmationReferral | None = None,
    policy: CountyPolicy | None = None,
) -> Decision:
    """Where a resident stands in the hypertension screening workflow on ``today``."""
    policy = policy or CountyPolicy()
    if Disease.HYPERTENSION in patient.conditions:
        return Decision(
            "htn.screening.managed",
            "已纳入管理",
            "Under management",
            "已确诊高血压，按随访规范管理，不再筛查。",
            "Hypertension is confirmed: follow-up, not screening, applies.",
            cite.HTN_WHO,
        )
    age = patient.age_on(today)
    if age < SCREENING_AGE and not patient.htn_high_risk:
        return _decision(
            "not-eligible",
            "未到筛查年龄",
            "Below screening age",
            f"{age}岁，35岁起每年免费测量血压一次。",
            f"Age {age}: yearly BP screening starts at 35.",
            birthday(patient.birth_date, SCREENING_AGE),
        )
    readings = [r for r in readings if r.date <= today]
    if referral is not None:
        if referral.result_on is None or referral.confirmed is None:
            # NBPHS-2017 HTN 2: follow up the referral result within 2 weeks.
            return _decision(
                "awaiting-referral-result",
                "随访转诊结果",
                "Follow up the referral result",
                "已转诊确诊，2周内随访转诊结果。",
                "Referred for confirmation: follow up the result within 2 weeks.",
                add_days(referral.referred_on, 14),
                "warning",
            )
        if referral.confirmed:
            # NBPHS-2017 HTN 2: confirmed -> enrolled in management.
            return _decision(
                "enrol",
                "纳入高血压患者健康管理",
                "Enrol in hypertension management",
                "上级医院已确诊原发性高血压，纳入健康管理并开始随访。",
                "Essential hypertension confirmed: enrol and start follow-up.",
                referral.result_on,
                "warning",
            )
        readings = [r for r in readings if r.date > referral.result_on]
    days = elevated_days(readings)
    if len(days) >= ELEVATED_DAYS_FOR_DIAGNOSIS:
        # NBPHS-2017 HTN 2: elevated on three different days -> preliminary diagnosis.
        return _decision(
            "refer-for-confirmation",
            "初步诊断，转诊确诊",
            "Preliminary diagnosis: refer for confirmation",
            f"非同日{len(days)}次血压高于正常（≥140/90），初步诊断高血压，建议转诊上级医院确诊。",
            f"BP above normal (≥ 140/90) on {len(days)} different days: preliminary diagnosis,"
            " refer for confirmation.",
            days[-1],
            "warning",
        )
    if days:
        # NBPHS-2017 HTN 2: first elevated reading -> recheck after removing transient causes.
        return _decision(
            "recheck",
            "预约复查血压",
            "Recheck BP on another day",
            f"已有{len(days)}天血压高于正常，去除可能引起血压升高的因素后，预约非同日复查。",
            f"BP above normal on {len(days)} day(s): recheck on another day after removing"
            " transient causes.",
            None,
            "warning",
        )
    # NBPHS-2017 HTN 2: yearly for 35+, at least every 6 months for high-risk residents.
    months = (
        policy.high_risk_screening_interval_months
        if patient.htn_high_risk
        else policy.screening_interval_months
    )
    last = max((r.date for r in readings), default=None)
    due = add_months(last, months) if last else today
    risk_zh, risk_en = (
        ("高危人群，每半年", "high risk: every 6 months")
        if (patient.htn_high_risk)
        else ("每年", "yearly")
    )
    state = "due" if due <= today else "up-to-date"
    return _decision(
        state,
        "应筛查血压" if state == "due" else "筛查按时",
        "BP screening due" if state == "due" else "BP screening up to date",
        f"免费测量血压（{risk_zh}至少一次）。",
        f"Free BP measurement ({risk_en} at least once).",
        due,
    )


def dm_screening(
    patient: Patient,
    last_fasting_glucose: date | None,
    today: date,
    policy: CountyPolicy | None = None,
) -> Decision:
    """Fasting glucose at least once a year, with health education, for high-risk people
    (NBPHS-2017 DM 2). The standard gives no diagnostic workflow for primary care."""
    policy = policy or CountyPolicy()
    if Disease.DIABETES_T2 in patient.conditions:
        return Decision(
            "dm.screening.managed",
            "已纳入管理",
            "Under management",
            "已确诊2型糖尿病，按随访规范管理。",
            "Type 2 diabetes is confirmed: follow-up, not screening, applies.",
            cite.DM_WHO,
        )
    if not patient.dm_high_risk:
        return Decision(
            "dm.screening.not-indicated",
            "无需筛查",
            "Not indicated",
            "非糖尿病高危人群，规范未要求血糖筛查。",
            "Not at high risk: the standard asks for no glucose screening.",
            cite.DM_SCREENING,
        )
    # NBPHS-2017 DM 2: high-risk people, fasting glucose at least once a year.
    due = (
        add_months(last_fasting_glucose, policy.screening_interval_months)
        if last_fasting_glucose
        else today
    )
    due_now = due <= today
    return Decision(
        "dm.screening.due" if due_now else "dm.screening.up-to-date",
        "应测空腹血糖" if due_now else "血糖筛查按时",
        "Fasting glucose due" if due_now else "Glucose screening up to date",
        "糖尿病高危人群：针对性健康教育，每年至少测量1次空腹血糖。",
        "High risk of diabetes: targeted health education, fasting glucose at least yearly.",
        cite.DM_SCREENING,
        due,
        "warning" if due_now else "info",
    )
