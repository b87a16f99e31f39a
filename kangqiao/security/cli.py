"""``kangqiao auth ...`` (accounts, OAuth clients, tokens) and ``kangqiao audit ...`` (verify,
purge, break-glass review): operator commands on the server itself, acting as the trusted
system."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import typer
from sqlalchemy import Engine, select

from kangqiao.settings import get_settings

auth = typer.Typer(help="Accounts, OAuth clients and access tokens.", no_args_is_help=True)
user = typer.Typer(help="User accounts.", no_args_is_help=True)
client = typer.Typer(help="OAuth clients (SMART Backend Services systems and apps).",
                     no_args_is_help=True)
auth.add_typer(user, name="user")
auth.add_typer(client, name="client")
audit_app = typer.Typer(help="The audit trail: verify the chain, apply retention, review "
                        "break-glass access.", no_args_is_help=True)


def _engine() -> Engine:
    from kangqiao.fhir.store.db import make_engine
    from kangqiao.fhir.store.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)
    return make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@user.command("create")
def user_create(
    username: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option(..., help="village-doctor, gp, specialist, nurse, clinician, "
                             "public-health, lab, county-admin, platform-admin or resident."),
    practitioner_role: str | None = typer.Option(
        None, help="PractitionerRole/<id>: fills in organisation, practitioner and name."),
    organization: str | None = typer.Option(None, help="Organization/<id>."),
    patient: str | None = typer.Option(None, help="Patient/<id> (residents)."),
    name: str | None = typer.Option(None, help="Display name."),
) -> None:
    """Create an account with a random initial password (printed once; changed at first
    login)."""
    from kangqiao.security import accounts, passwords
    from kangqiao.security.directory import practitioner_of

    engine = _engine()
    practitioner = None
    if practitioner_role:
        found = practitioner_of(engine, practitioner_role)
        if found is None:
            raise _fail(f"{practitioner_role} is not in the store")
        organization = organization or found.organization
        practitioner, name = found.practitioner, name or found.name
    password = passwords.generate(username)
    try:
        account = accounts.create(engine, get_settings(), username=username, password=password,
                                  role=role, display_name=name, organization=organization,
                                  practitioner=practitioner,
                                  practitioner_role=practitioner_role, patient=patient)
    except accounts.AccountError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"created {account.username} ({account.role}, {account.organization or '-'}, "
               f"{account.actor})")
    typer.echo(f"initial password (must be changed at first login): {password}")


@client.command("create")
def client_create(
    name: str = typer.Option(..., help="What the client is."),
    scope: str = typer.Option(..., help="Scopes it may be granted, e.g. 'system/*.rs' or "
                              "'system/Observation.rs?category=vital-signs'."),
    jwks: Path | None = typer.Option(None, help="JSON file with its public JWKS "
                                     "(private_key_jwt, RS384/ES384)."),
    secret: bool = typer.Option(False, "--secret", help="Give it a client secret instead."),
    client_id: str | None = typer.Option(None, "--id", help="Client id (default: random)."),
    kind: str = typer.Option("system", help="system (Backend Services) or app (PKCE)."),
    redirect_uri: list[str] = typer.Option([], help="Redirect URI of an app (repeatable)."),
) -> None:
    """Register an OAuth client."""
    from kangqiao.security import clients

    keys = None
    if jwks is not None:
        try:
            keys = json.loads(jwks.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot read {jwks}: {exc}") from exc
    try:
        registered, client_secret = clients.register(
            _engine(), name=name, kind=kind, scopes=scope, client_id=client_id, jwks=keys,
            with_secret=secret, redirect_uris=tuple(redirect_uri))
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"client_id: {registered.client_id} ({registered.kind}, "
               f"{registered.auth_method}, scopes: {' '.join(registered.scopes)})")
    if client_secret:
        typer.echo(f"client_secret (shown once): {client_secret}")


@auth.command("token")
def token(
    client_id: str = typer.Option(..., "--client", help="A registered system client."),
    scope: str = typer.Option(..., help="Scopes wanted (within the client's)."),
) -> None:
    """Print a short-lived access token for a registered system client."""
    from kangqiao.security import audit, clients
    from kangqiao.security.scopes import narrow, split
    from kangqiao.security.tokens import Tokens

    settings = get_settings()
    engine = _engine()
    found = clients.find(engine, client_id)
    if found is None or not found.active or found.kind != "system":
        raise _fail(f"{client_id} is not an active system client")
    granted = " ".join(narrow(split(scope), found.scopes))
    if not granted:
        raise _fail(f"none of {scope!r} is allowed for {client_id} "
                    f"(allowed: {' '.join(found.scopes)})")
    value, _ = Tokens(settings).issue(engine, subject=client_id, scope=granted,
                                      client_id=client_id,
                                      minutes=settings.system_token_minutes,
                                      claims={"role": "system"})
    audit.write(engine, audit.hmac_key(settings), [audit.Record(
        category="token", action="E", subtype="cli", outcome="0", actor=f"system/{client_id}",
        role="system", client_id=client_id, detail={"scope": granted})])
    typer.echo(value)


@audit_app.command("verify")
def verify() -> None:
    """Recompute the audit hash chain; exit 1 when it is broken."""
    from kangqiao.security import audit

    result = audit.verify(_engine(), audit.hmac_key(get_settings()))
    if not result.ok:
        typer.echo(f"BROKEN at record {result.broken_at}: {result.reason} "
                   f"({result.checked:,} records verified before it)")
        raise typer.Exit(1)
    typer.echo(f"ok: {result.checked:,} records, head {result.head_seq} {result.head_hash}")


@audit_app.command("purge")
def purge(days: int | None = typer.Option(None, help="Keep this many days (default: the "
                                          "audit_retention_days setting).")) -> None:
    """Remove audit records older than the retention period."""
    from kangqiao.fhir.store.records import utcnow
    from kangqiao.security import audit

    settings = get_settings()
    keep = days or settings.audit_retention_days
    removed = audit.purge(_engine(), audit.hmac_key(settings), utcnow() - timedelta(days=keep))
    typer.echo(f"removed {removed:,} records older than {keep} days")


@audit_app.command("breakglass")
def breakglass(limit: int = typer.Option(50, help="How many, newest first.")) -> None:
    """Break-glass accesses for review: who, when, which patients, why."""
    from kangqiao.security.schema import audit_log as a

    with _engine().connect() as conn:
        rows = conn.execute(select(a).where(a.c.break_glass.is_not(None))
                            .order_by(a.c.seq.desc()).limit(limit)).all()
    for r in rows:
        typer.echo(f"{r.recorded:%Y-%m-%d %H:%M} {r.username or r.actor} ({r.role}, "
                   f"{r.organization}) {r.subtype} {','.join(r.patients)} status {r.status}: "
                   f"{r.break_glass}")
    if not rows:
        typer.echo("no break-glass access recorded")
