"""Form answers -> the rules' ``FollowUpVisit``, so the form and the rules agree on meaning."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from kangqiao.chronic.forms.observations import answers_from_response
from kangqiao.chronic.rules.model import (
    Adherence,
    BloodPressure,
    Disease,
    FollowUpVisit,
    Symptom,
    VisitMode,
)


def _code(value: Any) -> str | None:
    if isinstance(value, Mapping):
        code = value.get("code")
        return str(code) if code is not None else None
    return None if value in (None, "") else str(value)


def _codes(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [c for c in map(_code, values) if c is not None]


def _number(answers: Mapping[str, Any], key: str) -> float | None:
    value = answers.get(key)
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}: expected a number, got {value!r}")
    return float(value)


def _day(value: Any) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError(f"visit-date: not a date: {value!r}") from None


def visit_from_answers(answers: Mapping[str, Any], disease: Disease | str) -> FollowUpVisit:
    """Read a completed follow-up form (linkId -> value, or a QuestionnaireResponse).
    Raises ``ValueError`` with the offending linkId when an answer cannot be read."""
    if answers.get("resourceType") == "QuestionnaireResponse":
        answers = answers_from_response(answers)
    if "visit-date" not in answers:
        raise ValueError("visit-date: required")
    sbp, dbp = _number(answers, "bp-systolic"), _number(answers, "bp-diastolic")
    hr, adherence = _number(answers, "heart-rate"), _code(answers.get("medication-adherence"))
    try:
        symptoms = frozenset(Symptom(c) for c in _codes(answers.get("urgent-symptoms")))
        mode = VisitMode(_code(answers.get("visit-mode")) or VisitMode.CLINIC.value)
        adherence_value = Adherence(adherence) if adherence else None
    except ValueError as exc:
        raise ValueError(f"unknown answer code: {exc}") from None
    return FollowUpVisit(
        date=_day(answers["visit-date"]),
        disease=Disease(disease),
        mode=mode,
        bp=BloodPressure(round(sbp), round(dbp)) if sbp is not None and dbp is not None else None,
        fasting_glucose=_number(answers, "fasting-glucose"),
        hba1c=_number(answers, "hba1c"),
        heart_rate=round(hr) if hr is not None else None,
        temperature=_number(answers, "temperature"),
        symptoms=symptoms,
        adherence=adherence_value,
        adverse_reaction=_code(answers.get("adverse-reaction")) == "2",  # 1 无 / 2 有
        adverse_reaction_uncontrolled=answers.get("adverse-reaction-uncontrolled") is True,
        new_or_worse_complication=answers.get("new-or-worse-complication") is True,
        pregnant_or_breastfeeding=answers.get("pregnant-or-breastfeeding") is True,
        other_unmanageable=answers.get("other-unmanageable") is True,
        bmi=_number(answers, "bmi"),
    )
