"""Builders for Questionnaire items with Chinese text and English translations.

Chinese is the primary ``text``; English rides on ``_text`` (or ``_display``) in the
standard translation extension, so one resource serves both languages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

KQ = "https://kangqiao.example/fhir"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
QUESTIONNAIRE_UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"


def code_system(name: str) -> str:
    return f"{KQ}/CodeSystem/{name}"


# Same URL as the synthetic county's follow-up classification (此次随访分类 1..4).
CS_FOLLOWUP_CLASS = code_system("followup-classification")


def translated(en: str) -> Json:
    """The ``_text`` / ``_display`` companion carrying the English translation."""
    return {
        "extension": [
            {
                "url": TRANSLATION,
                "extension": [
                    {"url": "lang", "valueCode": "en"},
                    {"url": "content", "valueString": en},
                ],
            }
        ]
    }


@dataclass(frozen=True, slots=True)
class Option:
    code: str
    zh: str
    en: str


def coding(system: str, opt: Option) -> Json:
    return {"system": system, "code": opt.code, "display": opt.zh, "_display": translated(opt.en)}


def options(system: str, *opts: tuple[str, str, str]) -> list[Json]:
    return [{"valueCoding": coding(system, Option(*o))} for o in opts]


@dataclass(frozen=True, slots=True)
class Measure:
    """An answer that is also written as a coded Observation."""

    link_id: str
    loinc: str
    display: str  # LOINC long common name
    zh: str
    ucum: str
    unit: str  # human-readable unit shown on the form
    category: str = "vital-signs"
    minimum: int | None = None
    maximum: int | None = None

    def plausible(self, value: float) -> bool:
        """Within the data-entry range (when the measure has one)."""
        return not ((self.minimum is not None and value < self.minimum)
                    or (self.maximum is not None and value > self.maximum))


def bp_reversed(systolic: float, diastolic: float) -> bool:
    """A systolic not above its diastolic: the two fields swapped when typed. The form
    refuses such a reading and the record sets it aside (``records.plausible``)."""
    return systolic <= diastolic


def item(
    link_id: str,
    zh: str,
    en: str,
    type_: str,
    *,
    children: list[Json] | None = None,
    answer_options: list[Json] | None = None,
    required: bool = False,
    repeats: bool = False,
    measure: Measure | None = None,
    unit: tuple[str, str] | None = None,  # (UCUM code, display) for non-Observation numbers
) -> Json:
    out: Json = {"linkId": link_id, "text": zh, "_text": translated(en), "type": type_}
    extensions: list[Json] = []
    if measure is not None:
        out["code"] = [{"system": LOINC, "code": measure.loinc, "display": measure.display}]
        unit = (measure.ucum, measure.unit)
        if measure.minimum is not None:
            extensions.append({"url": MIN_VALUE, "valueInteger": measure.minimum})
        if measure.maximum is not None:
            extensions.append({"url": MAX_VALUE, "valueInteger": measure.maximum})
    if unit is not None:
        extensions.insert(
            0,
            {
                "url": QUESTIONNAIRE_UNIT,
                "valueCoding": {"system": UCUM, "code": unit[0], "display": unit[1]},
            },
        )
    if extensions:
        out["extension"] = extensions
    if required:
        out["required"] = True
    if repeats:
        out["repeats"] = True
    if answer_options is not None:
        out["answerOption"] = answer_options
    if children is not None:
        out["item"] = children
    return out


def group(link_id: str, zh: str, en: str, *children: Json, repeats: bool = False) -> Json:
    return item(link_id, zh, en, "group", children=list(children), repeats=repeats)
