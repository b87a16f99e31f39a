"""The national follow-up form on the workbench: the Questionnaire's items as form fields
(labels in the page's language, units beside inputs), and the posted form read back into
answers with plausibility checks. Nothing here touches the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from starlette.datastructures import FormData

from kangqiao.chronic.forms import questionnaire
from kangqiao.chronic.forms.items import MAX_VALUE, MIN_VALUE, QUESTIONNAIRE_UNIT
from kangqiao.chronic.rules import Disease

Json = dict[str, Any]
# Filled in by the rules when left blank (classification, next date) or by the signed-in user.
COMPUTED = {"classification", "next-visit-date", "doctor"}
# Plausible ranges that catch typing errors (HEARTS: SBP 60-260; DBP from 40, the store's own
# lower bound). Units are those shown on the form.
RANGES: dict[str, tuple[float, float]] = {
    "bp-systolic": (60, 260), "bp-diastolic": (40, 200), "heart-rate": (30, 220),
    "weight": (20, 250), "weight-target": (20, 250), "height": (100, 230),
    "bmi": (10, 60), "bmi-target": (10, 60), "temperature": (34, 43),
    "fasting-glucose": (1.0, 35.0), "hba1c": (3.0, 20.0),
    "smoking": (0, 100), "smoking-target": (0, 100), "drinking": (0, 40),
    "drinking-target": (0, 40), "exercise-times": (0, 21), "exercise-times-target": (0, 21),
    "exercise-minutes": (0, 600), "exercise-minutes-target": (0, 600),
    "staple-food": (0, 2000), "staple-food-target": (0, 2000),
    "medication-times-per-day": (1, 6), "medication-dose": (0, 5000),
}
MG_DL_PER_MMOL_L = 18.0  # glucose: 1 mmol/L = 18.0 mg/dL (molar mass 180.16 g/mol)
GLUCOSE_UNIT = "fasting-glucose-unit"


@dataclass
class Field:
    link: str
    label: str
    kind: str  # group, date, choice, boolean, integer, decimal, string, text
    options: list[tuple[str, str]] = field(default_factory=list)
    repeats: bool = False
    required: bool = False
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    children: list[Field] = field(default_factory=list)


def _english(element: Json | None) -> str | None:
    for ext in (element or {}).get("extension", []):
        parts = {e["url"]: e for e in ext.get("extension", [])}
        if parts.get("lang", {}).get("valueCode") == "en":
            return str(parts["content"]["valueString"])
    return None


def _label(item: Json, key: str, en: bool) -> str:
    return (_english(item.get(f"_{key}")) if en else None) or str(item.get(key, ""))


def _field(item: Json, en: bool) -> Field:
    out = Field(item["linkId"], _label(item, "text", en), item["type"],
                repeats=bool(item.get("repeats")), required=bool(item.get("required")))
    for ext in item.get("extension", []):
        if ext["url"] == QUESTIONNAIRE_UNIT:
            out.unit = str(ext["valueCoding"].get("display", ""))
    low, high = RANGES.get(out.link, (None, None))
    out.minimum, out.maximum = low, high
    for ext in item.get("extension", []):  # the form's own bounds win when narrower
        if ext["url"] == MIN_VALUE and (low is None or ext["valueInteger"] > low):
            out.minimum = ext["valueInteger"]
        if ext["url"] == MAX_VALUE and (high is None or ext["valueInteger"] < high):
            out.maximum = ext["valueInteger"]
    out.options = [(o["valueCoding"]["code"], _label(o["valueCoding"], "display", en))
                   for o in item.get("answerOption", [])]
    out.children = [_field(c, en) for c in item.get("item", []) if c["linkId"] not in COMPUTED]
    return out


def form_fields(disease: Disease, en: bool) -> tuple[str, list[Field]]:
    """The form's title and its fields (computed ones left out)."""
    form = questionnaire(disease)
    title = _label(form, "title", en)
    return title, [_field(i, en) for i in form["item"] if i["linkId"] not in COMPUTED]


def defaults(today: date) -> dict[str, Any]:
    """Sensible defaults: today, in the clinic, no symptoms, regular medication, no
    adverse reaction."""
    return {"visit-date": today.isoformat(), "visit-mode": "1", "symptoms": ["1"],
            "medication-adherence": "1", "adverse-reaction": "1", GLUCOSE_UNIT: "mmol/L"}


def _leaves(fields: list[Field]) -> list[Field]:
    out: list[Field] = []
    for f in fields:
        out += _leaves(f.children) if f.kind == "group" else [f]
    return out


def read_form(form: FormData, fields: list[Field], today: date, en: bool
              ) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(answers for ``record_follow_up``, the raw values to show again, errors by linkId)."""
    answers: dict[str, Any] = {}
    raw: dict[str, Any] = {GLUCOSE_UNIT: str(form.get(GLUCOSE_UNIT) or "mmol/L")}
    errors: dict[str, str] = {}
    for f in _leaves(fields):
        if f.kind == "choice" and f.repeats:
            chosen = [str(v) for v in form.getlist(f.link)]
            raw[f.link] = chosen
            valid = {code for code, _ in f.options}
            if any(c not in valid for c in chosen):
                errors[f.link] = "未知选项" if not en else "unknown option"
            elif chosen:
                answers[f.link] = chosen
            continue
        value = str(form.get(f.link) or "").strip()
        raw[f.link] = value
        if f.kind == "boolean":
            if value:
                answers[f.link] = True
            continue
        if not value:
            if f.required:
                errors[f.link] = "必填" if not en else "required"
            continue
        if f.kind in ("integer", "decimal"):
            problem = _number(f, value, raw[GLUCOSE_UNIT], answers, en)
            if problem:
                errors[f.link] = problem
        elif f.kind == "date":
            try:
                day = date.fromisoformat(value)
            except ValueError:
                errors[f.link] = "日期格式应为 YYYY-MM-DD" if not en else "date as YYYY-MM-DD"
                continue
            if f.link == "visit-date" and day > today:
                errors[f.link] = "随访日期不能晚于今天" if not en else "cannot be in the future"
            answers[f.link] = day.isoformat()
        elif f.kind == "choice":
            if value not in {code for code, _ in f.options}:
                errors[f.link] = "未知选项" if not en else "unknown option"
            answers[f.link] = value
        else:
            answers[f.link] = value[:500]
    _cross_checks(answers, errors, en)
    return answers, raw, errors


def _number(f: Field, value: str, glucose_unit: str, answers: dict[str, Any], en: bool
            ) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return "请输入数字" if not en else "enter a number"
    if f.link == "fasting-glucose" and glucose_unit == "mg/dL":
        number = round(number / MG_DL_PER_MMOL_L, 1)
    if f.kind == "integer" and number != int(number):
        return "请输入整数" if not en else "enter a whole number"
    if (f.minimum is not None and number < f.minimum) or (
            f.maximum is not None and number > f.maximum):
        return (f"数值不合理（{f.minimum:g}–{f.maximum:g} {f.unit}）" if not en else
                f"implausible value ({f.minimum:g}–{f.maximum:g} {f.unit})")
    answers[f.link] = int(number) if f.kind == "integer" else number
    return None


def _cross_checks(answers: dict[str, Any], errors: dict[str, str], en: bool) -> None:
    sbp, dbp = answers.get("bp-systolic"), answers.get("bp-diastolic")
    if (sbp is None) != (dbp is None) and not {"bp-systolic", "bp-diastolic"} & set(errors):
        missing = "bp-diastolic" if dbp is None else "bp-systolic"
        errors[missing] = "血压需同时填写收缩压和舒张压" if not en else "enter both SBP and DBP"
    elif sbp is not None and dbp is not None and sbp <= dbp:
        errors["bp-systolic"] = "收缩压应高于舒张压" if not en else "SBP must exceed DBP"
