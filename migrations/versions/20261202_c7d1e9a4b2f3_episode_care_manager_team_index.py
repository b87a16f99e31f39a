"""index EpisodeOfCare care-manager-role / team (platform search parameters) for stored rows

Revision ID: c7d1e9a4b2f3
Revises: 5e4a1c2b9d70
Create Date: 2026-12-02 12:00:00.000000
"""

from __future__ import annotations

from alembic import op

from kangqiao.fhir.store.reindex import drop_params, reindex_params

revision = "c7d1e9a4b2f3"
down_revision = "5e4a1c2b9d70"
branch_labels = None
depends_on = None

# params.PLATFORM_PARAMS: new writes index them; episodes stored before need their rows.
CODES = ("care-manager-role", "team")


def upgrade() -> None:
    bind = op.get_bind()
    reindex_params(bind, "EpisodeOfCare", CODES)
    if bind.dialect.name == "postgresql":
        # a row per stored episode and parameter: without fresh statistics PostgreSQL takes
        # the new range for a row or two and nests loops over it (2.4 s for a GP's search
        # on the 20,000-resident county, 0.2 s after ANALYZE)
        op.execute("ANALYZE search_reference")


def downgrade() -> None:
    drop_params(op.get_bind(), "EpisodeOfCare", CODES)
