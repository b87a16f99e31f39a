"""PostgreSQL statistics on the token index's (resource type, parameter, code) columns

Revision ID: d4f8a2c61e07
Revises: c7d1e9a4b2f3
Create Date: 2026-12-02 16:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "d4f8a2c61e07"
down_revision = "c7d1e9a4b2f3"
branch_labels = None
depends_on = None

# Joint frequencies of the token index's lookup columns. They are strongly correlated (a code
# belongs to one parameter of one type) and PostgreSQL multiplies the columns' selectivities
# unless it keeps their joint frequencies: Condition / code / I10 was estimated at 23 rows out
# of 20,623 at 200,000 residents, so a GP's page of hypertensive patients hashed and tested
# all 20,623 conditions instead of walking them in key order (636 -> 28 ms). 1,000
# combinations: the default 100 missed that one. The same statistics on search_reference
# (with target ids) multiplied the planning time of the policy's many reference lookups by
# ten (5.8 -> 60 ms for a GP's identifier search), so they are not kept (docs/benchmarks.md).
TABLE = "search_token"
NAME = "st_search_token_lookup"
TARGET = 1000


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE STATISTICS {NAME} (mcv, dependencies) ON resource_type, param, code "
               f"FROM {TABLE}")
    op.execute(f"ALTER STATISTICS {NAME} SET STATISTICS {TARGET}")
    op.execute(f"ANALYZE {TABLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP STATISTICS IF EXISTS {NAME}")
