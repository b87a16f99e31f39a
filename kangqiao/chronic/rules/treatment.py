"""Treatment-intensification suggestions for decision support.

NBPHS-2017 says *what kind* of adjustment follows an uncontrolled visit; the
primary-care guidelines add targets. The reference summarises the guideline targets
but asks that the text be verified before a clause is cited, so those suggestions cite
the guideline without a clause and are marked unverified. No drug or dose is named:
the reference gives none.
"""

from __future__ import annotations

from kangqiao.chronic.rules import citations as cite
from kangqiao.chronic.rules.citations import Decision
from kangqiao.chronic.rules.diabetes import FPG_TARGET
from kangqiao.chronic.rules.hypertension import bp_meets_target
from kangqiao.chronic.rules.model import (
    Adherence,
    BloodPressure,
    Disease,
    FollowUpVisit,
    Patient,
)

TIGHT_BP = BloodPressure(130, 80)  # HTN guideline 2020 (if tolerated); DM guideline 2022
HBA1C_TARGET = 7.0  # DM guideline 2022: HbA1c < 7.0 %
FPG_LOWER = 4.4  # DM guideline 2022: fasting glucose 4.4-7.0 mmol/L
LDL_TARGET, LDL_TARGET_ASCVD = 2.6, 1.8  # DM guideline 2022, mmol/L
BMI_TARGET = 24.0  # DM guideline 2022: BMI < 24 kg/m²


def _s(code: str, zh: str, en: str, why_zh: str, why_en: str, c: cite.Citation) -> Decision:
    return Decision(f"treatment.{code}", zh, en, why_zh, why_en, c, severity="warning")


def _adherence(visit: FollowUpVisit, where: cite.Citation) -> list[Decision]:
    # NBPHS-2017 HTN 4(2) / DM 4: adjust "considering adherence" - poor adherence first.
    if visit.adherence in (Adherence.INTERMITTENT, Adherence.NONE):
        return [
            _s(
                "adherence",
                "先改善服药依从性",
                "Address adherence first",
                "服药不规律：先了解原因并加强依从性指导，再决定是否加量或换药。",
                "Medication not taken regularly: address the reasons before intensifying.",
                where,
            )
        ]
    return []


def _below_tight_bp(bp: BloodPressure) -> bool:
    return bp.systolic < TIGHT_BP.systolic and bp.diastolic < TIGHT_BP.diastolic


def _diabetes_bp_target(bp: BloodPressure | None) -> list[Decision]:
    if bp is None or _below_tight_bp(bp):
        return []
    # DM guideline 2022: BP < 130/80 for people with diabetes.
    return [
        _s(
            "dm.bp-target",
            "糖尿病患者血压目标<130/80",
            "BP target < 130/80 with diabetes",
            f"血压 {bp}：糖尿病患者血压控制目标为<130/80 mmHg。",
            f"BP {bp}: the target with diabetes is < 130/80 mmHg.",
            cite.DM_GUIDELINE,
        )
    ]


def hypertension_suggestions(patient: Patient, visit: FollowUpVisit) -> list[Decision]:
    if visit.bp is None:
        return []
    age = patient.age_on(visit.date)
    out: list[Decision] = []
    if not bp_meets_target(visit.bp, age):
        out += _adherence(visit, cite.HTN_FIRST_UNCONTROLLED)
        # NBPHS-2017 HTN 4(2): raise the dose, switch, or add a different class.
        out.append(
            _s(
                "htn.intensify",
                "强化降压治疗",
                "Intensify antihypertensive treatment",
                f"血压 {visit.bp} 未达标：必要时增加现用药物剂量、更换或增加不同类的降压药物。",
                f"BP {visit.bp} above target: raise the current dose, switch, or add a drug"
                " of a different class as needed.",
                cite.HTN_FIRST_UNCONTROLLED,
            )
        )
        # HTN guideline 2020: not at target -> follow up every 2-4 weeks.
        out.append(
            _s(
                "htn.recheck-interval",
                "2–4周复查",
                "Recheck in 2-4 weeks",
                "血压未达标者每2–4周随访一次。",
                "Not at target: follow up every 2-4 weeks.",
                cite.HTN_GUIDELINE,
            )
        )
    elif not _below_tight_bp(visit.bp):
        if Disease.DIABETES_T2 in patient.conditions:
            out += _diabetes_bp_target(visit.bp)
        elif age < 65:
            # HTN guideline 2020: < 140/90, and < 130/80 if tolerated.
            out.append(
                _s(
                    "htn.tighter-target",
                    "可耐受者降至<130/80",
                    "Aim for < 130/80 if tolerated",
                    f"血压 {visit.bp} 已达<140/90；能耐受者可进一步降至<130/80 mmHg。",
                    f"BP {visit.bp} is < 140/90; if tolerated, aim for < 130/80 mmHg.",
                    cite.HTN_GUIDELINE,
                )
            )
    return out


def diabetes_suggestions(patient: Patient, visit: FollowUpVisit) -> list[Decision]:
    out: list[Decision] = []
    fpg, a1c = visit.fasting_glucose, visit.hba1c
    high_fpg = fpg is not None and fpg >= FPG_TARGET
    high_a1c = a1c is not None and a1c >= HBA1C_TARGET
    if high_fpg or high_a1c:
        out += _adherence(visit, cite.DM_CLASSIFICATION)
        # NBPHS-2017 DM 4: glucose ≥ 7.0 -> adjust treatment.
        what_zh = "、".join(
            x for x, on in ((f"空腹血糖 {fpg}", high_fpg), (f"HbA1c {a1c}%", high_a1c)) if on
        )
        what_en = ", ".join(
            x for x, on in ((f"fasting glucose {fpg}", high_fpg), (f"HbA1c {a1c}%", high_a1c)) if on
        )
        out.append(
            _s(
                "dm.intensify",
                "调整降糖治疗",
                "Adjust glucose-lowering treatment",
                f"{what_zh} 未达标：必要时增加现有药物剂量、更换或增加不同类的降糖药物。",
                f"{what_en} above target: raise the dose, switch, or add a drug of another"
                " class as needed.",
                cite.DM_CLASSIFICATION,
            )
        )
    if high_a1c:
        # DM guideline 2022: HbA1c < 7.0 %.
        out.append(
            _s(
                "dm.hba1c-target",
                "HbA1c目标<7.0%",
                "HbA1c target < 7.0%",
                f"HbA1c {a1c}%，高于<7.0%的控制目标。",
                f"HbA1c {a1c}% is above the < 7.0% target.",
                cite.DM_GUIDELINE,
            )
        )
    if fpg is not None and fpg < FPG_LOWER:
        # DM guideline 2022: fasting target 4.4-7.0; lower values suggest hypoglycaemia risk.
        out.append(
            _s(
                "dm.low-glucose",
                "警惕低血糖",
                "Watch for hypoglycaemia",
                f"空腹血糖 {fpg} mmol/L 低于4.4–7.0的目标范围：评估低血糖风险，避免过度治疗。",
                f"Fasting glucose {fpg} mmol/L is below the 4.4-7.0 target range: assess"
                " hypoglycaemia risk and avoid overtreatment.",
                cite.DM_GUIDELINE,
            )
        )
    ldl_target = LDL_TARGET_ASCVD if patient.ascvd else LDL_TARGET
    if visit.ldl_c is not None and visit.ldl_c >= ldl_target:
        # DM guideline 2022: LDL-C < 2.6 mmol/L, < 1.8 with ASCVD.
        out.append(
            _s(
                "dm.ldl-target",
                f"LDL-C目标<{ldl_target}",
                f"LDL-C target < {ldl_target}",
                f"LDL-C {visit.ldl_c} mmol/L，目标<{ldl_target} mmol/L。",
                f"LDL-C {visit.ldl_c} mmol/L, target < {ldl_target} mmol/L.",
                cite.DM_GUIDELINE,
            )
        )
    if visit.bmi is not None and visit.bmi >= BMI_TARGET:
        # DM guideline 2022: BMI < 24 kg/m².
        out.append(
            _s(
                "dm.bmi-target",
                "体重管理",
                "Weight management",
                f"BMI {visit.bmi} kg/m²，目标<24。",
                f"BMI {visit.bmi} kg/m², target < 24.",
                cite.DM_GUIDELINE,
            )
        )
    return out


def treatment_suggestions(patient: Patient, visit: FollowUpVisit) -> list[Decision]:
    """Suggestions for the visit's disease, from NBPHS-2017 and the guidelines."""
    if visit.disease is Disease.HYPERTENSION:
        return hypertension_suggestions(patient, visit)
    # At a diabetes follow-up the BP is measured too; its diabetes target applies.
    return diabetes_suggestions(patient, visit) + _diabetes_bp_target(visit.bp)
