"""Compile the FHIRPath subset of SQL-on-FHIR v2 views to DuckDB SQL expressions.

Every FHIRPath expression denotes a collection. A compiled :class:`Val` is either a
scalar SQL expression (``many=False``: at most one item, SQL NULL for the empty
collection) or a SQL list (``many=True``). Items are JSON (complex or unknown
elements) or typed primitives (``str``, ``int``, ``num``, ``bool``). The FHIR R4
definitions tell which elements are arrays, so a path such as ``name.given`` compiles
to one JSONPath (``$.name[*].given[*]``) and the JSON document is parsed once per path.

All engine-specific text comes from a :class:`~kangqiao.analytics.dialects.Dialect`
(DuckDB, or Spark SQL in struct mode).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import count

from kangqiao.analytics import schema
from kangqiao.analytics.dialects import SQL_TYPE, Dialect, sql_str
from kangqiao.analytics.fhirpath_ast import (
    Bin,
    Call,
    Ident,
    Index,
    Lit,
    Nav,
    Node,
    This,
    Unary,
    Var,
)  # fmt: skip
from kangqiao.analytics.fhirpath_bounds import BoundaryMixin

__all__ = ["SQL_TYPE", "Dialect", "sql_str"]  # re-exported: the compiler's public names



class CompileError(ValueError):
    """The expression uses FHIRPath this compiler does not support."""


class NeedJson(CompileError):
    """Struct mode cannot express this view; compile it against JSON instead."""


@dataclass(eq=False)
class SNode:
    """The part of a resource a view reads, as a DuckDB ``json_transform`` structure:
    only the elements the view touches are parsed, into typed STRUCTs and LISTs."""

    fields: dict[str, SNode] = field(default_factory=dict)
    leaf: str | None = None  # SQL type of a primitive element
    many: bool = False

    def structure(self) -> object:
        inner: object = self.leaf or (
            {k: v.structure() for k, v in self.fields.items()} if self.fields else "JSON")
        return [inner] if self.many else inner


class _Sql(str):
    """SQL text smuggled into the AST as a literal (for desugared functions)."""


@dataclass(frozen=True)
class Val:
    sql: str
    many: bool
    kind: str  # json | str | int | num | bool
    ftype: str | None = None  # FHIR type or backbone path of the items, when known
    root: str | None = None  # JSON root expression, with ``path``: a chainable JSONPath
    path: str | None = None
    choice: schema.Element | None = None  # a choice element awaiting ofType()
    resource: bool = False
    snode: SNode | None = None  # struct mode: the structure node of the items
    # struct mode, a list of single fields reached through a list: (list, var, item) with
    # ``sql`` = the non-null ``item``s of ``list`` (``var`` its lambda variable), so that
    # a further field is read in the same lambda instead of one list per step
    chain: tuple[str, str, Val] | None = None


@dataclass
class Ctx:
    focus: Val
    resource: Val
    row_index: str
    constants: dict[str, Val]

    def var(self) -> str:
        return fresh()

    def at(self, focus: Val, row_index: str | None = None) -> Ctx:
        return Ctx(focus, self.resource, row_index or self.row_index, self.constants)


_NAMES = count()


def fresh() -> str:
    """A lambda parameter name unique within the process (nested lambdas never shadow)."""
    return f"_v{next(_NAMES)}"


def item_val(var: str, of: Val) -> Val:
    """A lambda variable (or any scalar SQL) standing for one item of the collection ``of``."""
    json = of.kind == "json" and of.snode is None
    return Val(var, False, of.kind, of.ftype, root=var if json else None,
               path="$" if json else None, snode=of.snode)  # fmt: skip


class Compiler(BoundaryMixin):
    def __init__(self, dialect: Dialect | None = None) -> None:
        self.d = dialect or Dialect()
        self.whole: list[SNode] = []  # Spark: elements read whole, as JSON text

    def keep_whole(self, node: SNode) -> None:
        """Spark struct mode: parse ``node`` as its JSON text (the reader keeps an object or
        array as text where the schema says STRING) instead of as a STRUCT."""
        if self.d.name != "spark":
            raise NeedJson("a complex value used as a whole")
        node.leaf = "JSON"
        self.whole.append(node)

    # --- collection helpers -----------------------------------------------------------
    def as_list(self, v: Val) -> str:
        if v.many:
            return v.sql
        return (f"(CASE WHEN {v.sql} IS NULL THEN {self.d.no_items()} "
                f"ELSE {self.d.array([v.sql])} END)")  # fmt: skip

    def singleton(self, v: Val, what: str) -> Val:
        """FHIRPath singleton evaluation: more than one item is an error."""
        if not v.many:
            return v
        err = self.d.error(f"{what}: expected a single value, found several")
        return item_val(f"(CASE WHEN {self.d.size(v.sql)} > 1 THEN {err} ELSE "
                        f"{self.d.at(v.sql, '1')} END)", v)  # fmt: skip

    def to_kind(self, v: Val, kind: str) -> Val:
        if v.kind == kind:
            return v
        if v.snode is not None:
            raise NeedJson("a complex value used as a whole")
        if not v.many:
            return Val(self.d.convert(v.sql, v.kind, kind), False, kind)
        x = fresh()
        return Val(self.d.transform(v.sql, x, self.d.convert(x, v.kind, kind)), True, kind)

    def to_bool(self, v: Val, what: str) -> str:
        one = self.singleton(v, what)
        if one.snode is not None:
            raise NeedJson("a complex value used as a boolean")
        if one.kind == "bool":
            return one.sql
        if one.kind == "json":
            return f"TRY_CAST({one.sql} AS BOOLEAN)"
        return f"(CASE WHEN {one.sql} IS NULL THEN NULL ELSE TRUE END)"

    def map_items(self, v: Val, ctx: Ctx, fn: Callable[[Val], Val]) -> Val:
        """Apply ``fn`` to each item of a collection, flattening the results."""
        if not v.many:
            return fn(v)
        x = ctx.var()
        out = fn(item_val(x, v))
        body = self.as_list(out) if out.many else out.sql
        sql = self.d.transform(v.sql, x, body)
        sql = self.d.flatten(sql) if out.many else self.d.filter(sql, "_n", "_n IS NOT NULL")
        return Val(sql, True, out.kind, out.ftype, snode=out.snode)

    # --- navigation ----------------------------------------------------------------------
    def nav(self, v: Val, name: str, ctx: Ctx) -> Val:
        if v.choice is not None:
            v = self.resolve_choice(v, None)
        if v.kind != "json":
            raise CompileError(f"cannot navigate to {name!r} from a {v.kind} value")
        el = schema.element(v.ftype, name) if v.ftype else None
        if el is None and v.resource and name in ("resourceType", "id"):
            el = schema.Element(False, ("string",), False, None)
        if v.snode is not None:
            return self.struct_nav(v, name, el, ctx)
        if not v.many and v.root is None:
            v = replace(v, root=v.sql, path="$")
        if el is not None and el.choice and v.root is None:  # per item of a list
            return Val(v.sql, True, "json", None, path=f"$.{name}", choice=el)
        if v.root is None or v.path is None or (v.many and el is None):
            return self.map_items(v, ctx, lambda item: self.nav(item, name, ctx))
        if el is None:
            got = self.d.json_get(v.root, f"{v.path}.{name}")
            sql = (f"(CASE WHEN {got} IS NULL THEN []::JSON[] WHEN json_type({got}) = 'ARRAY' "
                   f"THEN CAST({got} AS JSON[]) ELSE [{got}] END)")  # fmt: skip
            return Val(sql, True, "json")
        if el.choice:
            return replace(v, choice=el, path=f"{v.path}.{name}", ftype=None)
        return self.step(v.root, f"{v.path}.{name}{'[*]' if el.many else ''}",
                         v.many or el.many, el.types[0] if el.types else None, el)  # fmt: skip

    def step(self, root: str, path: str, many: bool, ftype: str | None,
             el: schema.Element | None) -> Val:  # fmt: skip
        kind = schema.PRIMITIVE_KIND.get(ftype or "", "json")
        sql = self.d.json_get_typed(root, path, kind, many)
        if kind != "json":
            return Val(sql, many, kind, ftype)
        context = el.type_context(ftype) if el else ftype
        return Val(sql, many, "json", context, root=root, path=path)

    def struct_nav(self, v: Val, name: str, el: schema.Element | None, ctx: Ctx) -> Val:
        if el is None:
            raise NeedJson(f"unknown element {name!r}")
        if el.choice:
            return replace(v, choice=el, path=name, ftype=None)
        return self.struct_step(v, name, el, el.types[0] if el.types else None, ctx)

    def struct_step(self, v: Val, name: str, el: schema.Element, ftype: str | None,
                    ctx: Ctx) -> Val:  # fmt: skip
        kind = schema.PRIMITIVE_KIND.get(ftype or "", "json")

        def one(item: Val) -> Val:
            assert item.snode is not None
            node = item.snode.fields.setdefault(name, SNode(many=el.many))
            if kind != "json":
                node.leaf = SQL_TYPE[kind]
            sql = self.d.field(item.sql, name)
            if el.many:
                sql = f"coalesce({sql}, {self.d.no_items()})"
            if kind != "json":
                return Val(sql, el.many, kind, ftype)
            return Val(sql, el.many, "json", el.type_context(ftype), snode=node)

        if not v.many:
            return one(v)
        # a.b.c over a list a: one lambda reading x.b.c, not a list of b then a list of c
        # (field access is NULL for a NULL item, so the NULLs are dropped once, at the end)
        src, x, item = v.chain if v.chain is not None else (v.sql, ctx.var(), None)
        out = one(item if item is not None else item_val(x, v))
        if out.many:
            sql = self.d.flatten(self.d.transform(src, x, out.sql))
            return Val(sql, True, out.kind, out.ftype, snode=out.snode)
        sql = self.d.filter(self.d.transform(src, x, out.sql), "_n", "_n IS NOT NULL")
        return Val(sql, True, out.kind, out.ftype, snode=out.snode, chain=(src, x, out))

    def resolve_choice(self, v: Val, type_name: str | None, ctx: Ctx | None = None) -> Val:
        el = v.choice
        assert el is not None and v.path is not None
        if v.snode is not None:
            if type_name is None and len(el.types) != 1:
                return self.any_choice(v, ctx)
            t = schema.type_from_spec(type_name or el.types[0], el.types)
            if el.types and t not in el.types:
                return Val("NULL", False, "json")
            single = schema.Element(el.many, (t,), False, el.context)
            base = replace(v, choice=None, path=None)
            return self.struct_step(base, v.path + schema.choice_suffix(t), single, t,
                                    ctx or Ctx(base, base, "0", {}))  # fmt: skip
        if v.root is None:  # a list: resolve on each item
            x = fresh()
            item = Val(x, False, "json", root=x, path=v.path, choice=el)
            one = self.resolve_choice(item, type_name)
            sql = self.d.filter(self.d.transform(v.sql, x, one.sql), "_n", "_n IS NOT NULL")
            return Val(sql, True, one.kind, one.ftype)
        if type_name is not None:
            t = schema.type_from_spec(type_name, el.types)
            if el.types and t not in el.types:
                return Val("NULL", False, "json")
            return self.step(v.root, v.path + schema.choice_suffix(t), v.many, t, el)
        parts = [self.d.json_get(v.root, v.path + schema.choice_suffix(t)) for t in el.types]
        sql = f"coalesce({', '.join(parts)})" if parts else self.d.null()
        return Val(sql, v.many, "json", None, root=sql if not v.many else None,
                   path="$" if not v.many else None)  # fmt: skip

    def any_choice(self, v: Val, ctx: Ctx | None) -> Val:
        """Struct mode, a choice element without ``ofType()`` (``value.exists()``, or a
        column of whichever ``value[x]`` is present): the present one as JSON, primitives
        converted, complex types read whole (Spark only; DuckDB reads such views as JSON)."""
        el, name = v.choice, v.path
        assert el is not None and name is not None
        if self.d.name != "spark":
            raise NeedJson("a choice element without ofType()")
        base = replace(v, choice=None, path=None)
        ctx = ctx or Ctx(base, base, "0", {})

        def one(item: Val) -> Val:
            parts = []
            for t in el.types:
                single = schema.Element(False, (t,), False, el.context)
                got = self.struct_step(item, name + schema.choice_suffix(t), single, t, ctx)
                if got.snode is not None:
                    self.keep_whole(got.snode)
                    parts.append(got.sql)
                else:
                    parts.append(self.d.convert(got.sql, got.kind, "json"))
            return Val(f"coalesce({', '.join(parts)})", False, "json")

        return self.map_items(base, ctx, one) if base.many else one(base)

    # --- expressions ------------------------------------------------------------------------
    def compile(self, node: Node, ctx: Ctx) -> Val:
        if isinstance(node, Lit):
            return self.literal(node)
        if isinstance(node, This):
            return ctx.focus
        if isinstance(node, Ident):
            return self.nav(ctx.focus, node.name, ctx)
        if isinstance(node, Nav):
            return self.nav(self.compile(node.base, ctx), node.name, ctx)
        if isinstance(node, Var):
            return self.variable(node.name, ctx)
        if isinstance(node, Index):
            return self.index(node, ctx)
        if isinstance(node, Call):
            return self.call(node, ctx)
        if isinstance(node, Unary):
            inner = self.singleton(self.compile(node.operand, ctx), "unary operand")
            return Val(f"(-{inner.sql})", False, inner.kind) if node.op == "-" else inner
        return self.binary(node, ctx)

    def literal(self, node: Lit) -> Val:
        if isinstance(node.value, _Sql):  # an already compiled string
            return Val(node.value, False, "str")
        if node.kind == "empty":
            return Val(self.d.null(), False, "json")
        if node.kind == "str":
            return Val(self.d.lit(str(node.value)), False, "str")
        if node.kind == "bool":
            return Val("TRUE" if node.value else "FALSE", False, "bool")
        return Val(f"CAST({node.value!r} AS {self.d.type(node.kind)})", False, node.kind)

    def variable(self, name: str, ctx: Ctx) -> Val:
        if name == "rowIndex":
            return Val(ctx.row_index, False, "int")
        if name in ("resource", "rootResource", "context"):
            return ctx.resource
        if name in ctx.constants:
            return ctx.constants[name]
        raise CompileError(f"undefined constant %{name}")

    def index(self, node: Index, ctx: Ctx) -> Val:
        base = self.compile(node.base, ctx)
        idx = self.singleton(self.to_kind(self.compile(node.index, ctx), "int"), "index")
        if not base.many:
            return item_val(f"(CASE WHEN {idx.sql} = 0 THEN {base.sql} END)", base)
        # a negative index selects nothing in FHIRPath (it is not "from the end")
        return item_val(self.d.at(base.sql, f"(CASE WHEN {idx.sql} >= 0 THEN {idx.sql} + 1 END)"),
                        base)

    def binary(self, node: Bin, ctx: Ctx) -> Val:
        op = node.op
        left, right = self.compile(node.left, ctx), self.compile(node.right, ctx)
        if op in ("and", "or", "implies", "xor"):
            lb, rb = self.to_bool(left, op), self.to_bool(right, op)
            sql = {"and": f"({lb} AND {rb})", "or": f"({lb} OR {rb})",
                   "implies": f"((NOT {lb}) OR {rb})", "xor": f"({lb} <> {rb})"}[op]  # fmt: skip
            return Val(sql, False, "bool")
        if op == "|":
            kind = left.kind if left.kind == right.kind else "json"
            a, b = self.to_kind(left, kind), self.to_kind(right, kind)
            sql = self.d.distinct(self.d.concat([self.as_list(a), self.as_list(b)]))
            return Val(sql, True, kind, left.ftype if left.ftype == right.ftype else None)
        if op in ("in", "contains"):
            item, coll = (left, right) if op == "in" else (right, left)
            kind = coll.kind
            one = self.singleton(self.to_kind(item, kind), op)
            lst = self.as_list(coll)
            return Val(f"(CASE WHEN {one.sql} IS NULL THEN NULL ELSE "
                       f"{self.d.contains(lst, one.sql)} END)", False, "bool")  # fmt: skip
        kind = self.common_kind(left, right, op)
        a, b = self.to_kind(left, kind), self.to_kind(right, kind)
        if op in ("=", "!=", "~", "!~"):
            return self.equality(op, a, b)
        a, b = self.singleton(a, op), self.singleton(b, op)
        if op in ("<", ">", "<=", ">="):
            return Val(f"({a.sql} {op} {b.sql})", False, "bool")
        if op == "&":
            return Val(f"(coalesce({a.sql}, '') || coalesce({b.sql}, ''))", False, "str")
        if op == "+" and kind == "str":
            return Val(f"({a.sql} || {b.sql})", False, "str")
        if kind not in ("int", "num"):
            raise CompileError(f"operator {op!r} needs numbers")
        if op in ("+", "-", "*"):
            return Val(f"({a.sql} {op} {b.sql})", False, kind)
        zero = f"CASE WHEN {b.sql} = 0 THEN NULL ELSE"
        if op == "/":
            return Val(f"({zero} CAST({a.sql} AS DOUBLE) / {b.sql} END)", False, "num")
        if op == "div":
            return Val(f"({zero} {self.d.int_div(a.sql, b.sql)} END)", False, "int")
        if op == "mod":
            return Val(f"({zero} {a.sql} % {b.sql} END)", False, kind)
        raise CompileError(f"unsupported operator {op!r}")

    @staticmethod
    def common_kind(left: Val, right: Val, op: str) -> str:
        kinds = {left.kind, right.kind}
        if len(kinds) == 1:
            return left.kind
        if kinds == {"int", "num"}:
            return "num"
        if "json" in kinds:
            return (kinds - {"json"}).pop()
        if op in ("&", "=", "!=", "~", "!~"):
            return "str"
        raise CompileError(f"operator {op!r} cannot compare {left.kind} with {right.kind}")

    def equality(self, op: str, a: Val, b: Val) -> Val:
        if a.kind == "json":
            a, b = self.to_kind(a, "str"), self.to_kind(b, "str")
        if op in ("~", "!~") and a.kind == "str":
            a = self.to_kind(Val(f"lower(trim({self.singleton(a, op).sql}))", False, "str"), "str")
            b = self.to_kind(Val(f"lower(trim({self.singleton(b, op).sql}))", False, "str"), "str")
        if a.many or b.many:
            la, lb = self.as_list(a), self.as_list(b)
            sql = (f"(CASE WHEN {self.d.size(la)} = 0 OR {self.d.size(lb)} = 0 THEN NULL "
                   f"ELSE {la} = {lb} END)")  # fmt: skip
        else:
            sql = f"({a.sql} = {b.sql})"
        if op in ("~", "!~"):
            sql = f"coalesce({sql}, ({a.sql}) IS NULL AND ({b.sql}) IS NULL)"
        return Val(f"(NOT {sql})" if op.startswith("!") else sql, False, "bool")

    # --- functions ----------------------------------------------------------------------------
    def call(self, node: Call, ctx: Ctx) -> Val:
        base = ctx.focus if node.base is None else self.compile(node.base, ctx)
        name, args = node.name, node.args
        from kangqiao.analytics.fhirpath_funcs import FUNCTIONS

        handler = FUNCTIONS.get(name)
        if handler is not None:
            return handler(self, base, args, ctx)
        if name in ("lowBoundary", "highBoundary"):
            return self.boundary(base, args, ctx, high=name == "highBoundary")
        raise CompileError(f"unsupported FHIRPath function {name}()")
