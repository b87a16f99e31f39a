"""Compile FHIR search parameters into SQLAlchemy Core clauses over ``schema.resource``.

Every parameter becomes a ``plan.Cond``: the set of matching ids read from its lookup index,
and a correlated EXISTS probe on the index rows of one resource. ``plan.combine`` lets the
most selective parameter drive (``resource.id IN (ids)``) and probes the others; comma-separated
values are OR-ed inside one parameter and repeated parameters are AND-ed. Chains match the
target through ``target_id IN (SELECT id FROM resource AS r2 WHERE <param on r2>)`` when they
drive and through a probe of the referenced row otherwise; ``_has`` is the mirror image, and
both recurse through the same builder. The clauses are portable between SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    and_,
    any_,
    bindparam,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    union,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.expression import FromClause
from sqlalchemy.sql.visitors import replacement_traverse

from kangqiao.fhir.outcome import FhirError, Issue
from kangqiao.fhir.search import plan
from kangqiao.fhir.search import predicates as P
from kangqiao.fhir.search.combos import COMBOS, JOINT, combo_param
from kangqiao.fhir.search.normalize import norm_string
from kangqiao.fhir.search.params import SearchParam, param_by_url, search_params
from kangqiao.fhir.search.plan import Cond, unindexed
from kangqiao.fhir.store import schema
from kangqiao.security.fieldcrypt import of_type_code, token_mode

Clause = ColumnElement[bool]

RESULT_PARAMS = frozenset({
    "_count", "_include", "_revinclude", "_summary", "_elements", "_total", "_format",
    "_pretty", "_contained", "_containedType", "_sort",
})
_MODIFIERS = {
    "string": {"", "exact", "contains"},
    "token": {"", "not", "text", "of-type"},
    "reference": {"", "identifier"},
    "date": {""},
    "number": {""},
    "quantity": {""},
    "uri": {"", "below", "above"},
    "composite": {""},
}
_SORT_COLUMN = {"string": "value", "token": "code", "number": "value", "quantity": "value",
                "uri": "value", "reference": "target_id"}


@dataclass
class SearchSpec:
    where: list[Clause] = field(default_factory=list)
    order_by: list[Any] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    # plan.rank of the condition driving the search (plan.PRESENT + 1: a scan of the type)
    driver_rank: int = plan.PRESENT + 1
    # the driver's ids (index rows of its value), when a search parameter drives
    driver_ids: Select[Any] | CompoundSelect[Any] | None = None
    # the clause of ``where`` that reads them (``resource.id IN (driver_ids)``)
    driver_clause: Clause | None = None

    def list_driver(self, ids: list[str]) -> None:
        """Drive from these ids (the driver's, read beforehand) as one array value instead
        of the subquery: the planner then knows how many there are (see
        ``searching.LISTED_MAX``). PostgreSQL only (``= ANY``)."""
        listed = schema.resource.c.id == any_(bindparam(None, ids, type_=ARRAY(String)))
        self.where = [listed if c is self.driver_clause else c for c in self.where]
        self.driver_clause = listed


def build_search(
    resource_type: str | None, params: list[tuple[str, str]], *, strict: bool = False,
    walk: bool = False,
) -> SearchSpec:
    """Where clauses and ORDER BY for a search on ``resource_type`` (None: all types).
    ``walk``: every condition as an opaque probe and none driving (``plan.opaque``), for
    testing the rows of a key range one by one (``searching``'s walk)."""
    b = _Builder(strict, opaque=walk)
    spec = SearchSpec(warnings=b.warnings)
    res = schema.resource
    conds: list[Cond] = []
    named: list[tuple[str, str]] = []  # the (name, value) of each condition
    for name, value in params:
        if name == "_sort":
            spec.order_by.extend(b.sort(res, resource_type, value))
        elif name.split(":", 1)[0] in RESULT_PARAMS:
            continue
        elif (cond := b.clause(res, resource_type, name, value)) is not None:
            conds.append(cond)
            named.append((name, value))
    if walk:
        spec.where = [c.probe for c in conds]
    else:
        spec.where, spec.driver_rank, spec.driver_ids = plan.combine(
            res, resource_type, _with_combo(resource_type, conds, named))
        if spec.driver_ids is not None:
            spec.driver_clause = spec.where[0]
    return spec


def _with_combo(rtype: str | None, conds: list[Cond], named: list[tuple[str, str]]
                ) -> list[Cond]:
    """``conds`` with a code and a date parameter of a ``combos.COMBOS`` pair replaced by
    one condition on their joint index, when it would drive the search: the code's rank,
    and no other condition is more selective (one patient's readings stay driven by the
    patient). Only a plain code (no modifier) and one date parameter join; a second date
    parameter (``date=ge..&date=le..``) stays a probe, since each may match another of the
    resource's dates."""
    names = [n for n, _ in named]
    for token, date in COMBOS.get(rtype or "", ()):
        if token not in names or date not in names:
            continue
        i, j = names.index(token), names.index(date)
        code = conds[i]
        sp = search_params(rtype).get(token)
        if (code.rank > plan.CODE or sp is None or sp.type != "token"
                or token_mode(rtype, sp.code, sp.url)):
            continue
        if any(c.keyed or (c.ids is not None and c.rank < code.rank)
               for k, c in enumerate(conds) if k not in (i, j)):
            continue
        t = schema.search_token_date.alias()
        tokens = [P.token_pred(t, token, "", v) for v in P.split_escaped(named[i][1], ",")]
        dates = P.split_escaped(named[j][1], ",")
        where = [t.c.resource_type == rtype, t.c.param == combo_param(token, date),
                 or_(*tokens), or_(*(P.date_pred(t, date, v) for v in dates))]
        floors = [P.date_floor(date, v) for v in dates]
        if all(f is not None for f in floors):
            # implied by the predicates, and a range of the index's high column
            where.append(t.c.high >= min(f for f in floors if f is not None))
        combo = Cond(and_(code.probe, conds[j].probe), select(t.c.resource_id).where(*where),
                     code.rank)
        return [combo, *(c for k, c in enumerate(conds) if k not in (i, j))]
    return conds


def _owned(t: FromClause, res: FromClause, rtype: str | None) -> list[Clause]:
    """Correlate index rows with the resource row (literal type keeps the index usable)."""
    rt = t.c.resource_type == rtype if rtype else t.c.resource_type == res.c.resource_type
    return [rt, t.c.resource_id == res.c.id]


def _by_owner(t: FromClause, conds: tuple[Clause, ...]) -> list[Clause]:
    """A probe's value conditions with a reference's target columns ``unindexed``: SQLite,
    given the target, read the ``(target_type, target_id)`` index instead of the rows of
    the resource at hand: every row referring to that target for each resource tested (a
    township's ~3,600 patients per Appointment walked; 131 ms for one page)."""
    if t.c.get("target_id") is None:
        return list(conds)
    targets = (t.c.target_type, t.c.target_id)

    def swap(element: Any, **kw: Any) -> Any:
        return unindexed(element) if any(element is c for c in targets) else None

    return [replacement_traverse(c, {}, swap) for c in conds]


def _ids(t: FromClause, rtype: str | None, param: str, *conds: Clause) -> Select[Any] | None:
    if rtype is None:
        return None
    return select(t.c.resource_id).where(t.c.resource_type == rtype, t.c.param == param, *conds)


def _token_rank(code: str, value: str) -> int:
    parts = P.split_escaped(value, "|")
    if parts[-1] == "" or len(parts) > 2:
        return plan.SCAN  # system| only (or invalid, which token_pred rejects)
    if code in plan.UNIQUE_TOKENS:
        return plan.IDENTIFIER
    return plan.COMMON if code in plan.LOW_CARDINALITY else plan.CODE


def _reference_rank(modifier: str, value: str) -> int:
    v = P.unescape(value)
    if "/" not in v:
        if ":" in v or v.startswith("#"):
            return plan.EXACT  # a URL / fragment
        return plan.RANGE if modifier in plan.DIRECTORY else plan.EXACT
    segments = v.split("|", 1)[0].rstrip("/").split("/")
    target = segments[-2] if len(segments) >= 2 else ""
    if "_history" in segments[-3:-1]:
        target = segments[-4] if len(segments) >= 4 else ""
    return plan.RANGE if target in plan.DIRECTORY else plan.IDENTIFIER


def _value_rank(ptype: str, code: str, modifier: str, value: str) -> int:
    if ptype == "string":
        if modifier == "exact":
            return plan.EXACT
        if modifier == "contains":
            return plan.SCAN
        return plan.CODE if len(norm_string(P.unescape(value))) >= 2 else plan.WEAK_PREFIX
    if ptype == "token":
        if modifier == "text":
            return plan.SCAN
        return plan.IDENTIFIER if modifier == "of-type" else _token_rank(code, value)
    if ptype == "reference":
        return plan.IDENTIFIER if modifier == "identifier" else _reference_rank(modifier, value)
    if ptype == "uri":
        return plan.EXACT if modifier == "" else plan.SCAN if modifier == "above" else plan.RANGE
    if ptype == "date":
        return plan.RANGE if P.split_prefix(code, value)[0] in ("eq", "ap") else plan.COMMON
    return plan.RANGE


class _Builder:
    def __init__(self, strict: bool, opaque: bool = False) -> None:
        self.strict = strict
        self.opaque = opaque
        self.warnings: list[Issue] = []

    def exists(self, query: Select[Any]) -> Clause:
        return exists(plan.opaque(query) if self.opaque else query)

    def probe(self, t: FromClause, res: FromClause, rtype: str | None, param: str,
              *conds: Clause) -> Clause:
        return self.exists(select(1).select_from(t).where(
            *_owned(t, res, rtype), unindexed(t.c.param) == param, *_by_owner(t, conds)))

    def unknown(self, name: str, why: str = "unknown") -> None:
        text = f"Search parameter '{name}' is {why} and was ignored"
        if self.strict:
            raise FhirError.of(400, "not-supported", text.replace(" and was ignored", ""), name)
        self.warnings.append(Issue("warning", "not-supported", text, name))

    # -- dispatch ---------------------------------------------------------------------------

    def clause(self, res: FromClause, rtype: str | None, name: str, value: str) -> Cond | None:
        if name.startswith("_has:"):
            return self.has(res, rtype, name, value)
        head, dot, tail = name.partition(".")
        code, _, modifier = head.partition(":")
        if dot:
            return self.chain(res, rtype, code, modifier, tail, value, name)
        if value == "":
            return None  # empty values are ignored (R4 search: "parameters with no value")
        values = P.split_escaped(value, ",")
        if code in ("_id", "_lastUpdated", "_type"):
            return self.column_param(res, code, modifier, values, name)
        sp = search_params(rtype).get(code)
        if sp is None or sp.type == "special" or not sp.expression:
            self.unknown(name, "unknown" if sp is None else "not supported")
            return None
        if modifier == "missing":
            return self.missing(res, rtype, sp, value, name)
        if sp.type == "reference" and modifier and modifier[0].isupper():
            pass  # :Type modifier
        elif modifier not in _MODIFIERS.get(sp.type, {""}):
            raise P.bad(name, f"modifier ':{modifier}' is not supported for {sp.type} parameters")
        if sp.type == "composite":
            return self.composite(res, rtype, sp, values, name)
        t = schema.INDEX_TABLES[sp.type].alias()
        param = sp.code
        preds: list[Clause] = []
        for v in values:
            if sp.type == "string":
                preds.append(P.string_pred(t, name, modifier, v))
            elif sp.type == "token":
                blind = token_mode(rtype, sp.code, sp.url)  # encrypted identifiers
                if modifier == "of-type":
                    param = sp.code + ":of-type"
                    code = P.unescape(v)
                    preds.append(t.c.code == (of_type_code(code) if blind else code))
                else:
                    preds.append(P.token_pred(t, name, modifier, v, blind=blind))
            elif sp.type == "reference":
                if modifier == "identifier":
                    t = schema.search_token.alias()
                    param = sp.code + ":identifier"
                    preds = [P.token_pred(t, name, "", x) for x in values]
                    break
                preds.append(P.reference_pred(t, name, modifier, v, sp.targets))
            elif sp.type == "date":
                preds.append(P.date_pred(t, name, v))
            elif sp.type == "number":
                preds.append(P.number_pred(t, name, v))
            elif sp.type == "quantity":
                preds.append(P.quantity_pred(t, name, v))
            else:
                preds.append(P.uri_pred(t, name, modifier, v))
        found = self.probe(t, res, rtype, param, or_(*preds))
        if modifier == "not":
            # :not = resources with no matching value (including those with no value at all)
            return Cond(not_(found))
        rank = max(_value_rank(sp.type, sp.code, modifier, v) for v in values)
        return Cond(found, _ids(t, rtype, param, or_(*preds)), rank)

    def column_param(
        self, res: FromClause, code: str, modifier: str, values: list[str], name: str
    ) -> Cond:
        if modifier:
            raise P.bad(name, f"modifier ':{modifier}' is not supported here")
        if code == "_id":  # the primary key itself: it drives without a subquery
            return Cond(res.c.id.in_([P.unescape(v) for v in values]), rank=plan.BY_ID,
                        keyed=True)
        if code == "_type":
            return Cond(res.c.resource_type.in_(
                [P.unescape(x) for v in values for x in v.split(",")]))
        col = res.c.last_updated
        conds = []
        for v in values:
            prefix, sl, sh = P.parse_date(name, v)
            conds.append(P.date_cond(col, col, prefix, sl, sh))
        return Cond(or_(*conds))

    def missing(
        self, res: FromClause, rtype: str | None, sp: SearchParam, value: str, name: str
    ) -> Cond:
        if value not in ("true", "false"):
            raise P.bad(name, "the :missing modifier takes true or false")
        if sp.type == "composite":
            ttype = param_by_url(sp.components[0][0]) if sp.components else None
            if ttype is None or ttype.type not in schema.INDEX_TABLES:
                raise P.bad(name, ":missing is not supported for this parameter")
            t, param = schema.INDEX_TABLES[ttype.type].alias(), sp.code + "$0"
        else:
            t, param = schema.INDEX_TABLES[sp.type].alias(), sp.code
        found = self.probe(t, res, rtype, param)
        if value == "true":
            return Cond(not_(found))
        return Cond(found, _ids(t, rtype, param), plan.PRESENT)

    # -- composite --------------------------------------------------------------------------

    def composite(
        self, res: FromClause, rtype: str | None, sp: SearchParam, values: list[str], name: str
    ) -> Cond | None:
        comps = [param_by_url(url) for url, _ in sp.components]
        if not comps or any(c is None or c.type not in schema.INDEX_TABLES for c in comps):
            self.unknown(name, "not supported")
            return None
        probes: list[Clause] = []
        sets: list[Select[Any]] = []
        for v in values:
            parts = P.split_escaped(v, "$")
            if len(parts) != len(comps):
                raise P.bad(name, f"'{v}' needs {len(comps)} '$'-separated parts")
            tables = [schema.INDEX_TABLES[c.type].alias() for c in comps if c is not None]
            first = tables[0]
            inner: Clause | None = None
            # innermost first: each later component must share the first component's grp
            for i in range(len(comps) - 1, 0, -1):
                c, t = comps[i], tables[i]
                assert c is not None
                conds = [unindexed(t.c.param) == f"{sp.code}${i}",
                         self.value_pred(t, c.type, name, parts[i]),
                         t.c.resource_type == first.c.resource_type,
                         t.c.resource_id == first.c.resource_id, t.c.grp == first.c.grp]
                if inner is not None:
                    conds.append(inner)
                inner = self.exists(select(1).select_from(t).where(*conds))
            c0 = comps[0]
            assert c0 is not None
            head = [self.value_pred(first, c0.type, name, parts[0]),
                    *([inner] if inner is not None else [])]
            probes.append(self.probe(first, res, rtype, f"{sp.code}$0", *head))
            ids: Select[Any] | None
            if (sp.code in JOINT.get(rtype or "", ()) and len(comps) == 2
                    and P.split_escaped(parts[0], "|")[-1]):
                ids = _joint_ids(rtype, sp.code, name, parts)
            elif len(comps) == 2 and sp.code.startswith("component-"):
                ids = self._by_component_value(rtype, sp.code, comps, parts, name)
            else:
                ids = _ids(first, rtype, f"{sp.code}$0", *head)
            if ids is not None:
                sets.append(ids)
        if len(sets) != len(probes) or not sets:
            return Cond(or_(*probes))
        return Cond(or_(*probes), sets[0] if len(sets) == 1 else union(*sets), plan.RANGE)

    def _by_component_value(
        self, rtype: str | None, code: str, comps: list[SearchParam | None], parts: list[str],
        name: str,
    ) -> Select[Any] | None:
        """The ids of a ``component-*`` composite read from its value's index rows, the code
        probed in the same group. A component's code (systolic, diastolic) is in every
        reading of its kind, so driving from it read every BP reading of the county to keep
        those at 160 or above (at 20,000 residents 34,000 probes, 134 ms on SQLite). The
        token+quantity ones have a joint index instead (``_joint_ids``); this serves the
        rest (``component-code-value-concept``)."""
        code_sp, value_sp = comps
        assert code_sp is not None and value_sp is not None
        t0 = schema.INDEX_TABLES[code_sp.type].alias()
        t1 = schema.INDEX_TABLES[value_sp.type].alias()
        same_group = self.exists(select(1).select_from(t0).where(
            t0.c.resource_type == t1.c.resource_type, t0.c.resource_id == t1.c.resource_id,
            unindexed(t0.c.param) == f"{code}$0", t0.c.grp == t1.c.grp,
            self.value_pred(t0, code_sp.type, name, parts[0])))
        return _ids(t1, rtype, f"{code}$1", self.value_pred(t1, value_sp.type, name, parts[1]),
                    same_group)

    def value_pred(self, t: FromClause, ptype: str, name: str, value: str) -> Clause:
        if ptype == "string":
            return P.string_pred(t, name, "", value)
        if ptype == "token":
            return P.token_pred(t, name, "", value)
        if ptype == "reference":
            return P.reference_pred(t, name, "", value, ())
        if ptype == "date":
            return P.date_pred(t, name, value)
        if ptype == "number":
            return P.number_pred(t, name, value)
        if ptype == "quantity":
            return P.quantity_pred(t, name, value)
        return P.uri_pred(t, name, "", value)

    # -- chains and reverse chains ----------------------------------------------------------

    def chain(
        self, res: FromClause, rtype: str | None, code: str, modifier: str, tail: str,
        value: str, name: str,
    ) -> Cond | None:
        sp = search_params(rtype).get(code)
        if sp is None:
            self.unknown(name)
            return None
        if sp.type != "reference":
            raise P.bad(name, f"'{code}' is not a reference parameter and cannot be chained")
        targets = [modifier] if modifier else list(sp.targets)
        tail_code = tail.split(".", 1)[0].split(":", 1)[0]
        t, ti = schema.search_reference.alias(), schema.search_reference.alias()
        probes: list[Clause] = []
        sets: list[Clause] = []
        rank = plan.BY_ID
        for target in targets:
            if not (tail_code in ("_id", "_lastUpdated", "_has")
                    or tail_code in search_params(target)):
                continue
            r2 = schema.resource.alias()
            inner = self.clause(r2, target, tail, value)
            if inner is None:
                return None
            live = [r2.c.resource_type == target, r2.c.deleted == false()]
            # probe: the one row this reference names; set: every matching target's id
            named = self.exists(select(1).select_from(r2).where(
                *live, r2.c.id == t.c.target_id, inner.probe))
            probes.append(and_(t.c.target_type == target, named))
            matching = select(r2.c.id).where(*live, _driven(r2, inner))
            sets.append(and_(ti.c.target_type == target, ti.c.target_id.in_(matching)))
            rank = max(rank, plan.chained(inner.rank) if inner.ids is not None or inner.keyed
                       else plan.PRESENT)
        if not probes:
            self.unknown(name)
            return None
        return Cond(self.probe(t, res, rtype, code, or_(*probes)),
                    _ids(ti, rtype, code, or_(*sets)), min(rank, plan.PRESENT))

    def has(self, res: FromClause, rtype: str | None, name: str, value: str) -> Cond | None:
        parts = name.split(":", 3)
        if len(parts) != 4 or not all(parts[1:]):
            raise P.bad(name, "expected _has:Type:reference-param:param")
        _, other, ref_code, rest = parts
        sp = search_params(other).get(ref_code)
        if sp is None or sp.type != "reference":
            raise P.bad(name, f"'{ref_code}' is not a reference parameter of {other}")
        r2 = schema.resource.alias()
        inner = self.clause(r2, other, rest, value)
        if inner is None:
            return None
        t, ti = schema.search_reference.alias(), schema.search_reference.alias()
        live = [r2.c.resource_type == other, r2.c.deleted == false()]
        target_type = t.c.target_type == (rtype if rtype else res.c.resource_type)
        probe = self.exists(select(1).select_from(t).where(
            t.c.resource_type == other, t.c.param == ref_code, target_type,
            t.c.target_id == res.c.id, self.exists(select(1).select_from(r2).where(
                *live, r2.c.id == t.c.resource_id, inner.probe))))
        if rtype is None:
            return Cond(probe)
        # the referring resources first, then their references (by resource id)
        referring = select(r2.c.id).where(*live, _driven(r2, inner))
        ids = select(ti.c.target_id).where(
            ti.c.resource_type == other, unindexed(ti.c.param) == ref_code,
            ti.c.target_type == rtype, ti.c.resource_id.in_(referring))
        weak = inner.ids is None and not inner.keyed
        return Cond(probe, ids, plan.PRESENT if weak else min(inner.rank + 1, plan.PRESENT))

    # -- sorting ----------------------------------------------------------------------------

    def sort(self, res: FromClause, rtype: str | None, value: str) -> list[Any]:
        out: list[Any] = []
        for key in (k.strip() for k in value.split(",")):
            if not key:
                continue
            desc = key.startswith("-")
            code = key.lstrip("-")
            col: Any
            if code == "_id":
                col = res.c.id
            elif code == "_lastUpdated":
                col = res.c.last_updated
            else:
                sp = search_params(rtype).get(code)
                if sp is None or (sp.type not in _SORT_COLUMN and sp.type != "date"):
                    self.unknown(f"_sort={key}", "not sortable")
                    continue
                t = schema.INDEX_TABLES[sp.type].alias()
                if sp.type == "date":
                    target = t.c.high if desc else t.c.low
                else:
                    target = t.c[_SORT_COLUMN[sp.type]]
                agg = func.max(target) if desc else func.min(target)
                col = select(agg).where(*_owned(t, res, rtype), unindexed(t.c.param) == code) \
                    .scalar_subquery()
            out.append(col.desc().nulls_last() if desc else col.asc().nulls_last())
        return out


def _joint_ids(rtype: str | None, code: str, name: str, parts: list[str]) -> Select[Any]:
    """The ids of a token+quantity composite with a code, from ``search_token_quantity``
    (``combos.JOINT``): one range of (code, value)."""
    t = schema.search_token_quantity.alias()
    return select(t.c.resource_id).where(
        t.c.resource_type == rtype, t.c.param == code,
        P.token_cond(t.c.token_system, t.c.token_code, name, parts[0]),
        P.quantity_pred(t, name, parts[1]))


def _driven(r2: FromClause, inner: Cond) -> Clause:
    """``inner`` on ``r2`` in its set form when it has one (read from its index range)."""
    return r2.c.id.in_(inner.ids) if inner.ids is not None else inner.probe
