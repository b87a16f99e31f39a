"""Data-quality defects (missing fields, implausible values, late entries) injected at a
configurable rate. Every defect keeps the resource valid FHIR so it can be stored, and is
recorded in the ground truth (``defects``) with the resource, the kind and the path."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from kangqiao.synth.common import TZ, Resource
from kangqiao.synth.context import Ctx
from kangqiao.synth.idcard import check_char

Defect = Callable[[random.Random, Resource], str | None]  # returns the path, or None if n/a


def _later(stamp: str, days: int) -> str:
    moment = datetime.fromisoformat(stamp) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + TZ


def _drop(field: str) -> Defect:
    def apply(rng: random.Random, r: Resource) -> str | None:
        if field not in r:
            return None
        del r[field]
        return field

    return apply


def _late_issued(rng: random.Random, r: Resource) -> str | None:
    if "issued" not in r or "effectiveDateTime" not in r:
        return None
    r["issued"] = _later(r["effectiveDateTime"], rng.randint(30, 180))
    return "issued"


def _implausible_bp(rng: random.Random, r: Resource) -> str | None:
    comps = r.get("component")
    if not comps:
        return None
    sbp, dbp = comps[0]["valueQuantity"], comps[1]["valueQuantity"]
    if rng.random() < 0.5:  # an extra digit typed
        sbp["value"] = sbp["value"] * 10 + rng.randint(0, 9)
        return "component[0].valueQuantity.value"
    sbp["value"], dbp["value"] = dbp["value"], sbp["value"]  # fields swapped
    return "component.valueQuantity.value"


def _implausible_value(rng: random.Random, r: Resource) -> str | None:
    q = r.get("valueQuantity")
    if not q:
        return None
    code = r["code"]["coding"][0]["code"]
    if q["code"] == "mmol/L":
        q["value"] = round(q["value"] * 18)  # mg/dL value typed into a mmol/L field
    elif code in ("29463-7", "8302-2"):
        q["value"] = round(q["value"] * 10, 1)
    else:
        q["value"] = round(q["value"] * 10, 2)
    return "valueQuantity.value"


def _observation(rng: random.Random, r: Resource) -> str | None:
    kind = rng.random()
    if kind < 0.4:
        return _late_issued(rng, r)
    if kind < 0.8:
        return _implausible_bp(rng, r) if "component" in r else _implausible_value(rng, r)
    return _drop("performer")(rng, r)


def _mistyped_id(rng: random.Random, r: Resource) -> str | None:
    for ident in r.get("identifier", []):
        value = ident.get("value", "")
        if ident.get("system", "").endswith("/resident-id") and len(value) == 18:
            good = check_char(value[:17])
            ident["value"] = value[:17] + rng.choice([c for c in "0123456789X" if c != good])
            return "identifier.value"
    return None


def _late_report(rng: random.Random, r: Resource) -> str | None:
    r["sent"] = _later(r["sent"], rng.randint(2, 15))
    return "sent"


KINDS: dict[str, list[tuple[str, Defect]]] = {
    "Patient": [
        ("missing-telecom", _drop("telecom")),
        ("missing-address", _drop("address")),
        ("missing-birthdate", _drop("birthDate")),
        ("invalid-id-check-digit", _mistyped_id),
    ],
    "Observation": [("observation", _observation)],
    "Encounter": [
        ("missing-participant", _drop("participant")),
        ("missing-location", _drop("location")),
    ],
    "Condition": [("missing-onset", _drop("onsetDateTime"))],
    "MedicationRequest": [("missing-dosage", _drop("dosageInstruction"))],
    "DiagnosticReport": [("late-issued", _late_issued)],
    "Communication": [("late-report", _late_report)],
}


def inject(ctx: Ctx, rng: random.Random, resources: list[Resource]) -> None:
    """Mutate about ``ctx.defect_rate`` of the eligible resources in place."""
    rate = ctx.defect_rate
    if rate <= 0:
        return
    for r in resources:
        kinds = KINDS.get(r["resourceType"])
        if not kinds or rng.random() >= rate:
            continue
        if "device" in r:  # home readings carry their own outliers (devices.py)
            continue
        name, fn = rng.choice(kinds)
        path = fn(rng, r)
        if path is None:
            continue
        if name == "observation":
            name = (
                "late-entry"
                if path == "issued"
                else "missing-performer"
                if path == "performer"
                else "implausible-value"
            )
        ctx.truth.record(
            "defects",
            {"resourceType": r["resourceType"], "id": r["id"], "kind": name, "path": path},
        )
