"""A row-by-row reference evaluator of ViewDefinitions, used only as a test oracle.

It follows the "Processing Algorithm (Model)" of the SQL-on-FHIR v2 specification
literally, evaluating each FHIRPath with fhirpathpy, so property tests can compare the
compiled DuckDB engine against an independent implementation. It is slow by design
and not part of the runtime path. ``lowBoundary``/``highBoundary`` are not available
in fhirpathpy; views using them are not accepted here.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import fhirpathpy
from fhirpathpy.models import models

from kangqiao.analytics.viewdef import Select, View, ViewDefinitionError, parse_view

_MODEL = models["r4"]
_REF = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
Row = dict[str, Any]


def _type_name(spec: Any) -> str | None:
    if spec is None:
        return None
    return str(getattr(spec, "name", spec)).split(".")[-1]


def _reference_key(inputs: list[Any], type_spec: Any = None) -> list[Any]:
    wanted = _type_name(type_spec)
    out = []
    for ref in inputs:
        text = ref.get("reference") if isinstance(ref, dict) else None
        m = _REF.search(text) if isinstance(text, str) else None
        if m and (wanted is None or m.group(1) == wanted):
            out.append(m.group(2))
    return out


_OPTIONS = {"userInvocationTable": {
    "getResourceKey": {"fn": lambda inputs: [r.get("id") for r in inputs
                                             if isinstance(r, dict) and r.get("id")],
                       "arity": {0: []}},
    "getReferenceKey": {"fn": _reference_key, "arity": {0: [], 1: ["TypeSpecifier"]}},
}}  # fmt: skip


class _Evaluator:
    def __init__(self, view: View) -> None:
        self.view = view
        self.env = {name: c.value for name, c in view.constants.items()}

    def fp(self, node: Any, path: str, row_index: int, base: str | None) -> list[Any]:
        if path.strip() == "$this":
            return [node]
        env = {**self.env, "rowIndex": row_index}
        expr: Any = {"base": base, "expression": path} if base and "." in base else path
        result = fhirpathpy.evaluate(node, expr, env, model=_MODEL, options=_OPTIONS)
        return [float(v) if isinstance(v, Decimal) else v for v in result]

    def rows(self, resource: dict[str, Any]) -> Iterator[Row]:
        if resource.get("resourceType") != self.view.resource:
            return
        for w in self.view.where:
            if self.fp(resource, w.text, 0, None) != [True]:
                return
        yield from self.process(self.view.root, resource, 0, self.view.resource)

    def foci(self, sel: Select, node: Any, row_index: int, base: str | None
             ) -> list[tuple[Any, str | None]]:  # fmt: skip
        if sel.for_each is not None:
            sub = _sub_base(base, sel.for_each.text)
            return [(f, sub) for f in self.fp(node, sel.for_each.text, row_index, base)]
        if sel.repeat:
            out: list[tuple[Any, str | None]] = []

            def walk(n: Any, b: str | None) -> None:
                for p in sel.repeat:
                    sub = _sub_base(b, p.text)
                    for child in self.fp(n, p.text, 0, b):
                        out.append((child, sub))
                        walk(child, sub)

            walk(node, base)
            return out
        return [(node, base)]

    def process(self, sel: Select, node: Any, row_index: int, base: str | None
                ) -> Iterator[Row]:  # fmt: skip
        foci = self.foci(sel, node, row_index, base)
        iterating = sel.for_each is not None or bool(sel.repeat)
        for i, (focus, fbase) in enumerate(foci):
            index = i if iterating else row_index
            parts: list[list[Row]] = []
            for col in sel.columns:
                val = self.fp(focus, col.path.text, index, fbase)
                if col.collection:
                    parts.append([{col.name: val or None}])
                elif len(val) > 1:
                    raise ViewDefinitionError(f"column {col.name!r}: multiple values found")
                else:
                    parts.append([{col.name: val[0] if val else None}])
            parts += [list(self.process(s, focus, index, fbase)) for s in sel.selects]
            if sel.union_all:
                parts.append([r for u in sel.union_all
                              for r in self.process(u, focus, index, fbase)])  # fmt: skip
            for combo in itertools.product(*parts):
                row: Row = {}
                for part in combo:
                    row.update(part)
                yield row
        if not foci and sel.or_null:
            names = sel.column_names()
            index_cols = {c.name for c in sel.columns if c.path.text.strip() == "%rowIndex"}
            yield {n: (0 if n in index_cols else None) for n in names}


def _sub_base(base: str | None, path: str) -> str | None:
    """The FHIR element path of the items a simple dotted path reaches (for typing)."""
    if base is None or not re.fullmatch(r"[A-Za-z]+(\.[A-Za-z]+)*", path.strip()):
        return None
    return f"{base}.{path.strip()}"


def reference_run(view: dict[str, Any], resources: Iterable[dict[str, Any]]) -> list[Row]:
    """Rows of ``view`` over ``resources``, columns in the view's order."""
    parsed = parse_view(view)
    evaluator = _Evaluator(parsed)
    names = parsed.column_names
    return [{n: row.get(n) for n in names} for r in resources for row in evaluator.rows(r)]
