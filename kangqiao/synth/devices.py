"""Home devices (BP monitors, glucometers) for a subset of managed patients, with the
readings of the last 90 days: missing days, gaps of several days, and outliers."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

from kangqiao.synth.common import (
    CS_DEVICE_TYPE,
    DEVICE_SERIAL_SYSTEM,
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
from kangqiao.synth.residents import Person
from kangqiao.synth.vitals import bp_observation

HOME_BP_SHARE = 0.15  # assumption: managed hypertensives with a connected home BP monitor
HOME_GLUCOSE_SHARE = 0.10  # assumption: managed diabetics with a connected glucometer
OUTLIER_RATE = 0.015
WINDOW_DAYS = 90
CAPILLARY_GLUCOSE = (
    "14743-9",
    "Glucose [Moles/volume] in Capillary blood by Glucometer",
    "指尖血糖",
)
MODELS = {
    "bp": [("鱼跃", "YE660D"), ("欧姆龙", "U10K"), ("九安", "KD-5920")],
    "glucose": [("三诺", "GA-3"), ("鱼跃", "580"), ("罗氏", "Active")],
}


def home_monitoring(
    ctx: Ctx,
    rng: random.Random,
    person: Person,
    htn_mean: Callable[[float], float] | None,
    dm_mean: Callable[[float], float] | None,
) -> list[Resource]:
    out: list[Resource] = []
    if htn_mean and rng.random() < HOME_BP_SHARE:
        out += _series(ctx, rng, person, "bp", htn_mean)
    if dm_mean and rng.random() < HOME_GLUCOSE_SHARE:
        out += _series(ctx, rng, person, "glucose", dm_mean)
    return out


def _series(
    ctx: Ctx, rng: random.Random, person: Person, kind: str, mean: Callable[[float], float]
) -> list[Resource]:
    maker, model = rng.choice(MODELS[kind])
    serial = f"{model.replace('-', '')}{rng.randint(10**7, 10**8 - 1)}"
    device_id = ctx.ids.next("dev")
    label = "家用电子血压计" if kind == "bp" else "家用血糖仪"
    out: list[Resource] = [
        {
            "resourceType": "Device",
            "id": device_id,
            "identifier": [{"system": DEVICE_SERIAL_SYSTEM, "value": serial}],
            "status": "active",
            "manufacturer": maker,
            "serialNumber": serial,
            "deviceName": [{"name": f"{maker} {model}", "type": "user-friendly-name"}],
            "modelNumber": model,
            "type": concept(CS_DEVICE_TYPE, f"home-{kind}-monitor", label),
            "patient": ref("Patient", person.pid),
        }
    ]
    p_day = rng.uniform(0.35, 0.95) if kind == "bp" else rng.uniform(0.2, 0.6)
    gap_start, gap_len = -1, 0
    if rng.random() < 0.35:  # a trip, a flat battery, a stay with the children in town
        gap_start, gap_len = rng.randrange(WINDOW_DAYS), rng.randint(5, 30)
    start = ctx.end - timedelta(days=WINDOW_DAYS)
    patient = ref("Patient", person.pid)
    for i in range(WINDOW_DAYS):
        if gap_start <= i < gap_start + gap_len or rng.random() >= p_day:
            continue
        day = start + timedelta(days=i)
        f = ctx.progress(day)
        minute = rng.randint(6 * 60 + 30, 8 * 60 + 30)
        outlier = rng.random() < OUTLIER_RATE
        if kind == "bp":
            sbp = round(clamp(mean(f) - 5 + rng.gauss(0, 7), 85, 220))
            dbp = round(clamp(0.5 * sbp + rng.gauss(12, 5), 45, 130))
            what = ""
            if outlier:
                what = rng.choice(["cuff-high", "cuff-low", "duplicate"])
                if what == "cuff-high":
                    sbp, dbp = rng.randint(235, 280), rng.randint(50, 70)
                elif what == "cuff-low":
                    sbp, dbp = rng.randint(55, 75), rng.randint(30, 45)
            obs = bp_observation(
                ctx,
                person,
                sbp,
                dbp,
                dt(day, minute),
                dt(day, minute + 1),
                patient,
                device=device_id,
            )
            out.append(obs)
            if what == "duplicate":
                dup = bp_observation(
                    ctx,
                    person,
                    sbp,
                    dbp,
                    dt(day, minute),
                    dt(day, minute + 2),
                    patient,
                    device=device_id,
                )
                out.append(dup)
                obs = dup
        else:
            value = round(clamp(mean(f) + rng.gauss(-0.2, 0.9), 3.0, 25.0), 1)
            what = ""
            if outlier:
                what = rng.choice(["strip-error", "unit-mgdl"])
                value = rng.choice([1.1, 33.3]) if what == "strip-error" else round(value * 18)
            obs = {
                "resourceType": "Observation",
                "id": ctx.ids.next("obs"),
                "status": "final",
                "category": [concept(OBS_CATEGORY, "laboratory", "Laboratory")],
                "code": concept(
                    LOINC, CAPILLARY_GLUCOSE[0], CAPILLARY_GLUCOSE[1], text=CAPILLARY_GLUCOSE[2]
                ),
                "subject": patient,
                "effectiveDateTime": dt(day, minute),
                "issued": dt(day, minute + 1),
                "performer": [patient],
                "device": ref("Device", device_id),
                "valueQuantity": quantity(value, "mmol/L"),
            }
            out.append(obs)
        if what:
            ctx.truth.record(
                "device_outliers",
                {
                    "patient": person.pid,
                    "observation": obs["id"],
                    "device": device_id,
                    "kind": what,
                },
            )
    return out
