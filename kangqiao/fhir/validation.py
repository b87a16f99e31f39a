"""Structural validation of FHIR R4 resources against the official definitions.

Each type's snapshot ElementDefinitions are compiled once per process into a small tree
of ``_Node`` (one per resource, data type or inline BackboneElement) whose ``_Field``
entries are keyed by the JSON property name, so validating an instance is one dict
lookup per property plus a precompiled check per primitive. FHIRPath invariants are not
evaluated; the empty-object rule stands in for ``ele-1``.
"""

from __future__ import annotations

import datetime
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from kangqiao.fhir import definitions as defs
from kangqiao.fhir.outcome import Issue

log = logging.getLogger(__name__)

MAX_ISSUES = 100
# Only recursive structures (extensions, contained resources, Questionnaire items ...)
# can nest deeply; real resources stay far below this, hostile input is cut off.
MAX_DEPTH = 64

PRIMITIVE, COMPLEX, RESOURCE = 0, 1, 2
_BOUND_TYPES = frozenset({"code", "Coding", "CodeableConcept", "string", "uri"})
_INT_RANGES = {
    "integer": (-(2**31), 2**31 - 1),
    "positiveInt": (1, 2**31 - 1),
    "unsignedInt": (0, 2**31 - 1),
}
_DATE_TYPES = frozenset({"date", "dateTime", "instant"})
_ID_RE = re.compile(r"[A-Za-z0-9\-\.]{1,64}")
# The spec's base64Binary regex nests quantifiers around \s* and can backtrack badly on
# large attachments; this equivalent check is linear.
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_WHITESPACE_RE = re.compile(r"\s+")
_RELATIVE_REF_RE = re.compile(
    r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-\.]{1,64})(/_history/[A-Za-z0-9\-\.]{1,64})?"
)
_UUID_RE = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_OID_RE = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")

Checker = Callable[[Any], str | None]
_VALID_CACHE = 20_000  # valid values remembered per primitive type


@dataclass(slots=True, eq=False)
class _Field:
    """One JSON property of a node (a choice element yields one field per type)."""

    name: str  # JSON property name, e.g. "valueQuantity"
    type_code: str
    kind: int
    is_array: bool
    max_count: int | None  # None: unbounded
    choice: str | None = None  # "value" for value[x] variants
    node: _Node | None = None  # children of complex values, resolved lazily for data types
    check: Checker | None = None
    codes: frozenset[str] | None = None  # required binding, when locally expandable
    value_set: str = ""


@dataclass(slots=True, eq=False)
class _Node:
    type_name: str  # "Patient", "HumanName", "Patient.contact"
    is_resource: bool
    fields: dict[str, _Field] = field(default_factory=dict)
    # (element name for messages, JSON keys any of which satisfies min >= 1)
    required: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)


class _Full(Exception):
    """Raised internally once MAX_ISSUES issues are collected, to stop the walk."""


# --- primitive checks ---------------------------------------------------------------


def _string_checker(type_name: str) -> Checker:
    regex = defs.primitive_regex(type_name)
    match = re.compile(regex).fullmatch if regex and type_name != "base64Binary" else None
    is_date = type_name in _DATE_TYPES

    # Values found valid: codes, systems and instants recur across resources, and a set
    # lookup is several times cheaper than the regex. Bounded, so hostile input cannot
    # grow it without limit.
    valid: set[str] = set()

    def check(value: Any) -> str | None:
        if type(value) is not str:
            return f"{type_name} must be a JSON string"
        if value in valid:
            return None
        if not value:
            return "Empty strings are not valid; omit the element instead"
        if type_name == "base64Binary":
            return _base64_problem(value)
        if match is not None and match(value) is None:
            return f"'{_short(value)}' is not a valid {type_name}"
        if is_date and len(value) >= 10:
            problem = _calendar_problem(value)
            if problem is not None:
                return problem
        if len(valid) < _VALID_CACHE and len(value) <= 256:
            valid.add(value)
        return None

    return check


def _base64_problem(value: str) -> str | None:
    compact = _WHITESPACE_RE.sub("", value)
    if len(compact) % 4 or _BASE64_RE.fullmatch(compact) is None:
        return "Not valid base64 content"
    return None


def _calendar_problem(value: str) -> str | None:
    try:
        datetime.date(int(value[0:4]), int(value[5:7]), int(value[8:10]))
    except ValueError:
        return f"'{value[:10]}' is not a valid calendar date"
    return None


def _int_checker(type_name: str) -> Checker:
    low, high = _INT_RANGES[type_name]

    def check(value: Any) -> str | None:
        if type(value) is not int:  # excludes bool, which subclasses int
            return f"{type_name} must be a JSON integer"
        if not low <= value <= high:
            return f"{value} is out of range for {type_name} ({low}..{high})"
        return None

    return check


def _check_boolean(value: Any) -> str | None:
    return None if type(value) is bool else "boolean must be JSON true or false"


def _check_decimal(value: Any) -> str | None:
    if type(value) is int:
        return None
    if type(value) is float:
        return None if math.isfinite(value) else "decimal must be a finite number"
    return "decimal must be a JSON number"


@cache
def _primitive_checker(type_name: str) -> Checker:
    if type_name == "boolean":
        return _check_boolean
    if type_name == "decimal":
        return _check_decimal
    if type_name in _INT_RANGES:
        return _int_checker(type_name)
    return _string_checker(type_name)


def _short(value: str) -> str:
    return value if len(value) <= 40 else value[:37] + "..."


# --- compiling definitions ------------------------------------------------------------


def _kind_of(type_code: str) -> int:
    kind = defs.type_kind(type_code)
    if kind == "primitive-type":
        return PRIMITIVE
    return RESOURCE if kind == "resource" else COMPLEX


def _new_field(name: str, type_code: str, element: dict[str, Any], choice: str | None) -> _Field:
    max_text = str(element.get("max", "*"))
    kind = _kind_of(type_code)
    out = _Field(
        name=name,
        type_code=type_code,
        kind=kind,
        is_array=max_text != "1",
        max_count=None if max_text == "*" else int(max_text),
        choice=choice,
        check=_primitive_checker(type_code) if kind == PRIMITIVE else None,
    )
    binding = element.get("binding") or {}
    if binding.get("strength") == "required" and type_code in _BOUND_TYPES:
        value_set = str(binding.get("valueSet", ""))
        out.codes = defs.value_set_codes(value_set) if value_set else None
        out.value_set = value_set.split("|", 1)[0]
    return out


def _element_fields(element: dict[str, Any], name: str, resource_id: bool) -> list[_Field]:
    if "contentReference" in element:
        return [_new_field(name, "BackboneElement", element, None)]
    types = [defs.fhir_type_of(t) for t in element.get("type", ())]
    if name.endswith("[x]"):
        base = name[:-3]
        return [_new_field(base + t[0].upper() + t[1:], t, element, base) for t in types if t]
    # R4 types Resource.id as a plain string, but the spec's rules for it are `id`'s.
    type_code = "id" if resource_id else (types[0] if types else "BackboneElement")
    return [_new_field(name, type_code, element, None)]


def _compile(type_name: str) -> _Node:
    """Compile a type's snapshot into nodes; inline children get their own node."""
    elements = defs.snapshot_elements(type_name)
    root_path = elements[0]["path"]
    is_resource = defs.type_kind(type_name) == "resource"
    nodes = {root_path: _Node(type_name, is_resource)}
    fields_by_path: dict[str, list[_Field]] = {}
    content_refs: list[tuple[_Field, str]] = []
    for element in elements[1:]:
        path = str(element["path"])
        parent_path, _, name = path.rpartition(".")
        parent = nodes.get(parent_path)
        if parent is None:  # first child of an inline BackboneElement / Element
            parent = nodes[parent_path] = _Node(parent_path, False)
            for owner in fields_by_path.get(parent_path, ()):
                owner.node = parent
        resource_id = is_resource and parent_path == root_path and name == "id"
        new_fields = _element_fields(element, name, resource_id)
        fields_by_path[path] = new_fields
        for f in new_fields:
            parent.fields[f.name] = f
            if "contentReference" in element:
                content_refs.append((f, str(element["contentReference"]).lstrip("#")))
        if int(element.get("min", 0)) > 0 and new_fields:
            keys = [f.name for f in new_fields]
            keys += ["_" + f.name for f in new_fields if f.kind == PRIMITIVE]
            parent.required.append((name, tuple(keys)))
    for f, target in content_refs:
        f.node = nodes.get(target)
    return nodes[root_path]


_NODES: dict[str, _Node] = {}


def _node_for(type_name: str) -> _Node:
    """The compiled node of a resource or data type (memoised for the process)."""
    node = _NODES.get(type_name)
    if node is None:
        node = _NODES[type_name] = _compile(type_name)
    return node


def compile_type(type_name: str) -> None:
    """Compile a type's definition ahead of time (raises KeyError if unknown)."""
    _node_for(type_name)


# --- walking instances ----------------------------------------------------------------


class _Ctx:
    __slots__ = ("issues",)

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, code: str, diagnostics: str, expression: str | None) -> None:
        self.issues.append(Issue("error", code, diagnostics, expression))
        if len(self.issues) >= MAX_ISSUES:
            raise _Full


def validate_resource(resource: object, expected_type: str | None = None) -> list[Issue]:
    """Validate a resource in FHIR JSON form; an empty list means it is valid.

    Never raises for JSON-like input: every problem becomes an ``Issue``.
    """
    ctx = _Ctx()
    try:
        _check_resource(ctx, resource, "", expected_type, 0)
    except _Full:
        pass
    except RecursionError:
        ctx.issues.append(Issue("error", "too-costly", "Content is nested too deeply", None))
    except Exception:  # a validator bug must not turn a client error into a 500
        log.exception("validator failed")
        ctx.issues.append(Issue("fatal", "exception", "Internal error while validating", None))
    return ctx.issues


def _check_resource(ctx: _Ctx, value: Any, path: str, expected: str | None, depth: int) -> None:
    where = path or None
    if not isinstance(value, dict):
        ctx.add("structure", "A resource must be a JSON object", where)
        return
    resource_type = value.get("resourceType")
    if resource_type is None:
        ctx.add("required", "The resource has no resourceType", where)
        return
    if not isinstance(resource_type, str) or resource_type not in defs.resource_types():
        ctx.add("invalid", f"Unknown resourceType '{_short(str(resource_type))}'", where)
        return
    if expected is not None and resource_type != expected:
        ctx.add("invalid", f"Expected a {expected} resource, found {resource_type}", where)
    _check_object(ctx, _node_for(resource_type), value, path or resource_type, depth)


def _check_object(ctx: _Ctx, node: _Node, obj: Any, path: str, depth: int) -> None:
    if type(obj) is not dict:
        ctx.add("structure", f"{node.type_name} must be a JSON object", path)
        return
    if depth > MAX_DEPTH:
        ctx.add("too-costly", "Content is nested too deeply", path)
        return
    if not node.is_resource and (not obj or (len(obj) == 1 and "id" in obj)):
        ctx.add("value", "Elements must have a value or child elements (ele-1)", path)
    fields = node.fields
    chosen: dict[str, str] | None = None
    for key, value in obj.items():
        f = fields.get(key)
        if f is None:
            f = _primitive_extension_owner(ctx, node, obj, key, value, path, depth)
            if f is None:
                continue
        elif f.kind == COMPLEX and not f.is_array and type(value) is dict:
            # the commonest cases (a single datatype or primitive value), kept free of calls
            _check_complex(ctx, f, value, f"{path}.{key}", depth + 1)
        elif (f.kind == PRIMITIVE and not f.is_array and f.max_count != 0 and value is not None
              and type(value) is not list):
            assert f.check is not None
            problem = f.check(value)
            if problem is not None:
                ctx.add("value", problem, f"{path}.{key}")
            elif f.codes is not None and value not in f.codes:
                ctx.add("code-invalid", _not_in_value_set(value, f), f"{path}.{key}")
        else:
            _check_field(ctx, f, value, obj, f"{path}.{key}", depth)
        if f.choice is not None:
            chosen = _note_choice(ctx, chosen, f, path)
    for name, keys in node.required:
        for key in keys:
            if key in obj:
                break
        else:
            ctx.add("required", f"Missing required element {name}", f"{path}.{name}")


def _note_choice(
    ctx: _Ctx, chosen: dict[str, str] | None, f: _Field, path: str
) -> dict[str, str] | None:
    """Record a value[x] variant; a second different variant is an error."""
    assert f.choice is not None
    chosen = chosen or {}
    previous = chosen.setdefault(f.choice, f.name)
    if previous != f.name:
        ctx.add(
            "structure",
            f"Only one of {previous} and {f.name} may be present ({f.choice}[x])",
            f"{path}.{f.name}",
        )
    return chosen


def _primitive_extension_owner(
    ctx: _Ctx, node: _Node, obj: dict[Any, Any], key: Any, value: Any, path: str, depth: int
) -> _Field | None:
    """Handle a key that is not an element: `_x` siblings, resourceType, or unknown."""
    if key == "resourceType" and node.is_resource:
        return None
    owner = node.fields.get(key[1:]) if type(key) is str and key.startswith("_") else None
    if owner is None or owner.kind != PRIMITIVE:
        ctx.add("structure", f"Unknown element '{_short(str(key))}'", f"{path}.{key}")
        return None
    element = _node_for("Element")
    where = f"{path}.{owner.name}"
    if not owner.is_array:
        _check_object(ctx, element, value, where, depth + 1)
        return owner
    main = obj.get(owner.name)
    if type(value) is not list or (type(main) is list and len(main) != len(value)):
        ctx.add("structure", f"{key} must be an array matching {owner.name}", where)
        return owner
    for i, item in enumerate(value):
        if item is not None:
            _check_object(ctx, element, item, f"{where}[{i}]", depth + 1)
    return owner


def _check_field(
    ctx: _Ctx, f: _Field, value: Any, obj: dict[Any, Any], path: str, depth: int
) -> None:
    if f.max_count == 0:
        ctx.add("structure", f"{f.name} is not allowed here (max cardinality 0)", path)
        return
    if not f.is_array:
        if type(value) is list:
            ctx.add("structure", f"{f.name} has max cardinality 1 and must not be an array", path)
        else:
            _check_value(ctx, f, value, path, depth)
        return
    if type(value) is not list:
        ctx.add("structure", f"{f.name} repeats and must be a JSON array", path)
        return
    if not value:
        ctx.add("value", "Arrays must not be empty; omit the element instead", path)
        return
    if f.max_count is not None and len(value) > f.max_count:
        ctx.add("structure", f"{f.name} allows at most {f.max_count} items", path)
    if f.kind == COMPLEX:
        for i, item in enumerate(value):
            _check_complex(ctx, f, item, f"{path}[{i}]", depth + 1)
        return
    for i, item in enumerate(value):
        if item is None and f.kind == PRIMITIVE and _has_extension_at(obj, f.name, i):
            continue  # e.g. given: [null], _given: [{"extension": ...}]
        _check_value(ctx, f, item, f"{path}[{i}]", depth)


def _has_extension_at(obj: dict[Any, Any], name: str, index: int) -> bool:
    sibling = obj.get("_" + name)
    return type(sibling) is list and index < len(sibling) and type(sibling[index]) is dict


def _check_value(ctx: _Ctx, f: _Field, value: Any, path: str, depth: int) -> None:
    if f.kind == PRIMITIVE:
        assert f.check is not None
        problem = f.check(value) if value is not None else "null is not a valid value"
        if problem is not None:
            ctx.add("value", problem, path)
        elif f.codes is not None and value not in f.codes:
            ctx.add("code-invalid", _not_in_value_set(value, f), path)
    elif f.kind == COMPLEX:
        _check_complex(ctx, f, value, path, depth + 1)
    else:
        _check_resource(ctx, value, path, None, depth + 1)


def _check_complex(ctx: _Ctx, f: _Field, value: Any, path: str, depth: int) -> None:
    node = f.node
    if node is None:
        node = f.node = _node_for(f.type_code)
    _check_object(ctx, node, value, path, depth)
    if type(value) is not dict:
        return
    if f.codes is not None:
        _check_coded(ctx, f, value, path)
    if f.type_code == "Reference":
        reference = value.get("reference")
        if type(reference) is str and reference:
            problem = _reference_problem(reference)
            if problem is not None:
                ctx.add("value", problem, f"{path}.reference")


def _check_coded(ctx: _Ctx, f: _Field, value: dict[str, Any], path: str) -> None:
    """Required binding on Coding / CodeableConcept: some coding must be from the set."""
    assert f.codes is not None
    codings = [value] if f.type_code == "Coding" else value.get("coding")
    if type(codings) is not list:
        codings = []
    for coding in codings:
        if type(coding) is dict and coding.get("code") in f.codes:
            return
    ctx.add("code-invalid", f"No coding from the required value set {f.value_set}", path)


def _not_in_value_set(value: Any, f: _Field) -> str:
    return f"'{_short(str(value))}' is not in the required value set {f.value_set}"


def _reference_problem(reference: str) -> str | None:
    if reference.startswith("#"):
        ok = reference == "#" or _ID_RE.fullmatch(reference, 1) is not None
        return None if ok else f"'{_short(reference)}' is not a valid local reference"
    if reference.startswith("urn:uuid:"):
        return None if _UUID_RE.fullmatch(reference) else "Invalid urn:uuid: reference"
    if reference.startswith("urn:oid:"):
        return None if _OID_RE.fullmatch(reference) else "Invalid urn:oid: reference"
    if reference.startswith(("http://", "https://")):
        ok = len(reference) > 8 and not any(c.isspace() for c in reference)
        return None if ok else f"'{_short(reference)}' is not a valid absolute URL"
    type_name = _relative_reference_type(reference)
    if type_name is None:
        return (
            f"'{_short(reference)}' is not a valid reference: expected Type/id, an "
            "absolute URL, urn:uuid:, urn:oid: or #id"
        )
    if type_name not in defs.resource_types():
        return f"Unknown resource type '{_short(type_name)}' in reference"
    return None


def _relative_reference_type(reference: str) -> str | None:
    match = _RELATIVE_REF_RE.fullmatch(reference)
    if match is not None:
        return match[1]
    # Conditional references (Type?search) are legal inside transaction Bundles.
    type_name, sep, query = reference.partition("?")
    if sep and query and type_name.isalpha() and type_name[:1].isupper():
        return type_name
    return None
