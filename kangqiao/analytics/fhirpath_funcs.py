"""The FHIRPath functions of SQL-on-FHIR v2 views, compiled to SQL.

Each ``fn_<name>(compiler, base, args, ctx)`` compiles ``base.<name>(args)``; the
registry :data:`FUNCTIONS` maps FHIRPath names to them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kangqiao.analytics import schema
from kangqiao.analytics.fhirpath_ast import Bin, Ident, Lit, Nav, Node
from kangqiao.analytics.fhirpath_sql import CompileError, Ctx, Val, _Sql, item_val

if TYPE_CHECKING:
    from kangqiao.analytics.fhirpath_sql import Compiler

def _arity(name: str, args: tuple[Node, ...], lo: int, hi: int) -> None:
    if not lo <= len(args) <= hi:
        raise CompileError(f"{name}() takes {lo}..{hi} arguments, got {len(args)}")


def fn_where(c: Compiler, base: Val, args: tuple[Node, ...], ctx: Ctx) -> Val:
    _arity("where", args, 1, 1)
    if base.choice is not None:
        base = c.resolve_choice(base, None)
    if not base.many:
        cond = c.to_bool(c.compile(args[0], ctx.at(base)), "where")
        return item_val(f"(CASE WHEN {cond} THEN {base.sql} END)", base)
    x = ctx.var()
    cond = c.to_bool(c.compile(args[0], ctx.at(item_val(x, base))), "where")
    kept = f"coalesce({cond}, FALSE)"
    # struct mode: a field read after where() is read in the same lambda (see Val.chain)
    chain = None if base.snode is None or base.chain is not None else (
        base.sql, x, item_val(f"(CASE WHEN {kept} THEN {x} END)", base))  # fmt: skip
    return Val(c.d.filter(base.sql, x, kept), True, base.kind, base.ftype, snode=base.snode,
               chain=chain)  # fmt: skip


def fn_exists(c: Compiler, base: Val, args: tuple[Node, ...], ctx: Ctx) -> Val:
    _arity("exists", args, 0, 1)
    if args and base.choice is None and base.many:
        x = ctx.var()
        cond = c.to_bool(c.compile(args[0], ctx.at(item_val(x, base))), "exists")
        return Val(c.d.any_match(base.sql, x, f"coalesce({cond}, FALSE)"), False, "bool")
    if args:
        base = fn_where(c, base, args, ctx)
    if base.choice is not None:
        base = c.resolve_choice(base, None)
    sql = f"({c.d.size(base.sql)} > 0)" if base.many else f"({base.sql} IS NOT NULL)"
    return Val(sql, False, "bool")


def fn_empty(c: Compiler, base: Val, args: tuple[Node, ...], ctx: Ctx) -> Val:
    _arity("empty", args, 0, 0)
    return Val(f"(NOT {fn_exists(c, base, (), ctx).sql})", False, "bool")


def fn_not(c: Compiler, base: Val, args: tuple[Node, ...], ctx: Ctx) -> Val:
    _arity("not", args, 0, 0)
    return Val(f"(NOT {c.to_bool(base, 'not()')})", False, "bool")


def fn_first(c: Compiler, base: Val, args: tuple[Node, ...], ctx: Ctx) -> Val:
    _arity("first", args, 0, 0)
    return _pick(c, base, "1")


def fn_last(c: Compiler, base: Val, args: tuple[Node, ...], ctx: Ctx) -> Val:
    _arity("last", args, 0, 0)
    return _pick(c, base, "-1")


def _pick(c: Compiler, base: Val, pos: str) -> Val:
    if base.choice is not None:
        base = c.resolve_choice(base, None)
    if not base.many:
        return base
    if base.root is not None and base.path and base.path.endswith("[*]") and (
            base.path.count("[*]") == 1 and pos == "1"):  # fmt: skip
        return c.step(base.root, base.path[:-3] + "[0]", False, base.ftype, None)
    return item_val(c.d.at(base.sql, pos), base)


def fn_count(c: Compiler, base: Val, args: tuple[Node, ...], ctx: Ctx) -> Val:
    _arity("count", args, 0, 0)
    return Val(f"CAST({c.d.size(c.as_list(base))} AS BIGINT)", False, "int")


def fn_ofType(c: Compiler, base: Val, args: tuple[Node, ...], ctx: Ctx) -> Val:
    _arity("ofType", args, 1, 1)
    type_name = _type_arg(args[0])
    if base.choice is not None:
        return c.resolve_choice(base, type_name)
    if base.resource and schema.is_resource_type(type_name):
        if base.ftype == type_name:
            return base
        return Val(c.d.null(), False, "json")
    if base.ftype and "." not in base.ftype and base.ftype.lower() != type_name.lower():
        empty = Val(c.d.empty(), True, "json")
        return empty if base.many else Val(c.d.null(), False, "json")
    return base


def _type_arg(node: Node) -> str:
    if isinstance(node, Ident):
        return node.name
    if isinstance(node, Nav) and isinstance(node.base, Ident):
        return node.name  # FHIR.Quantity, System.String
    if isinstance(node, Lit) and node.kind == "str":
        return str(node.value)
    raise CompileError("expected a type name")


def fn_extension(c: Compiler, base: Val, args: tuple[Node, ...], ctx: Ctx) -> Val:
    _arity("extension", args, 1, 1)
    url = c.singleton(c.to_kind(c.compile(args[0], ctx), "str"), "extension url")
    ext = c.nav(base, "extension", ctx)
    return fn_where(c, ext, (Bin("=", Ident("url"), Lit(_Sql(url.sql), "sql")),), ctx)


def fn_join(c: Compiler, base: Val, args: tuple[Node, ...], ctx: Ctx) -> Val:
    _arity("join", args, 0, 1)
    sep = (c.singleton(c.to_kind(c.compile(args[0], ctx), "str"), "join").sql
           if args else "''")  # fmt: skip
    lst = c.as_list(c.to_kind(base, "str"))
    return Val(f"(CASE WHEN {c.d.size(lst)} = 0 THEN NULL ELSE {c.d.join(lst, sep)} END)",
               False, "str")  # fmt: skip


def fn_getResourceKey(c: Compiler, base: Val, args: tuple[Node, ...], ctx: Ctx) -> Val:
    _arity("getResourceKey", args, 0, 0)
    if base.kind != "json":
        raise CompileError("getResourceKey() must be called on a resource")
    return c.nav(base, "id", ctx)


def fn_getReferenceKey(c: Compiler, base: Val, args: tuple[Node, ...], ctx: Ctx) -> Val:
    _arity("getReferenceKey", args, 0, 1)
    wanted = _type_arg(args[0]) if args else None

    def key(ref: Val) -> Val:
        # Type/id, Type/id/_history/v and absolute URLs ending so; other forms (urn:,
        # #contained, identifiers) have no key. Plain string functions: no regex per row.
        r = c.to_kind(ref, "str").sql
        s = c.d.split_part(r, c.d.lit("/_history/"), 1)
        rtype = c.d.split_part(s, c.d.lit("/"), -2)
        rid = f"nullif({c.d.split_part(s, c.d.lit('/'), -1)}, '')"
        if wanted is None:
            cond = c.d.full_match(rtype, "[A-Z][A-Za-z]+")
            return Val(f"(CASE WHEN {cond} THEN {rid} END)", False, "str")
        # The usual relative form (Patient/123) first: a prefix test and one substring
        # cost a third of the general split (the CASE evaluates the rest for other rows).
        # Then a reference to another type is rejected by one substring search: the split
        # can only find the type where "Type/" occurs (at the start or after a "/").
        prefix = wanted + "/"
        rest = c.d.substr_from(r, len(prefix) + 1)
        return Val(f"(CASE WHEN {c.d.starts_with(r, c.d.lit(prefix))} AND NOT "
                   f"{c.d.has_text(rest, c.d.lit('/'))} THEN nullif({rest}, '') "
                   f"WHEN NOT {c.d.has_text(r, c.d.lit(prefix))} THEN NULL "
                   f"WHEN {rtype} = {c.d.lit(wanted)} THEN {rid} END)", False, "str")  # fmt: skip

    if base.kind != "json":
        return c.map_items(base, ctx, key)
    if base.many and base.snode is not None:
        # A list of Reference structs: the key per item in one lambda, rather than the
        # references listed first (a lambda and a null filter more per row).
        return c.map_items(base, ctx, lambda item: key(c.nav(item, "reference", ctx)))
    return c.map_items(c.nav(base, "reference", ctx), ctx, key)


FUNCTIONS: dict[str, Callable[[Compiler, Val, tuple[Node, ...], Ctx], Val]] = {
    "where": fn_where,
    "exists": fn_exists,
    "empty": fn_empty,
    "not": fn_not,
    "first": fn_first,
    "last": fn_last,
    "count": fn_count,
    "ofType": fn_ofType,
    "extension": fn_extension,
    "join": fn_join,
    "getResourceKey": fn_getResourceKey,
    "getReferenceKey": fn_getReferenceKey,
}
