"""What the compiler needs to know about FHIR R4 elements: cardinality and type.

FHIR JSON writes an element with ``max = "*"`` as an array and any other element as a
single value, so knowing the cardinality lets a path such as ``name.given`` compile to
one DuckDB JSONPath (``$.name[*].given[*]``) instead of a per-row type test. The type
gives choice elements (``value[x]``) their JSON names and columns their SQL types.
Unknown elements (non-R4 data, logical models) fall back to runtime checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

PRIMITIVE_KIND = {
    "boolean": "bool",
    "integer": "int", "positiveInt": "int", "unsignedInt": "int", "integer64": "int",
    "decimal": "num",
    "string": "str", "code": "str", "id": "str", "uri": "str", "url": "str",
    "canonical": "str", "markdown": "str", "oid": "str", "uuid": "str",
    "base64Binary": "str", "date": "str", "dateTime": "str", "instant": "str",
    "time": "str", "xhtml": "str",
}  # fmt: skip


@dataclass(frozen=True)
class Element:
    """One child element of a type, as seen from FHIRPath."""

    many: bool
    types: tuple[str, ...]  # FHIR type codes; more than one for a choice element
    choice: bool
    context: str | None  # the backbone path to continue from (``QuestionnaireResponse.item``)

    def type_context(self, type_code: str | None = None) -> str | None:
        """The context children are looked up in, for this element's (chosen) type."""
        if self.context is not None:
            return self.context
        if type_code is not None:
            return type_code
        return self.types[0] if len(self.types) == 1 else None


@cache
def _elements(type_name: str) -> dict[str, dict[str, object]]:
    try:
        from kangqiao.fhir import definitions

        return {str(e["path"]): e for e in definitions.snapshot_elements(type_name)}
    except Exception:  # unknown type or definitions unavailable: stay dynamic
        return {}


def _type_code(type_ref: dict[str, object]) -> str:
    from kangqiao.fhir import definitions

    return definitions.fhir_type_of(type_ref)


@cache
def element(context: str, name: str) -> Element | None:
    """The element ``name`` under ``context`` (a type name or a backbone element path)."""
    root = context.split(".", 1)[0]
    elements = _elements(root)
    path = f"{context}.{name}"
    found = elements.get(path)
    choice = False
    if found is None:
        found = elements.get(path + "[x]")
        choice = found is not None
    if found is None:
        return None
    max_card = str(found.get("max", "1"))
    many = max_card == "*" or (max_card.isdigit() and int(max_card) > 1)
    raw_types = found.get("type")
    types = tuple(_type_code(t) for t in raw_types if isinstance(t, dict)) if isinstance(
        raw_types, list) else ()
    backbone: str | None = None
    ref = found.get("contentReference")
    if isinstance(ref, str):
        backbone = ref.split("#", 1)[-1]
    elif types and types[0] in ("BackboneElement", "Element") and not choice:
        backbone = path
    return Element(many=many, types=types, choice=choice, context=backbone)


def is_resource_type(name: str) -> bool:
    try:
        from kangqiao.fhir import definitions

        return name in definitions.resource_types()
    except Exception:
        return name[:1].isupper()


def choice_suffix(type_name: str) -> str:
    """``dateTime`` -> ``DateTime``: the suffix a choice element takes in JSON."""
    return type_name[:1].upper() + type_name[1:]


def type_from_spec(name: str, candidates: tuple[str, ...]) -> str:
    """Resolve the type named in ``ofType(X)`` against an element's candidate types.

    FHIRPath accepts both FHIR (``dateTime``) and system (``DateTime``) spellings."""
    name = name.split(".")[-1]
    for candidate in candidates:
        if candidate == name or candidate.lower() == name.lower():
            return candidate
    return name
