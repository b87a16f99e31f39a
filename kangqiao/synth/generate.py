"""The orchestrator: set up the county, then stream household after household.

Order of the stream (dependency order, so it can be loaded straight into a store):
Organizations and Locations, Practitioners and PractitionerRoles, CareTeams; then for
each household, each member's Patient followed by their clinical resources, then any
duplicate registrations of that member.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from kangqiao.synth.chronic import chronic_care
from kangqiao.synth.common import DEFAULT_END_DATE, Resource, household_rng
from kangqiao.synth.context import Ctx, NullTruth, Place, TruthSink
from kangqiao.synth.contracts import contract
from kangqiao.synth.defects import inject
from kangqiao.synth.duplicates import duplicate_records
from kangqiao.synth.elderly import elderly_checks
from kangqiao.synth.encounters import acute_visits
from kangqiao.synth.geography import build_county
from kangqiao.synth.infectious import Surveillance
from kangqiao.synth.institutions import build_institutions
from kangqiao.synth.residents import make_household, patient_resource
from kangqiao.synth.writer import NdjsonWriter, TruthWriter, write_json

Progress = Callable[[int, int], None]


@dataclass
class GenerationReport:
    residents: int
    households: int
    seed: int
    out_dir: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)
    truth_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def resources(self) -> int:
        return sum(self.counts.values())

    @property
    def residents_per_second(self) -> float:
        return self.residents / self.seconds if self.seconds else 0.0

    @property
    def resources_per_second(self) -> float:
        return self.resources / self.seconds if self.seconds else 0.0


class Synthesizer:
    """One deterministic synthetic county for ``(residents, seed, options)``."""

    def __init__(
        self,
        residents: int,
        seed: int,
        *,
        defect_rate: float = 0.02,
        duplicate_rate: float = 0.03,
        end_date: date | None = None,
        truth: TruthSink | None = None,
    ) -> None:
        if residents < 1:
            raise ValueError("residents must be at least 1")
        for name, rate in (("defect_rate", defect_rate), ("duplicate_rate", duplicate_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        self.residents = residents
        self.seed = seed
        end = end_date or DEFAULT_END_DATE
        setup = random.Random(f"kangqiao/{seed}/setup")
        county = build_county(setup, residents)
        inst = build_institutions(setup, county, residents, end.year)
        self.ctx = Ctx(seed, end, county, inst, truth or NullTruth(), defect_rate, duplicate_rate)
        self.surveillance = Surveillance(self.ctx, random.Random(f"kangqiao/{seed}/surveillance"))
        self.households = 0
        self.done = 0

    def reference_resources(self) -> list[Resource]:
        """Organizations, Locations, Practitioners, PractitionerRoles and CareTeams."""
        order = {
            "Organization": 0,
            "Location": 1,
            "Practitioner": 2,
            "PractitionerRole": 3,
            "CareTeam": 4,
        }
        return sorted(self.ctx.inst.resources, key=lambda r: order[r["resourceType"]])

    def household_batches(self) -> Iterator[list[Resource]]:
        """One list of resources per household, in generation order."""
        ctx = self.ctx
        for town in ctx.county.townships:
            centre = ctx.inst.centres[town.index]
            for village in town.villages:
                place = Place(
                    town,
                    village,
                    centre,
                    centre.clinics[village.index],
                    centre.team_of_village[village.index],
                )
                remaining = village.quota
                serial = 0
                while remaining > 0:
                    index = self.households
                    self.households += 1
                    serial += 1
                    rng = household_rng(self.seed, "hh", index)
                    members = make_household(
                        ctx, rng, place, f"{village.code}{serial:04d}", remaining
                    )
                    remaining -= len(members)
                    batch = self._household(rng, index, members)
                    self.done += len(members)
                    yield batch

    def _household(self, rng: random.Random, index: int, members: list[Any]) -> list[Resource]:
        ctx = self.ctx
        dup_rng = household_rng(self.seed, "dup", index)
        # Its own stream, so that adding the checks left every other draw of the county as it was.
        check_rng = household_rng(self.seed, "elderly", index)
        batch: list[Resource] = []
        for person in members:
            chronic = chronic_care(ctx, rng, person)
            contracted = contract(ctx, rng, person)
            patient = patient_resource(ctx, person, person.facts.get("contract"))
            batch.append(patient)
            batch += contracted
            batch += chronic
            batch += acute_visits(ctx, rng, person)
            batch += elderly_checks(ctx, check_rng, person)
            batch += self.surveillance.cases(rng, person)
            batch += duplicate_records(ctx, dup_rng, person, patient)
        inject(ctx, household_rng(self.seed, "defect", index), batch)
        return batch

    def finish(self) -> None:
        for ob in self.surveillance.outbreaks:
            self.ctx.truth.record("outbreaks", ob.truth())

    def manifest(self, counts: dict[str, int], truth_counts: dict[str, int]) -> dict[str, Any]:
        ctx = self.ctx
        return {
            "generator": "kangqiao.synth",
            "format": 1,
            "fhirVersion": "4.0.1",
            "seed": self.seed,
            "residents": self.residents,
            "households": self.households,
            "end_date": ctx.end.isoformat(),
            "history_start": ctx.start.isoformat(),
            "defect_rate": ctx.defect_rate,
            "duplicate_rate": ctx.duplicate_rate,
            "county": {
                "code": ctx.county.code,
                "name": ctx.county.name,
                "townships": [
                    {
                        "code": t.code,
                        "name": t.name,
                        "residents": t.quota,
                        "villages": len(t.villages),
                        "health_centre": ctx.inst.centres[i].org_id,
                    }
                    for i, t in enumerate(ctx.county.townships)
                ],
            },
            "resources": dict(sorted(counts.items())),
            "ground_truth": dict(sorted(truth_counts.items())),
        }


def iter_resources(
    residents: int,
    seed: int,
    *,
    defect_rate: float = 0.02,
    duplicate_rate: float = 0.03,
    end_date: date | None = None,
    progress: Progress | None = None,
) -> Iterator[dict[str, Any]]:
    """The same resources ``generate`` writes, in dependency order, without ground truth."""
    synth = Synthesizer(
        residents, seed, defect_rate=defect_rate, duplicate_rate=duplicate_rate, end_date=end_date
    )
    yield from synth.reference_resources()
    for batch in synth.household_batches():
        yield from batch
        if progress:
            progress(synth.done, residents)


def generate(
    out_dir: Path,
    residents: int,
    seed: int,
    *,
    defect_rate: float = 0.02,
    duplicate_rate: float = 0.03,
    progress: Progress | None = None,
    end_date: date | None = None,
) -> GenerationReport:
    """Write the county to ``out_dir``: ``<Type>.ndjson`` per resource type,
    ``ground-truth/*.jsonl`` and ``manifest.json``. Same arguments, same bytes."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    for stale in [*out_dir.glob("*.ndjson"), *out_dir.glob("ground-truth/*.jsonl")]:
        stale.unlink()  # a previous run's files would otherwise survive next to ours
    writer = NdjsonWriter(out_dir)
    truth = TruthWriter(out_dir)
    synth = Synthesizer(
        residents,
        seed,
        defect_rate=defect_rate,
        duplicate_rate=duplicate_rate,
        end_date=end_date,
        truth=truth,
    )
    try:
        for r in synth.reference_resources():
            writer.write(r)
        for batch in synth.household_batches():
            for r in batch:
                writer.write(r)
            if progress:
                progress(synth.done, residents)
        synth.finish()
    finally:
        writer.close()
        truth.close()
    write_json(out_dir / "manifest.json", synth.manifest(writer.counts, truth.counts))
    return GenerationReport(
        residents=residents,
        households=synth.households,
        seed=seed,
        out_dir=out_dir,
        counts=dict(sorted(writer.counts.items())),
        truth_counts=dict(sorted(truth.counts.items())),
        seconds=time.perf_counter() - started,
    )
