"""Type 2 diabetes: glycaemic control at a visit and the urgent-referral screen
(NBPHS-2017 2型糖尿病患者健康管理服务规范).

Glucose values are compared as given, in mmol/L: the thresholds are one-decimal figures
and glucometers and labs report at least that precision, so no rounding is applied.
"""

from __future__ import annotations

from kangqiao.chronic.rules import citations as cite
from kangqiao.chronic.rules.citations import Decision
from kangqiao.chronic.rules.hypertension import (
    other_unmanageable,
    symptom_findings,
    urgent_bp,
    urgent_finding,
)
from kangqiao.chronic.rules.model import (
    ControlStatus,
    Disease,
    FollowUpVisit,
    Symptom,
)

FPG_TARGET = 7.0  # NBPHS-2017 DM 4: controlled = fasting glucose < 7.0 mmol/L
URGENT_GLUCOSE_HIGH = 16.7  # NBPHS-2017 DM 3: glucose ≥ 16.7 mmol/L
URGENT_GLUCOSE_LOW = 3.9  # NBPHS-2017 DM 3: glucose ≤ 3.9 mmol/L
URGENT_HEART_RATE = 100  # NBPHS-2017 DM 3: persistent tachycardia, heart rate > 100/min
URGENT_TEMPERATURE = 39.0  # NBPHS-2017 DM 3: temperature > 39 °C

# NBPHS-2017 DM 3: symptoms that call for urgent referral.
URGENT_SYMPTOMS = frozenset(
    {
        Symptom.ALTERED_CONSCIOUSNESS,
        Symptom.ALTERED_BEHAVIOUR,
        Symptom.ACETONE_BREATH,
        Symptom.PALPITATIONS,
        Symptom.SWEATING,
        Symptom.LOSS_OF_APPETITE,
        Symptom.NAUSEA,
        Symptom.VOMITING,
        Symptom.POLYDIPSIA,
        Symptom.POLYURIA,
        Symptom.ABDOMINAL_PAIN,
        Symptom.DEEP_RAPID_BREATHING,
        Symptom.FLUSHED_SKIN,
        Symptom.SUDDEN_VISION_LOSS,
    }
)


def glucose_meets_target(fasting_glucose: float) -> bool:
    return fasting_glucose < FPG_TARGET  # NBPHS-2017 DM 4


def glucose_control(visit: FollowUpVisit) -> tuple[ControlStatus, Decision]:
    """Glycaemic control at a follow-up: fasting glucose < 7.0 mmol/L."""
    value = visit.fasting_glucose
    if value is None:
        return ControlStatus.UNKNOWN, Decision(
            "dm.control.unknown",
            "空腹血糖未测量",
            "Fasting glucose not measured",
            "本次随访未记录空腹血糖，无法判断控制情况。",
            "No fasting glucose was recorded at this visit, so control cannot be judged.",
            cite.DM_CLASSIFICATION,
            severity="warning",
        )
    if glucose_meets_target(value):
        return ControlStatus.CONTROLLED, Decision(
            "dm.control.controlled",
            "血糖达标",
            "Glucose at target",
            f"空腹血糖 {value} mmol/L（目标<7.0）。",
            f"Fasting glucose {value} mmol/L (target < 7.0).",
            cite.DM_CLASSIFICATION,
        )
    return ControlStatus.UNCONTROLLED, Decision(
        "dm.control.uncontrolled",
        "血糖未达标",
        "Glucose above target",
        f"空腹血糖 {value} mmol/L，≥7.0。",
        f"Fasting glucose {value} mmol/L, ≥ 7.0.",
        cite.DM_CLASSIFICATION,
        severity="warning",
    )


def dm_urgent_findings(visit: FollowUpVisit) -> list[Decision]:
    """Every urgent-referral criterion of NBPHS-2017 DM 3 that this visit meets."""
    dm, where = Disease.DIABETES_T2, cite.DM_URGENT
    found: list[Decision] = []
    glucose = visit.fasting_glucose
    if glucose is not None and glucose >= URGENT_GLUCOSE_HIGH:  # NBPHS-2017 DM 3
        found.append(
            urgent_finding(
                dm,
                "glucose-high",
                f"血糖 {glucose} mmol/L ≥16.7",
                f"glucose {glucose} ≥ 16.7",
                where,
            )
        )
    if glucose is not None and glucose <= URGENT_GLUCOSE_LOW:  # NBPHS-2017 DM 3
        found.append(
            urgent_finding(
                dm, "glucose-low", f"血糖 {glucose} mmol/L ≤3.9", f"glucose {glucose} ≤ 3.9", where
            )
        )
    bp = urgent_bp(visit.bp, dm, where)  # NBPHS-2017 DM 3: SBP ≥ 180 and/or DBP ≥ 110
    if bp:
        found.append(bp)
    found += symptom_findings(visit, URGENT_SYMPTOMS, where)  # NBPHS-2017 DM 3
    # NBPHS-2017 DM 3: "persistent" tachycardia; a resting rate > 100 measured at the
    # visit is taken as meeting it (a single reading errs towards referral).
    if visit.heart_rate is not None and visit.heart_rate > URGENT_HEART_RATE:
        found.append(
            urgent_finding(
                dm,
                "tachycardia",
                f"心动过速（心率 {visit.heart_rate} 次/分 >100）",
                f"tachycardia (heart rate {visit.heart_rate}/min > 100)",
                where,
            )
        )
    if visit.temperature is not None and visit.temperature > URGENT_TEMPERATURE:  # DM 3
        found.append(
            urgent_finding(
                dm,
                "fever",
                f"体温 {visit.temperature} ℃ >39",
                f"temperature {visit.temperature} °C > 39",
                where,
            )
        )
    # NBPHS-2017 DM 3: pregnancy or breastfeeding with glucose above normal; "above
    # normal" is read as the standard's own control threshold (≥ 7.0), as it gives none.
    if visit.pregnant_or_breastfeeding and glucose is not None and glucose >= FPG_TARGET:
        found.append(
            urgent_finding(
                dm,
                "pregnancy",
                f"妊娠期或哺乳期血糖高于正常（{glucose} mmol/L）",
                f"pregnant or breastfeeding with glucose above normal ({glucose} mmol/L)",
                where,
            )
        )
    found += other_unmanageable(visit, where)  # NBPHS-2017 DM 3
    return found
