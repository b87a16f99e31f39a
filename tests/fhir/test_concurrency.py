"""Concurrency and crash safety of the store, on SQLite and PostgreSQL, with real threads and a
real killed process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine, func, select

from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.store import outbox, schema
from kangqiao.fhir.store.db import write_transaction
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.gate import SYSTEM


def _patient(pid: str, n: int = 0) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "name": [{"text": f"患者{n}"}]}


def _versions(engine: Engine, pid: str) -> list[int]:
    h = schema.resource_history
    with engine.connect() as conn:
        return [r.version_id for r in conn.execute(
            select(h.c.version_id).where(h.c.id == pid).order_by(h.c.version_id))]


def test_concurrent_updates_never_skip_or_repeat_versions(store: FhirStore,
                                                          engine: Engine) -> None:
    with store.write(SYSTEM) as uow:
        uow.update("Patient", "p1", _patient("p1"))

    def bump(n: int) -> int:
        with store.write(SYSTEM) as uow:
            stored, _ = uow.update("Patient", "p1", _patient("p1", n))
            return stored.version_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(pool.map(bump, range(40)))
    assert sorted(versions) == list(range(2, 42))
    assert _versions(engine, "p1") == list(range(1, 42))


def _guarded(store: FhirStore, n: int, version: int) -> str:
    try:
        with store.write(SYSTEM) as uow:
            uow.update("Patient", "p2", _patient("p2", n), if_match=version)
        return "won"
    except FhirError as exc:
        return str(exc.status)


def test_if_match_lets_only_one_of_two_concurrent_updates_win(store: FhirStore) -> None:
    with store.write(SYSTEM) as uow:
        uow.update("Patient", "p2", _patient("p2"))
    for _round in range(5):
        with store.read(SYSTEM) as uow:
            current = uow.read("Patient", "p2").version_id
        with ThreadPoolExecutor(max_workers=2) as pool:
            outcomes = list(pool.map(_guarded, [store] * 2, range(2), [current] * 2))
        assert sorted(outcomes) == ["412", "won"]
    assert _guarded(store, 0, 1) == "412"  # version 1 is long gone


def test_concurrent_update_as_create_of_one_id(store: FhirStore, engine: Engine) -> None:
    def put(n: int) -> tuple[int, bool]:
        with store.write(SYSTEM) as uow:
            stored, created = uow.update("Patient", "new-one", _patient("new-one", n))
            return stored.version_id, created

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(put, range(8)))
    assert sum(created for _, created in results) == 1
    assert _versions(engine, "new-one") == list(range(1, 9))


def test_concurrent_conditional_creates_make_one_resource(store: FhirStore,
                                                          engine: Engine) -> None:
    body = {"resourceType": "Patient",
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.1", "value": "42"}]}

    def create(_n: int) -> bool:
        with store.write(SYSTEM) as uow:
            return uow.conditional_create(
                "Patient", body, "identifier=urn:oid:2.16.156.10011.1.1|42")[1]

    with ThreadPoolExecutor(max_workers=4) as pool:
        created = list(pool.map(create, range(8)))
    assert created.count(True) == 1
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(schema.resource)).scalar_one()
    assert n == 1


def test_outbox_has_one_event_per_committed_write(store: FhirStore, engine: Engine) -> None:
    with store.write(SYSTEM) as uow:
        uow.update("Patient", "o1", _patient("o1"))
        uow.update("Patient", "o1", _patient("o1", 1))
        uow.delete("Patient", "o1")
    try:
        with store.write(SYSTEM) as uow:
            uow.create("Patient", _patient("x"))
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    with write_transaction(engine) as conn:
        events = outbox.claim(conn)
        assert [(e.resource_id, e.version_id, e.action) for e in events] == [
            ("o1", 1, "create"), ("o1", 2, "update"), ("o1", 3, "delete")]
        outbox.acknowledge(conn, [e.seq for e in events])
    with write_transaction(engine) as conn:
        assert outbox.claim(conn) == []


KILLER = textwrap.dedent("""
    import os, signal, sys
    from kangqiao.fhir.store.db import make_engine
    from kangqiao.fhir.store.store import FhirStore
    from kangqiao.security.gate import SYSTEM
    store = FhirStore(make_engine(sys.argv[1]))
    with store.write(SYSTEM) as uow:
        for n in range(200):
            uow.create("Patient", {"resourceType": "Patient", "name": [{"text": f"p{n}"}]})
            if n == 150:
                uow.flush()  # index and history rows reach the database too
        print("written", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_process_killed_mid_transaction_leaves_no_trace(store: FhirStore,
                                                        engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    proc = subprocess.run([sys.executable, "-c", KILLER, url], capture_output=True, text=True,
                          timeout=120, env={**os.environ})
    assert proc.returncode == -9, proc.stderr
    assert "written" in proc.stdout
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0, \
                table.name
    with store.write(SYSTEM) as uow:  # the database is healthy afterwards
        assert uow.create("Patient", {"resourceType": "Patient"}).version_id == 1


BUMPER = textwrap.dedent("""
    import sys
    from kangqiao.fhir.store.db import make_engine
    from kangqiao.fhir.store.store import FhirStore
    from kangqiao.security.gate import SYSTEM
    store = FhirStore(make_engine(sys.argv[1]))
    for n in range(30):
        with store.write(SYSTEM) as uow:
            uow.update("Patient", "shared", {"resourceType": "Patient", "id": "shared",
                                             "name": [{"text": sys.argv[2] + str(n)}]})
""")


def test_two_processes_writing_one_resource(store: FhirStore, engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    procs = [subprocess.Popen([sys.executable, "-c", BUMPER, url, tag], env={**os.environ},
                              stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    assert _versions(engine, "shared") == list(range(1, 61))
