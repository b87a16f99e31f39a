"""Hypertension: the BP target, control at a visit and the urgent-referral screen
(NBPHS-2017 高血压患者健康管理服务规范)."""

from __future__ import annotations

from kangqiao.chronic.rules import citations as cite
from kangqiao.chronic.rules.citations import Decision
from kangqiao.chronic.rules.model import (
    SYMPTOM_LABELS,
    BloodPressure,
    ControlStatus,
    Disease,
    FollowUpVisit,
    Patient,
    Symptom,
)

ELDERLY_AGE = 65  # NBPHS-2017 HTN 4(1): age ≥ 65 gets the < 150/90 target
ELEVATED = BloodPressure(140, 90)  # NBPHS-2017 HTN 2: SBP ≥ 140 and/or DBP ≥ 90
URGENT_BP = BloodPressure(180, 110)  # NBPHS-2017 HTN 3(1)

# NBPHS-2017 HTN 3(1): symptoms that call for urgent referral.
URGENT_SYMPTOMS = frozenset(
    {
        Symptom.ALTERED_CONSCIOUSNESS,
        Symptom.SEVERE_HEADACHE_OR_DIZZINESS,
        Symptom.NAUSEA,
        Symptom.VOMITING,
        Symptom.BLURRED_VISION,
        Symptom.EYE_PAIN,
        Symptom.PALPITATIONS,
        Symptom.CHEST_TIGHTNESS,
        Symptom.ORTHOPNOEA,
    }
)


def bp_target(age: int) -> BloodPressure:
    """The exclusive upper bound a follow-up BP must stay below to count as controlled."""
    # NBPHS-2017 HTN 4(1): < 140/90; age ≥ 65: < 150/90.
    return BloodPressure(150, 90) if age >= ELDERLY_AGE else BloodPressure(140, 90)


def is_elevated(bp: BloodPressure) -> bool:
    """A screening reading above normal."""
    # NBPHS-2017 HTN 2: SBP ≥ 140 and/or DBP ≥ 90.
    return bp.systolic >= ELEVATED.systolic or bp.diastolic >= ELEVATED.diastolic


def bp_meets_target(bp: BloodPressure, age: int) -> bool:
    target = bp_target(age)
    return bp.systolic < target.systolic and bp.diastolic < target.diastolic


def bp_control(patient: Patient, visit: FollowUpVisit) -> tuple[ControlStatus, Decision]:
    """Control of BP at a follow-up against the age-appropriate target."""
    age = patient.age_on(visit.date)
    target = bp_target(age)
    # NBPHS-2017 HTN 4(1)/4(2): the target depends on age on the day of the visit.
    citation = cite.HTN_CONTROLLED
    if visit.bp is None:
        return ControlStatus.UNKNOWN, Decision(
            "htn.control.unknown",
            "血压未测量",
            "BP not measured",
            "本次随访未记录血压，无法判断控制情况。",
            "No BP was recorded at this visit, so control cannot be judged.",
            citation,
            severity="warning",
        )
    who_zh = f"{age}岁，目标<{target.systolic}/{target.diastolic} mmHg"
    who_en = f"age {age}, target < {target.systolic}/{target.diastolic} mmHg"
    if bp_meets_target(visit.bp, age):
        return ControlStatus.CONTROLLED, Decision(
            "htn.control.controlled",
            "血压达标",
            "BP at target",
            f"血压 {visit.bp}（{who_zh}）。",
            f"BP {visit.bp} ({who_en}).",
            citation,
        )
    return ControlStatus.UNCONTROLLED, Decision(
        "htn.control.uncontrolled",
        "血压未达标",
        "BP above target",
        f"血压 {visit.bp}，收缩压≥{target.systolic}和/或舒张压≥{target.diastolic}（{who_zh}）。",
        f"BP {visit.bp}: SBP ≥ {target.systolic} and/or DBP ≥ {target.diastolic} ({who_en}).",
        cite.HTN_FIRST_UNCONTROLLED,
        severity="warning",
    )


def urgent_bp(
    bp: BloodPressure | None, disease: Disease, citation: cite.Citation
) -> Decision | None:
    """SBP ≥ 180 and/or DBP ≥ 110 (shared by both specifications)."""
    if bp is None or (bp.systolic < URGENT_BP.systolic and bp.diastolic < URGENT_BP.diastolic):
        return None
    return urgent_finding(
        disease,
        "bp",
        f"血压 {bp}：收缩压≥180和/或舒张压≥110 mmHg",
        f"BP {bp}: SBP ≥ 180 and/or DBP ≥ 110 mmHg",
        citation,
    )


def urgent_finding(
    disease: Disease, code: str, zh: str, en: str, citation: cite.Citation
) -> Decision:
    return Decision(
        f"{disease.value}.urgent.{code}",
        "紧急转诊指征",
        "Urgent-referral criterion",
        zh,
        en,
        citation,
        severity="critical",
    )


def symptom_findings(
    visit: FollowUpVisit, listed: frozenset[Symptom], citation: cite.Citation
) -> list[Decision]:
    return [
        urgent_finding(
            visit.disease,
            f"symptom.{s.value}",
            SYMPTOM_LABELS[s][0],
            SYMPTOM_LABELS[s][1],
            citation,
        )
        for s in sorted(visit.symptoms & listed, key=lambda s: s.value)
    ]


def other_unmanageable(visit: FollowUpVisit, citation: cite.Citation) -> list[Decision]:
    if not visit.other_unmanageable:
        return []
    return [
        urgent_finding(
            visit.disease,
            "other",
            "存在基层医疗机构不能处理的其他情况",
            "another condition the clinic cannot manage",
            citation,
        )
    ]


def htn_urgent_findings(visit: FollowUpVisit) -> list[Decision]:
    """Every urgent-referral criterion of NBPHS-2017 HTN 3(1) that this visit meets."""
    found: list[Decision] = []
    # NBPHS-2017 HTN 3(1): SBP ≥ 180 and/or DBP ≥ 110.
    bp = urgent_bp(visit.bp, Disease.HYPERTENSION, cite.HTN_URGENT)
    if bp:
        found.append(bp)
    found += symptom_findings(visit, URGENT_SYMPTOMS, cite.HTN_URGENT)  # NBPHS-2017 HTN 3(1)
    # NBPHS-2017 HTN 3(1): pregnancy or breastfeeding with BP above normal; "above
    # normal" is read as the screening threshold 140/90 (the standard gives no figure).
    if visit.pregnant_or_breastfeeding and visit.bp is not None and is_elevated(visit.bp):
        found.append(
            urgent_finding(
                Disease.HYPERTENSION,
                "pregnancy",
                f"妊娠期或哺乳期血压高于正常（{visit.bp}）",
                f"pregnant or breastfeeding with BP above normal ({visit.bp})",
                cite.HTN_URGENT,
            )
        )
    found += other_unmanageable(visit, cite.HTN_URGENT)  # NBPHS-2017 HTN 3(1)
    return found
