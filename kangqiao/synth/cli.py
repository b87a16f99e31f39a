"""``kangqiao synth``: write a synthetic county as NDJSON plus ground truth.

Mount it on the main CLI with ``app.add_typer(synth_app)`` (its one command is ``synth``)
or ``app.command("synth")(synth)``.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from kangqiao.synth.generate import generate

app = typer.Typer(help="Generate a synthetic county medical community as FHIR R4 NDJSON.")


@app.command("synth")
def synth(
    residents: int = typer.Option(20_000, "--residents", "-n", min=1, help="Number of residents."),
    seed: int = typer.Option(1, "--seed", "-s", help="Random seed (same seed, same bytes)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory.", file_okay=False),
    defect_rate: float = typer.Option(
        0.02, "--defect-rate", min=0.0, max=1.0, help="Share of resources with a data defect."
    ),
    duplicate_rate: float = typer.Option(
        0.03,
        "--duplicate-rate",
        min=0.0,
        max=1.0,
        help="Share of residents registered again at another institution.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
) -> None:
    """Generate RESIDENTS residents with SEED into OUT (one NDJSON file per resource type)."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if quiet or (now - last[0] < 1.0 and done < total):
            return
        last[0] = now
        typer.echo(f"  {done:>10,} / {total:,} residents ({100 * done / total:5.1f}%)", err=True)

    report = generate(
        out,
        residents,
        seed,
        defect_rate=defect_rate,
        duplicate_rate=duplicate_rate,
        progress=progress,
    )
    width = max(len(k) for k in report.counts)
    for rtype, n in report.counts.items():
        typer.echo(f"  {rtype:<{width}}  {n:>10,}")
    typer.echo(
        f"Generated {report.residents:,} residents ({report.households:,} households), "
        f"{report.resources:,} resources in {report.seconds:.1f} s: "
        f"{report.residents_per_second:,.0f} residents/s, "
        f"{report.resources_per_second:,.0f} resources/s -> {out}"
    )


if __name__ == "__main__":
    app()
