"""CDS Hooks cards from a patient's chronic record: the NBPHS-2017 protocol and the
primary-care guidelines, each card naming its clause (``source``) and why it fired (``detail``).

Pure: a ``ChronicRecord`` and a date in, card dicts out (Chinese, or English on request).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from kangqiao.chronic.records import HBA1C, ChronicRecord
from kangqiao.chronic.rules import (
    Citation,
    Decision,
    Disease,
    FollowUpVisit,
    Implausible,
    add_months,
    annual_check_due,
    protocol_state,
    treatment_suggestions,
)
from kangqiao.chronic.rules import citations as cite

Card = dict[str, Any]
SOURCE_URL = "/chronic/citations"  # served by kangqiao.chronic.api: every clause, by anchor
NAME = {Disease.HYPERTENSION: ("高血压", "Hypertension"),
        Disease.DIABETES_T2: ("2型糖尿病", "Type 2 diabetes")}
HBA1C_MONTHS = 3  # see _hba1c: the rules module has no HbA1c interval


def anchor(citation: Citation) -> str:
    return f"{citation.source} {citation.clause}".strip().replace(" ", "-").replace("/", "-")


def _card(summary: str, detail: str, indicator: str, citation: Citation, base: str) -> Card:
    return {
        "uuid": str(uuid.uuid4()),
        "summary": summary[:140],  # CDS Hooks 2.0: summary < 140 characters
        "detail": detail,
        "indicator": indicator,
        "source": {"label": citation.label, "url": f"{base}{SOURCE_URL}#{anchor(citation)}"},
    }


def _why(decision: Decision, en: bool) -> str:
    reason = decision.reason_en if en else decision.reason_zh
    by = f" (by {decision.due_date})" if en else f"（{decision.due_date}前）"
    return reason + (by if decision.due_date else "")


def decision_card(decision: Decision, en: bool, base: str, prefix: str = "") -> Card:
    label = decision.label_en if en else decision.label_zh
    return _card(f"{prefix}{label}", _why(decision, en), decision.severity, decision.citation,
                 base)


def disease_cards(record: ChronicRecord, disease: Disease, today: date, en: bool, base: str
                  ) -> list[Card]:
    """Control vs the right target, classification, next step and by when, urgent
    criteria, overdue tests and treatment suggestions for one disease."""
    zh_name, en_name = NAME[disease]
    prefix = f"{en_name}: " if en else f"{zh_name}："
    episode = record.episodes.get(disease)
    if episode is None:
        where = cite.HTN_SCREENING if disease is Disease.HYPERTENSION else cite.DM_WHO
        return [_card(
            prefix + ("diagnosed, not enrolled in management" if en else "已确诊，未纳入管理"),
            "An active diagnosis with no management episode: enrol and start follow-up."
            if en else "有确诊记录但未建立管理档案：纳入患者健康管理并开始随访。",
            "warning", where, base)]
    state = protocol_state(record.patient, record.visits, disease, today, episode[1])
    cards: list[Card] = []
    last = state.last
    if last is not None and last.visit.implausible:
        cards.append(_implausible(last.visit, en, base, prefix))
    if last is not None:
        control = last.control_decision
        cls = last.classification_decision
        summary = f"{control.label_en if en else control.label_zh} · " \
                  f"{cls.label_en if en else cls.label_zh}"
        detail = f"{_why(control, en)}\n\n{_why(cls, en)}"
        worst = "critical" if "critical" in (control.severity, cls.severity) else (
            "warning" if "warning" in (control.severity, cls.severity) else "info")
        cards.append(_card(prefix + summary, detail, worst, cls.citation, base))
        cards += [decision_card(u, en, base, prefix) for u in last.urgent]
        if last.referral is not None:
            cards.append(decision_card(last.referral, en, base, prefix))
    nxt = state.decision
    if state.overdue:
        summary = (f"follow-up overdue by {state.overdue_days} days" if en
                   else f"随访已逾期{state.overdue_days}天")
        cards.append(_card(prefix + summary, _why(nxt, en), "warning", nxt.citation, base))
    else:
        cards.append(decision_card(nxt, en, base, prefix + ("next: " if en else "下次随访：")))
    last_check = record.annual_checks[-1] if record.annual_checks else None
    check = annual_check_due(last_check, today, disease)
    if check.code.endswith(".due"):
        cards.append(decision_card(check, en, base, prefix))
    if disease is Disease.DIABETES_T2:
        cards += _hba1c(record, today, en, base, prefix)
    if last is not None:
        cards += [decision_card(s, en, base, prefix) for s in
                  treatment_suggestions(record.patient, last.visit)]
    return cards


def _implausible(visit: FollowUpVisit, en: bool, base: str, prefix: str) -> Card:
    """The last visit recorded values no one can have (a digit too many, a unit mixed up):
    the rules set them aside, so the classification did not use them; say so."""
    def span(i: Implausible) -> str:
        low, high = (f"{x:g}" if x is not None else "" for x in (i.low, i.high))
        if not (low or high):
            return ""
        shown = f"{low}-{high}" if low and high else (f"<= {high}" if high else f">= {low}")
        return f" (plausible: {shown})" if en else f"（合理范围 {shown}）"
    items = [f"{i.name_en if en else i.name_zh} {i.value} {i.unit}{span(i)}"
             for i in visit.implausible]
    summary = (f"implausible value on {visit.date}: check it" if en
               else f"{visit.date}随访数值可疑，请核实")
    detail = ("; ".join(items) + ". Not used to classify the visit: correct the record."
              if en else "；".join(items) + "。未用于本次随访分类，请核实并更正记录。")
    return _card(prefix + summary, detail, "warning", cite.HEARTS_PLAUSIBILITY, base)


def _hba1c(record: ChronicRecord, today: date, en: bool, base: str, prefix: str) -> list[Card]:
    """HbA1c older than 3 months. The rules module implements no HbA1c interval (the
    reference gives only the < 7.0 % target), so the card says what is missing, marks its
    source as the guideline without a clause, and is informational only."""
    lab = record.last_lab(HBA1C)
    if lab is not None and lab.on > add_months(today, -HBA1C_MONTHS):
        return []
    seen = (f"last on {lab.on}: {lab.value}%" if en else f"最近一次{lab.on}：{lab.value}%") \
        if lab else ("none on record" if en else "无记录")
    summary = "no HbA1c in the last 3 months" if en else "近3个月无糖化血红蛋白结果"
    detail = (f"HbA1c {seen}. The guideline target is HbA1c < 7.0%; Kangqiao's rules set no "
              "testing interval, so this is a reminder of missing data, not a clause."
              if en else f"HbA1c {seen}。指南控制目标<7.0%；规则库未规定检测间隔，此处仅提示"
              "缺少近期结果。")
    return [_card(prefix + summary, detail, "info", cite.DM_GUIDELINE, base)]


def patient_cards(record: ChronicRecord, today: date, en: bool, base: str,
                  only: set[Disease] | None = None) -> list[Card]:
    diseases = (set(record.episodes) | set(record.conditions)) & (only or set(Disease))
    cards: list[Card] = []
    for disease in sorted(diseases):
        cards += disease_cards(record, disease, today, en, base)
    return cards
