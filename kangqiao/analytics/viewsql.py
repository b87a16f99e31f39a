"""Compile a validated ViewDefinition into one SQL query over a table of resources.

The query reads a relation with a JSON column ``resource`` and returns one row per
view row, columns in the view's order. Per resource, each selection structure yields
either a single row (columns evaluated in place: the fast path of flat views) or a
list of row structs built with list functions: ``forEach`` maps the body over the
collection, ``forEachOrNull`` substitutes one all-null row for an empty collection,
``repeat`` walks the tree to a bounded depth, sibling selects are cross-joined and
``unionAll`` branches concatenated, exactly as the processing model of the
specification describes. The final list is ``unnest``-ed into rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from kangqiao.analytics import schema
from kangqiao.analytics.fhirpath_ast import Ident, Nav
from kangqiao.analytics.fhirpath_sql import (
    CompileError,
    Compiler,
    Ctx,
    Dialect,
    NeedJson,
    SNode,
    Val,
    item_val,
    sql_str,
)  # fmt: skip
from kangqiao.analytics.sources import struct_source
from kangqiao.analytics.viewdef import Column, Constant, Expr, Select, View, ViewDefinitionError

REPEAT_DEPTH = 12  # levels a ``repeat`` follows; deeper nodes are not reached


@dataclass(frozen=True)
class OutColumn:
    name: str
    sql_type: str  # engine type of the column (DuckDB ``VARCHAR``, ``BIGINT[]``, ``JSON`` ...)
    kind: str  # json | str | int | num | bool (of the items, for collections)
    collection: bool


@dataclass
class Rows:
    cols: list[str]
    single: dict[str, str] | None = None  # exactly one row: column -> SQL
    lst: str | None = None  # or a SQL list of row structs


def merge_structures(a: object, b: object) -> object | None:
    """One structure holding what both ``a`` and ``b`` read, or None when they disagree on
    an element's type (then each view parses the documents itself)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            merged = v if k not in a else merge_structures(a[k], v)
            if merged is None:
                return None
            out[k] = merged
        return out
    if isinstance(a, list) and isinstance(b, list):
        inner = merge_structures(a[0], b[0])
        return None if inner is None else [inner]
    return a if a == b and isinstance(a, str) else None


class ViewCompiler:
    def __init__(self, view: View, dialect: Dialect | None = None, struct: bool = True) -> None:
        """``struct``: parse each resource once into typed STRUCTs holding only the
        elements the view reads (fast); raises :class:`NeedJson` when the view needs
        whole JSON values, unknown elements or ``repeat``; then use ``struct=False``."""
        self.view = view
        self.struct = struct
        self.root_node = SNode()
        self.fp = Compiler(dialect)
        self.d = self.fp.d
        self.columns: dict[str, OutColumn] = {}
        self.forced: dict[str, OutColumn] = {}

    # --- expressions -------------------------------------------------------------------
    def expr(self, e: Expr, ctx: Ctx) -> Val:
        try:
            return self.fp.compile(e.node, ctx)
        except NeedJson:
            raise
        except CompileError as exc:
            raise ViewDefinitionError(f"{e.loc}: {exc} (in {e.text!r})") from None

    def column(self, col: Column, ctx: Ctx) -> str:
        v = self.expr(col.path, ctx)
        if v.choice is not None:
            v = self.fp.resolve_choice(v, None)
        kind = schema.PRIMITIVE_KIND.get(col.type, "json") if col.type else v.kind
        if v.snode is not None:
            if self.d.name != "spark" or v.resource:
                raise NeedJson(f"column {col.name!r} returns a complex value")
            self.fp.keep_whole(v.snode)
            v = replace(v, snode=None)
        out = OutColumn(col.name, self.d.type(kind, col.collection), kind, col.collection)
        out = self.forced.get(col.name, out)
        prev = self.columns.get(col.name)
        if prev is not None and prev != out:  # unionAll branches disagree: fall back to text
            kind = "json" if "json" in (prev.kind, out.kind) else "str"
            self.forced[col.name] = OutColumn(col.name, self.d.type(kind, col.collection), kind,
                                              col.collection)  # fmt: skip
        self.columns.setdefault(col.name, out)
        v = self.fp.to_kind(v, out.kind)
        if out.collection:
            lst = self.fp.as_list(v)
            return (f"CAST((CASE WHEN {self.d.size(lst)} = 0 THEN NULL ELSE {lst} END) "
                    f"AS {out.sql_type})")  # fmt: skip
        if v.many:
            err = self.d.error(f"column {col.name!r}: multiple values found but not expected "
                               f"for column (path {col.path.text!r}; set collection: true)")
            sql = (f"(CASE WHEN {self.d.size(v.sql)} > 1 THEN {err} ELSE "
                   f"{self.d.at(v.sql, '1')} END)")  # fmt: skip
        else:
            sql = v.sql
        return f"CAST({sql} AS {out.sql_type})"

    # --- selection structures --------------------------------------------------------------
    def rows(self, sel: Select, ctx: Ctx) -> Rows:
        if sel.for_each is None and not sel.repeat:
            return self.body(sel, ctx)
        texts: str | None = None  # Spark's repeat: the nodes as JSON texts, parsed below
        if sel.for_each is not None:
            foci = self.expr(sel.for_each, ctx)
            if foci.choice is not None:
                foci = self.fp.resolve_choice(foci, None)
            lst = self.fp.as_list(foci)
        elif self.struct:
            foci, texts = self.repeat_texts(sel, ctx)
        else:
            foci, lst = self.repeat(sel, ctx)
        x, i = ctx.var(), ctx.var()
        body = self.body(sel, ctx.at(item_val(x, foci), row_index=self.d.index0(i)))
        if texts is not None:  # now the body has said which parts of a node it reads
            assert foci.snode is not None
            lst = texts if not foci.snode.fields else self.d.transform(
                texts, x, self.d.parse(x, foci.snode.structure()))  # type: ignore[attr-defined]
        each = self.d.struct(body.single) if body.single is not None else str(body.lst)
        out = self.d.transform(lst, f"{x}, {i}", each)
        if body.single is None:
            out = self.d.flatten(out)
        if sel.or_null:
            index_cols = {c.name for c in sel.columns if c.path.text.strip() == "%rowIndex"}
            nulls = self.d.struct({c: f"CAST({'0' if c in index_cols else 'NULL'} AS "
                                      f"{self.col_type(c)})" for c in body.cols})  # fmt: skip
            out = f"(CASE WHEN {self.d.size(lst)} = 0 THEN {self.d.array([nulls])} ELSE {out} END)"
        return Rows(body.cols, lst=out)

    def repeat(self, sel: Select, ctx: Ctx) -> tuple[Val, str]:
        """All nodes reached by following the repeat paths recursively, depth first."""
        if self.struct:
            raise NeedJson("repeat")

        def children(focus: Val, c: Ctx) -> Val:
            vals = [self.expr(p, c.at(focus)) for p in sel.repeat]
            vals = [self.fp.resolve_choice(v, None) if v.choice else v for v in vals]
            ftypes = {v.ftype for v in vals if v.ftype}  # unknown paths yield nothing
            sql = vals[0].sql if len(vals) == 1 and vals[0].many else (
                self.d.concat([self.fp.as_list(v) for v in vals]))
            return Val(sql, True, "json", ftypes.pop() if len(ftypes) == 1 else None)

        def walk(focus: Val, depth: int) -> Val:
            kids = children(focus, ctx)
            if depth == 0:
                return kids
            c = ctx.var()
            below = walk(item_val(c, kids), depth - 1)
            sql = self.d.flatten(self.d.transform(kids.sql, c, self.d.prepend(c, below.sql)))
            return Val(sql, True, "json", kids.ftype)

        top = walk(ctx.focus, REPEAT_DEPTH)
        return top, top.sql

    def repeat_texts(self, sel: Select, ctx: Ctx) -> tuple[Val, str]:
        """Spark (struct mode): the nodes a ``repeat`` reaches, depth first, as JSON texts.
        Nodes of different depths have different STRUCT types, so the first level is read
        whole (as text) and each node's children are found in its text; every node is then
        parsed into the one structure the body reads (:meth:`rows`). Same depth bound as
        DuckDB's JSON walk."""
        if self.d.name != "spark":
            raise NeedJson("repeat")
        paths = [self.path_names(p) for p in sel.repeat]
        firsts, ftypes = [], set()
        for p in sel.repeat:
            try:
                v = self.expr(p, ctx)
            except NeedJson:  # an element the focus's type does not have: no nodes
                continue
            if v.snode is None or v.kind != "json":
                raise NeedJson(f"repeat path {p.text!r} does not lead to elements")
            self.fp.keep_whole(v.snode)
            firsts.append(self.fp.as_list(v))
            ftypes.add(v.ftype)
        ftype = ftypes.pop() if len(ftypes) == 1 else None
        d = self.d

        def children(text: str) -> str:
            lists = []
            for names in paths:
                lst, t = d.array([text]), ftype
                for name in names:
                    el = schema.element(t, name) if t else None
                    if el is None or el.choice:
                        lst = d.no_items()
                        break
                    y = ctx.var()
                    got = d.text_get(y, name)  # type: ignore[attr-defined]
                    lst = (d.flatten(d.transform(lst, y, d.text_items(got)))  # type: ignore[attr-defined]
                           if el.many else d.filter(d.transform(lst, y, got), "_n",
                                                    "_n IS NOT NULL"))  # fmt: skip
                    t = el.type_context(el.types[0] if el.types else None)
                lists.append(lst)
            return d.concat(lists) if len(lists) > 1 else lists[0]

        def walk(nodes: str, depth: int) -> str:
            if depth == 0:
                return nodes
            c = ctx.var()
            return d.flatten(d.transform(nodes, c, d.prepend(c, walk(children(c), depth - 1))))

        top = d.concat(firsts) if len(firsts) > 1 else (firsts[0] if firsts else d.empty())
        return Val("NULL", True, "json", ftype, snode=SNode()), walk(top, REPEAT_DEPTH)

    @staticmethod
    def path_names(e: Expr) -> list[str]:
        """The element names of a plain path (``answer.item``); Spark's repeat follows only
        those."""
        names: list[str] = []
        node = e.node
        while isinstance(node, Nav):
            names.append(node.name)
            node = node.base
        if not isinstance(node, Ident):
            raise NeedJson(f"repeat path {e.text!r} is not a plain path")
        return [node.name, *reversed(names)]

    def body(self, sel: Select, ctx: Ctx) -> Rows:
        parts: list[Rows] = []
        if sel.columns:
            single = {c.name: self.column(c, ctx) for c in sel.columns}
            parts.append(Rows(list(single), single=single))
        parts += [self.rows(sub, ctx) for sub in sel.selects]
        if sel.union_all:
            branches = [self.rows(b, ctx) for b in sel.union_all]
            lists = [self.as_list(b) for b in branches]
            parts.append(Rows(branches[0].cols, lst=self.d.concat(lists)))
        acc = parts[0]
        for part in parts[1:]:
            acc = self.product(acc, part, ctx)
        return acc

    def as_list(self, rows: Rows) -> str:
        if rows.single is not None:
            return self.d.array([self.d.struct(rows.single)])
        return str(rows.lst)

    def col_type(self, name: str) -> str:
        col = self.forced.get(name) or self.columns.get(name)
        return col.sql_type if col else self.d.type("json")

    def product(self, a: Rows, b: Rows, ctx: Ctx) -> Rows:
        cols = a.cols + b.cols
        if a.single is not None and b.single is not None:
            return Rows(cols, single={**a.single, **b.single})
        if a.single is not None or b.single is not None:
            single, lst = (a.single, b) if a.single is not None else (b.single or {}, a)
            r = ctx.var()
            fields = {c: self.d.field(r, c) for c in lst.cols}
            merged = {**single, **fields}
            ordered = {c: merged[c] for c in cols}
            return Rows(cols, lst=self.d.transform(str(lst.lst), r, self.d.struct(ordered)))
        ra, rb = ctx.var(), ctx.var()
        fields = {c: self.d.field(ra, c) for c in a.cols} | {c: self.d.field(rb, c) for c in b.cols}
        inner = self.d.transform(str(b.lst), rb, self.d.struct(fields))
        return Rows(cols, lst=self.d.flatten(self.d.transform(str(a.lst), ra, inner)))

    # --- the query ---------------------------------------------------------------------------
    def context(self) -> Ctx:
        self.root_node = SNode()
        self.fp.whole = []
        if self.struct:
            res = Val("resource", False, "json", self.view.resource, resource=True,
                      snode=self.root_node)  # fmt: skip
        else:
            res = Val("resource", False, "json", self.view.resource, root="resource", path="$",
                      resource=True)  # fmt: skip
        consts = {name: self.constant(c) for name, c in self.view.constants.items()}
        return Ctx(res, res, "CAST(0 AS BIGINT)", consts)

    def constant(self, c: Constant) -> Val:
        if c.kind == "str":
            return Val(self.d.lit(str(c.value)), False, "str", c.type)
        if c.kind == "bool":
            return Val("TRUE" if c.value else "FALSE", False, "bool", c.type)
        return Val(f"CAST({c.value!r} AS {self.d.type(c.kind)})", False, c.kind, c.type)

    def structure(self) -> dict[str, object] | None:
        """DuckDB struct mode: the elements the view reads, as the columns of DuckDB's JSON
        reader; None when the view reads the documents as JSON (no parse to share)."""
        if not self.struct or self.d.name == "spark":
            return None
        self.sql("_probe")
        if not self.root_node.fields:
            return None
        self.root_node.fields.setdefault("resourceType", SNode(leaf="VARCHAR"))
        structure = self.root_node.structure()
        assert isinstance(structure, dict)
        return structure

    def sql(self, source: str, files: list[str] | None = None, parsed: bool = False) -> str:
        """The query over ``source``: a relation (table, view or subquery) with a JSON
        column named ``resource``; or, given ``files``, over NDJSON files read directly
        (in struct mode DuckDB's reader then parses straight into the view's structure);
        or, ``parsed``, a relation whose ``resource`` is already a STRUCT holding at least
        :meth:`structure` (one parse shared by the views of a resource type)."""
        for _attempt in range(2):
            self.columns = {}
            ctx = self.context()
            type_filter = (f"json_extract_string(resource, '$.resourceType') = "
                           f"{sql_str(self.view.resource)}")  # fmt: skip
            conds = ["TRUE"] if self.struct else [type_filter]
            for w in self.view.where:
                v = self.expr(w, ctx)
                if v.kind not in ("bool", "json"):
                    raise ViewDefinitionError(f"{w.loc}: must evaluate to a boolean, "
                                              f"{w.text!r} gives a {v.kind}")  # fmt: skip
                conds.append(f"coalesce({self.fp.to_bool(v, w.loc)}, FALSE)")
            rows = self.body(self.view.root, ctx)
            if not self.forced or all(self.columns.get(k) == v for k, v in self.forced.items()):
                break
        where = " AND ".join(conds)
        if self.d.name == "spark":
            return self._spark_sql(source, rows, where, parsed)
        if self.struct and self.root_node.fields:
            # resourceType is parsed with the rest: one parse of each document
            self.root_node.fields.setdefault("resourceType", SNode(leaf="VARCHAR"))
            structure = self.root_node.structure()
            if parsed:
                source = f"(SELECT resource FROM {source}) AS _s"
            elif files is not None:
                assert isinstance(structure, dict)
                source = f"{struct_source(files, structure)} AS _s"
            else:
                source = (f"(SELECT json_transform(resource, {sql_str(json.dumps(structure))}) "
                          f"AS resource FROM {source}) AS _s")  # fmt: skip
            where = f'resource."resourceType" = {sql_str(self.view.resource)} AND {where}'
        elif self.struct:
            source = f"(SELECT resource FROM {source} WHERE {type_filter}) AS _s"
        return self._rows_sql(source, rows, where)

    def _spark_sql(self, source: str, rows: Rows, where: str, parsed: bool = False) -> str:
        """Spark: ``source`` has the documents as JSON text in ``resource``; each is parsed
        once by ``from_json`` into the view's structure (struct mode only). ``parsed``: its
        ``resource`` is a STRUCT of that structure already (typed Parquet)."""
        if not self.struct:
            raise NeedJson("the Spark engine compiles views in struct mode only")
        if any(node.fields for node in self.fp.whole):
            raise NeedJson("an element both returned whole and navigated into")
        self.root_node.fields.setdefault("resourceType", SNode(leaf="VARCHAR"))
        if parsed:
            source = f"(SELECT resource FROM {source}) AS _s"
            where = f"{self.d.field('resource', 'resourceType')} = " \
                    f"{self.d.lit(self.view.resource)} AND {where}"
            return self._rows_sql(source, rows, where)
        schema = self.d.schema(self.root_node.structure())  # type: ignore[attr-defined]
        # The type test reads one field (resourceType comes first in FHIR JSON); written on
        # the parsed struct, Spark would push it below the parse and parse twice.
        source = (f"(SELECT from_json(resource, {self.d.lit(schema)}) AS resource "
                  f"FROM {source} WHERE get_json_object(resource, '$.resourceType') = "
                  f"{self.d.lit(self.view.resource)}) AS _s")  # fmt: skip
        return self._rows_sql(source, rows, where)

    def _rows_sql(self, source: str, rows: Rows, where: str) -> str:
        """The view's columns from ``source``: one row per document, or one per item of the
        row list (``explode``)."""
        names = self.view.column_names
        if rows.single is not None:
            cols = ", ".join(f"{rows.single[n]} AS {self.d.ident(n)}" for n in names)
            return f"SELECT {cols} FROM {source} WHERE {where}"
        assert rows.lst is not None  # a view has single rows or a row list
        cols = ", ".join(f"{self.d.field('_row', n)} AS {self.d.ident(n)}" for n in names)
        return (f"SELECT {cols} FROM (SELECT {self.d.explode(rows.lst)} AS _row FROM {source} "
                f"WHERE {where}) AS _u")  # fmt: skip

    def output_columns(self) -> list[OutColumn]:
        return [self.forced.get(n) or self.columns[n] for n in self.view.column_names]
