"""Which search condition drives the query, and the SQL shapes that keep the plan index-driven.

A compiled search parameter (``Cond``) has two forms:

* ``ids``: an uncorrelated ``SELECT resource_id FROM search_x WHERE resource_type = ? AND
  param = ? AND <value>``: a range of the lookup index, the set of matching ids;
* ``probe``: a correlated ``EXISTS`` (or ``NOT EXISTS``) on the index rows of one resource,
  read through the ``(resource_type, resource_id)`` index.

``combine`` turns the most selective condition into ``resource.id IN (ids)`` (the driver)
and leaves the others as probes, so a search reads the rows of its best index range and checks
each candidate cheaply, instead of scanning every resource of the type and probing each one
(SQLite without statistics did that, and for a common code read the whole code range per row).
Selectivity is estimated from the parameter alone (``rank``), so the plan does not depend on
table statistics and is the same on SQLite and PostgreSQL.

On SQLite a probe's ``param`` column is written ``+param`` (``unindexed``): the unary plus
keeps the planner from answering the probe from the lookup index ``(resource_type, param,
value...)``, which reads every row of that value for each candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, Select, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FromClause
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import NullType

Clause = ColumnElement[bool]

# Lower is more selective. Only conditions with an ``ids`` form can drive.
BY_ID = 0
IDENTIFIER = 1  # identifier, telecom, a reference to one patient / encounter
EXACT = 2  # string :exact, uri, a bare reference id
CODE = 3  # a token code, a string prefix
WEAK_PREFIX = 4  # a one-character string prefix
RANGE = 5  # dates, numbers, quantities, composites, a reference to a directory resource
COMMON = 6  # low-cardinality tokens (status, gender, category...)
SCAN = 8  # :text, :contains, system-only tokens: a whole (type, param) range
PRESENT = 9  # :missing=false

# Tokens with a handful of values across the whole table: never a good driver.
LOW_CARDINALITY = frozenset({
    "status", "gender", "active", "category", "clinical-status", "verification-status",
    "intent", "priority", "class", "deceased", "kind", "_security", "_tag", "severity",
})
UNIQUE_TOKENS = frozenset({"identifier", "telecom", "phone", "email", "_profile"})
# Reference targets many resources point at (an organisation's every patient).
DIRECTORY = frozenset({
    "Organization", "Location", "Practitioner", "PractitionerRole", "CareTeam",
    "HealthcareService", "Group", "Device", "Medication", "Substance",
})


@dataclass
class Cond:
    """One search parameter: ``probe`` is always valid; ``ids`` when it can drive."""

    probe: Clause
    ids: Select[Any] | CompoundSelect[Any] | None = None
    rank: int = PRESENT
    # the probe is a condition on the primary key itself (``_id``): it drives as it is
    keyed: bool = False


class unindexed(FunctionElement[str]):
    """``+column`` on SQLite (the column cannot be used for an index), plain elsewhere."""

    type = String()
    inherit_cache = True


@compiles(unindexed)
def _plain(element: unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(unindexed, "sqlite")
def _plus(element: unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.clauses, **kw))


class on_sqlite(FunctionElement[bool]):
    """A condition SQLite needs to use an index and other databases do without (``1 = 1``
    there): e.g. the binary range that makes a LIKE prefix an index range, which SQLite's
    case-insensitive LIKE cannot use on a BINARY index. (Untyped: as a Boolean SQLite would
    render it ``(...) = 1``, which hides the range from the planner.)"""

    type = NullType()  # type: ignore[assignment]
    inherit_cache = True


@compiles(on_sqlite)
def _elsewhere(element: on_sqlite, compiler: Any, **kw: Any) -> str:
    return "1 = 1"


@compiles(on_sqlite, "sqlite")
def _sqlite(element: on_sqlite, compiler: Any, **kw: Any) -> str:
    return "(" + str(compiler.process(element.clauses, **kw)) + ")"


def opaque(query: Select[Any]) -> Select[Any]:
    """``query`` as a subquery PostgreSQL runs as it is written: ``OFFSET 0`` keeps the planner
    from pulling an ``EXISTS`` up into a join (it cannot be simplified away), so the probe
    stays a per-row test of the row at hand. A walk over a key range (``searching``) needs
    that: flattened, a chain's probe was planned as the whole set of its matches (estimated
    at one row, 14,186 at 20,000 residents), built before the first row was tested."""
    return query.offset(0)


def chained(inner: int) -> int:
    """The rank of a chain whose target condition has rank ``inner``: one step less selective
    (each target is referred to by several resources), except that a chain through a
    directory reference (one unit's or one doctor's patients) stays a ``RANGE``: it names a
    part of the county, never the large share that ``COMMON`` stands for (``status=booked``)."""
    return inner if inner == RANGE else inner + 1


def driver(conds: list[Cond]) -> Cond | None:
    """The condition to drive the search from: the most selective with an ``ids`` form
    (the first of equals, so the plan is predictable from the query string)."""
    best: Cond | None = None
    for c in conds:
        if c.ids is not None and (best is None or c.rank < best.rank):
            best = c
    return best


def combine(res: FromClause, rtype: str | None, conds: list[Cond]
            ) -> tuple[list[Clause], int, Select[Any] | CompoundSelect[Any] | None]:
    """WHERE clauses for ``conds`` on ``res``, the driver's rank (``PRESENT + 1`` when
    nothing drives: a scan of the type) and its ``ids`` (None when a key or nothing drives).
    Searches across all types probe only."""
    keyed = [c for c in conds if c.keyed]
    lead = keyed[0] if keyed else driver(conds) if rtype is not None else None
    where: list[Clause] = []
    ids = None
    if lead is not None and not lead.keyed and lead.ids is not None:
        ids = lead.ids
        where.append(res.c.id.in_(ids))
    where.extend(c.probe for c in conds if c is not lead or lead.keyed)
    return where, lead.rank if lead is not None else PRESENT + 1, ids
