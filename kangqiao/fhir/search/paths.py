"""Compile search-parameter FHIRPath expressions into fast extractors.

Nearly all R4 search expressions are unions of plain paths with a few filters
(``ofType``/``as``, ``where(resolve() is T)``, ``where(field='x')``, ``extension('url')``,
``[0]``). Those are compiled here into step lists walked directly over the JSON dicts,
using the StructureDefinitions to resolve choice elements and result types. Anything else
falls back to fhirpathpy (compiled once). An extractor returns ``(value, type)`` pairs;
``type`` is a FHIR type name, a backbone element path, or ``None`` when unknown (fallback).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fhirpathpy import compile as fp_compile
from fhirpathpy.models import models

from kangqiao.fhir.search.elements import ElementInfo, element_table

Node = tuple[Any, str | None]
Extractor = Callable[[Any], list[Node]]

_FIELD = re.compile(r"[a-z][A-Za-z0-9_]*$")
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]*$")
_INDEXED = re.compile(r"([a-z][A-Za-z0-9_]*)\[0\]$")
_TYPE_FN = re.compile(r"(?:ofType|as)\(([A-Za-z]+)\)$")
_RESOLVE = re.compile(r"where\(resolve\(\) is ([A-Z][A-Za-z]+)\)$")
_WHERE_EQ = re.compile(r"where\(([a-z][A-Za-z]*)\s*=\s*'([^']*)'\)$")
_EXT = re.compile(r"extension\('([^']*)'\)$")
_AS_SUFFIX = re.compile(r"^(.*\S)\s+as\s+([A-Za-z]+)$")


class Unsupported(Exception):
    """The expression is outside the fast subset: use fhirpathpy."""


def split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses and quotes."""
    parts: list[str] = []
    depth = 0
    quote = False
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quote = not quote
        elif not quote:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif depth == 0 and text.startswith(sep, i):
                parts.append(text[start:i].strip())
                start = i + len(sep)
                i = start
                continue
        i += 1
    parts.append(text[start:].strip())
    return parts


def _wrapped(text: str) -> bool:
    """True when the whole text is one parenthesised group: ``(a.b)`` but not ``(a) | (b)``."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and i < len(text) - 1:
            return False
    return True


def _strip_parens(text: str) -> str:
    while _wrapped(text):
        text = text[1:-1].strip()
    return text


def branches_for(expression: str, resource_type: str) -> list[str]:
    """The union branches of ``expression`` that apply to ``resource_type``."""
    out = []
    for raw in split_top(expression, "|"):
        b = _strip_parens(raw)
        root = re.match(r"[A-Za-z]+", b)
        name = root.group(0) if root else ""
        if name in (resource_type, "Resource", "DomainResource") or not name[:1].isupper():
            out.append(raw)
    return out


# A compiled step: (kind, arg). kinds: "field" {ctx: [(key, out_ctx)]}, "type" str,
# "resolve" str, "eq" (field, literal), "first" None.
Step = tuple[str, Any]


def _lookup(ctx: str, name: str) -> ElementInfo | None:
    table = element_table()
    info = table.get(f"{ctx}.{name}")
    if info is None and "." not in ctx and ctx not in ("Resource", "DomainResource"):
        # inherited from Resource / DomainResource / Element (id, meta, extension, text...)
        for base in ("DomainResource", "Resource", "Element"):
            info = table.get(f"{base}.{name}")
            if info is not None:
                break
    if info is not None and info.ref:
        return ElementInfo((info.ref,), False, None)
    return info


def _field_step(ctxs: set[str], name: str) -> tuple[Step, set[str]]:
    alts: dict[str, list[tuple[str, str]]] = {}
    out: set[str] = set()
    for ctx in ctxs:
        info = _lookup(ctx, name)
        if info is None:
            continue
        path = f"{ctx}.{name}"
        pairs: list[tuple[str, str]] = []
        for t in info.types or ("BackboneElement",):
            key = name + t[0].upper() + t[1:] if info.choice else name
            # Backbone elements are navigated by their own path; contentReference by target.
            out_ctx = path if t in ("BackboneElement", "Element") else t
            pairs.append((key, out_ctx))
            out.add(out_ctx)
        alts[ctx] = pairs
    if not alts:
        raise Unsupported(f"unknown element {name} on {sorted(ctxs)}")
    return ("field", alts), out


def _restrict(steps: list[Step], ctxs: set[str], type_name: str) -> set[str]:
    """Apply ofType/as: keep only the alternatives of the previous step of that type."""
    wanted = {type_name} if type_name in ctxs else set()
    if not wanted:
        # e.g. ofType(Quantity) on an element typed Age/SimpleQuantity-compatible: no match
        raise Unsupported(f"type {type_name} not among {sorted(ctxs)}")
    if steps and steps[-1][0] == "field":
        alts = steps[-1][1]
        steps[-1] = ("field", {c: [p for p in ps if p[1] == type_name] for c, ps in alts.items()})
    else:
        steps.append(("type", type_name))
    return wanted


def _close_of_first_paren(text: str) -> int:
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0:
            return i
    return -1


def compile_branch(branch: str, resource_type: str) -> tuple[list[Step], set[str]]:
    branch = _strip_parens(branch)
    if branch.startswith("("):
        # "(A.value.ofType(CodeableConcept)).text": the parentheses only group a path
        close = _close_of_first_paren(branch)
        inner = branch[1:close]
        if close < 0 or branch[close + 1 : close + 2] != "." or " as " in inner:
            raise Unsupported(branch)
        branch = inner + branch[close + 1 :]
    as_type = None
    m = _AS_SUFFIX.match(branch)
    if m:
        branch, as_type = _strip_parens(m.group(1)), m.group(2)
    segments = split_top(branch, ".")
    if segments and _TYPE_NAME.match(segments[0]):
        root = segments.pop(0)
        if root not in (resource_type, "Resource", "DomainResource"):
            raise Unsupported(root)
    ctxs = {resource_type}
    steps: list[Step] = []
    for seg in segments:
        if _FIELD.match(seg):
            step, ctxs = _field_step(ctxs, seg)
            steps.append(step)
        elif m := _INDEXED.match(seg):
            step, ctxs = _field_step(ctxs, m.group(1))
            steps.extend((step, ("first", None)))
        elif seg == "first()":
            steps.append(("first", None))
        elif m := _TYPE_FN.match(seg):
            ctxs = _restrict(steps, ctxs, m.group(1))
        elif m := _RESOLVE.match(seg):
            steps.append(("resolve", m.group(1)))
        elif m := _WHERE_EQ.match(seg):
            steps.append(("eq", (m.group(1), m.group(2))))
        elif m := _EXT.match(seg):
            step, ctxs = _field_step(ctxs, "extension")
            steps.extend((step, ("eq", ("url", m.group(1)))))
        else:
            raise Unsupported(seg)
    if as_type:
        ctxs = _restrict(steps, ctxs, as_type)
    return steps, ctxs


def ref_is(value: Any, type_name: str) -> bool:
    """``resolve() is T`` without resolving: look at the literal reference / Reference.type."""
    if not isinstance(value, dict):
        return False
    ref = value.get("reference")
    if isinstance(ref, str):
        return ref.startswith(type_name + "/") or f"/{type_name}/" in ref
    return value.get("type") == type_name


def run_steps(steps: list[Step], nodes: list[Node]) -> list[Node]:
    for kind, arg in steps:
        out: list[Node] = []
        if kind == "field":
            for v, c in nodes:
                alts = arg.get(c)
                if alts is None or type(v) is not dict:
                    continue
                for key, nc in alts:
                    x = v.get(key)
                    if x is None:
                        continue
                    if type(x) is list:
                        out.extend([(i, nc) for i in x])
                    else:
                        out.append((x, nc))
        elif kind == "resolve":
            out = [n for n in nodes if ref_is(n[0], arg)]
        elif kind == "eq":
            key, lit = arg
            out = [n for n in nodes if type(n[0]) is dict and n[0].get(key) == lit]
        elif kind == "type":
            out = [n for n in nodes if n[1] == arg]
        else:  # first
            out = nodes[:1]
        nodes = out
        if not nodes:
            break
    return nodes


def compile_relative(expression: str, ctx: str) -> list[Step] | None:
    """Compile a composite component expression relative to a backbone/type context."""
    try:
        steps, _ = compile_branch(expression, ctx)
    except Unsupported:
        return None
    return steps


_EXISTS_NOT_FALSE = re.compile(r"^([A-Za-z.]+)\.exists\(\) and \1 != false$")


def required_keys(expression: str, resource_type: str) -> frozenset[str] | None:
    """Top-level JSON keys of which at least one must be present for the expression to yield
    anything (None: unknown). Lets the indexer skip most parameters with one set test."""
    if _EXISTS_NOT_FALSE.match(expression):
        return None
    keys: set[str] = set()
    try:
        for b in branches_for(expression, resource_type):
            steps, _ = compile_branch(b, resource_type)
            if not steps or steps[0][0] != "field":
                return None
            keys.update(k for alts in steps[0][1].values() for k, _ in alts)
    except Unsupported:
        return None
    return frozenset(keys)


def compile_expression(expression: str, resource_type: str) -> Extractor | None:
    """An extractor for the branches of ``expression`` applying to ``resource_type``."""
    m = _EXISTS_NOT_FALSE.match(expression)
    if m and m.group(1).split(".", 1)[0] == resource_type:
        # Patient.deceased: true unless absent or literally false (deceasedDateTime => true)
        inner = compile_expression(m.group(1), resource_type)
        if inner is not None:
            path = inner

            def exists_not_false(resource: Any) -> list[Node]:
                values = [v for v, _ in path(resource)]
                return [(bool(values) and all(v is not False for v in values), "boolean")]

            return exists_not_false
    branches = branches_for(expression, resource_type)
    if not branches:
        return None
    try:
        compiled = [compile_branch(b, resource_type)[0] for b in branches]
    except Unsupported:
        return _fallback(" | ".join(branches))

    runners = [_runner(steps, resource_type) for steps in compiled]
    if len(runners) == 1:
        return runners[0]

    def extract(resource: Any) -> list[Node]:
        out: list[Node] = []
        for run in runners:
            out.extend(run(resource))
        return out

    return extract


def _runner(steps: list[Step], resource_type: str) -> Extractor:
    """``run_steps(steps, [(resource, resource_type)])`` with the first step unrolled: it
    is a field of the resource itself in nearly every search expression (and the whole
    expression in most), so its keys are known when compiling."""
    if not steps or steps[0][0] != "field":
        return lambda resource: run_steps(steps, [(resource, resource_type)])
    pairs = steps[0][1].get(resource_type, [])
    rest = steps[1:]

    def run(resource: Any) -> list[Node]:
        if type(resource) is not dict:
            return []
        nodes: list[Node] = []
        for key, ctx in pairs:
            x = resource.get(key)
            if x is None:
                continue
            if type(x) is list:
                nodes.extend([(i, ctx) for i in x])
            else:
                nodes.append((x, ctx))
        return run_steps(rest, nodes) if rest and nodes else nodes

    return run


def _fallback(expression: str) -> Extractor:
    fn = fp_compile(expression, models["r4"])

    def extract(resource: Any) -> list[Node]:
        try:
            return [(v, None) for v in fn(resource, {})]
        except Exception:  # a bad resource must not break the write of its siblings' params
            return []

    return extract
