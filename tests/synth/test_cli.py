from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from kangqiao.synth.cli import app


def test_synth_command(tmp_path: Path) -> None:
    out = tmp_path / "county"
    result = CliRunner().invoke(
        app,
        [
            "--residents",
            "200",
            "--seed",
            "3",
            "--out",
            str(out),
            "--defect-rate",
            "0.05",
            "--duplicate-rate",
            "0.1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "residents/s" in result.output
    assert "200 residents" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["residents"] == 200 and manifest["seed"] == 3
    assert manifest["duplicate_rate"] == 0.1
    assert (out / "Patient.ndjson").exists()
    assert (out / "ground-truth" / "duplicates.jsonl").exists()


def test_synth_rejects_bad_rates(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--out", str(tmp_path), "--defect-rate", "1.5"])
    assert result.exit_code != 0
