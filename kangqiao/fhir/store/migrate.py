"""Schema migrations (Alembic) run from code: ``kangqiao migrate`` and test fixtures."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

from kangqiao.fhir.bulk import deferred
from kangqiao.settings import REPO_ROOT


def alembic_config(url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
    if revision == "head":
        # indexes a bulk load dropped and did not live to rebuild (kangqiao/fhir/bulk/deferred.py)
        engine = create_engine(url)
        try:
            deferred.ensure(engine)
        finally:
            engine.dispose()
