"""The family doctor's "today" work lists at the demo county's size and above.

Loads a synthetic county into SQLite once (kept in ``--db``, so later runs skip the import;
``--source DIR`` imports an existing ``kangqiao synth`` output such as /work/data/synth-100k),
then times ``kangqiao.chronic.worklists.build`` through the application's store and policy
(``PolicyStore``, each doctor signed in as a GP of their centre): the median of ``--repeat``
runs per scope, wall clock and this process's CPU time (the machine is shared: CPU time is
the steadier figure). Scopes: the busiest doctors, the organisation whose scope is nearest
``--panel`` patients (issue 6's "doctor with 2,000 managed patients": no doctor of the
synthetic county has that many, a township centre does), the largest organisation, and the
whole county with system access. Then the full HTTP page (``GET /workbench`` through the ASGI
app with a signed-in session: session lookup, build, names, template rendering) for a GP
account of that ~2,000-patient organisation (no PractitionerRole: the organisation's lists)
and for the busiest doctor's own account (a PractitionerRole: the doctor scope, what a
family doctor signed in sees). Prints milliseconds.

    uv run python bench/worklist.py [--residents 20000] [--db var/bench/worklist-20000.db]
    uv run python bench/worklist.py --source /work/data/synth-100k --db var/bench/worklist-100000.db
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date
from pathlib import Path

import orjson
from sqlalchemy import Engine, text

from kangqiao.chronic.worklists import Scope, build
from kangqiao.fhir.bulk.importer import import_ndjson
from kangqiao.fhir.store.db import make_engine
from kangqiao.fhir.store.migrate import upgrade
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM, Access
from kangqiao.security.policy import Policy
from kangqiao.security.store import PolicyStore
from kangqiao.synth.generate import generate

TODAY = date(2026, 11, 1)  # the synthetic county's end date


def load(residents: int, db: Path, source: Path | None = None) -> Engine:
    url = f"sqlite:///{db}"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        src = source or db.with_suffix(".ndjson.d")
        if source is None:
            generate(src, residents=residents, seed=1)
        upgrade(url)
        started = time.perf_counter()
        report = import_ndjson(FhirStore(make_engine(url)), SYSTEM, sorted(src.glob("*.ndjson")))
        print(f"imported {report.accepted} resources in {time.perf_counter() - started:.0f} s")
    return make_engine(url)


def doctors(engine: Engine, n: int) -> list[tuple[str, str, str]]:
    """(PractitionerRole id, Practitioner ref, Organization ref) of the busiest GPs."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "select r.target_id, count(*) from search_reference r where "
            "r.resource_type='Patient' and r.param='general-practitioner' group by 1 "
            "order by 2 desc limit :n"), {"n": n}).all()
        out = []
        for role, _ in rows:
            content = conn.execute(text(
                "select content from resource where resource_type='PractitionerRole' and id=:i"),
                {"i": role}).scalar_one()
            doc = orjson.loads(content) if isinstance(content, str | bytes) else content
            out.append((role, doc["practitioner"]["reference"], doc["organization"]["reference"]))
    return out


def organisations(engine: Engine) -> list[tuple[str, int]]:
    """Organisations by the number of patients they manage (managingOrganization)."""
    with engine.connect() as conn:
        return [(str(o), int(n)) for o, n in conn.execute(text(
            "select target_id, count(*) from search_reference where resource_type='Patient' "
            "and param='organization' group by 1 order by 2 desc")).all()]


def timed(store: FhirStore, access: Access, scope: Scope, repeat: int
          ) -> tuple[float, float, int, int]:
    walls, cpus, lists = [], [], None
    with store.read(access) as uow:  # the first call fills the policy's caches
        build(uow, scope, TODAY)
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        with store.read(access) as uow:
            lists = build(uow, scope, TODAY)
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    assert lists is not None
    return (statistics.median(walls), statistics.median(cpus), lists.patients,
            sum(lists.counts().values()))


def gp_access(practitioner: str | None, org: str, role: str | None) -> Access:
    return Access(actor=practitioner or "Practitioner/bench", role="gp", organization=org,
                  practitioner_role=role, scopes=frozenset({"user/*.cruds"}))


def page(engine: Engine, db: Path, org: str, repeat: int, practitioner: str | None = None,
         role: str | None = None) -> tuple[float, float]:
    """Median wall and CPU ms of ``GET /workbench`` for a GP account of ``org``: without a
    practitioner ``role`` the page shows the organisation's lists, with one the doctor's."""
    from fastapi.testclient import TestClient

    from kangqiao.app import create_app
    from kangqiao.security import accounts, sessions
    from kangqiao.settings import Settings

    settings = Settings(database_url=f"sqlite:///{db}",
                        audit_hmac_key=b"bench-audit-key-0123456789abcdef".hex(),
                        secrets_dir=db.parent / "secrets")
    username = "bench-" + (role or org).partition("/")[2]
    account = accounts.find(engine, username=username) or accounts.create(
        engine, settings, username=username, password="Bench-Pa55word-" + "x" * 8,
        role="gp", organization=org, practitioner=practitioner, practitioner_role=role,
        must_change=False)
    sid, _ = sessions.start(engine, settings, account, "127.0.0.1")
    walls, cpus = [], []
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        client.cookies.set(sessions.COOKIE, sid)
        for i in range(repeat + 1):
            started, cpu = time.perf_counter(), time.process_time()
            response = client.get("/workbench")
            if i:  # the first request warms the caches
                walls.append((time.perf_counter() - started) * 1000)
                cpus.append((time.process_time() - cpu) * 1000)
            assert response.status_code == 200 and "data-list" in response.text, \
                response.status_code
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--residents", type=int, default=20_000)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--source", type=Path, default=None,
                        help="NDJSON of `kangqiao synth` to import instead of generating")
    parser.add_argument("--panel", type=int, default=2000,
                        help="patients of the scope that stands for a large panel")
    parser.add_argument("--doctors", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    db = args.db or Path(f"var/bench/worklist-{args.residents}.db")
    engine = load(args.residents, db, args.source)
    store = PolicyStore(engine, Policy(engine), b"bench-audit-key-0123456789abcdef")
    print(f"{'scope':48} {'patients':>8} {'entries':>8} {'wall ms':>9} {'cpu ms':>8}")

    def show(label: str, figures: tuple[float, float, int, int]) -> None:
        wall, cpu, patients, entries = figures
        print(f"{label:48} {patients:8d} {entries:8d} {wall:9.1f} {cpu:8.1f}", flush=True)

    busiest = doctors(engine, args.doctors)
    for role, practitioner, org in busiest:
        scope = Scope("doctor", f"PractitionerRole/{role}")
        show(f"doctor {role}", timed(store, gp_access(practitioner, org, scope.ref), scope,
                                     args.repeat))
    orgs = organisations(engine)
    panel = min(orgs, key=lambda o: abs(o[1] - args.panel))[0]
    for org in dict.fromkeys([panel, orgs[0][0]]):
        ref = f"Organization/{org}"
        show(f"organization {org}", timed(store, gp_access(None, ref, None),
                                          Scope("organization", ref), args.repeat))
    show("county (system, no policy)", timed(FhirStore(engine), SYSTEM, Scope(
        "organization", "Organization/org-county-hospital"), args.repeat))
    wall, cpu = page(engine, db, f"Organization/{panel}", args.repeat)
    print(f"{'GET /workbench, GP of ' + panel:48} {'':8} {'':8} {wall:9.1f} {cpu:8.1f}")
    role, practitioner, org = busiest[0]
    wall, cpu = page(engine, db, org, args.repeat, practitioner, f"PractitionerRole/{role}")
    print(f"{'GET /workbench, doctor ' + role:48} {'':8} {'':8} {wall:9.1f} {cpu:8.1f}")


if __name__ == "__main__":
    main()
