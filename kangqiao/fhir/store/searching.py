"""Queries of a unit of work: search, conditional matching and ``_history``.

Every query applies the gate's ``search_filter`` inside the SQL, so totals and pages only ever
count what the caller may see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    false,
    func,
    or_,
    select,
    tuple_,
)

from kangqiao.fhir import definitions
from kangqiao.fhir.outcome import FhirError, Issue
from kangqiao.fhir.search import plan
from kangqiao.fhir.search.query import SearchSpec, build_search
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.records import Stored, is_valid_id
from kangqiao.security.gate import FEW_ROWS, readable

if TYPE_CHECKING:
    from kangqiao.security.gate import Access, Gate

R = schema.resource
H = schema.resource_history
# rows of the type a walk tests one by one before the driver takes over (see ``_walk``)
WALK_ROWS = 2000
# a walk: the searched type, and its conditions as opaque probes with the gate's filter
Walk = tuple[str, list[ColumnElement[bool]]]
# On PostgreSQL, above FEW_ROWS one more candidate is tested row by row per this many stored
# resources (``_few_rows``): the lists a user's costlier links build grow with the store (a
# centre's Tasks of all time: 8,731 read in 40 ms at 1,000,000 residents), a candidate's test
# does not (~33 µs). Measured: 1,000 the better threshold at 20,000 residents (180,525
# resources; 2,500 made the GP's I10 list slower), 2,500 at 1,000,000 (8,956,744: the GP's
# surname search 85 -> 48 ms).
RESOURCES_PER_FEW_ROW = 3600
# _total=estimate: candidates tested at random when there are more than twice as many
ESTIMATE_SAMPLE = 1000
# On PostgreSQL, a driver of more candidates than the policy tests row by row (``_few_rows``)
# and at most this many is read first and its ids passed as one array value: PostgreSQL
# charges the policy's hashed lists to every row tested, so with the driver as a subquery
# (whose size it guesses) it preferred to read every row of the type in key order and test
# as few as possible. A GP's HbA1c results of 90 days at 200,000 residents (1,701 candidates)
# read all 2.9 M Observations, 665 ms; from the array, 36 ms (docs/benchmarks.md).
LISTED_MAX = 25_000
# the most listed candidates the page query counts (``count(*) OVER ()``, see ``search``)
COUNTED_MAX = 5_000


@dataclass
class Page:
    """One page of search or history results."""

    items: list[Stored]
    total: int | None
    warnings: list[Issue] = field(default_factory=list)
    # keyset paging (default order): the keys bounding this page, and whether rows follow
    # it (``more_after``) or precede it (``more_before``)
    first_key: tuple[str, str] | None = None
    last_key: tuple[str, str] | None = None
    more_after: bool = False
    more_before: bool = False


@dataclass(frozen=True)
class HistoryWindow:
    """``_since`` (at or after), ``_at`` (versions current at some point in [low, high]) and
    ``until`` (the snapshot bound that keeps later pages stable while data changes)."""

    since: datetime | None = None
    at: tuple[datetime, datetime] | None = None
    until: datetime | None = None


class SearchMixin:
    conn: Connection
    access: Access
    gate: Gate

    def flush(self) -> None:  # implemented by UnitOfWork
        raise NotImplementedError

    def _visible(self, resource_type: str | None, *, anchored: bool = False,
                 few: bool = False) -> list[ColumnElement[bool]]:
        """The gate's filter; ``anchored`` when the query reads few rows by index (the
        policy then tests each row rather than listing all it may see), ``few`` when at
        most ``FEW_ROWS``."""
        clause = self.gate.search_filter(self.access, resource_type, anchored=anchored,
                                         few=few)
        return [] if clause is None else [clause]

    def _visible_to(self, resource_type: str | None, spec: SearchSpec
                    ) -> tuple[list[ColumnElement[bool]], bool, int | None]:
        """The gate's filter for a search by ``spec``: anchored when its driver is selective
        (``_anchored``), and for few rows when the driver reads at most ``FEW_ROWS``; whether
        it is the latter; and how many candidates were listed: on PostgreSQL a driver of
        more candidates, up to ``LISTED_MAX``, is read first and ``spec`` drives from its
        ids as a value."""
        anchored = _anchored(spec)
        visible = self._visible(resource_type, anchored=anchored)
        if not (visible and anchored):
            return visible, False, None
        if spec.driver_rank <= plan.IDENTIFIER:
            return self._visible(resource_type, few=True), True, None
        few = _few_rows(self.conn)
        found = self._candidates(spec, few)
        if found is not None and found <= few:
            return self._visible(resource_type, few=True), True, None
        if (found is not None and found <= LISTED_MAX and spec.driver_ids is not None
                and self.conn.dialect.name == "postgresql"):
            ids = sorted({row[0] for row in self.conn.execute(spec.driver_ids)})
            spec.list_driver(ids)
            return visible, False, len(ids)
        return visible, False, None

    def _candidates(self, spec: SearchSpec, few: int) -> int | None:
        """How many rows the driver reads, counted up to ``few + 1`` (up to ``LISTED_MAX +
        1`` on PostgreSQL), or None when not counted: only the range of one value (a code,
        a name prefix, a code in a period) is (an index-only read, a millisecond or a few,
        that spares the search the building of the lists the policy's costlier links test
        candidates against, or a plan that misjudges it). Not ranges, composites and chains:
        their ids are joins, and even a capped count of them read ~0.5-1 s at 1,000,000
        residents."""
        if spec.driver_ids is None or spec.driver_rank > plan.WEAK_PREFIX:
            return None
        cap = max(few, LISTED_MAX) if self.conn.dialect.name == "postgresql" else few
        capped = spec.driver_ids.limit(cap + 1).subquery()
        return int(self.conn.execute(select(func.count()).select_from(capped)).scalar_one())

    def match(self, resource_type: str, criteria: str) -> list[str]:
        """Ids of current resources matching a conditional-operation query string (strict:
        an unknown parameter is an error, since ignoring it could match the wrong record)."""
        params = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
        if not params:
            raise FhirError.of(400, "invalid", "A conditional operation needs search criteria")
        self.flush()
        spec = build_search(resource_type, _checked(params), strict=True)
        stmt = (select(R.c.id)
                .where(R.c.resource_type == resource_type, R.c.deleted.is_(False), *spec.where,
                       *self._visible_to(resource_type, spec)[0])
                .limit(2))
        return [row.id for row in self.conn.execute(stmt)]

    def search(self, resource_type: str | None, params: list[tuple[str, str]], *,
               count: int, offset: int = 0, total: str = "accurate",
               strict: bool = False, after: tuple[str, str] | None = None,
               before: tuple[str, str] | None = None) -> Page:
        """One page of matches. Without ``_sort`` pages are cut by key (``after`` /
        ``before`` a (type, id)), so inserts and deletes elsewhere never shift them;
        with ``_sort`` by ``offset``."""
        self.flush()
        spec = build_search(resource_type, _checked(params), strict=strict)
        visible, few, listed = self._visible_to(resource_type, spec)
        where = [R.c.deleted.is_(False), *spec.where, *visible]
        if resource_type is not None:
            where.append(R.c.resource_type == resource_type)
        if count <= 0:
            return Page([], self._total(where, total, spec=spec),
                        list(spec.warnings))
        if spec.order_by or offset:
            stmt = (select(R).where(*where)
                    .order_by(*spec.order_by, R.c.resource_type, R.c.id)
                    .limit(count + 1).offset(offset))
            rows = list(self.conn.execute(stmt))
            # a page that is not full, and has rows or is the first, ends the matches: the
            # total is known without counting
            known = offset + len(rows) if len(rows) <= count and (rows or not offset) else None
            return Page(self._readable(rows[:count]),
                        self._total(where, total, known, spec),
                        list(spec.warnings))
        walk = None
        if (resource_type is not None and before is None and total == "none"
                and spec.driver_rank >= plan.RANGE):
            probes = build_search(resource_type, params, strict=strict, walk=True).where
            if probes:
                # the walk tests at most WALK_ROWS rows, and stops at a page of matches
                walk = (resource_type, [R.c.deleted.is_(False), *probes,
                                        *self._visible(resource_type, few=True)])
        # Few candidates, each tested against the policy (the page query tests them all
        # before it sorts): the first page counts them too, instead of a second query
        # testing them all again. So do a few thousand listed ones when all are counted
        # anyway (the policy's lists are then built once, not for each query); more, and
        # sorting every match's content for the page costs more than counting again.
        counted = total != "none" and (few or (listed is not None and listed <= COUNTED_MAX
                                               and (total == "accurate"
                                                    or listed <= 2 * ESTIMATE_SAMPLE)))
        return self._keyset_page(where, count, after, before, total, spec.warnings, walk,
                                 counted=counted, spec=spec)

    def _total(self, where: list[ColumnElement[bool]], mode: str, known: int | None = None,
               spec: SearchSpec | None = None) -> int | None:
        """``_total``: none, or the number of matches (``known`` when the page showed them
        all, so that a search with few matches runs one query, not two); for ``estimate``
        with a driving index range, :meth:`_estimate`."""
        if mode == "none":
            return None
        if known is not None:
            return known
        if mode == "estimate" and spec is not None and spec.driver_ids is not None:
            return self._estimate(where, spec)
        return self._count(where)

    def _count(self, where: list[ColumnElement[bool]]) -> int:
        return int(self.conn.execute(select(func.count()).select_from(R).where(*where))
                   .scalar_one())

    def _estimate(self, where: list[ColumnElement[bool]], spec: SearchSpec) -> int:
        """``_total=estimate``: the driver's candidates counted in its index, and the share
        of a random sample of ``ESTIMATE_SAMPLE`` of them that match (every other parameter
        and the access policy tested); exact when there are few. An accurate total tests
        every candidate: at 1,000,000 residents a GP's HbA1c results of 90 days took 2.7 s,
        and an estimate's error is a few per cent (binomial, n = ESTIMATE_SAMPLE)."""
        assert spec.driver_ids is not None
        ids = spec.driver_ids.subquery()
        rid = next(iter(ids.c))
        # Index rows, not distinct resources: a DISTINCT made SQLite walk every token of the
        # type in key order (436 ms at 20,000 residents against 1 ms); a resource with two
        # matching index rows (rare) only weighs twice in the sample.
        candidates = int(self.conn.execute(select(func.count()).select_from(ids)).scalar_one())
        if candidates <= 2 * ESTIMATE_SAMPLE:
            return self._count(where)
        # the sample's ids as values: as a subquery, its plan is the planner's to spoil; and
        # without the driver's own clause, which they satisfy (with the listed candidates
        # beside it PostgreSQL read every row of the type: 1,000 of 20,623 hypertension
        # diagnoses tested in 52 ms, 14 of them to find the sample)
        sample = {row[0] for row in self.conn.execute(
            select(rid).order_by(func.random()).limit(ESTIMATE_SAMPLE))}
        rest = [w for w in where if w is not spec.driver_clause]
        hits = self._count([*rest, R.c.id.in_(sorted(sample))])
        return round(candidates * hits / len(sample))

    def _keyset_page(self, where: list[ColumnElement[bool]], count: int,
                     after: tuple[str, str] | None, before: tuple[str, str] | None,
                     total: str, warnings: list[Issue], walk: Walk | None = None, *,
                     counted: bool = False,
                     spec: SearchSpec | None = None) -> Page:
        """A page in key order; ``counted``: the first page's query also counts the matches
        (a window count, which makes it read them all: for few candidates only)."""
        key = tuple_(R.c.resource_type, R.c.id)
        matches = None
        if before is not None:
            stmt = select(R).where(*where, key < tuple_(*before)).order_by(
                R.c.resource_type.desc(), R.c.id.desc()).limit(count + 1)
            rows = list(self.conn.execute(stmt))
            more_before, rows = len(rows) > count, rows[:count][::-1]
            more_after = True
        else:
            cond = [key > tuple_(*after)] if after is not None else []
            if walk is not None:
                rows = self._walk(where, walk, after, count)
            elif counted and after is None:
                rows = list(self.conn.execute(
                    select(R, func.count().over().label("matches")).where(*where)
                    .order_by(R.c.resource_type, R.c.id).limit(count + 1)))
                matches = int(rows[0].matches) if rows else 0
            else:
                rows = list(self.conn.execute(select(R).where(*where, *cond).order_by(
                    R.c.resource_type, R.c.id).limit(count + 1)))
            more_after, rows = len(rows) > count, rows[:count]
            more_before = after is not None
        keys = [(r.resource_type, r.id) for r in rows]
        known = len(rows) if not (more_before or more_after) else matches
        return Page(self._readable(rows), self._total(where, total, known, spec),
                    list(warnings),
                    first_key=keys[0] if keys else None, last_key=keys[-1] if keys else None,
                    more_after=more_after and bool(keys), more_before=more_before and bool(keys))

    def _walk(self, where: list[ColumnElement[bool]], walk: Walk,
              after: tuple[str, str] | None, count: int) -> list[Any]:
        """The first ``count + 1`` matches after ``after`` in key order, found by testing
        the next ``WALK_ROWS`` rows of the type one by one (``walk``: the conditions as
        opaque probes) before the driver (``where``) reads its set for the rest.

        When no condition is selective (a common code, an open date range, a unit's
        patients), the driver's set grows with the county (14,186 Observations of the
        county hospital's units at 20,000 residents, each fetched, tested and sorted for a
        page of 50) while the matches' share of the type does not: at ~3 % a page of 50 is
        in the first ~1,700 rows of the type whatever the county's size. Where matches are
        rarer, the walk costs at most ``WALK_ROWS`` probes and the driver goes on after the
        last key walked, so no row is read twice."""
        # one type: its ids bound the range (SQLite reads a row-value bound as a filter)
        rtype, probes = walk
        cond = [R.c.resource_type == rtype]
        if after is not None:
            cond.append(tuple_(R.c.resource_type, R.c.id) > tuple_(*after) if after[0] != rtype
                        else R.c.id > after[1])
        order = (R.c.resource_type, R.c.id)
        bound = self.conn.execute(select(R.c.id).where(*cond).order_by(*order)
                                  .offset(WALK_ROWS - 1).limit(1)).scalar()
        upto = [R.c.id <= bound] if bound is not None else []
        rows = list(self.conn.execute(select(R).where(*cond, *upto, *probes).order_by(*order)
                                      .limit(count + 1)))
        if bound is not None and len(rows) <= count:
            rows.extend(self.conn.execute(select(R).where(*where, *cond, R.c.id > bound)
                                          .order_by(*order).limit(count + 1 - len(rows))))
        return rows

    def _readable(self, rows: Any) -> list[Stored]:
        return self._allowed([_stored(r) for r in rows])

    def _allowed(self, items: list[Stored]) -> list[Stored]:
        """The items the gate lets this access read (tombstones, with no content, stay)."""
        shown = readable(self.gate, self.access, [s.content for s in items
                                                  if s.content is not None])
        flags = iter(shown)
        return [s for s in items if s.content is None or next(flags)]

    def history(self, resource_type: str | None, resource_id: str | None,
                window: HistoryWindow, *, count: int, offset: int = 0) -> Page:
        """Versions newest first, filtered by ``window``; the gate sees every version."""
        if resource_id is not None and not is_valid_id(resource_id):
            return Page([], 0)  # never stored (and PostgreSQL refuses e.g. NUL in a query)
        self.flush()
        where: list[ColumnElement[bool]] = []
        if resource_type is not None:
            where.append(H.c.resource_type == resource_type)
        if resource_id is not None:
            where.append(H.c.id == resource_id)
        if window.since is not None:
            where.append(H.c.last_updated >= window.since)
        if window.until is not None:
            where.append(H.c.last_updated <= window.until)
        if window.at is not None:
            where.extend(_current_during(*window.at))
        visible = self.gate.search_filter(self.access, resource_type)
        if visible is not None:  # the policy speaks of the resource table: join on the key
            where.append(select(R.c.id).where(R.c.resource_type == H.c.resource_type,
                                              R.c.id == H.c.id, visible).exists())
        stmt = (select(H).where(*where)
                .order_by(H.c.last_updated.desc(), H.c.resource_type, H.c.id,
                          H.c.version_id.desc())
                .limit(count).offset(offset))
        items = self._allowed([_stored(r, method=r.method) for r in self.conn.execute(stmt)])
        n = self.conn.execute(select(func.count()).select_from(H).where(*where)).scalar_one()
        return Page(items, n)


def _anchored(spec: SearchSpec) -> bool:
    """Whether the search reads a bounded set of rows by index (see search/plan.py), so that
    testing each row beats listing what the user may see: any driver up to a range. While a
    user's team mates were nested selects in every link, each row's test re-ran them (SQLite)
    or cost more than the list (PostgreSQL: composite values, 4.4 s against 0.3 s at 100k
    residents); read once per view (``visibility.teams_of``), the test wins on both
    (docs/benchmarks.md: a GP's systolic >= 160 at 200,000 residents on PostgreSQL 184 ->
    33 ms, laboratory list at 20,000 on SQLite 371 -> 40 ms)."""
    return spec.driver_rank <= plan.RANGE


def _checked(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """No NUL in names or values: FHIR strings cannot hold it and PostgreSQL text refuses it."""
    for name, value in params:
        if "\x00" in name or "\x00" in value:
            raise FhirError.of(400, "invalid", f"Search parameter {name!r} contains a NUL "
                               "character")
    return params


def _current_during(low: datetime, high: datetime) -> list[ColumnElement[bool]]:
    """Versions that were current at some moment of [low, high]: written by ``high`` and not
    superseded before ``low``."""
    nxt = H.alias("next_version")
    superseded_before_low = select(nxt.c.version_id).where(
        nxt.c.resource_type == H.c.resource_type, nxt.c.id == H.c.id,
        nxt.c.version_id == H.c.version_id + 1, nxt.c.last_updated <= low).exists()
    return [H.c.last_updated <= high, ~superseded_before_low]


def _stored(row: Any, method: str = "PUT") -> Stored:
    return Stored(row.resource_type, row.id, row.version_id, row.last_updated, row.deleted,
                  row.content, method)



REF = schema.search_reference


def parse_include(value: str, reverse: bool) -> tuple[str, str | None, str | None]:
    """``Type:param[:target]`` (or ``*``) -> (source type, param or None for all, target)."""
    if value == "*":
        return "*", None, None
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        kind = "_revinclude" if reverse else "_include"
        raise FhirError.of(400, "invalid", f"{kind}={value!r}: expected Type:param[:target]")
    return parts[0], None if parts[1] == "*" else parts[1], parts[2] if len(parts) == 3 else None


class IncludeMixin:
    conn: Connection
    access: Access
    gate: Gate

    def _visible(self, resource_type: str | None, *, anchored: bool = False
                 ) -> list[ColumnElement[bool]]:
        raise NotImplementedError

    def _readable(self, rows: Any) -> list[Stored]:
        raise NotImplementedError

    def included(self, matches: list[Stored], includes: list[tuple[str, str | None, str | None]],
                 revincludes: list[tuple[str, str | None, str | None]], *,
                 iterate: bool = False, limit: int = 1000) -> list[Stored]:
        """Resources that ``matches`` reference (``_include``) or that reference them
        (``_revinclude``), each passing the gate; with ``iterate`` repeated on what was
        added until nothing new is found."""
        seen = {(s.resource_type, s.id) for s in matches}
        frontier = list(seen)
        out: list[Stored] = []
        for _depth in range(4 if iterate else 1):
            keys: set[tuple[str, str]] = set()
            for source, param, target in includes:
                keys |= self._links(frontier, source, param, target, reverse=False)
            for source, param, target in revincludes:
                keys |= self._links(frontier, source, param, target, reverse=True)
            new = sorted(keys - seen)[: max(0, limit - len(out))]
            if not new:
                break
            seen.update(new)
            out.extend(self._load(new))
            frontier = new
        return out

    def _links(self, keys: list[tuple[str, str]], source: str, param: str | None,
               target: str | None, *, reverse: bool) -> set[tuple[str, str]]:
        """Keys that ``keys`` reference (or, reversed, that reference ``keys``)."""
        here = (REF.c.target_type, REF.c.target_id) if reverse else (REF.c.resource_type,
                                                                       REF.c.resource_id)
        there = (REF.c.resource_type, REF.c.resource_id) if reverse else (REF.c.target_type,
                                                                          REF.c.target_id)
        where: list[ColumnElement[bool]] = [schema.keys_in(*here, keys), there[1].is_not(None)]
        if source != "*":
            where.append(REF.c.resource_type == source)
        if param is not None:
            where.append(REF.c.param == param)
        if target is not None:
            where.append(REF.c.target_type == target)
        stmt = select(*there).where(*where).distinct()
        return {(r[0], r[1]) for r in self.conn.execute(stmt)}

    def _load(self, keys: list[tuple[str, str]]) -> list[Stored]:
        out: list[Stored] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            # by key, at most 500 rows: the policy tests each row's patients (anchored)
            # instead of listing every patient and row the user may see
            stmt = select(R).where(schema.keys_in(R.c.resource_type, R.c.id, chunk),
                                   R.c.deleted.is_(False),
                                   *self._visible(None, anchored=True)).order_by(
                R.c.resource_type, R.c.id)
            out.extend(self._readable(self.conn.execute(stmt)))
        return out

    def everything(self, patient_id: str, *, types: set[str] | None, since: datetime | None,
                   count: int, offset: int) -> Page:
        """Patient/$everything: the patient and every resource in its compartment
        (CompartmentDefinition/patient), ordered by type and id, paged."""
        compartment = definitions.patient_compartment()
        pairs = [(t, p) for t, params in compartment.items() for p in params
                 if types is None or t in types]
        refs = select(REF.c.resource_type, REF.c.resource_id).where(
            REF.c.target_type == "Patient", REF.c.target_id == patient_id,
            tuple_(REF.c.resource_type, REF.c.param).in_(pairs) if pairs else false())
        member: ColumnElement[bool] = tuple_(R.c.resource_type, R.c.id).in_(refs)
        if types is None or "Patient" in types:
            member = or_(member, and_(R.c.resource_type == "Patient", R.c.id == patient_id))
        where = [member, R.c.deleted.is_(False), *self._visible(None)]
        if since is not None:
            where.append(R.c.last_updated >= since)
        stmt = (select(R).where(*where).order_by(R.c.resource_type, R.c.id)
                .limit(count).offset(offset))
        items = self._readable(self.conn.execute(stmt))
        total = self.conn.execute(select(func.count()).select_from(R).where(*where)).scalar_one()
        return Page(items, total)


def _few_rows(conn: Connection) -> int:
    """The most candidates a search has the policy test row by row: ``FEW_ROWS``, raised on
    PostgreSQL by one per ``RESOURCES_PER_FEW_ROW`` resources in its estimate of the table
    (no cost; none before the table was first analyzed). SQLite keeps ``FEW_ROWS``: its plan
    for one value's range stops at the page (a surname at 1,000,000 residents took 15-19 ms
    with the lists) and the rule was measured on PostgreSQL only."""
    if conn.dialect.name != "postgresql":
        return FEW_ROWS
    rows = conn.exec_driver_sql(
        "SELECT reltuples FROM pg_class WHERE oid = 'resource'::regclass").scalar()
    return max(FEW_ROWS, int(rows or 0) // RESOURCES_PER_FEW_ROW)
