"""Element types of the R4 resources and data types, read once from the StructureDefinitions.

The fast path evaluator (``paths.py``) needs to know, for each step of a search expression,
which JSON keys to read (``value[x]`` -> ``valueQuantity``, ``valueString``...) and what type
the result has, so the indexer can pick a converter without guessing from the JSON shape.
"""

from __future__ import annotations

from functools import lru_cache

import orjson

from kangqiao.settings import get_settings

# FHIRPath system types used for ids and extension urls in the R4 snapshots.
_SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}


class ElementInfo:
    """One element: its possible types and whether it is a choice (``[x]``) element."""

    __slots__ = ("choice", "ref", "types")

    def __init__(self, types: tuple[str, ...], choice: bool, ref: str | None) -> None:
        self.types = types
        self.choice = choice
        self.ref = ref  # contentReference target path (e.g. Questionnaire.item)


@lru_cache(maxsize=1)
def element_table() -> dict[str, ElementInfo]:
    """Map ``Path.to.element`` (without ``[x]``) -> ElementInfo, for resources and types."""
    out: dict[str, ElementInfo] = {}
    base = get_settings().fhir_definitions_dir
    for name in ("profiles-types.json", "profiles-resources.json"):
        bundle = orjson.loads((base / name).read_bytes())
        for entry in bundle.get("entry", []):
            sd = entry.get("resource", {})
            if sd.get("resourceType") != "StructureDefinition" or "snapshot" not in sd:
                continue
            if sd.get("derivation") == "constraint":  # profiles (SimpleQuantity...) add nothing
                continue
            for el in sd["snapshot"]["element"]:
                path: str = el["path"]
                if "." not in path:
                    continue
                choice = path.endswith("[x]")
                if choice:
                    path = path[:-3]
                types = tuple(
                    _SYSTEM_TYPES.get(t["code"], t["code"]) for t in el.get("type", [])
                )
                ref = el.get("contentReference")
                out[path] = ElementInfo(types, choice, ref[1:] if ref else None)
    return out


def is_complex(type_name: str) -> bool:
    """Complex data types and backbone paths start with an upper-case letter."""
    return type_name[:1].isupper()
