"""Classification of a follow-up, referral and the next visit (NBPHS-2017 HTN 4, DM 4).

Decisions where the standard is silent (documented in ``docs`` via the module and tested):

* "Two consecutive uncontrolled visits" counts *measured* follow-ups of the same disease
  in date order. A scheduled visit that did not happen, or a contact where nothing was
  measured, is no data point: it neither counts nor breaks the run. So uncontrolled ->
  missed 2-week recheck -> uncontrolled three months later is two consecutive, because
  treatment failed at the primary level either way. ``CountyPolicy.consecutive_max_gap_days``
  lets a county cap the gap (the national default has no cap).
* The run restarts after any referral: the visit after a referral is the first under the
  specialist's plan, and counting it as the third uncontrolled visit would refer the
  patient back before the new treatment has had two weeks to work.
* The form takes one class. Precedence is 并发症 > 不良反应 > 控制不满意 > 控制满意; the
  control status is kept separately, so an adverse reaction with high BP still counts as
  uncontrolled for the consecutive rule and for the control-rate indicator.
* A visit with nothing measured and no reaction or complication is not classified; the
  next visit is set within 2 weeks so that the measurement is obtained.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date

from kangqiao.chronic.rules import citations as cite
from kangqiao.chronic.rules.citations import Citation, Decision
from kangqiao.chronic.rules.diabetes import dm_urgent_findings, glucose_control
from kangqiao.chronic.rules.hypertension import bp_control, htn_urgent_findings
from kangqiao.chronic.rules.model import (
    ControlStatus,
    CountyPolicy,
    Disease,
    FollowUpVisit,
    Patient,
    VisitClass,
    add_days,
    add_months,
)

_NAME = {Disease.HYPERTENSION: ("血压", "BP"), Disease.DIABETES_T2: ("血糖", "glucose")}


@dataclass(frozen=True, slots=True)
class VisitAssessment:
    """Everything the protocol says about one follow-up visit."""

    visit: FollowUpVisit
    control: ControlStatus
    control_decision: Decision
    classification: VisitClass | None
    classification_decision: Decision
    uncontrolled_run: int  # consecutive measured uncontrolled visits, this one included
    urgent: tuple[Decision, ...]
    referral: Decision | None
    next_visit: Decision  # due_date is the next follow-up date
    education: Decision

    @property
    def due_date(self) -> date:
        assert self.next_visit.due_date is not None
        return self.next_visit.due_date

    @property
    def decisions(self) -> tuple[Decision, ...]:
        extra = (self.referral,) if self.referral else ()
        return (
            self.control_decision,
            self.classification_decision,
            *self.urgent,
            *extra,
            self.next_visit,
            self.education,
        )


@dataclass(frozen=True, slots=True)
class _Run:
    length: int = 0
    last_measured: date | None = None


def _citations(disease: Disease) -> tuple[Citation, Citation, Citation, Citation]:
    """(controlled, first uncontrolled, refer, urgent) clauses of the disease."""
    if disease is Disease.HYPERTENSION:
        return cite.HTN_CONTROLLED, cite.HTN_FIRST_UNCONTROLLED, cite.HTN_REFER, cite.HTN_URGENT
    dm = cite.DM_CLASSIFICATION
    return dm, dm, dm, cite.DM_URGENT


def _classify(visit: FollowUpVisit, control: ControlStatus) -> VisitClass | None:
    # Precedence is Kangqiao's: the most serious finding names the visit.
    if visit.new_or_worse_complication:
        return VisitClass.COMPLICATION
    if visit.adverse_reaction or visit.adverse_reaction_uncontrolled:
        return VisitClass.ADVERSE_REACTION
    if control is ControlStatus.UNCONTROLLED:
        return VisitClass.UNCONTROLLED
    if control is ControlStatus.CONTROLLED:
        return VisitClass.CONTROLLED
    return None


def _classification_decision(visit: FollowUpVisit, cls: VisitClass | None, run: int) -> Decision:
    ok, first, refer, _ = _citations(visit.disease)
    what_zh, what_en = _NAME[visit.disease]
    d = visit.disease.value
    if cls is None:
        return Decision(
            f"{d}.visit.unclassified",
            "无法分类",
            "Not classified",
            f"本次未测量{what_zh}，且无不良反应或并发症，无法分类。",
            f"No {what_en} was measured and there is no reaction or complication.",
            first,
            severity="warning",
        )
    code = f"{d}.visit.{cls.name.lower().replace('_', '-')}"
    if cls is VisitClass.CONTROLLED:
        # NBPHS-2017 HTN 4(1) / DM 4: controlled, no reaction, no new complication.
        return Decision(
            code,
            cls.zh,
            cls.en,
            f"{what_zh}达标，无药物不良反应，无新发并发症或原有并发症加重。",
            f"{what_en} at target, no adverse reaction, no new or worse complication.",
            ok,
        )
    if cls is VisitClass.COMPLICATION:
        # NBPHS-2017 HTN 4(3) / DM 4: new or worse complication -> refer.
        return Decision(
            code,
            cls.zh,
            cls.en,
            "出现新的并发症或原有并发症加重，建议转诊。",
            "New or worsening complication: refer.",
            refer,
            severity="critical",
        )
    if cls is VisitClass.ADVERSE_REACTION:
        if visit.adverse_reaction_uncontrolled:
            # NBPHS-2017 HTN 4(3) / DM 4: a reaction that cannot be controlled -> refer.
            return Decision(
                code,
                cls.zh,
                cls.en,
                "药物不良反应难以控制，建议转诊。",
                "Adverse drug reaction that cannot be controlled: refer.",
                refer,
                severity="critical",
            )
        # NBPHS-2017 HTN 4(2) / DM 4: adverse reaction -> adjust, follow up in 2 weeks.
        return Decision(
            code,
            cls.zh,
            cls.en,
            "出现药物不良反应：调整用药（更换药物），2周内随访。",
            "Adverse drug reaction: adjust (switch) medication, follow up within 2 weeks.",
            first,
            severity="warning",
        )
    if run >= 2:
        # NBPHS-2017 HTN 4(3) / DM 4: two consecutive uncontrolled visits -> refer.
        return Decision(
            code,
            cls.zh,
            cls.en,
            f"连续两次随访{what_zh}控制不满意，建议转诊到上级医院。",
            f"{what_en.capitalize()} not controlled at two consecutive visits: refer.",
            refer,
            severity="critical",
        )
    # NBPHS-2017 HTN 4(2) / DM 4: first uncontrolled -> adjust, follow up in 2 weeks.
    return Decision(
        code,
        cls.zh,
        cls.en,
        f"首次{what_zh}控制不满意：结合服药依从性，必要时增加剂量、更换或加用不同类药物，2周内随访。",
        f"First {what_en} not controlled: considering adherence, raise the dose, switch or add"
        " a drug of another class if needed; follow up within 2 weeks.",
        first,
        severity="warning",
    )


def _referral(
    visit: FollowUpVisit, urgent: list[Decision], run: int, policy: CountyPolicy
) -> Decision | None:
    _, _, refer, urgent_clause = _citations(visit.disease)
    due = add_days(visit.date, policy.short_interval_days)
    d = visit.disease.value
    if urgent:
        # NBPHS-2017 HTN 3(1) / DM 3: treat, refer urgently, follow up within 2 weeks.
        return Decision(
            f"{d}.referral.urgent",
            "紧急转诊",
            "Urgent referral",
            "；".join(u.reason_zh for u in urgent) + "。处理后紧急转诊，2周内主动随访转诊情况。",
            "; ".join(u.reason_en for u in urgent)
            + ". Treat, refer urgently, follow up the referral within 2 weeks.",
            urgent_clause,
            due,
            "critical",
        )
    why: list[tuple[str, str]] = []
    if run >= 2:
        why.append(("连续两次控制不满意", "not controlled at two consecutive visits"))
    if visit.adverse_reaction_uncontrolled:
        why.append(("药物不良反应难以控制", "adverse reaction that cannot be controlled"))
    if visit.new_or_worse_complication:
        why.append(("新发或加重的并发症", "new or worsening complication"))
    if not why:
        return None
    # NBPHS-2017 HTN 4(3) / DM 4: refer, follow up the referral within 2 weeks.
    return Decision(
        f"{d}.referral.routine",
        "建议转诊",
        "Refer to a higher-level hospital",
        "、".join(z for z, _ in why) + "：建议转诊到上级医院，2周内主动随访转诊情况。",
        ", ".join(e for _, e in why).capitalize()
        + ": refer to a higher-level hospital, follow up the referral within 2 weeks.",
        refer,
        due,
        "warning",
    )


def _next_visit(
    visit: FollowUpVisit, cls: VisitClass | None, referral: Decision | None, policy: CountyPolicy
) -> Decision:
    ok, first, _, _ = _citations(visit.disease)
    d = visit.disease.value
    soon = add_days(visit.date, policy.short_interval_days)
    if referral is not None:
        return Decision(
            f"{d}.next.referral-follow-up",
            "转诊后随访",
            "Referral follow-up",
            "2周内主动随访转诊情况。",
            "Follow up the referral within 2 weeks.",
            referral.citation,
            soon,
        )
    if cls is VisitClass.CONTROLLED:
        # NBPHS-2017 HTN 3 / 4(1): at least 4 face-to-face follow-ups a year.
        months = policy.routine_interval_months
        return Decision(
            f"{d}.next.routine",
            "常规随访",
            "Routine follow-up",
            f"控制满意，{months}个月后常规随访（每年至少4次面对面随访）。",
            f"Controlled: routine follow-up in {months} months (at least 4 a year).",
            ok,
            add_months(visit.date, months),
        )
    if cls is None:
        return Decision(
            f"{d}.next.measure",
            "尽快复测",
            "Measure again soon",
            "本次未测量，2周内随访并测量。",
            "Nothing measured: follow up and measure within 2 weeks.",
            cite.KANGQIAO_DECISION,
            soon,
            "warning",
        )
    # NBPHS-2017 HTN 4(2) / DM 4: first uncontrolled or adverse reaction -> 2 weeks.
    return Decision(
        f"{d}.next.two-weeks",
        "2周内随访",
        "Follow up within 2 weeks",
        "控制不满意或出现不良反应，调整治疗后2周内随访。",
        "Not controlled or adverse reaction: follow up within 2 weeks of the adjustment.",
        first,
        soon,
        "warning",
    )


def _education(disease: Disease) -> Decision:
    # NBPHS-2017 HTN 4(4) / DM 4: health education at every visit, lifestyle goals reviewed.
    return Decision(
        f"{disease.value}.education",
        "健康教育",
        "Health education",
        "针对性健康教育，与患者共同制定生活方式改善目标，下次随访时评估进展。",
        "Targeted health education; agree lifestyle goals and review them at the next visit.",
        cite.HTN_EDUCATION if disease is Disease.HYPERTENSION else cite.DM_CLASSIFICATION,
    )


def _step(
    patient: Patient, visit: FollowUpVisit, before: _Run, policy: CountyPolicy
) -> tuple[VisitAssessment, _Run]:
    if visit.disease is Disease.HYPERTENSION:
        control, control_decision = bp_control(patient, visit)
        urgent = htn_urgent_findings(visit)
    else:
        control, control_decision = glucose_control(visit)
        urgent = dm_urgent_findings(visit)
    if control is ControlStatus.UNKNOWN:
        run = before  # nothing measured: neither counts nor breaks the run
    elif control is ControlStatus.CONTROLLED:
        run = _Run(0, visit.date)
    else:
        gap = policy.consecutive_max_gap_days
        too_far = (
            gap is not None
            and before.last_measured is not None
            and (visit.date - before.last_measured).days > gap
        )
        run = _Run(1 if too_far else before.length + 1, visit.date)
    cls = _classify(visit, control)
    referral = _referral(visit, urgent, run.length, policy)
    assessment = VisitAssessment(
        visit=visit,
        control=control,
        control_decision=control_decision,
        classification=cls,
        classification_decision=_classification_decision(visit, cls, run.length),
        uncontrolled_run=run.length,
        urgent=tuple(urgent),
        referral=referral,
        next_visit=_next_visit(visit, cls, referral, policy),
        education=_education(visit.disease),
    )
    if referral is not None:
        run = replace(run, length=0)  # a referral starts a new run (module docstring)
    return assessment, run


def assess_history(
    patient: Patient, visits: Iterable[FollowUpVisit], policy: CountyPolicy | None = None
) -> list[VisitAssessment]:
    """Assess every visit in date order; each disease keeps its own run of uncontrolled
    visits, so a patient with both diseases is followed on two protocols."""
    policy = policy or CountyPolicy()
    runs: dict[Disease, _Run] = {}
    out: list[VisitAssessment] = []
    for visit in sorted(visits, key=lambda v: v.date):
        assessment, runs[visit.disease] = _step(
            patient, visit, runs.get(visit.disease, _Run()), policy
        )
        out.append(assessment)
    return out


def assess_visit(
    patient: Patient,
    visit: FollowUpVisit,
    previous: Sequence[FollowUpVisit] = (),
    policy: CountyPolicy | None = None,
) -> VisitAssessment:
    """Assess one visit given the earlier visits of the patient (any order, any disease)."""
    earlier = [v for v in previous if v.disease is visit.disease and v.date <= visit.date]
    history = assess_history(patient, [*earlier, visit], policy)
    return next(a for a in reversed(history) if a.visit is visit)
