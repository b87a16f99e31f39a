"""What goes into the search index when a resource is written.

``index_rows(resource)`` returns, per index table (keys of ``schema.INDEX_TABLES``), the rows
to insert: ``param`` + the table's value columns + ``grp``. The store adds resource_type and
resource_id. Besides one table per parameter type, ``token_date`` pairs a code with a date
and ``token_quantity`` the code and value of a composite (``combos``). ``grp`` is NULL
except for composite parameters: each component of a composite is indexed as an ordinary row
of its own type under the param name ``<code>$<i>`` (i = the component's position), and all
components taken from the same element (e.g. one Observation.component) share the same
``grp`` number, so the query can require that ``code`` and ``value`` match within one
element (correlated matching).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

from kangqiao.fhir.search import units
from kangqiao.fhir.search.combos import combo_rows, joint_rows
from kangqiao.fhir.search.dates import parse_range, period_range, timing_range
from kangqiao.fhir.search.normalize import TOKEN_LEN, URI_LEN, is_cjk, norm_string
from kangqiao.fhir.search.params import generation, param_by_url, search_params
from kangqiao.fhir.search.paths import (
    Extractor,
    Node,
    Step,
    compile_expression,
    compile_relative,
    required_keys,
    run_steps,
)
from kangqiao.security.fieldcrypt import protect_index
from kangqiao.settings import get_settings

Row = dict[str, Any]
Rows = dict[str, list[Row]]
# converter(param, nodes, all rows by table, grp, glucose hint): appends to its table's list
Converter = Callable[[str, list[Node], Rows, int | None, bool], None]

NOT_INDEXED = frozenset({"_id", "_lastUpdated"})  # columns of ``resource``


@lru_cache(maxsize=1)
def _base_url() -> str:
    return get_settings().base_url.rstrip("/") + "/"


# ---- string -------------------------------------------------------------------------------

_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def _string_values(v: Any, t: str | None) -> list[str]:
    if type(v) is str:
        return [v]
    if type(v) is not dict:
        return []
    if t is None:
        t = "HumanName" if ("family" in v or "given" in v) else "Address"
    parts = _NAME_PARTS if t == "HumanName" else _ADDRESS_PARTS if t == "Address" else ()
    out: list[str] = []
    for key in parts:
        x = v.get(key)
        if type(x) is str:
            out.append(x)
        elif type(x) is list:
            out.extend(i for i in x if type(i) is str)
    family = v.get("family")
    if t == "HumanName" and type(family) is str and is_cjk(family):
        # Chinese names are written family+given without a space: 张三 must match "张三".
        out.append(family + "".join(g for g in v.get("given", ()) if type(g) is str))
    return out


def _conv_string(param: str, nodes: list[Node], out: Rows, grp: int | None, _: bool) -> None:
    rows = out["string"]
    seen: set[str] = set()
    for v, t in nodes:
        for s in _string_values(v, t):
            n = norm_string(s)
            if n and n not in seen:
                seen.add(n)
                rows.append({"param": param, "value": n, "grp": grp})


# ---- token --------------------------------------------------------------------------------


def _cut(s: Any) -> str | None:
    if s is None:
        return None
    text = s if type(s) is str else str(s)
    return text[:TOKEN_LEN]


def _disp(s: Any) -> str | None:
    return norm_string(s) if type(s) is str else None


def _token_tuples(v: Any, t: str | None) -> list[tuple[str | None, str | None, str | None]]:
    tv = type(v)
    if tv is str:
        return [(None, v, None)]
    if tv is bool:
        return [(None, "true" if v else "false", None)]
    if tv is not dict:
        return []
    if t is None:  # fallback path: guess from the JSON shape
        t = ("CodeableConcept" if "coding" in v or set(v) == {"text"}
             else "Coding" if "code" in v else "Identifier")
    if t == "CodeableConcept":
        out = [(c.get("system"), c.get("code"), _disp(c.get("display")))
               for c in v.get("coding", ()) if type(c) is dict]
        if type(v.get("text")) is str:
            out.append((None, None, _disp(v["text"])))
        return out
    if t == "Coding":
        return [(v.get("system"), v.get("code"), _disp(v.get("display")))]
    if t == "Identifier":
        type_text = (v.get("type") or {}).get("text")
        return [(v.get("system"), v.get("value"), _disp(type_text))]
    if t == "ContactPoint":
        # R4 token table: ContactPoint matches on value only (no system).
        return [(None, v.get("value"), None)]
    return []


def _conv_token(param: str, nodes: list[Node], out: Rows, grp: int | None, _: bool) -> None:
    rows = out["token"]
    seen: set[tuple[Any, ...]] = set()
    for v, t in nodes:
        for system, code, display in _token_tuples(v, t):
            key = (system, code, display)
            if key in seen or (code is None and display is None and system is None):
                continue
            seen.add(key)
            rows.append({"param": param, "system": _cut(system), "code": _cut(code),
                         "display": display, "grp": grp})
        if (t == "Identifier" or t is None) and type(v) is dict and v.get("value"):
            # :of-type => "<type system>|<type code>|<value>" under "<param>:of-type"
            for c in (v.get("type") or {}).get("coding", ()):
                if type(c) is dict and c.get("code"):
                    code = f"{c.get('system') or ''}|{c['code']}|{v['value']}"
                    rows.append({"param": param + ":of-type", "system": None,
                                 "code": _cut(code), "display": None, "grp": grp})


# ---- reference ----------------------------------------------------------------------------


def reference_parts(ref: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(target_type, target_id, version, url) of a literal reference string."""
    base = _base_url()
    if ref.startswith(base):
        ref = ref[len(base):]
    if ref.startswith("#") or ":" in ref:  # contained, urn:uuid:, absolute foreign URL
        return None, None, None, ref[:URI_LEN]
    parts = ref.split("/")
    if len(parts) == 2 and parts[0][:1].isupper():
        return parts[0], parts[1], None, None
    if len(parts) == 4 and parts[2] == "_history" and parts[0][:1].isupper():
        return parts[0], parts[1], parts[3], None
    return None, None, None, ref[:URI_LEN]


def _conv_reference(
    param: str, nodes: list[Node], out: Rows, grp: int | None, _: bool
) -> None:
    rows = out["reference"]
    seen: set[tuple[Any, ...]] = set()
    for v, t in nodes:
        if type(v) is str:  # canonical / uri typed references
            parts = reference_parts(v)
        elif type(v) is dict and t != "Resource":
            ref = v.get("reference")
            ident = v.get("identifier")
            if type(ident) is dict and ident.get("value"):
                # logical reference: searchable with the :identifier modifier
                out["token"].append({"param": param + ":identifier",
                                     "system": _cut(ident.get("system")),
                                     "code": _cut(ident["value"]), "display": None, "grp": grp})
            if type(ref) is not str:
                continue
            parts = reference_parts(ref)
        else:
            continue
        if parts in seen:
            continue
        seen.add(parts)
        target_type, target_id, version, url = parts
        rows.append({"param": param, "target_type": target_type, "target_id": target_id,
                     "target_version": version, "url": url, "grp": grp})


# ---- date / number / quantity / uri -------------------------------------------------------


def _date_range(v: Any, t: str | None) -> tuple[datetime, datetime] | None:
    if type(v) is str:
        return parse_range(v)
    if type(v) is not dict:
        return None
    if t == "Timing" or (t is None and ("event" in v or "repeat" in v)):
        return timing_range(v)
    if t == "Period" or t is None:
        return period_range(v)
    return None


def _conv_date(param: str, nodes: list[Node], out: Rows, grp: int | None, _: bool) -> None:
    rows = out["date"]
    seen: set[tuple[datetime, datetime]] = set()
    for v, t in nodes:
        r = _date_range(v, t)
        if r is not None and r not in seen:
            seen.add(r)
            rows.append({"param": param, "low": r[0], "high": r[1], "grp": grp})


def _num(v: Any) -> float | None:
    if type(v) in (int, float) or isinstance(v, Decimal):
        return float(v)
    return None


def _conv_number(param: str, nodes: list[Node], out: Rows, grp: int | None, _: bool) -> None:
    rows = out["number"]
    for v, _t in nodes:
        n = _num(v)
        if n is not None:
            rows.append({"param": param, "value": n, "grp": grp})


def _conv_quantity(
    param: str, nodes: list[Node], out: Rows, grp: int | None, glucose: bool
) -> None:
    rows = out["quantity"]
    for v, _t in nodes:
        if type(v) is not dict:
            continue
        value = _num(v.get("value"))
        if value is None:
            continue
        system = v.get("system")
        code = v.get("code") or v.get("unit") or v.get("currency")
        canon = units.canonical(value, code, system, glucose)
        rows.append({"param": param, "value": value, "system": _cut(system), "code": code,
                     "canonical_value": canon[0] if canon else value,
                     "canonical_code": canon[1] if canon else code, "grp": grp})


def _conv_uri(param: str, nodes: list[Node], out: Rows, grp: int | None, _: bool) -> None:
    rows = out["uri"]
    for v, _t in nodes:
        if type(v) is str:
            rows.append({"param": param, "value": v[:URI_LEN], "grp": grp})


CONVERTERS: dict[str, Converter] = {
    "string": _conv_string,
    "token": _conv_token,
    "reference": _conv_reference,
    "date": _conv_date,
    "number": _conv_number,
    "quantity": _conv_quantity,
    "uri": _conv_uri,
}
# the parameters' own tables, then the joint ones (``combos``)
TABLE_KEYS = (*CONVERTERS, "token_date", "token_quantity")


# ---- compilation --------------------------------------------------------------------------


@dataclass
class _Compiled:
    code: str
    type: str
    extract: Extractor
    keys: frozenset[str] | None  # skip the param when none of these keys is in the resource
    # composite: [(component type, steps per element ctx)] compiled lazily per ctx
    components: list[tuple[str, str]]
    component_steps: dict[str | None, list[tuple[str, list[Step]]] | None]


@cache
def _compiled(resource_type: str, gen: int) -> list[_Compiled]:
    out: list[_Compiled] = []
    for code, sp in search_params(resource_type).items():
        if code in NOT_INDEXED or not sp.expression or sp.type not in (*CONVERTERS, "composite"):
            continue
        extract = compile_expression(sp.expression, resource_type)
        if extract is None:
            continue
        comps: list[tuple[str, str]] = []
        for url, expr in sp.components:
            cp = param_by_url(url)
            comps.append((cp.type if cp else "", expr))
        keys = required_keys(sp.expression, resource_type)
        out.append(_Compiled(code, sp.type, extract, keys, comps, {}))
    return out


def _component_steps(c: _Compiled, ctx: str | None) -> list[tuple[str, list[Step]]] | None:
    if ctx in c.component_steps:
        return c.component_steps[ctx]
    result: list[tuple[str, list[Step]]] | None = []
    for ctype, expr in c.components:
        steps = compile_relative(expr, ctx) if ctx and ctype in CONVERTERS else None
        if steps is None or result is None:
            result = None  # e.g. %resource-relative components: not indexed
            continue
        result.append((ctype, steps))
    c.component_steps[ctx] = result
    return result


def _is_glucose(resource: dict[str, Any]) -> bool:
    if resource.get("resourceType") != "Observation":
        return False
    comps = resource.get("component")
    concepts = [resource.get("code")]
    if type(comps) is list:
        concepts += [c.get("code") for c in comps if type(c) is dict]
    for cc in concepts:
        if type(cc) is dict and type(cc.get("coding")) is list:
            for coding in cc["coding"]:
                if type(coding) is dict and coding.get("code") in units.GLUCOSE_CODES:
                    return True
    return False


def index_rows(resource: dict[str, Any]) -> Rows:
    """Index rows for every search parameter of the resource's type (see module doc)."""
    out: Rows = {k: [] for k in TABLE_KEYS}
    glucose = _is_glucose(resource)
    for c in _compiled(resource["resourceType"], generation()):
        if c.keys is not None and c.keys.isdisjoint(resource):
            continue
        try:
            _index_param(c, resource, out, glucose)
        except (AttributeError, TypeError, ValueError):
            # Malformed input (validation normally rejects it first) loses only this param.
            continue
    out = protect_index(resource, out)  # resident IDs, phones: blind index only
    out["token_date"] = combo_rows(resource["resourceType"], out)
    out["token_quantity"] = joint_rows(resource["resourceType"], out)
    return out


def _index_param(c: _Compiled, resource: dict[str, Any], out: Rows, glucose: bool) -> None:
    nodes = c.extract(resource)
    if not nodes:
        return
    if c.type != "composite":
        CONVERTERS[c.type](c.code, nodes, out, None, glucose)
        return
    for grp, node in enumerate(nodes):
        comps = _component_steps(c, node[1])
        if not comps:
            continue
        parts = [(ctype, run_steps(steps, [node])) for ctype, steps in comps]
        if all(p[1] for p in parts):
            for i, (ctype, sub) in enumerate(parts):
                CONVERTERS[ctype](f"{c.code}${i}", sub, out, grp, glucose)
