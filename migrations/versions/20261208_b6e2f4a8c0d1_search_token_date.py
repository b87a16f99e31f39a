"""search_token_date: a code and a date of one resource indexed together

Revision ID: b6e2f4a8c0d1
Revises: a3b5c7d9e1f2
Create Date: 2026-12-08 00:00:00.000000

The table of ``kangqiao/fhir/search/combos.py``, filled for the resources already stored from
their token and date index rows (the same cross product a write indexes), in SQL: parsing
every resource again would take minutes per million.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b6e2f4a8c0d1"
down_revision = "a3b5c7d9e1f2"
branch_labels = None
depends_on = None

TABLE = "search_token_date"
# combos.COMBOS as it was when this migration was written (a later change reindexes)
PAIRS = {
    "Observation": ("code", "date"),
    "DiagnosticReport": ("code", "date"),
    "Condition": ("code", "onset-date"),
    "Procedure": ("code", "date"),
    "MedicationRequest": ("code", "authoredon"),
    "Immunization": ("vaccine-code", "date"),
}
FILL = sa.text(f"""
INSERT INTO {TABLE} (resource_type, resource_id, param, system, code, low, high, grp)
SELECT DISTINCT t.resource_type, t.resource_id, :combo, t.system, t.code, d.low, d.high,
       CAST(NULL AS INTEGER)
FROM search_token t
JOIN search_date d ON d.resource_type = t.resource_type AND d.resource_id = t.resource_id
WHERE t.resource_type = :rtype AND t.param = :token AND d.param = :date
  AND t.code IS NOT NULL
""")


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("system", sa.String(length=512), nullable=True),
        sa.Column("code", sa.String(length=512), nullable=True),
        sa.Column("low", sa.DateTime(timezone=False), nullable=False),
        sa.Column("high", sa.DateTime(timezone=False), nullable=False),
        sa.Column("grp", sa.Integer(), nullable=True),
    )
    bind = op.get_bind()
    for rtype, (token, date) in PAIRS.items():
        bind.execute(FILL, {"combo": f"{token}+{date}", "rtype": rtype, "token": token,
                            "date": date})
    op.create_index("ix_search_token_date_lookup", TABLE,
                    ["resource_type", "param", "code", "high", "low", "system", "resource_id"])
    op.create_index("ix_search_token_date_resource_type_resource_id", TABLE,
                    ["resource_type", "resource_id"])
    if bind.dialect.name == "postgresql":
        op.execute(f"ANALYZE {TABLE}")


def downgrade() -> None:
    op.drop_table(TABLE)
