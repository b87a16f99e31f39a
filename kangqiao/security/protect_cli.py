"""``kangqiao keys ...`` (field encryption keys: status, rotation) and ``kangqiao research
export`` (the de-identified research extract): operator commands on the server itself."""

from __future__ import annotations

from pathlib import Path

import typer

from kangqiao.settings import get_settings

keys_app = typer.Typer(help="Keys of the identifiers encrypted at rest: status and rotation.",
                       no_args_is_help=True)
research_app = typer.Typer(help="De-identified research extracts.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@keys_app.command("status")
def status() -> None:
    """Key ids, the current key, and how many stored rows still use an older key."""
    from kangqiao.security import fieldcrypt, rotate
    from kangqiao.security.cli import _engine
    from kangqiao.security.fieldkeys import FieldKeyError

    try:
        ring = fieldcrypt.configure(get_settings())
    except FieldKeyError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"keys: {', '.join(ring.keys)} (current {ring.current}; from {ring.source})")
    typer.echo(f"rows with an older key: {rotate.stale_rows(_engine()):,}")


@keys_app.command("rotate")
def rotate_keys(
    new_key: bool = typer.Option(True, help="Generate a new current key in the key file first "
                                 "(--no-new-key: only re-encrypt with the current key, e.g. "
                                 "after adding one to KANGQIAO_FIELD_KEYS)."),
    batch: int = typer.Option(500, min=1, help="Rows per transaction."),
) -> None:
    """Make a new key current and re-encrypt every stored row with it (resumable: run it
    again after an interruption). Restart API workers after adding a key so that they write
    with it."""
    from kangqiao.security import fieldcrypt, rotate
    from kangqiao.security.cli import _engine
    from kangqiao.security.fieldkeys import FieldKeyError, add_key

    settings = get_settings()
    try:
        if new_key:
            kid = add_key(settings)
            typer.echo(f"new current key {kid}")
        ring = fieldcrypt.configure(settings)
    except FieldKeyError as exc:
        raise _fail(str(exc)) from None

    def shown(table: str, report: rotate.RotationReport) -> None:
        typer.echo(f"\r  {table}: {report.scanned:,} rows scanned, "
                   f"{report.reencrypted:,} re-encrypted", nl=False)

    engine = _engine()
    reports = rotate.reencrypt(engine, batch=batch, progress=shown)
    typer.echo("")
    rotate.vacuum(engine)
    total = sum(r.reencrypted for r in reports.values())
    typer.echo(f"re-encrypted {total:,} rows with key {ring.current}")


@research_app.command("export")
def research_export(
    out: Path = typer.Option(..., help="Output folder (created; must be empty)."),
    input_dir: Path | None = typer.Option(None, "--input", help="Read an NDJSON export or "
                                          "synthetic county instead of the store."),
    k: int = typer.Option(5, min=2, help="k of k-anonymity over the quasi-identifiers."),
    suppress_below: int = typer.Option(10, min=0, help="Aggregate counts below this are "
                                       "suppressed (0: off)."),
    types: str | None = typer.Option(None, help="Resource types, comma-separated (default: "
                                     "every patient-data type)."),
) -> None:
    """De-identified NDJSON of the county (direct identifiers removed, dates shifted per
    patient, pseudonymous ids, age, sex and area generalised to k-anonymity) and aggregate
    counts with small cells suppressed."""
    from kangqiao.cli import _cli_access, _system_store
    from kangqiao.security.deid.export import DeidError, export, ndjson_reader, store_reader
    from kangqiao.security.deid.keys import research_key

    settings = get_settings()
    wanted = [t.strip() for t in types.split(",") if t.strip()] if types else None
    try:
        if input_dir is not None:
            if not input_dir.is_dir():
                raise DeidError(f"{input_dir} is not a folder")
            source = ndjson_reader(input_dir)
        else:
            source = store_reader(_system_store(), _cli_access())
        report = export(*source, out, key=research_key(settings), k=k,
                        suppress_below=suppress_below, wanted=wanted)
    except DeidError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"{report.patients_kept:,} patients kept, {report.patients_suppressed:,} "
               f"suppressed (k={k}, smallest group {report.k}); {report.resources:,} "
               f"resources written to {out}")
