"""County-hospital laboratory results (HbA1c, lipids, creatinine): Observations grouped in
DiagnosticReports, issued by the county hospital's laboratory department."""

from __future__ import annotations

import random
from datetime import date, timedelta

from kangqiao.synth.common import (
    LOINC,
    OBS_CATEGORY,
    V2_0074,
    Resource,
    clamp,
    concept,
    dt,
    quantity,
    ref,
)
from kangqiao.synth.context import Ctx, pick_day
from kangqiao.synth.residents import Person

HBA1C = ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "糖化血红蛋白", "%")
CHOL = ("14647-2", "Cholesterol [Moles/volume] in Serum or Plasma", "总胆固醇", "mmol/L")
TRIG = ("14927-8", "Triglyceride [Moles/volume] in Serum or Plasma", "甘油三酯", "mmol/L")
HDL = (
    "14646-4",
    "Cholesterol in HDL [Moles/volume] in Serum or Plasma",
    "高密度脂蛋白胆固醇",
    "mmol/L",
)
LDL = (
    "22748-8",
    "Cholesterol in LDL [Moles/volume] in Serum or Plasma",
    "低密度脂蛋白胆固醇",
    "mmol/L",
)
CREA = ("14682-9", "Creatinine [Moles/volume] in Serum or Plasma", "肌酐", "umol/L")
LIPID_PANEL = ("24331-1", "Lipid 1996 panel - Serum or Plasma", "血脂四项")

UNIT_DISPLAY = {"umol/L": "μmol/L"}


CATEGORY_DISPLAY = {"laboratory": "Laboratory", "procedure": "Procedure"}


def result(
    ctx: Ctx,
    person: Person,
    test: tuple[str, str, str],
    value: Resource,
    collected: str,
    issued: str,
    performer: Resource,
    encounter: str | None = None,
    category: str = "laboratory",
) -> Resource:
    """A result Observation; ``value`` is its ``value[x]`` element (``{"valueQuantity": ...}``)."""
    code, display, zh = test
    res: Resource = {
        "resourceType": "Observation",
        "id": ctx.ids.next("obs"),
        "status": "final",
        "category": [concept(OBS_CATEGORY, category, CATEGORY_DISPLAY[category])],
        "code": concept(LOINC, code, display, text=zh),
        "subject": ref("Patient", person.pid),
    }
    if encounter:
        res["encounter"] = ref("Encounter", encounter)
    return {**res, "effectiveDateTime": collected, "issued": issued, "performer": [performer],
            **value}


def measured(value: float, ucum: str) -> Resource:
    """A ``valueQuantity`` in UCUM ``ucum``, shown as it is written on a Chinese lab sheet."""
    return {"valueQuantity": quantity(value, UNIT_DISPLAY.get(ucum, ucum), ucum)}


def lab_observation(
    ctx: Ctx,
    person: Person,
    test: tuple[str, str, str, str],
    value: float,
    collected: str,
    issued: str,
) -> Resource:
    """A result of the county hospital's laboratory."""
    code, display, zh, unit = test
    lab = ref("Organization", ctx.inst.departments["laboratory"])
    return result(ctx, person, (code, display, zh), measured(value, unit), collected, issued, lab)


def report(
    ctx: Ctx,
    person: Person,
    code: tuple[str, str, str],
    results: list[Resource],
    collected: str,
    issued: str,
    performer: Resource | None = None,
) -> Resource:
    """The DiagnosticReport grouping ``results`` (by default the county hospital
    laboratory's; the encounter is the results' own)."""
    res: Resource = {
        "resourceType": "DiagnosticReport",
        "id": ctx.ids.next("dr"),
        "status": "final",
        "category": [concept(V2_0074, "LAB", "Laboratory")],
        "code": concept(LOINC, code[0], code[1], text=code[2]),
        "subject": ref("Patient", person.pid),
    }
    if results and "encounter" in results[0]:
        res["encounter"] = results[0]["encounter"]
    return {
        **res,
        "effectiveDateTime": collected,
        "issued": issued,
        "performer": [performer or ref("Organization", ctx.inst.departments["laboratory"])],
        "result": [ref("Observation", r["id"]) for r in results],
    }


def annual_labs(
    ctx: Ctx,
    rng: random.Random,
    person: Person,
    since: date,
    diabetic: bool,
    hba1c_at: dict[str, float],
) -> list[Resource]:
    """About two thirds of managed patients have the yearly labs done in each year;
    diabetics also get a mid-year HbA1c. ``hba1c_at`` gives 'start'/'end' trajectory values."""
    out: list[Resource] = []
    year_start = max(since, ctx.start)
    chol_base = rng.gauss(4.9, 0.8)
    crea_base = rng.gauss(82 if person.sex == "male" else 63, 12) + max(0, person.age - 60) * 0.6
    while year_start < ctx.end:
        year_end = min(year_start + timedelta(days=365), ctx.end)
        if rng.random() < 0.65:
            day = pick_day(rng, year_start, year_end)
            collected = dt(day, rng.randint(7 * 60 + 30, 9 * 60 + 30))
            issued = (
                dt(day, rng.randint(14 * 60, 18 * 60))
                if rng.random() < 0.8
                else dt(day + timedelta(days=1), rng.randint(9 * 60, 12 * 60))
            )
            tc = round(clamp(chol_base + rng.gauss(0, 0.3), 2.5, 9.5), 2)
            hdl = round(clamp(rng.gauss(1.25, 0.28), 0.5, 2.8), 2)
            tg = round(clamp(rng.lognormvariate(0.45, 0.4), 0.3, 9.0), 2)
            ldl = round(clamp(tc - hdl - tg / 2.2, 0.6, 7.0), 2)  # Friedewald (mmol/L)
            lipids = [
                lab_observation(ctx, person, t, v, collected, issued)
                for t, v in ((CHOL, tc), (TRIG, tg), (HDL, hdl), (LDL, ldl))
            ]
            out += [*lipids, report(ctx, person, LIPID_PANEL, lipids, collected, issued)]
            crea = lab_observation(
                ctx,
                person,
                CREA,
                round(clamp(crea_base + rng.gauss(0, 5), 35, 400)),
                collected,
                issued,
            )
            out += [
                crea,
                report(ctx, person, (CREA[0], CREA[1], CREA[2]), [crea], collected, issued),
            ]
            if diabetic:
                out += _hba1c(ctx, rng, person, day, hba1c_at, collected, issued)
        if diabetic and rng.random() < 0.4:
            day = pick_day(rng, year_start, year_end)
            collected = dt(day, 8 * 60)
            issued = dt(day, 16 * 60)
            out += _hba1c(ctx, rng, person, day, hba1c_at, collected, issued)
        year_start = year_end
    return out


def _hba1c(
    ctx: Ctx,
    rng: random.Random,
    person: Person,
    day: date,
    at: dict[str, float],
    collected: str,
    issued: str,
) -> list[Resource]:
    f = ctx.progress(day)
    mean = at["start"] + (at["end"] - at["start"]) * clamp(f, 0, 1)
    value = round(clamp(mean + rng.gauss(0, 0.3), 4.5, 14.0), 1)
    obs = lab_observation(ctx, person, HBA1C, value, collected, issued)
    return [obs, report(ctx, person, (HBA1C[0], HBA1C[1], HBA1C[2]), [obs], collected, issued)]
