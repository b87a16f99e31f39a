"""Assessment indicators per patient (NBPHS-2017 HTN 6 / DM 6) and the HEARTS cohort.

Each function answers for one patient; the analytics capability sums them into rates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from kangqiao.chronic.rules import citations as cite
from kangqiao.chronic.rules.citations import Decision
from kangqiao.chronic.rules.diabetes import glucose_meets_target
from kangqiao.chronic.rules.hypertension import bp_meets_target
from kangqiao.chronic.rules.model import (
    BloodPressure,
    CountyPolicy,
    Disease,
    FollowUpVisit,
    Patient,
    add_months,
)

HEARTS_TARGET = BloodPressure(140, 90)  # HEARTS: controlled = latest BP < 140/90, any age


@dataclass(frozen=True, slots=True)
class StandardManagement:
    standardised: bool  # counts in the numerator of 规范管理率
    visits_counted: int
    visits_required: int
    decision: Decision


def _quarter(day: date) -> int:
    return (day.month - 1) // 3


def standardised_management(
    visits: Iterable[FollowUpVisit],
    disease: Disease,
    year: int,
    enrolled_on: date,
    annual_checks: Iterable[date] = (),
    policy: CountyPolicy | None = None,
) -> StandardManagement:
    """Was the patient "managed according to the standard" in ``year``?

    National default: at least 4 face-to-face follow-ups of the disease in the calendar
    year, one per day at most. ``CountyPolicy`` adds pro-rating for patients enrolled
    during the year, one visit per quarter, or the annual check."""
    policy = policy or CountyPolicy()
    where = (
        cite.HTN_STANDARD_MANAGEMENT
        if disease is Disease.HYPERTENSION
        else cite.DM_STANDARD_MANAGEMENT
    )
    days = {
        v.date
        for v in visits
        if v.disease is disease
        and v.date.year == year
        and v.date >= enrolled_on
        and (v.mode.face_to_face or policy.count_phone_visits)
    }
    required = policy.required_visits_per_year
    first_quarter = 0
    if policy.prorate_by_enrolment and enrolled_on.year == year:
        months_left = 13 - enrolled_on.month
        required = math.ceil(required * months_left / 12)
        first_quarter = _quarter(enrolled_on)
    missing: list[tuple[str, str]] = []
    if len(days) < required:
        missing.append(
            (f"面对面随访{len(days)}次（要求{required}次）", f"{len(days)} of {required} visits")
        )
    if policy.require_each_quarter:
        quarters = {_quarter(d) for d in days}
        gaps = [q + 1 for q in range(first_quarter, 4) if q not in quarters]
        if gaps:
            missing.append((f"第{gaps}季度无随访", f"no visit in quarter(s) {gaps}"))
    if policy.require_annual_check and not any(c.year == year for c in annual_checks):
        missing.append(("未完成年度体检", "no annual health check"))
    d = disease.value
    if missing:
        decision = Decision(
            f"{d}.indicator.not-standardised",
            "未规范管理",
            "Not managed to standard",
            f"{year}年：" + "；".join(z for z, _ in missing) + "。",
            f"{year}: " + "; ".join(e for _, e in missing) + ".",
            where,
            date(year, 12, 31),
            "warning",
        )
    else:
        decision = Decision(
            f"{d}.indicator.standardised",
            "规范管理",
            "Managed to standard",
            f"{year}年面对面随访{len(days)}次（要求{required}次）。",
            f"{year}: {len(days)} face-to-face visits ({required} required).",
            where,
        )
    return StandardManagement(not missing, len(days), required, decision)


def controlled_at_latest_visit(
    patient: Patient, visits: Iterable[FollowUpVisit], disease: Disease, year: int
) -> Decision:
    """管理人群血压/血糖控制率 numerator: the most recent follow-up measurement of the
    year met target (age-appropriate for BP). No measurement counts as not controlled."""
    measured = [
        v
        for v in visits
        if v.disease is disease
        and v.date.year == year
        and (v.bp if disease is Disease.HYPERTENSION else v.fasting_glucose) is not None
    ]
    htn = disease is Disease.HYPERTENSION
    where = cite.HTN_CONTROL_RATE if htn else cite.DM_CONTROL_RATE
    d = disease.value
    if not measured:
        # Inference the reference reports as widely used: no follow-up -> not controlled.
        return Decision(
            f"{d}.indicator.no-measurement",
            "无随访测量",
            "No follow-up measurement",
            f"{year}年无随访测量，按未控制计。",
            f"No follow-up measurement in {year}: counted as not controlled.",
            where,
            severity="warning",
        )
    last = max(measured, key=lambda v: v.date)
    if htn:
        assert last.bp is not None
        ok = bp_meets_target(last.bp, patient.age_on(last.date))
        value_zh = value_en = f"{last.bp}"
    else:
        assert last.fasting_glucose is not None
        ok = glucose_meets_target(last.fasting_glucose)
        value_zh = value_en = f"{last.fasting_glucose} mmol/L"
    return Decision(
        f"{d}.indicator.controlled" if ok else f"{d}.indicator.not-controlled",
        "最近一次随访达标" if ok else "最近一次随访未达标",
        "Latest follow-up at target" if ok else "Latest follow-up not at target",
        f"最近一次随访（{last.date}）：{value_zh}。",
        f"Latest follow-up ({last.date}): {value_en}.",
        where,
        severity="info" if ok else "warning",
    )


def hearts_status(visits: Iterable[FollowUpVisit], registered_on: date, today: date) -> Decision:
    """HEARTS cohort state of a hypertensive patient: recently registered (< 3 months),
    controlled / uncontrolled / visit without BP (seen in the last 3 months),
    missed visit (not seen in 3 months), lost to follow-up (not seen in 12 months)."""
    where = cite.HEARTS_COHORT
    seen = sorted(
        (v for v in visits if v.disease is Disease.HYPERTENSION and v.date <= today),
        key=lambda v: v.date,
    )

    def result(code: str, zh: str, en: str, sev: bool = False) -> Decision:
        return Decision(
            f"hearts.{code}", zh, en, zh, en, where, severity="warning" if sev else "info"
        )

    if registered_on > add_months(today, -3):
        return result("recently-registered", "登记不足3个月", "Registered < 3 months ago")
    recent = [v for v in seen if v.date > add_months(today, -3)]
    if not recent:
        if not any(v.date > add_months(today, -12) for v in seen):
            return result("lost-to-follow-up", "失访（12个月无随访）", "Lost to follow-up", True)
        return result("missed-visit", "漏访（3个月无随访）", "Missed visit (3 months)", True)
    with_bp = [v for v in recent if v.bp is not None]
    if not with_bp:
        return result("visit-no-bp", "近3个月随访未测血压", "Visit without BP", True)
    bp = with_bp[-1].bp
    assert bp is not None
    if bp.systolic < HEARTS_TARGET.systolic and bp.diastolic < HEARTS_TARGET.diastolic:
        return result("controlled", f"血压控制（{bp}）", f"Controlled ({bp})")
    return result("uncontrolled", f"血压未控制（{bp}）", f"Uncontrolled ({bp})", True)
