from __future__ import annotations

import hashlib
from pathlib import Path

import orjson

from kangqiao.synth import generate, iter_resources


def _digest(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", 600, 9)
    b = generate(tmp_path / "b", 600, 9)
    assert a.counts == b.counts
    da, db = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert da == db
    assert "Patient.ndjson" in da and "manifest.json" in da


def test_different_seed_different_county(tmp_path: Path) -> None:
    generate(tmp_path / "a", 300, 1)
    generate(tmp_path / "b", 300, 2)
    assert (tmp_path / "a/Patient.ndjson").read_bytes() != (
        tmp_path / "b/Patient.ndjson"
    ).read_bytes()


def test_rerun_in_the_same_directory_replaces_files(tmp_path: Path) -> None:
    generate(tmp_path, 300, 1)
    first = _digest(tmp_path)
    generate(tmp_path, 300, 1, defect_rate=0.0, duplicate_rate=0.0)
    assert not (tmp_path / "ground-truth/defects.jsonl").exists()
    assert not (tmp_path / "ground-truth/duplicates.jsonl").exists()
    generate(tmp_path, 300, 1)
    assert _digest(tmp_path) == first


def test_iter_resources_is_the_written_stream(tmp_path: Path) -> None:
    generate(tmp_path, 300, 4)
    streamed: dict[str, list[bytes]] = {}
    for r in iter_resources(300, 4):
        streamed.setdefault(r["resourceType"], []).append(
            orjson.dumps(r, option=orjson.OPT_SORT_KEYS)
        )
    for rtype, lines in streamed.items():
        assert (tmp_path / f"{rtype}.ndjson").read_bytes().splitlines() == lines


def test_rates_do_not_change_the_base_population(tmp_path: Path) -> None:
    def people(rate: float) -> list[tuple[str, str]]:
        return [
            (r["id"], r["name"][0]["text"])
            for r in iter_resources(300, 5, defect_rate=rate, duplicate_rate=0.0)
            if r["resourceType"] == "Patient"
        ]

    clean = people(0.0)
    assert len(clean) == 300
    assert people(0.2) == clean


def test_progress_and_exact_resident_count(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    report = generate(
        tmp_path, 257, 8, duplicate_rate=0.0, progress=lambda d, t: calls.append((d, t))
    )
    assert report.counts["Patient"] == 257
    assert calls[-1] == (257, 257)
    assert all(t == 257 for _, t in calls)
