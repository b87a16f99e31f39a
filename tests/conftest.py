"""Shared fixtures: a store built through the migrations, on SQLite and on PostgreSQL.

PostgreSQL tests use one database per test process (``kangqiao_test_<worker>_<pid>``) on the local
server (``KANGQIAO_TEST_PG``, default ``postgresql+psycopg://postgres@127.0.0.1:5432``); tables
are emptied between tests.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, delete, text

from kangqiao.app import create_app
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.db import make_engine
from kangqiao.fhir.store.migrate import upgrade
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security.tokens import Tokens
from kangqiao.settings import Settings


def _survive_cpython_ast_bug() -> None:
    """CPython 3.11.7's ``ast.parse`` sometimes raises a spurious ``SystemError: AST constructor
    recursion depth mismatch`` deep inside a stack (cpython gh-106905). Hypothesis parses
    source only to *describe* lambdas in strategy reprs, and schemathesis' collection then
    fails at random; a lambda it cannot describe is named ``<unknown>`` instead."""
    from hypothesis.internal import lambda_sources

    describe = lambda_sources._lambda_description

    def described(f: object) -> str:
        try:
            return str(describe(f))
        except SystemError:
            return "lambda: <unknown>"

    lambda_sources._lambda_description = described


_survive_cpython_ast_bug()

PG_SERVER = os.environ.get("KANGQIAO_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
BACKENDS = ["sqlite", "postgresql"]


def _worker() -> str:
    # per process, so that two test runs on one machine never share (and drop) a database
    return f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


def _pg_url() -> str:
    name = f"kangqiao_test_{_worker()}"
    _drop_pg(name, create=True)
    return f"{PG_SERVER}/{name}"


def _drop_pg(name: str, *, create: bool = False) -> None:
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if create:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


@contextmanager
def store_at(backend: str, tmp_path: Path, revision: str, name: str
             ) -> Iterator[tuple[str, Engine]]:
    """A store of ``backend`` migrated up to ``revision`` only (a store of an earlier day, for
    testing the migrations after it): its URL and engine; a PostgreSQL one is dropped after."""
    db = f"kangqiao_{name}_{_worker()}"
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        _drop_pg(db, create=True)
        url = f"{PG_SERVER}/{db}"
    upgrade(url, revision)
    engine = make_engine(url)
    try:
        yield url, engine
    finally:
        engine.dispose()
        if backend != "sqlite":
            _drop_pg(db)


@pytest.fixture(scope="session")
def _engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Engine]]:
    engines: dict[str, Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()
    if "postgresql" in engines:  # this process's database goes with it
        _drop_pg(f"kangqiao_test_{_worker()}")


def _engine_for(backend: str, engines: dict[str, Engine], tmp: Path) -> Engine:
    if backend not in engines:
        url = f"sqlite:///{tmp / 'kangqiao.db'}" if backend == "sqlite" else _pg_url()
        upgrade(url)
        engines[backend] = make_engine(url)
    return engines[backend]


def _empty(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(schema.metadata.sorted_tables):
            conn.execute(delete(table))


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, _engines: dict[str, Engine],
           tmp_path_factory: pytest.TempPathFactory) -> Engine:
    backend: str = request.param
    engine = _engine_for(backend, _engines, tmp_path_factory.mktemp(backend))
    _empty(engine)
    return engine


@pytest.fixture
def store(engine: Engine) -> FhirStore:
    return FhirStore(engine)


AUDIT_KEY = secrets.token_hex(32)


@pytest.fixture
def settings(engine: Engine) -> Settings:
    return Settings(database_url=engine.url.render_as_string(hide_password=False),
                    audit_hmac_key=AUDIT_KEY)


def system_token_for(settings: Settings, engine: Engine, scope: str = "system/*.cruds") -> str:
    """A bearer token of a system client, signed with the server's key in ``engine``: what
    ``kangqiao auth token`` prints. Tests of the FHIR engine go through real authentication
    with it (the policy lets system clients do what their scopes say)."""
    token, _ = Tokens(settings).issue(engine, subject="test-suite", scope=scope,
                                      client_id="test-suite", minutes=60,
                                      claims={"role": "system"})
    return token


@pytest.fixture
def system_token(settings: Settings, engine: Engine) -> str:
    return system_token_for(settings, engine)


@pytest.fixture
def client(settings: Settings, store: FhirStore, system_token: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings, store), raise_server_exceptions=False,
                    headers={"Authorization": f"Bearer {system_token}"}) as c:
        yield c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def live_server(settings: Settings, store: FhirStore) -> Iterator[str]:
    """The app served by uvicorn on a loopback port, for real HTTP clients (which
    authenticate with the ``system_token`` fixture)."""
    port = _free_port()
    config = uvicorn.Config(create_app(settings, store), host="127.0.0.1", port=port,
                            log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def csrf_of(html: str) -> str:
    """The CSRF token a page's form carries."""
    m = re.search(r'name="csrf" value="([^"]*)"', html)
    assert m is not None, html
    return m.group(1)


def form_login(client: TestClient, username: str, password: str, nxt: str = "/"
               ) -> httpx.Response:
    """Sign in through the login form, as a browser does; the response (303 when it worked)."""
    page = client.get("/login", params={"next": nxt})
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf": csrf_of(page.text), "next": nxt},
                       follow_redirects=False)
