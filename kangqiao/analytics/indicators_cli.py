"""``kangqiao indicators ...``: compute the indicator catalogue from NDJSON.

The lead mounts this sub-app in ``kangqiao/cli.py``
(``app.add_typer(indicators_app, name="indicators")``).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from kangqiao.analytics.indicators import STRATA, CatalogueError, compute_indicators, load_catalogue

app = typer.Typer(
    help="County indicators (NBPHS, HEARTS, plan core indicators).", no_args_is_help=True
)

COLUMNS = [
    "indicator_id",
    "period",
    "period_type",
    "stratum",
    "stratum_id",
    "stratum_name",
    "numerator",
    "denominator",
    "rate",
    "suppressed",
    "target",
    "unit",
]


@app.callback()
def _group() -> None:
    """County indicators (DuckDB)."""


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


@app.command("compute")
def compute(
    input_dir: Annotated[
        list[Path], typer.Option("--input", help="NDJSON or Parquet file or directory (repeatable)")
    ],
    period: Annotated[str, typer.Option(help="year, or years separated by commas")] = "2026",
    by: Annotated[list[str] | None, typer.Option(help="stratum: " + "|".join(STRATA[1:]))] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    out: Annotated[Path | None, typer.Option(help="output file (default: stdout)")] = None,
    suppress_below: Annotated[int, typer.Option(help="suppress counts below this (0: off)")] = 10,
) -> None:
    """Compute every catalogue indicator for the county and the chosen strata."""
    strata = ["county", *(by or [])]
    bad = set(strata) - set(STRATA)
    if bad:
        _fail(f"unknown stratum {', '.join(sorted(bad))}; use {', '.join(STRATA[1:])}")
    if fmt not in ("csv", "json"):
        _fail("format must be csv or json")
    try:
        rows = compute_indicators(input_dir, period, strata, suppress_below)
    except (FileNotFoundError, ValueError, CatalogueError) as exc:
        _fail(str(exc))
        return
    stream: Any = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
    try:
        if fmt == "json":
            stream.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            writer = csv.DictWriter(stream, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if out:
            stream.close()
    if out:
        typer.echo(f"{len(rows)} rows -> {out}", err=True)


@app.command("list")
def list_indicators() -> None:
    """The catalogue: id, Chinese and English names."""
    for ind in load_catalogue():
        typer.echo(f"{ind.id}\t{ind.name['zh']}\t{ind.name['en']}")
