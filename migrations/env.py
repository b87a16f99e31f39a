"""Alembic environment: migrates the database named by the ``sqlalchemy.url`` option, or by
KANGQIAO_DATABASE_URL when none is given."""

from __future__ import annotations

from alembic import context

from kangqiao.fhir.store.db import make_engine
from kangqiao.fhir.store.schema import metadata
from kangqiao.security import schema as _security_tables  # noqa: F401  (same metadata)
from kangqiao.settings import get_settings

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(conn: object) -> None:
    context.configure(connection=conn, target_metadata=metadata,  # type: ignore[arg-type]
                      render_as_batch=url.startswith("sqlite"), compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
