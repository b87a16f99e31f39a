"""Parse and validate an HL7 SQL-on-FHIR v2 ViewDefinition before any data is read.

Checks (ViewDefinition logical model and "Processing Algorithm: Validate Columns"):
``resource`` names a FHIR resource type; ``select`` is a non-empty list of selection
structures; ``forEach``, ``forEachOrNull`` and ``repeat`` exclude each other; each
column has a ``name`` matching ``^[A-Za-z][A-Za-z0-9_]*$`` and unique in the view, a
FHIRPath ``path``, an optional ``type`` and boolean ``collection``; every ``unionAll``
branch yields the same column names in the same order; each ``constant`` has a valid
name and exactly one ``value[x]`` of an allowed type; every FHIRPath parses within the
supported subset. Errors are :class:`ViewDefinitionError` naming the element path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kangqiao.analytics import schema
from kangqiao.analytics.fhirpath_ast import FhirPathSyntaxError, Node, parse

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Constant value[x] types allowed by the ViewDefinition model, with their FHIRPath kind.
CONSTANT_TYPES = {
    "base64Binary": "str", "boolean": "bool", "canonical": "str", "code": "str",
    "date": "str", "dateTime": "str", "decimal": "num", "id": "str", "instant": "str",
    "integer": "int", "integer64": "int", "oid": "str", "string": "str",
    "positiveInt": "int", "time": "str", "unsignedInt": "int", "uri": "str",
    "url": "str", "uuid": "str",
}  # fmt: skip
_SELECT_KEYS = {"column", "select", "unionAll", "forEach", "forEachOrNull", "repeat"}


class ViewDefinitionError(ValueError):
    """The ViewDefinition is invalid or uses something this engine does not support."""


@dataclass(frozen=True)
class Expr:
    text: str
    node: Node
    loc: str  # element path in the view, for error messages


@dataclass(frozen=True)
class Column:
    name: str
    path: Expr
    type: str | None
    collection: bool


@dataclass(frozen=True)
class Select:
    loc: str
    columns: tuple[Column, ...]
    selects: tuple[Select, ...]
    union_all: tuple[Select, ...]
    for_each: Expr | None
    or_null: bool
    repeat: tuple[Expr, ...]

    def column_names(self) -> list[str]:
        names = [c.name for c in self.columns]
        for sub in self.selects:
            names += sub.column_names()
        if self.union_all:
            names += self.union_all[0].column_names()
        return names


@dataclass(frozen=True)
class Constant:
    name: str
    value: Any
    type: str  # the FHIR type of value[x]
    kind: str  # str | int | num | bool


@dataclass(frozen=True)
class View:
    resource: str
    name: str | None
    root: Select
    where: tuple[Expr, ...]
    constants: dict[str, Constant]

    @property
    def column_names(self) -> list[str]:
        return self.root.column_names()


def _expr(text: Any, loc: str) -> Expr:
    if not isinstance(text, str) or not text.strip():
        raise ViewDefinitionError(f"{loc}: a FHIRPath expression (string) is required")
    try:
        return Expr(text, parse(text), loc)
    except FhirPathSyntaxError as exc:
        raise ViewDefinitionError(f"{loc}: invalid FHIRPath {text!r}: {exc}") from None


def _list(value: Any, loc: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, dict):  # tolerate a single object where a list is expected
        return [value]
    if not isinstance(value, list):
        raise ViewDefinitionError(f"{loc}: expected a list")
    return value


def _column(raw: Any, loc: str) -> Column:
    if not isinstance(raw, dict):
        raise ViewDefinitionError(f"{loc}: a column must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ViewDefinitionError(
            f"{loc}.name: column name {name!r} must match ^[A-Za-z][A-Za-z0-9_]*$")
    ctype = raw.get("type")
    if ctype is not None and (not isinstance(ctype, str) or not NAME_RE.match(ctype)):
        raise ViewDefinitionError(f"{loc}.type: {ctype!r} is not a FHIR type name")
    collection = raw.get("collection", False)
    if not isinstance(collection, bool):
        raise ViewDefinitionError(f"{loc}.collection: must be true or false")
    return Column(name, _expr(raw.get("path"), f"{loc}.path"), ctype, collection)


def _select(raw: Any, loc: str) -> Select:
    if not isinstance(raw, dict):
        raise ViewDefinitionError(f"{loc}: a select must be an object")
    iterators = [k for k in ("forEach", "forEachOrNull", "repeat") if raw.get(k) is not None]
    if len(iterators) > 1:
        raise ViewDefinitionError(f"{loc}: {' and '.join(iterators)} cannot be used together")
    if not any(raw.get(k) for k in ("column", "select", "unionAll")):
        raise ViewDefinitionError(f"{loc}: a select needs a column, select or unionAll")
    columns = tuple(_column(c, f"{loc}.column[{i}]")
                    for i, c in enumerate(_list(raw.get("column"), f"{loc}.column")))  # fmt: skip
    selects = tuple(_select(s, f"{loc}.select[{i}]")
                    for i, s in enumerate(_list(raw.get("select"), f"{loc}.select")))  # fmt: skip
    raw_unions = _list(raw.get("unionAll"), f"{loc}.unionAll")
    unions = tuple(_select(s, f"{loc}.unionAll[{i}]") for i, s in enumerate(raw_unions))
    if unions:
        first = unions[0].column_names()
        for i, branch in enumerate(unions[1:], start=1):
            if branch.column_names() != first:
                raise ViewDefinitionError(
                    f"{loc}.unionAll[{i}]: union branches must have the same columns in the "
                    f"same order: {branch.column_names()} differs from {first}")
    for_each = raw.get("forEach", raw.get("forEachOrNull"))
    or_null = raw.get("forEachOrNull") is not None
    repeat: tuple[Expr, ...] = ()
    if raw.get("repeat") is not None:
        paths = raw["repeat"]
        if not isinstance(paths, list) or not paths:
            raise ViewDefinitionError(f"{loc}.repeat: a non-empty list of paths is required")
        repeat = tuple(_expr(p, f"{loc}.repeat[{i}]") for i, p in enumerate(paths))
    key = "forEachOrNull" if or_null else "forEach"
    return Select(loc, columns, selects, unions,
                  _expr(for_each, f"{loc}.{key}") if for_each is not None else None,
                  or_null, repeat)  # fmt: skip


def _constant(raw: Any, loc: str) -> Constant:
    if not isinstance(raw, dict):
        raise ViewDefinitionError(f"{loc}: a constant must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ViewDefinitionError(f"{loc}.name: constant name {name!r} is not valid")
    values = [(k[5:], v) for k, v in raw.items() if k.startswith("value")]
    if len(values) != 1:
        raise ViewDefinitionError(f"{loc}: constant {name!r} needs exactly one value[x]")
    suffix, value = values[0]
    ftype = suffix[:1].lower() + suffix[1:]
    if ftype not in CONSTANT_TYPES:
        raise ViewDefinitionError(f"{loc}: value{suffix} is not an allowed constant type")
    kind = CONSTANT_TYPES[ftype]
    ok = {"str": isinstance(value, str), "bool": isinstance(value, bool),
          "int": (isinstance(value, int) and not isinstance(value, bool))
          or (ftype == "integer64" and isinstance(value, str) and _is_integer64(value)),
          "num": isinstance(value, int | float) and not isinstance(value, bool)}[kind]  # fmt: skip
    if not ok:
        raise ViewDefinitionError(f"{loc}.value{suffix}: {value!r} is not a valid {ftype}")
    if kind == "int":
        value = int(value)
    return Constant(name, value, ftype, kind)


def _is_integer64(text: str) -> bool:
    """FHIR integer64 as JSON text: ASCII digits in the signed 64-bit range."""
    return re.fullmatch(r"-?[0-9]+", text) is not None and -(2**63) <= int(text) < 2**63


def parse_view(view: Any) -> View:
    """Validate a ViewDefinition (as parsed JSON) and return its checked form."""
    if not isinstance(view, dict):
        raise ViewDefinitionError("ViewDefinition: expected a JSON object")
    if view.get("resourceType", "ViewDefinition") != "ViewDefinition":
        raise ViewDefinitionError(f"resourceType: expected ViewDefinition, "
                                  f"got {view.get('resourceType')!r}")  # fmt: skip
    resource = view.get("resource")
    if not isinstance(resource, str) or not schema.is_resource_type(resource):
        raise ViewDefinitionError(f"resource: {resource!r} is not a FHIR resource type")
    selects = _list(view.get("select"), "select")
    if not selects:
        raise ViewDefinitionError("select: at least one select is required")
    constants: dict[str, Constant] = {}
    for i, raw in enumerate(_list(view.get("constant"), "constant")):
        const = _constant(raw, f"constant[{i}]")
        if const.name in constants or const.name == "rowIndex":
            raise ViewDefinitionError(f"constant[{i}].name: {const.name!r} is already defined")
        constants[const.name] = const
    where = []
    for i, raw in enumerate(_list(view.get("where"), "where")):
        if not isinstance(raw, dict):
            raise ViewDefinitionError(f"where[{i}]: must be an object with a path")
        where.append(_expr(raw.get("path"), f"where[{i}].path"))
    root = Select("", (), tuple(_select(s, f"select[{i}]") for i, s in enumerate(selects)),
                  (), None, False, ())  # fmt: skip
    seen: set[str] = set()
    for name in root.column_names():
        if name in seen:
            raise ViewDefinitionError(f"column {name!r} is defined more than once")
        seen.add(name)
    title = view.get("name")
    return View(resource, title if isinstance(title, str) else None, root, tuple(where), constants)
