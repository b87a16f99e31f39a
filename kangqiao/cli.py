"""``kangqiao``: the command-line tool (serve, migrate, and more as capabilities grow)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kangqiao.settings import get_settings

if TYPE_CHECKING:
    from kangqiao.fhir.store.store import FhirStore
    from kangqiao.security.gate import Access

app = typer.Typer(help="Kangqiao (康桥): FHIR R4 platform for a county medical community.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


@app.command()
def migrate(
    revision: str = typer.Option("head", help="Alembic revision to upgrade to."),
) -> None:
    """Create or upgrade the database schema (KANGQIAO_DATABASE_URL)."""
    from kangqiao.fhir.store.migrate import upgrade

    url = get_settings().database_url
    upgrade(url, revision)
    typer.echo(f"database at {_redacted(url)} is at revision {revision}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, help="Worker processes (2 on a 2-core machine)."),
    migrate_first: bool = typer.Option(True, "--migrate/--no-migrate",
                                       help="Upgrade the schema before serving."),
) -> None:
    """Serve the FHIR API and the web pages on the configured database."""
    import uvicorn

    from kangqiao.fhir.store.migrate import upgrade

    # a served county builds its dashboard at start (the workers read it from the environment)
    os.environ.setdefault("KANGQIAO_DASHBOARD_WARMUP", "true")
    get_settings.cache_clear()
    settings = get_settings()
    if migrate_first:
        upgrade(settings.database_url)
    typer.echo(f"Kangqiao serving http://{host}:{port}/ (FHIR base http://{host}:{port}/fhir) "
               f"on {_redacted(settings.database_url)}")
    uvicorn.run("kangqiao.app:create_app", factory=True, host=host, port=port,
                workers=workers, log_level="info")


@app.command()
def demo(
    residents: int = typer.Option(20_000, min=100, help="Residents of the demo county."),
    seed: int = typer.Option(2026, help="Seed of the synthetic county."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="Start the server."),
) -> None:
    """Load the synthetic demo county (once) into the configured database, then serve."""
    from kangqiao.demo import ensure_demo_county, progress_bar, total_resources
    from kangqiao.fhir.bulk.importer import ImportReport
    from kangqiao.fhir.store.migrate import upgrade
    from kangqiao.web.i18n import MESSAGES

    settings = get_settings()
    upgrade(settings.database_url)
    store = _system_store()
    typer.echo(f"演示县 / demo county: {residents:,} residents, seed {seed}")

    def generating(done: int, total: int) -> None:
        if done == total or done % 500 == 0:
            typer.echo(f"\r  生成 generating {progress_bar(done, total)} {done:,}/{total:,} "
                       "residents", nl=False, err=True)

    def importing(report: ImportReport, total: int) -> None:
        done = report.accepted + report.skipped + len(report.rejected)
        typer.echo(f"\r  载入 loading    {progress_bar(done, total)} {done:,}/{total:,} "
                   f"resources ({report.rate:,.0f}/s)   ", nl=False, err=True)

    county = ensure_demo_county(store, residents, seed, on_generate=generating,
                                on_import=importing)
    typer.echo("", err=True)
    typer.echo(f"{county.name}: {total_resources(county.folder):,} resources "
               f"({county.report.accepted:,} loaded now, {county.report.skipped:,} already "
               f"there, {len(county.report.rejected)} rejected) in {county.report.seconds:.1f} s")
    typer.echo(f"\n  Workbench / 工作台:  http://{host}:{port}/")
    typer.echo(f"  FHIR API:           http://{host}:{port}/fhir")
    typer.echo(f"\n  Demo accounts / 演示账户 (sign in at http://{host}:{port}/login; "
               "initial passwords must be changed / 首次登录须修改初始密码):")
    for account in county.accounts:
        password = account.password or "(changed by its user / 已由用户修改)"
        label = MESSAGES.get(f"role_{account.role}", {})
        role = f"{label.get('zh-CN', account.role)} ({label.get('en', account.role)})"
        where = (account.organization or "").removeprefix("Organization/")
        # the ASCII columns first: Chinese characters are two columns wide in a terminal
        typer.echo(f"    {account.username:<13} {password:<20} {account.linked:<26} "
                   + " · ".join(x for x in (account.name, role, where) if x))
    if serve_after:
        serve(host=host, port=port, workers=1, migrate_first=False)


@app.command("import")
def import_(
    paths: list[Path] = typer.Argument(..., help="NDJSON files (.ndjson, .ndjson.gz) or "
                                        "directories of them."),
    job: str | None = typer.Option(None, help="Job name; a re-run of the same job resumes "
                                   "after the last committed line (default: from the files)."),
    restart: bool = typer.Option(False, help="Ignore earlier progress of this job."),
    batch_size: int = typer.Option(2000, min=1, max=50_000, help="Resources per transaction."),
    workers: int | None = typer.Option(None, min=0, help="Worker processes for parsing and "
                                       "validation (default: one per core; 0 = in process)."),
    defer_indexes: bool | None = typer.Option(
        None, "--defer-indexes/--keep-indexes", help="Into an empty store, build the search "
        "indexes once at the end instead of row by row (default: when the input is 64 MB or "
        "more)."),
) -> None:
    """Bulk-load FHIR NDJSON into the store: resumable, rejected lines reported."""
    from kangqiao.fhir.bulk.importer import ImportReport, import_ndjson
    from kangqiao.fhir.store.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)

    def show(report: ImportReport) -> None:
        if report.indexing:
            typer.echo(f"\n  {report.accepted:,} imported; building the search indexes ...",
                       nl=False, err=True)
            return
        typer.echo(f"\r  {report.accepted:,} imported, {len(report.rejected):,} rejected, "
                   f"{report.rate:,.0f} resources/s", nl=False, err=True)

    try:
        report = import_ndjson(_system_store(), _cli_access(), paths, job=job, restart=restart,
                               batch_size=batch_size, workers=workers, progress=show,
                               defer_indexes=defer_indexes)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo("", err=True)
    _analyze(settings.database_url)
    typer.echo(f"job {report.job}: {report.accepted:,} resources imported in "
               f"{report.seconds:.1f} s ({report.rate:,.0f}/s"
               + (f"; search indexes built in {report.index_seconds:.1f} s"
                  if report.index_seconds else "")
               + f"), {report.skipped:,} lines "
               f"already imported, {len(report.rejected):,} rejected")
    for bad in report.rejected[:50]:
        typer.echo(f"  rejected {bad.file}:{bad.line}: {bad.reason}")
    if len(report.rejected) > 50:
        typer.echo(f"  ... and {len(report.rejected) - 50:,} more")
    if report.rejected:
        raise typer.Exit(1)


def _analyze(url: str) -> None:
    """PostgreSQL plans searches from table statistics: refresh them after a bulk load
    (autovacuum may be off, or lag behind a load this size). SQLite's search plans are
    chosen by the query builder and need none (kangqiao/fhir/search/plan.py)."""
    from sqlalchemy import create_engine, text

    if not url.startswith("postgresql"):
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


def _system_store() -> FhirStore:
    from kangqiao.fhir.store.db import make_engine
    from kangqiao.fhir.store.store import FhirStore

    settings = get_settings()
    return FhirStore(make_engine(settings.database_url,
                                 sqlite_synchronous=settings.sqlite_synchronous))


def _cli_access() -> Access:
    from kangqiao.security.gate import Access

    return Access(actor="system/kangqiao-cli", scopes=frozenset({"system/*.cruds"}))


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _mount_capabilities() -> None:
    from kangqiao.analytics.cli import app as view_app
    from kangqiao.analytics.indicators_cli import app as indicators_app
    from kangqiao.security.cli import audit_app, auth
    from kangqiao.security.protect_cli import keys_app, research_app
    from kangqiao.synth.cli import synth

    app.command("synth")(synth)
    app.add_typer(view_app, name="view", help="SQL-on-FHIR v2 views (DuckDB).")
    app.add_typer(indicators_app, name="indicators",
                  help="The county indicator catalogue, computed on DuckDB.")
    app.add_typer(auth, name="auth")
    app.add_typer(audit_app, name="audit")
    app.add_typer(keys_app, name="keys")
    app.add_typer(research_app, name="research")


_mount_capabilities()

if __name__ == "__main__":
    app()
