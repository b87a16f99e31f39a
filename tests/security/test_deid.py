"""The de-identified research extract on a synthetic county: k-anonymity holds on the output,
no identifier survives, intervals within a patient are kept, small cells are suppressed at
their boundary; and the rules at their boundaries."""

from __future__ import annotations

import csv
import re
import secrets
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from kangqiao.cli import app
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.deid import rules
from kangqiao.security.deid.export import (
    AGE_BAND_EXT,
    AREA_EXT,
    DeidError,
    DeidReport,
    export,
    ndjson_reader,
    store_reader,
)
from kangqiao.security.gate import SYSTEM
from kangqiao.synth.generate import generate

TYPES = ["Encounter", "Condition", "Communication", "EpisodeOfCare"]
ON = date(2026, 12, 1)
KEY = secrets.token_bytes(32)


@dataclass
class Extract:
    source: Path
    out: Path
    report: DeidReport


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Extract:
    source = tmp_path_factory.mktemp("county")
    generate(source, 3000, 1)
    out = tmp_path_factory.mktemp("deid") / "out"
    report = export(*ndjson_reader(source), out, key=KEY, k=5, wanted=TYPES, on=ON)
    return Extract(source, out, report)


def _ndjson(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _strings(value: Any, out: set[str]) -> set[str]:
    if isinstance(value, dict):
        for v in value.values():
            _strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _strings(v, out)
    elif isinstance(value, str):
        out.add(value)
    return out


def test_k_anonymity_holds_on_the_output(extract: Extract) -> None:
    patients = _ndjson(extract.out / "Patient.ndjson")
    groups = Counter()
    for p in patients:
        ext = {e["url"]: e["valueString"] for e in p["extension"]}
        groups[(ext[AGE_BAND_EXT], p.get("gender", "*"), ext[AREA_EXT])] += 1
    assert min(groups.values()) >= 5
    with (extract.out / "patients.csv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    assert rules.k_of([r[1:] for r in rows]) >= 5
    assert len(rows) == len(patients) == extract.report.patients_kept
    source = len(_ndjson(extract.source / "Patient.ndjson"))
    assert extract.report.patients_kept + extract.report.patients_suppressed == source
    assert extract.report.patients_suppressed <= source * 0.01
    manifest = orjson.loads((extract.out / "manifest.json").read_bytes())
    assert manifest["k_achieved"] >= 5


def test_no_identifier_survives(extract: Extract) -> None:
    secret: set[str] = set()
    source_ids: set[str] = set()
    for p in _ndjson(extract.source / "Patient.ndjson"):
        source_ids.add(p["id"])
        for key in ("identifier", "name", "telecom", "address"):
            _strings(p.get(key), secret)
    for p in _ndjson(extract.source / "Practitioner.ndjson"):
        _strings(p.get("name"), secret)
    secret -= {"official", "usual", "home", "mobile", "work", "phone", "physical", "CN",
               "NI", "ABC", "居民身份证", "National unique individual identifier"}
    secret = {s for s in secret if not s.startswith("http")}  # systems and extension urls
    written: set[str] = set()
    raw = b""
    for f in sorted(extract.out.glob("*.ndjson")):
        raw += f.read_bytes()
        for resource in _ndjson(f):
            _strings(resource, written)
    assert written & secret == set()
    text = raw.decode()
    # digit runs outside the hex pseudonyms: no resident ID number, no mobile number
    assert re.findall(r"(?<![0-9a-fA-F])\d{17}[\dX](?![0-9a-fA-F])", text) == []
    assert re.findall(r"(?<![0-9a-fA-F])1[3-9]\d{9}(?![0-9a-fA-F])", text) == []
    assert set(re.findall(r'"Patient/([^"]+)"', text)) & source_ids == set()
    assert "pat-0" not in text and "enc-0" not in text and "Organization/" not in text
    assert "contentString" not in text and '"note"' not in text


def test_dates_shift_per_patient_and_intervals_stay(extract: Extract) -> None:
    by_patient: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for e in _ndjson(extract.source / "Encounter.ndjson"):
        if (e.get("period") or {}).get("start"):
            by_patient[e["subject"]["reference"].split("/")[1]].append(
                (e["id"], e["period"]["start"]))
    out = {e["id"]: e for e in _ndjson(extract.out / "Encounter.ndjson")}
    checked = 0
    for pid, visits in by_patient.items():
        mapped = [(out.get(rules.pseudonym(KEY, "Encounter", eid)), start)
                  for eid, start in visits]
        if len(visits) < 2 or any(m is None for m, _ in mapped):
            continue  # a suppressed patient: none of their encounters may be there
        shifted = [datetime.fromisoformat(m["period"]["start"]) for m, _ in mapped if m]
        real = [datetime.fromisoformat(s) for _, s in mapped]
        assert [b - a for a, b in pairwise(real)] == [b - a for a, b in pairwise(shifted)]
        offset = shifted[0] - real[0]
        assert offset.days == rules.shift_days(KEY, pid) != 0
        assert {m["subject"]["reference"] for m, _ in mapped if m} == {
            f"Patient/{rules.pseudonym(KEY, 'Patient', pid)}"}
        checked += 1
        if checked == 200:
            break
    assert checked == 200


def test_suppressed_patients_leave_nothing(extract: Extract) -> None:
    kept = {p["id"] for p in _ndjson(extract.out / "Patient.ndjson")}
    for f in extract.out.glob("*.ndjson"):
        for r in _ndjson(f):
            ref = (r.get("subject") or r.get("patient") or {}).get("reference")
            if ref:
                assert ref.split("/")[1] in kept


def test_small_cells_are_suppressed_at_the_boundary(extract: Extract) -> None:
    assert rules.cell(9, 10) is None
    assert rules.cell(10, 10) == 10
    assert rules.cell(0, 10) == 0  # an empty cell reveals no one
    assert rules.cell(3, 0) == 3  # suppression off
    suppressed = 0
    for name in ("counts.csv", "conditions.csv"):
        with (extract.out / name).open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert rows and all((r["patients"] == "") == (r["suppressed"] == "True") for r in rows)
        assert all(int(r["patients"]) >= 10 for r in rows if r["patients"])
        suppressed += sum(r["suppressed"] == "True" for r in rows)
    # k-anonymity leaves no small age/sex/area cell in a small county, but the rarer
    # conditions per area are small cells: they must be there, and empty.
    assert suppressed > 0


def test_k_anonymise_boundaries() -> None:
    five = {f"a{i}": rules.Quasi(62, "female", "431299100201") for i in range(5)}
    four = {f"b{i}": rules.Quasi(33, "male", "431299200201") for i in range(4)}
    # a budget of 4 suppressions: no generalisation, the group of 4 goes
    anon = rules.k_anonymise({**five, **four}, 5, max_suppressed=0.5)
    assert anon.level == (0, 0, 0) and anon.suppressed == frozenset(four) and anon.k == 5
    # no suppression allowed: generalised until one group of 9 holds everyone
    anon = rules.k_anonymise({**five, **four}, 5, max_suppressed=0.0)
    assert anon.suppressed == frozenset() and anon.k == 9
    assert rules.k_anonymise(five, 5, 0.0).level == (0, 0, 0)
    assert rules.k_anonymise(five, 6, 0.0).suppressed == frozenset(five)


def test_rules_at_their_boundaries() -> None:
    assert rules.age_band(64, 0) == "60-64" and rules.age_band(65, 1) == "60-69"
    assert rules.age_band(89, 2) == "80-89" and rules.age_band(95, 0) == "90+"
    assert rules.age_band(None, 0) == "*" and rules.age_band(40, 3) == "*"
    assert rules.age_on("1960-12-01", ON) == 66 and rules.age_on("1960-12-02", ON) == 65
    assert rules.area("431299100201", 0) == "431299100" and rules.area("431299100201", 2) == "*"
    assert rules.shift_date("2024-02-28", 2) == "2024-03-01"
    assert rules.shift_date("2024-02-28T14:57:00+08:00", -1) == "2024-02-27T14:57:00+08:00"
    assert rules.shift_date("2024-05", 40, partial=True) == "2024-06"
    assert rules.shift_date("2024", 40) == "2024"  # not a date key: a code, untouched
    assert rules.shift_date("2024-13-01", 3) == "2024-13-01"
    assert all(rules.shift_days(KEY, f"p{i}") != 0 for i in range(500))
    assert max(abs(rules.shift_days(KEY, f"p{i}")) for i in range(500)) <= 182
    scrub = rules.Scrubber(KEY, frozenset({"Patient", "Observation"})).scrub
    out = scrub({"resourceType": "Observation", "id": "o1", "note": [{"text": "张三 13800000000"}],
                 "subject": {"reference": "Patient/p1", "display": "张三"},
                 "performer": [{"reference": "Practitioner/x"}],
                 "effectiveDateTime": "2025-01-01", "valueString": "free text",
                 "code": {"coding": [{"code": "8867-4", "display": "Heart rate"}],
                          "text": "心率"}}, 10)
    assert out == {"resourceType": "Observation", "id": rules.pseudonym(KEY, "Observation", "o1"),
                   "subject": {"reference": f"Patient/{rules.pseudonym(KEY, 'Patient', 'p1')}"},
                   "effectiveDateTime": "2025-01-11", "code": {"coding": [{"code": "8867-4"}]}}


def test_export_from_the_store_and_cli_errors(store: FhirStore, engine: Engine,
                                              tmp_path: Path) -> None:
    with store.write(SYSTEM) as uow:
        for i in range(6):
            uow.update("Patient", f"d{i}", {
                "resourceType": "Patient", "id": f"d{i}", "gender": "male",
                "birthDate": "1970-01-01",
                "identifier": [{"system": "https://kangqiao.example/fhir/sid/resident-id",
                                "value": f"43129919700101{i:04d}"}],
                "telecom": [{"system": "phone", "value": f"1380000000{i}"}]})
    report = export(*store_reader(store, SYSTEM, batch=4), tmp_path / "out", key=KEY, k=5,
                    on=ON)
    assert report.patients_kept == 6
    raw = (tmp_path / "out" / "Patient.ndjson").read_text()
    assert "431299" not in raw and "13800" not in raw and '"gender":"male"' in raw
    with pytest.raises(DeidError, match="is not empty"):
        export(*store_reader(store, SYSTEM), tmp_path / "out", key=KEY)
    with pytest.raises(DeidError, match="cannot be 7-anonymous"):
        export(*store_reader(store, SYSTEM), tmp_path / "out2", key=KEY, k=7)
    result = CliRunner().invoke(app, ["research", "export", "--input", str(tmp_path / "nope"),
                                      "--out", str(tmp_path / "o3")])
    assert result.exit_code == 2 and "is not a folder" in result.output
