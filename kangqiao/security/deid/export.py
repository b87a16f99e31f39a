"""The de-identified research extract: reads the county (the store through the gate, or an
NDJSON export), applies :mod:`.rules`, writes NDJSON, a flat table of the generalised
quasi-identifiers and aggregate counts with small cells suppressed.

Output folder::

    Patient.ndjson         pseudonymous id, gender (unless generalised away), age band and
                           area as extensions, deceasedBoolean
    <Type>.ndjson          every patient-data resource of kept patients, scrubbed
    patients.csv           id, age_band, sex, area (the k-anonymous table)
    counts.csv             patients per age band, sex and area (cells < suppress_below empty)
    conditions.csv         patients per area and condition code (same suppression)
    manifest.json          parameters, the generalisation chosen, k achieved, counts
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from kangqiao.fhir.store import schema
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.deid import rules
from kangqiao.security.gate import Access
from kangqiao.security.patients import patients_of
from kangqiao.security.rules import is_patient_data

KQ_SD = "https://kangqiao.example/fhir/StructureDefinition"
AGE_BAND_EXT = f"{KQ_SD}/research-age-band"
AREA_EXT = f"{KQ_SD}/research-area"
ADMIN_DIVISION_EXT = f"{KQ_SD}/admin-division-code"

Json = dict[str, Any]
Reader = Callable[[str], Iterator[Json]]  # resource type -> its resources


class DeidError(ValueError):
    """The extract cannot be made as asked (a readable message)."""


@dataclass
class DeidReport:
    patients_kept: int = 0
    patients_suppressed: int = 0
    resources: int = 0
    level: rules.Level = (0, 0, 0)
    k: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


def _area_code(patient: Json) -> str | None:
    for address in patient.get("address") or ():
        for ext in address.get("extension") or ():
            if ext.get("url") == ADMIN_DIVISION_EXT and isinstance(ext.get("valueCode"), str):
                return str(ext["valueCode"])
    return None


def quasi(patient: Json, on: date) -> rules.Quasi:
    gender = patient.get("gender")
    return rules.Quasi(rules.age_on(patient.get("birthDate"), on),
                       gender if isinstance(gender, str) else None, _area_code(patient))


def ndjson_reader(folder: Path) -> tuple[list[str], Reader]:
    """Types and a reader over ``<Type>.ndjson[.gz]`` files (an export, a synthetic county)."""
    files: dict[str, list[Path]] = {}
    for f in sorted(folder.iterdir()):
        if f.name.endswith((".ndjson", ".ndjson.gz")) and f.name[:1].isupper():
            rtype = f.name.split(".", 1)[0].split("_", 1)[0].split("-", 1)[0]
            files.setdefault(rtype, []).append(f)

    def read(rtype: str) -> Iterator[Json]:
        for f in files.get(rtype, ()):
            opener = gzip.open if f.name.endswith(".gz") else open
            with opener(f, "rb") as lines:
                for line in lines:
                    if line.strip():
                        yield orjson.loads(line)

    return sorted(files), read


def store_reader(store: FhirStore, access: Access, batch: int = 1000) -> tuple[list[str], Reader]:
    """Types and a reader over the store's current resources (through the gate: values are
    decrypted, and ``access`` must see everything it should export)."""
    R = schema.resource
    with store.read(access) as uow:
        types = sorted(t for (t,) in uow.conn.execute(select(R.c.resource_type).distinct()))

    def read(rtype: str) -> Iterator[Json]:
        last = ""
        while True:
            with store.read(access) as uow:
                ids = [i for (i,) in uow.conn.execute(
                    select(R.c.id).where(R.c.resource_type == rtype, R.c.deleted.is_(False),
                                         R.c.id > last).order_by(R.c.id).limit(batch))]
                if not ids:
                    return
                found = uow.resources(rtype, ids)
            last = ids[-1]
            for s in found:
                if s.content is not None:
                    yield s.content

    return types, read


def export(types: list[str], read: Reader, out: Path, *, key: bytes, k: int = 5,
           suppress_below: int = 10, max_suppressed: float = 0.01,
           wanted: list[str] | None = None, on: date | None = None) -> DeidReport:
    if "Patient" not in types:
        raise DeidError("the source holds no Patient resources")
    if out.exists() and any(out.iterdir()):
        raise DeidError(f"{out} is not empty")
    unknown = sorted(set(wanted or ()) - set(types))
    if unknown:
        raise DeidError(f"no resources of type {', '.join(unknown)} in the source")
    on = on or datetime.now(UTC).date()
    out.mkdir(parents=True, exist_ok=True)
    patients: dict[str, rules.Quasi] = {}
    deceased: dict[str, bool] = {}
    for p in read("Patient"):
        pid = str(p["id"])
        patients[pid] = quasi(p, on)
        deceased[pid] = bool(p.get("deceasedBoolean") or p.get("deceasedDateTime"))
    if len(patients) < k:
        raise DeidError(f"{len(patients)} patients cannot be {k}-anonymous")
    anon = rules.k_anonymise(patients, k, max_suppressed)
    kept = {pid for pid in patients if pid not in anon.suppressed}
    report = DeidReport(len(kept), len(anon.suppressed), level=anon.level, k=anon.k)
    chosen = [t for t in (wanted or types) if t != "Patient" and is_patient_data(t)]
    scrubber = rules.Scrubber(key, frozenset(["Patient", *chosen]))
    table = _write_patients(out, key, patients, kept, deceased, anon.level)
    report.by_type["Patient"] = len(kept)
    conditions: Counter[tuple[str, str]] = Counter()
    seen_conditions: set[tuple[str, str]] = set()
    area_of = {row[0]: row[3] for row in table}
    for rtype in chosen:
        n = 0
        with (out / f"{rtype}.ndjson").open("wb") as f:
            for resource in read(rtype):
                owners = sorted(patients_of(resource))
                if not owners or any(o not in kept for o in owners):
                    continue
                days = rules.shift_days(key, owners[0])
                f.write(orjson.dumps(scrubber.scrub(resource, days)) + b"\n")
                n += 1
                if rtype == "Condition":
                    pseudo = rules.pseudonym(key, "Patient", owners[0])
                    for c in (resource.get("code") or {}).get("coding") or ():
                        if c.get("code") and (pseudo, c["code"]) not in seen_conditions:
                            seen_conditions.add((pseudo, c["code"]))
                            conditions[(area_of[pseudo], str(c["code"]))] += 1
        report.by_type[rtype] = n
        report.resources += n
    report.resources += len(kept)
    _write_counts(out, table, conditions, suppress_below)
    manifest = {"generated": datetime.now(UTC).isoformat(timespec="seconds"),
                "k": k, "k_achieved": anon.k, "max_suppressed": max_suppressed,
                "generalisation": {"age_band_width": rules.AGE_WIDTHS[anon.level[0]],
                                   "sex": anon.level[1] == 0,
                                   "area_digits": rules.AREA_DIGITS[anon.level[2]]},
                "patients_kept": len(kept), "patients_suppressed": len(anon.suppressed),
                "suppress_below": suppress_below, "resources": report.by_type,
                "date_shift": f"per patient, within ±{rules.MAX_SHIFT_DAYS} days"}
    (out / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return report


def _write_patients(out: Path, key: bytes, patients: dict[str, rules.Quasi], kept: set[str],
                    deceased: dict[str, bool], level: rules.Level) -> list[tuple[str, ...]]:
    table: list[tuple[str, ...]] = []
    with (out / "Patient.ndjson").open("wb") as f:
        for pid in sorted(kept, key=lambda p: rules.pseudonym(key, "Patient", p)):
            band, sex, area = rules.generalised(patients[pid], level)
            pseudo = rules.pseudonym(key, "Patient", pid)
            body: Json = {"resourceType": "Patient", "id": pseudo,
                          "extension": [{"url": AGE_BAND_EXT, "valueString": band},
                                        {"url": AREA_EXT, "valueString": area}]}
            if sex != "*":
                body["gender"] = sex
            if deceased[pid]:
                body["deceasedBoolean"] = True
            f.write(orjson.dumps(body) + b"\n")
            table.append((pseudo, band, sex, area))
    with (out / "patients.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "age_band", "sex", "area"])
        writer.writerows(table)
    return table


def _write_counts(out: Path, table: list[tuple[str, ...]],
                  conditions: Counter[tuple[str, str]], below: int) -> None:
    groups = Counter(row[1:] for row in table)
    with (out / "counts.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["age_band", "sex", "area", "patients", "suppressed"])
        for (band, sex, area), n in sorted(groups.items()):
            shown = rules.cell(n, below)
            writer.writerow([band, sex, area, "" if shown is None else shown, shown is None])
    with (out / "conditions.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["area", "code", "patients", "suppressed"])
        for (area, code), n in sorted(conditions.items()):
            shown = rules.cell(n, below)
            writer.writerow([area, code, "" if shown is None else shown, shown is None])
