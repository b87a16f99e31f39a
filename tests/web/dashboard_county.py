"""A small synthetic county (``kangqiao synth``, 400 residents) loaded into the test store,
with the demo's accounts (``ensure_demo_accounts``: the county-admin, a GP of
org-thc-01, ...) given a known password, for the dashboard tests."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from sqlalchemy import Engine

from kangqiao.fhir.bulk.importer import import_ndjson, ndjson_files
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security import accounts, passwords
from kangqiao.security.demo_accounts import ensure_demo_accounts
from kangqiao.security.gate import SYSTEM
from kangqiao.settings import Settings

RESIDENTS, SEED = 400, 7
PASSWORD = "Kq-dash-Pa55word"


@functools.cache
def county_folder() -> Path:
    """Generated once per test process (same arguments, same bytes)."""
    from kangqiao.synth.generate import generate

    folder = Path(tempfile.mkdtemp(prefix="kangqiao-dash-county-")) / "county"
    generate(folder, RESIDENTS, SEED)
    return folder


def county_files() -> list[Path]:
    return [f for f in ndjson_files([county_folder()]) if "ground-truth" not in f.parts]


@functools.cache
def _hash(password: str) -> str:
    return _argon2(password)


_argon2 = passwords.hash_password


def load_county(store: FhirStore, engine: Engine, settings: Settings) -> dict[str, str]:
    """Import the county and create the demo accounts; username -> role."""
    report = import_ndjson(store, SYSTEM, county_files(), workers=0)
    assert not report.rejected, report.rejected[:3]
    made = ensure_demo_accounts(engine, settings)
    for account in made:
        accounts.set_password(engine, account.username, PASSWORD, must_change=False)
    return {a.username: a.role for a in made}
