"""Response shaping: FHIR JSON bodies, ``_format``, ``_pretty``, ``_summary`` and ``_elements``."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from starlette.responses import Response

from kangqiao.fhir import definitions
from kangqiao.fhir.outcome import FhirError

FHIR_JSON = "application/fhir+json"
JSON_TYPES = {"application/fhir+json", "application/json", "json", "application/json+fhir",
              "text/json"}
XML_TYPES = {"xml", "application/fhir+xml", "application/xml", "text/xml",
             "application/xml+fhir"}
SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
             "code": "SUBSETTED"}
SUMMARY_MODES = {"true", "false", "text", "data", "count"}


def check_format(fmt: str | None) -> None:
    """``_format``: JSON only (the CapabilityStatement says so); XML is 406, other values 400."""
    if fmt is None:
        return
    base = fmt.split(";")[0].strip().lower()
    if base in JSON_TYPES:
        return
    if base in XML_TYPES:
        raise FhirError.of(406, "not-supported", "Only JSON is supported (_format=json)")
    raise FhirError.of(400, "invalid", f"Unknown _format {fmt!r}")


def fhir_response(body: Any, status: int = 200, headers: dict[str, str] | None = None,
                  *, pretty: bool = False) -> Response:
    option = orjson.OPT_INDENT_2 if pretty else 0
    return Response(orjson.dumps(body, option=option), status_code=status, headers=headers,
                    media_type=f"{FHIR_JSON}; charset=utf-8")


def is_pretty(value: str | None) -> bool:
    return (value or "").lower() == "true"


@cache
def _summary_elements(resource_type: str) -> frozenset[str]:
    """Top-level element names flagged ``isSummary`` in the R4 StructureDefinition."""
    sd = definitions.structure_definition(resource_type)
    names: set[str] = set()
    for element in sd["snapshot"]["element"]:
        parts = element["path"].split(".")
        if len(parts) == 2 and element.get("isSummary"):
            names.add(parts[1].replace("[x]", ""))
    return frozenset(names)


@cache
def _mandatory_elements(resource_type: str) -> frozenset[str]:
    sd = definitions.structure_definition(resource_type)
    return frozenset(e["path"].split(".")[1].replace("[x]", "")
                     for e in sd["snapshot"]["element"]
                     if e["path"].count(".") == 1 and e.get("min", 0) > 0)


def _keep(resource: dict[str, Any], wanted: frozenset[str] | set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in resource.items():
        bare = key.lstrip("_")
        if key in ("resourceType", "id", "meta") or bare in wanted or any(
            bare.startswith(w) and bare[len(w):][:1].isupper() for w in wanted  # value[x]
        ):
            out[key] = value
    return _subsetted(out)


def _subsetted(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED]
    resource["meta"] = meta
    return resource


def check_summary(summary: str | None) -> None:
    if summary is not None and summary not in SUMMARY_MODES:
        raise FhirError.of(400, "invalid", f"_summary must be one of {sorted(SUMMARY_MODES)}")


def shape(resource: dict[str, Any], summary: str | None, elements: str | None) -> dict[str, Any]:
    """Apply ``_summary`` / ``_elements`` to one resource (a copy when anything changes)."""
    resource_type = resource.get("resourceType", "")
    if summary in (None, "false") and not elements:
        return resource
    if resource_type not in definitions.resource_types():
        return resource
    if summary == "true":
        return _keep(resource, _summary_elements(resource_type))
    if summary == "text":
        return _keep(resource, {"text"} | _mandatory_elements(resource_type))
    if summary == "data":
        return _subsetted({k: v for k, v in resource.items() if k != "text"})
    if elements:
        wanted = {e.strip().split(".")[-1] if e.strip().startswith(resource_type + ".")
                  else e.strip() for e in elements.split(",") if e.strip()}
        return _keep(resource, wanted | _mandatory_elements(resource_type))
    return resource
