"""One synthetic county shared by the synth tests (generated once per session)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from kangqiao.synth import GenerationReport, generate

RESIDENTS = 8000
SEED = 2024
END = date(2026, 11, 1)


@dataclass
class County:
    dir: Path
    report: GenerationReport
    by_type: dict[str, list[dict[str, Any]]]
    truth: dict[str, list[dict[str, Any]]]
    index: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for rtype, items in self.by_type.items():
            for r in items:
                self.index[(rtype, r["id"])] = r

    def get(self, reference: str) -> dict[str, Any]:
        rtype, rid = reference.split("/")
        return self.index[(rtype, rid)]

    @property
    def duplicate_ids(self) -> set[str]:
        return {r for t in self.truth.get("duplicates", []) for r in t["records"][1:]}

    @property
    def defect_ids(self) -> set[tuple[str, str]]:
        return {(t["resourceType"], t["id"]) for t in self.truth.get("defects", [])}

    def residents(self) -> list[dict[str, Any]]:
        dups = self.duplicate_ids
        return [p for p in self.by_type["Patient"] if p["id"] not in dups]


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as f:
        return [json.loads(line) for line in f]


def load_county(out: Path, report: GenerationReport) -> County:
    by_type = {p.stem: read_ndjson(p) for p in sorted(out.glob("*.ndjson"))}
    truth: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in sorted((out / "ground-truth").glob("*.jsonl")):
        truth[p.stem] = read_ndjson(p)
    return County(out, report, by_type, dict(truth))


@pytest.fixture(scope="session")
def county(tmp_path_factory: pytest.TempPathFactory) -> County:
    out = tmp_path_factory.mktemp("county")
    report = generate(out, RESIDENTS, SEED)
    return load_county(out, report)


def age_on(birth: str, on: date = END) -> int:
    b = date.fromisoformat(birth)
    return on.year - b.year - ((on.month, on.day) < (b.month, b.day))


def codes(concept: dict[str, Any]) -> set[str]:
    return {c["code"] for c in concept.get("coding", [])}
