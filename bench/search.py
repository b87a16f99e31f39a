"""Search latency on a county database: the queries a grassroots doctor's screens make.

    uv run python bench/search.py --db sqlite:///var/bench/county-20k.db [--repeat 30]
    uv run python bench/search.py --db postgresql+psycopg://postgres@127.0.0.1/kq_bench_20k

Load the database once (``KANGQIAO_DATABASE_URL=... kangqiao import /work/data/synth-20k``,
about 180,000 resources; or ``kangqiao demo``) and keep it: the benchmark only reads. Without
``--db`` it generates and imports a small county first (minutes). Every query runs through
the application's secured store (``PolicyStore``: the policy's SQL filter and its per-hit
check are in the path, as for the API), once as a system client and once as a GP of the
largest township health centre (treating purpose: the centre's managed residents, the GP's
own patients and referrals). Prints the median and 95th percentile per query shape, in ms,
and with ``--plans`` the SQL plan of each (EXPLAIN QUERY PLAN / EXPLAIN).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, text

from kangqiao.app import create_app
from kangqiao.fhir.bulk.importer import import_ndjson, ndjson_files
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.migrate import upgrade
from kangqiao.fhir.store.store import FhirStore, UnitOfWork
from kangqiao.security import rules
from kangqiao.security.directory import staff_with_role
from kangqiao.security.gate import Access
from kangqiao.settings import Settings
from kangqiao.synth.generate import generate

SYSTEM = Access(actor="system/bench", scopes=frozenset({"system/*.rs"}), role="system")
TODAY = date(2026, 11, 1)  # the synthetic county's end date
BP, HBA1C = "http://loinc.org|85354-9", "http://loinc.org|4548-4"
Work = Callable[[UnitOfWork], object]


@dataclass
class County:
    """The ids the queries need, read from the store once."""

    patient: str
    identifier: str
    surname: str
    gp: Access
    gp_role: str
    centre: str


def _store(url: str | None, residents: int, tmp: Path) -> FhirStore:
    if url is None:
        url = f"sqlite:///{tmp / 'county.db'}"
        upgrade(url)
        generate(tmp / "county", residents, 11)
        files = [f for f in ndjson_files([tmp / "county"]) if "ground-truth" not in f.parts]
        store: FhirStore = create_app(Settings(database_url=url)).state.store
        import_ndjson(store, Access(actor="system/bench", scopes=frozenset({"system/*.cruds"}),
                                    role="system"), files)
        return store
    upgrade(url)
    secured: FhirStore = create_app(Settings(database_url=url)).state.store
    return secured


def _county(store: FhirStore) -> County:
    """A GP of the health centre managing most residents, and one of the GP's patients
    with blood-pressure readings (so the per-patient queries find something)."""
    org = schema.search_reference
    with store.engine.connect() as conn:
        centre = conn.execute(
            select(org.c.target_id).where(org.c.resource_type == "Patient",
                                          org.c.param == "organization")
            .group_by(org.c.target_id).order_by(func.count().desc()).limit(1)).scalar_one()
    staff = staff_with_role(store.engine, "gp", f"Organization/{centre}")
    assert staff is not None, f"no GP at {centre}"
    gp = Access(actor=staff.practitioner or "Practitioner/unknown", role=rules.GP,
                scopes=frozenset({"user/*.cruds"}), organization=staff.organization,
                practitioner_role=staff.practitioner_role, user="bench-gp")
    with store.read(SYSTEM) as uow:
        mine = uow.search("Observation", [("code", BP), ("performer", staff.practitioner_role),
                                          ("subject.organization", centre)],
                          count=1, total="none").items
        ref = ((mine[0].content or {}).get("subject") or {}).get("reference", "") if mine \
            else ""
        pid = ref.partition("/")[2] or uow.search(
            "Patient", [("organization", centre)], count=1, total="none").items[0].id
        patient = uow.read("Patient", pid).content or {}
    name = (patient.get("name") or [{}])[0]
    surname = str(name.get("family") or (name.get("text") or "王")[:1])
    return County(pid, str(patient["identifier"][0]["value"]), surname, gp,
                  staff.practitioner_role, centre)


def _queries(c: County) -> list[tuple[str, str, list[tuple[str, str]], int, str]]:
    """(label, type, params, _count, _total) per query shape."""
    since = (TODAY - timedelta(days=90)).isoformat()
    return [
        ("Patient?identifier=<resident id>", "Patient", [("identifier", c.identifier)], 10,
         "accurate"),
        ("Patient?name=<surname> (20, no total)", "Patient", [("name", c.surname)], 20, "none"),
        ("Patient?name=<surname> (20, total)", "Patient", [("name", c.surname)], 20,
         "accurate"),
        ("patient's last 6 BP (subject,code,-date)", "Observation",
         [("subject", f"Patient/{c.patient}"), ("code", BP), ("_sort", "-date")], 6, "none"),
        ("HbA1c in the last 90 days (code+date)", "Observation",
         [("code", HBA1C), ("date", f"ge{since}")], 50, "accurate"),
        ("lab from county hospital, 90 days (chain)", "Observation",
         [("category", "laboratory"), ("date", f"ge{since}"),
          ("performer:Organization.partof", "Organization/org-county-hospital")], 50, "none"),
        ("overdue appointments of my patients", "Appointment",
         [("status", "booked"), ("date", f"lt{TODAY.isoformat()}"),
          ("patient.general-practitioner", c.gp_role)], 50, "accurate"),
        ("overdue appointments of the centre", "Appointment",
         [("status", "booked"), ("date", f"lt{TODAY.isoformat()}"),
          ("patient.organization", f"Organization/{c.centre}")], 50, "none"),
        ("I10 diagnosed this year (code+onset-date)", "Condition",
         [("code", "I10"), ("onset-date", f"ge{TODAY.year}-01-01")], 20, "accurate"),
        ("Condition?code=I10&_include=subject", "Condition",
         [("code", "I10"), ("_include", "Condition:subject")], 20, "accurate"),
        ("systolic >= 160 (composite)", "Observation",
         [("component-code-value-quantity", "http://loinc.org|8480-6$ge160")], 50, "none"),
        ("HbA1c in the last 90 days, _total=estimate", "Observation",
         [("code", HBA1C), ("date", f"ge{since}")], 50, "estimate"),
        ("Condition?code=I10&_include, _total=estimate", "Condition",
         [("code", "I10"), ("_include", "Condition:subject")], 20, "estimate"),
    ]


def _run(rtype: str, params: list[tuple[str, str]], count: int, total: str) -> Work:
    includes = [v for k, v in params if k == "_include"]

    def work(uow: UnitOfWork) -> object:
        page = uow.search(rtype, params, count=count, total=total)
        if includes:
            src, _, prm = includes[0].partition(":")
            uow.included(page.items, [(src, prm, None)], [])
        return page
    return work


def _time(store: FhirStore, access: Access, work: Work, n: int) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        with store.read(access) as uow:
            work(uow)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1,
                                                   round(0.95 * (len(samples) - 1)))]


def _plan(store: FhirStore, access: Access, rtype: str, params: list[tuple[str, str]]) -> str:
    """The plan of the page query (the count query has the same WHERE)."""
    sqlite = store.engine.dialect.name == "sqlite"
    seen: list[tuple[str, Any]] = []

    def spy(conn: Any, cursor: Any, stmt: str, parameters: Any, context: Any,
            executemany: bool) -> None:
        if stmt.lstrip().upper().startswith("SELECT RESOURCE.") and not seen:
            seen.append((stmt, parameters))

    with store.read(access) as uow:
        event.listen(uow.conn, "before_cursor_execute", spy)
        uow.search(rtype, [p for p in params if p[0] != "_include"], count=1, total="none")
        event.remove(uow.conn, "before_cursor_execute", spy)
        if not seen:
            return "    (no query)"
        sql, args = seen[0]
        prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
        rows = uow.conn.exec_driver_sql(prefix + sql, args).all()
        return "\n".join("    " + (str(r[-1]) if sqlite else str(r[0])) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default=None, help="SQLAlchemy URL of an existing store")
    parser.add_argument("--residents", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--plans", action="store_true", help="print each query's SQL plan")
    parser.add_argument("--only", default=None, help="run the shapes whose label has this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(args.db, args.residents, Path(tmp))
        with store.engine.connect() as conn:
            n_res = conn.execute(text("select count(*) from resource")).scalar_one()
            n_pat = conn.execute(text("select count(*) from resource where resource_type = "
                                      "'Patient'")).scalar_one()
            n_obs = conn.execute(text("select count(*) from resource where resource_type = "
                                      "'Observation'")).scalar_one()
        c = _county(store)
        print(f"{store.engine.dialect.name}: {n_res:,} resources, {n_pat:,} patients, "
              f"{n_obs:,} observations; median / p95 ms over {args.repeat} runs "
              f"(GP {c.gp_role} of {c.centre})")
        print(f"  {'query':<46} {'system':>17} {'GP':>17}")
        for label, rtype, params, count, total in _queries(c):
            if args.only and args.only not in label:
                continue
            work = _run(rtype, params, count, total)
            cells = []
            for access in (SYSTEM, c.gp):
                _time(store, access, work, 2)  # warm caches (policy SQL, pages)
                median, p95 = _time(store, access, work, args.repeat)
                cells.append(f"{median:8.1f} {p95:8.1f}")
            print(f"  {label:<46} {cells[0]} {cells[1]}", flush=True)
            if args.plans:
                print(_plan(store, c.gp, rtype, params))


if __name__ == "__main__":
    main()
