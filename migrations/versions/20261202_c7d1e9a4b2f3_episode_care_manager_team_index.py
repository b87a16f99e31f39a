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
    reindex_params(op.get_bind(), "EpisodeOfCare", CODES)


def downgrade() -> None:
    drop_params(op.get_bind(), "EpisodeOfCare", CODES)
