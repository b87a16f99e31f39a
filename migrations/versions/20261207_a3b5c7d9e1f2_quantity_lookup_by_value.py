"""search_quantity lookup index ordered by value before unit code

Revision ID: a3b5c7d9e1f2
Revises: d4f8a2c61e07
Create Date: 2026-12-07 20:00:00.000000

(resource_type, param, code, value) narrowed only searches that give a unit without a
canonical form: a unit-less range (``ge160``) read every row of the parameter, and searches in
UCUM units compare canonical columns the index does not hold. With the value before the code,
a range is an index range whatever the unit, and a unit code is still tested in the index.
"""

from __future__ import annotations

from alembic import op

revision = "a3b5c7d9e1f2"
down_revision = "d4f8a2c61e07"
branch_labels = None
depends_on = None

NAME, TABLE = "ix_search_quantity_lookup", "search_quantity"


def _rebuild(columns: list[str]) -> None:
    # IF EXISTS: a bulk load may have dropped it (kangqiao/fhir/bulk/deferred.py)
    op.execute(f"DROP INDEX IF EXISTS {NAME}")
    op.create_index(NAME, TABLE, columns)


def upgrade() -> None:
    _rebuild(["resource_type", "param", "value", "code"])


def downgrade() -> None:
    _rebuild(["resource_type", "param", "code", "value"])
