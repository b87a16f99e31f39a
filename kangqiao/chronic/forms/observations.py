"""Form answers written as coded Observations (LOINC codes, UCUM units).

Fasting glucose is recorded in mmol/L, so it is coded 14771-0 (Fasting glucose
[Moles/volume]); 1558-6 is the mass-concentration (mg/dL) code and would misstate the
unit. The synthetic county and the search index use the same code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from kangqiao.chronic.forms.items import LOINC, UCUM, Json, Measure

OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional", "血压")

# HEARTS DHIS2 data-entry plausibility: SBP 60-260, DBP 40-260 mmHg (see the reference).
SYSTOLIC = Measure(
    "bp-systolic",
    "8480-6",
    "Systolic blood pressure",
    "收缩压",
    "mm[Hg]",
    "mmHg",
    minimum=60,
    maximum=260,
)
DIASTOLIC = Measure(
    "bp-diastolic",
    "8462-4",
    "Diastolic blood pressure",
    "舒张压",
    "mm[Hg]",
    "mmHg",
    minimum=40,
    maximum=260,
)
HEART_RATE = Measure("heart-rate", "8867-4", "Heart rate", "心率", "/min", "次/分")
WEIGHT = Measure("weight", "29463-7", "Body weight", "体重", "kg", "kg")
HEIGHT = Measure("height", "8302-2", "Body height", "身高", "cm", "cm")
BMI = Measure("bmi", "39156-5", "Body mass index (BMI) [Ratio]", "体质指数", "kg/m2", "kg/m²")
TEMPERATURE = Measure("temperature", "8310-5", "Body temperature", "体温", "Cel", "℃")
FASTING_GLUCOSE = Measure(
    "fasting-glucose",
    "14771-0",
    "Fasting glucose [Moles/volume] in Serum or Plasma",
    "空腹血糖",
    "mmol/L",
    "mmol/L",
    category="laboratory",
)
HBA1C = Measure(
    "hba1c",
    "4548-4",
    "Hemoglobin A1c/Hemoglobin.total in Blood",
    "糖化血红蛋白",
    "%",
    "%",
    category="laboratory",
)

# linkId -> Observation; the two BP items go into one 85354-9 panel.
MEASURES: dict[str, Measure] = {
    m.link_id: m
    for m in (
        SYSTOLIC,
        DIASTOLIC,
        HEART_RATE,
        WEIGHT,
        HEIGHT,
        BMI,
        TEMPERATURE,
        FASTING_GLUCOSE,
        HBA1C,
    )
}
HBA1C_DATE = "hba1c-date"  # HbA1c is often measured on another day than the visit


def answers_from_response(response: Mapping[str, Any]) -> dict[str, Any]:
    """linkId -> answer value of a QuestionnaireResponse: a list when the item has several
    answers (repeating choices), else the single value; codings stay dicts."""
    out: dict[str, Any] = {}

    def value_of(answer: Mapping[str, Any]) -> Any:
        key = next((k for k in answer if k.startswith("value")), None)
        if key is None:
            return None
        value = answer[key]
        return value["value"] if key == "valueQuantity" else value

    def walk(items: list[Any]) -> None:
        for it in items:
            answers = it.get("answer") or []
            values = [v for v in map(value_of, answers) if v is not None]
            if values and it.get("linkId") not in out:
                out[it["linkId"]] = values if len(values) > 1 else values[0]
            for a in answers:
                walk(a.get("item") or [])
            walk(it.get("item") or [])

    walk(list(response.get("item") or []))
    return out


def _number(link_id: str, value: Any) -> float | int:
    # bool is an int in Python; a checkbox value must not become a measurement.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{link_id}: expected a number, got {value!r}")
    return value


def _when(when: date | datetime | str) -> str:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError("when: a date-time needs a time zone (FHIR dateTime)")
        return when.isoformat()
    if isinstance(when, date):
        return when.isoformat()
    return when


def _quantity(value: float | int, m: Measure) -> Json:
    return {"value": value, "unit": m.unit, "system": UCUM, "code": m.ucum}


def _code(loinc: str, display: str, zh: str) -> Json:
    return {"coding": [{"system": LOINC, "code": loinc, "display": display}], "text": zh}


def _base(code: Json, category: str, patient: str, encounter: str | None, when: str) -> Json:
    obs: Json = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {"coding": [{"system": OBS_CATEGORY, "code": category}]},
        ],
        "code": code,
        "subject": {"reference": patient},
        "effectiveDateTime": when,
    }
    if encounter:
        obs["encounter"] = {"reference": encounter}
    return obs


def observations_from_answers(
    answers: Mapping[str, Any],
    patient_ref: str,
    encounter_ref: str | None,
    when: date | datetime | str,
) -> list[Json]:
    """The coded Observations of one follow-up form.

    ``answers`` is either linkId -> value or a QuestionnaireResponse. Blank answers are
    skipped; BMI is computed from weight and height when the form left it blank.
    Raises ``ValueError`` for a non-numeric measurement."""
    if answers.get("resourceType") == "QuestionnaireResponse":
        answers = answers_from_response(answers)
    values = {k: _number(k, v) for k, v in answers.items() if k in MEASURES and v not in (None, "")}
    at = _when(when)
    out: list[Json] = []
    bp = [m for m in (SYSTOLIC, DIASTOLIC) if m.link_id in values]
    if bp:
        panel = _base(
            _code(*BP_PANEL[:2], BP_PANEL[2]), "vital-signs", patient_ref, encounter_ref, at
        )
        panel["component"] = [
            {
                "code": _code(m.loinc, m.display, m.zh),
                "valueQuantity": _quantity(values[m.link_id], m),
            }
            for m in bp
        ]
        out.append(panel)
    if "bmi" not in values and "weight" in values and "height" in values and values["height"] > 0:
        values["bmi"] = round(values["weight"] / (values["height"] / 100) ** 2, 1)
    for link_id, m in MEASURES.items():
        if m in (SYSTOLIC, DIASTOLIC) or link_id not in values:
            continue
        effective = at
        if link_id == "hba1c" and answers.get(HBA1C_DATE):
            effective = _when(answers[HBA1C_DATE])
        obs = _base(
            _code(m.loinc, m.display, m.zh), m.category, patient_ref, encounter_ref, effective
        )
        obs["valueQuantity"] = _quantity(values[link_id], m)
        out.append(obs)
    return out
