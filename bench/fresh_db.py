"""An empty database for a benchmark run: a SQLite file, or a PostgreSQL database dropped and
created again on the local server (``KANGQIAO_BENCH_PG``)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine, text

PG_SERVER = os.environ.get("KANGQIAO_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def fresh_url(backend: str, tmp: Path, name: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / (name + '.db')}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{PG_SERVER}/{name}"
