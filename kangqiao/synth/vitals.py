"""Vital-sign and point-of-care Observations recorded at a chronic-disease follow-up."""

from __future__ import annotations

import random
from datetime import date

from kangqiao.synth.common import (
    LOINC,
    OBS_CATEGORY,
    Resource,
    clamp,
    concept,
    dt,
    quantity,
    ref,
)
from kangqiao.synth.context import Ctx
from kangqiao.synth.institutions import Staff
from kangqiao.synth.residents import Person

BP_PANEL = ("85354-9", "Blood pressure panel with all children optional", "血压")
SYSTOLIC = ("8480-6", "Systolic blood pressure")
DIASTOLIC = ("8462-4", "Diastolic blood pressure")
HEART_RATE = ("8867-4", "Heart rate", "心率")
WEIGHT = ("29463-7", "Body weight", "体重")
HEIGHT = ("8302-2", "Body height", "身高")
BMI = ("39156-5", "Body mass index (BMI) [Ratio]", "体质指数")
# Fasting plasma glucose in mmol/L. 1558-6 is the mass-concentration (mg/dL) code, so the
# molar code is used for values in mmol/L.
FASTING_GLUCOSE = ("14771-0", "Fasting glucose [Moles/volume] in Serum or Plasma", "空腹血糖")


def vital_category() -> list[Resource]:
    return [concept(OBS_CATEGORY, "vital-signs", "Vital Signs")]


def bp_observation(
    ctx: Ctx,
    person: Person,
    sbp: int,
    dbp: int,
    when: str,
    issued: str,
    performer: Resource,
    encounter: str | None = None,
    device: str | None = None,
) -> Resource:
    res: Resource = {
        "resourceType": "Observation",
        "id": ctx.ids.next("obs"),
        "status": "final",
        "category": vital_category(),
        "code": concept(LOINC, BP_PANEL[0], BP_PANEL[1], text=BP_PANEL[2]),
        "subject": ref("Patient", person.pid),
        "effectiveDateTime": when,
        "issued": issued,
        "performer": [performer],
        "component": [
            {"code": concept(LOINC, *SYSTOLIC), "valueQuantity": quantity(sbp, "mmHg", "mm[Hg]")},
            {"code": concept(LOINC, *DIASTOLIC), "valueQuantity": quantity(dbp, "mmHg", "mm[Hg]")},
        ],
    }
    if encounter:
        res["encounter"] = ref("Encounter", encounter)
    if device:
        res["device"] = ref("Device", device)
    return res


def simple_observation(
    ctx: Ctx,
    person: Person,
    test: tuple[str, str, str],
    value: float,
    unit: str,
    ucum: str,
    when: str,
    issued: str,
    performer: Resource,
    encounter: str | None,
    category: str,
) -> Resource:
    res: Resource = {
        "resourceType": "Observation",
        "id": ctx.ids.next("obs"),
        "status": "final",
        "category": vital_category()
        if category == "vital-signs"
        else [concept(OBS_CATEGORY, "laboratory", "Laboratory")],
        "code": concept(LOINC, test[0], test[1], text=test[2]),
        "subject": ref("Patient", person.pid),
        "effectiveDateTime": when,
        "issued": issued,
        "performer": [performer],
        "valueQuantity": quantity(value, unit, ucum),
    }
    if encounter:
        res["encounter"] = ref("Encounter", encounter)
    return res


class VitalsWriter:
    """Appends the readings of each follow-up to ``out`` (right after its Encounter)."""

    def __init__(self, ctx: Ctx, rng: random.Random, person: Person, out: list[Resource]) -> None:
        self.ctx, self.rng, self.person, self.out = ctx, rng, person, out
        male = person.sex == "male"
        self.height = round(clamp(rng.gauss(166 if male else 155, 6), 140, 190), 1)
        self.bmi = clamp(rng.gauss(25.0, 3.2), 17.0, 38.0)
        self.heart_rate = rng.gauss(76, 8)
        self.dbp_offset = rng.gauss(12, 4)
        self.height_done = False

    def followup(
        self, enc: str, staff: Staff, day: date, minute: int, sbp_mean: float, annual: bool
    ) -> tuple[int, int]:
        rng, ctx, person = self.rng, self.ctx, self.person
        sbp = round(clamp(rng.gauss(sbp_mean, 8), 85, 230))
        dbp = round(clamp(0.5 * sbp_mean + self.dbp_offset + rng.gauss(0, 5), 45, 135))
        when, issued = dt(day, minute + 5), dt(day, minute + 12)
        who = ref("PractitionerRole", staff.role_id, staff.name)
        self.out.append(bp_observation(ctx, person, sbp, dbp, when, issued, who, enc))
        hr = round(clamp(rng.gauss(self.heart_rate, 5), 45, 130))
        self.out.append(
            simple_observation(
                ctx, person, HEART_RATE, hr, "/min", "/min", when, issued, who, enc, "vital-signs"
            )
        )
        if annual:
            bmi = clamp(self.bmi + rng.gauss(0, 0.4), 15.0, 42.0)
            weight = round(bmi * (self.height / 100) ** 2, 1)
            if not self.height_done:
                self.out.append(
                    simple_observation(
                        ctx,
                        person,
                        HEIGHT,
                        self.height,
                        "cm",
                        "cm",
                        when,
                        issued,
                        who,
                        enc,
                        "vital-signs",
                    )
                )
                self.height_done = True
            self.out.append(
                simple_observation(
                    ctx, person, WEIGHT, weight, "kg", "kg", when, issued, who, enc, "vital-signs"
                )
            )
            self.out.append(
                simple_observation(
                    ctx,
                    person,
                    BMI,
                    round(weight / (self.height / 100) ** 2, 1),
                    "kg/m2",
                    "kg/m2",
                    when,
                    issued,
                    who,
                    enc,
                    "vital-signs",
                )
            )
        return sbp, dbp

    def glucose(self, enc: str, staff: Staff, day: date, minute: int, mean: float) -> float:
        value = round(clamp(self.rng.gauss(mean, 0.7), 3.0, 25.0), 1)
        who = ref("PractitionerRole", staff.role_id, staff.name)
        self.out.append(
            simple_observation(
                self.ctx,
                self.person,
                FASTING_GLUCOSE,
                value,
                "mmol/L",
                "mmol/L",
                dt(day, minute + 3),
                dt(day, minute + 10),
                who,
                enc,
                "laboratory",
            )
        )
        return value
