"""The state one generation run shares between modules (reference data, ids, sinks)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

from kangqiao.synth.common import HISTORY_DAYS, IdFactory
from kangqiao.synth.geography import County, Township, Village
from kangqiao.synth.institutions import Clinic, HealthCentre, Institutions, Team


class TruthSink(Protocol):
    """Receives ground-truth records: ``kind`` names the file (e.g. ``defects``)."""

    def record(self, kind: str, item: dict[str, Any]) -> None: ...


class NullTruth:
    def record(self, kind: str, item: dict[str, Any]) -> None:
        return None


@dataclass
class Ctx:
    seed: int
    end: date
    county: County
    inst: Institutions
    truth: TruthSink
    defect_rate: float
    duplicate_rate: float
    ids: IdFactory = field(default_factory=IdFactory)
    id_seq: dict[int, int] = field(default_factory=dict)  # see residents._resident_id

    @property
    def start(self) -> date:
        """First day of the generated clinical history."""
        return self.end - timedelta(days=HISTORY_DAYS)

    def progress(self, day: date) -> float:
        """How far into the generated history ``day`` lies (0 at its start, 1 at its end):
        where a disease's trajectory stands on that day."""
        return (day - self.start).days / max(1, (self.end - self.start).days)


@dataclass
class Place:
    """Where a household lives and who serves it."""

    town: Township
    village: Village
    centre: HealthCentre
    clinic: Clinic
    team: Team


def pick_day(rng: random.Random, start: date, end: date) -> date:
    """A uniformly random day in [start, end)."""
    span = (end - start).days
    return start + timedelta(days=rng.randrange(max(1, span)))
