"""search_string lookup index answers LIKE prefixes on PostgreSQL (varchar_pattern_ops)

Revision ID: 5e4a1c2b9d70
Revises: 959363ce1df3
Create Date: 2026-12-01 22:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "5e4a1c2b9d70"
down_revision = "959363ce1df3"
branch_labels = None
depends_on = None

COLUMNS = ["resource_type", "param", "value"]


def upgrade() -> None:
    # SQLite's index is unchanged (postgresql_ops only speaks to PostgreSQL)
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_search_string_lookup", table_name="search_string")
    op.create_index("ix_search_string_lookup", "search_string", COLUMNS,
                    postgresql_ops={"value": "varchar_pattern_ops"})


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_search_string_lookup", table_name="search_string")
    op.create_index("ix_search_string_lookup", "search_string", COLUMNS)
