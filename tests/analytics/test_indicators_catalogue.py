"""The catalogue files themselves, and the ``indicators`` CLI."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from kangqiao.analytics.indicators import CatalogueError, derived, load_catalogue, load_views
from kangqiao.analytics.indicators.catalogue import CATALOGUE_DIR, parse_indicator, tables_read
from kangqiao.analytics.indicators_cli import app
from kangqiao.synth.generate import generate

REQUIRED = {
    "nbphs-htn-standardised-management",
    "nbphs-dm-standardised-management",
    "nbphs-htn-bp-control",
    "nbphs-dm-glucose-control",
    "nbphs-htn-health-management",
    "nbphs-elderly-health-management",
    "hearts-controlled",
    "hearts-uncontrolled",
    "hearts-missed-visit",
    "hearts-lost-to-follow-up",
    "family-doctor-contract-coverage",
    "family-doctor-contract-coverage-65plus",
    "family-doctor-contract-coverage-hypertension",
    "family-doctor-contract-coverage-diabetes",
    "data-sharing-rate",
    "duplicate-test-rate",
    "referral-up-volume",
    "referral-up-median-days",
    "teleconsultation-volume",
    "dq-patient-completeness",
    "dq-result-timeliness",
    "dq-bp-plausibility",
}


def test_catalogue_covers_the_brief_and_is_complete() -> None:
    cat = load_catalogue()
    assert {i.id for i in cat} >= REQUIRED
    known = set(load_views()) | set(derived.DIMENSION_TABLES) | set(derived.PATIENT_TABLES)
    for ind in cat:
        assert ind.name["zh"] and ind.name["en"] and ind.definition["zh"] and ind.definition["en"]
        assert ind.source.get("citation"), ind.id
        read = tables_read(ind)
        assert read <= known, (ind.id, read - known)
        # The file lists every view and derived table its SQL reads directly.
        assert read <= set(ind.views) | set(ind.derived), (ind.id, read)
        if ind.target is not None:
            assert ind.target.get("source") and isinstance(ind.target["value"], float)
        ind.render(ind.units)  # every placeholder has a parameter


def test_malformed_catalogue_entries_are_rejected() -> None:
    raw = orjson.loads((CATALOGUE_DIR / "data-sharing-rate.json").read_bytes())
    with pytest.raises(CatalogueError, match="denominator"):
        parse_indicator({**raw, "denominator": None})
    with pytest.raises(CatalogueError, match="no view"):
        parse_indicator({**raw, "views": ["nope"]})
    with pytest.raises(CatalogueError, match="parameter"):
        parse_indicator({**raw, "numerator": "${missing}"}).render("${missing}")
    hearts = orjson.loads((CATALOGUE_DIR / "hearts-controlled.json").read_bytes())
    for dates in (None, {"query": "SELECT 1"}, {"query": "SELECT 1", "months": [-3]}):
        with pytest.raises(CatalogueError, match="as_of_dates"):
            parse_indicator({**hearts, "as_of_dates": dates})


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_cli_compute(tmp_path: Path, fmt: str) -> None:
    generate(tmp_path / "c", residents=300, seed=3)
    out = tmp_path / f"out.{fmt}"
    result = CliRunner().invoke(
        app,
        [
            "compute",
            "--input",
            str(tmp_path / "c"),
            "--period",
            "2026",
            "--by",
            "township",
            "--format",
            fmt,
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    rows = orjson.loads(text) if fmt == "json" else list(csv.DictReader(io.StringIO(text)))
    assert {r["stratum"] for r in rows} == {"county", "township"}
    assert any(str(r["suppressed"]).lower() == "true" for r in rows)  # 300 residents: small cells


def test_cli_rejects_bad_options(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["compute", "--input", str(tmp_path), "--by", "planet"])
    assert r.exit_code == 2 and "unknown stratum" in r.output
    r = CliRunner().invoke(app, ["compute", "--input", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "not found" in r.output
