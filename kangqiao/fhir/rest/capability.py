"""The CapabilityStatement: exactly what this server implements, built from the same tables the
server runs on (resource types, search parameters), so it cannot claim more than it does."""

from __future__ import annotations

from functools import cache
from typing import Any

from kangqiao import __version__
from kangqiao.fhir import definitions
from kangqiao.fhir.search.params import search_params

INTERACTIONS = ["read", "vread", "update", "patch", "delete", "history-instance",
                "history-type", "create", "search-type"]
COMMON_PARAMS = {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"}


@cache
def _resource_entry(resource_type: str) -> dict[str, Any]:
    params = search_params(resource_type)
    return {
        "type": resource_type,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
        "interaction": [{"code": code} for code in INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "referencePolicy": ["literal", "logical"],
        "searchInclude": ["*", *sorted(f"{resource_type}:{code}" for code, p in params.items()
                                       if p.type == "reference")],
        "searchRevInclude": ["*"],
        "searchParam": [
            {"name": code, "definition": p.url, "type": p.type}
            for code, p in sorted(params.items()) if code not in COMMON_PARAMS
        ],
    }


BULK = "http://hl7.org/fhir/uv/bulkdata"
VIEW_RUN = "http://sql-on-fhir.org/OperationDefinition/$viewdefinition-run"
OPERATIONS: dict[str, list[dict[str, str]]] = {
    "Patient": [
        {"name": "everything",
         "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
        {"name": "export", "definition": f"{BULK}/OperationDefinition/patient-export"},
    ],
    "Group": [{"name": "export", "definition": f"{BULK}/OperationDefinition/group-export"}],
}


def _with_operations(entry: dict[str, Any]) -> dict[str, Any]:
    if entry["type"] in OPERATIONS:
        return {**entry, "operation": OPERATIONS[entry["type"]]}
    return entry


def capability_statement(base_url: str) -> dict[str, Any]:
    common = search_params("Resource")
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "publisher": "Kangqiao",
        "kind": "instance",
        "software": {"name": "Kangqiao (康桥)", "version": __version__},
        "implementation": {"description": "Kangqiao FHIR R4 server", "url": base_url},
        "instantiates": [f"{BULK}/CapabilityStatement/bulk-data"],
        "fhirVersion": "4.0.1",
        # JSON only: XML is not implemented (``_format=xml`` answers 406).
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "documentation": "Batch and transaction bundles are processed atomically "
            "(transaction) or per entry (batch). Paging uses _count and _offset. _total accepts "
            "none, estimate and accurate; estimate counts the candidates of the most selective "
            "parameter in its index and tests a random sample of 1,000 of them (exact when "
            "there are at most 2,000). _include and "
            "_revinclude accept Type:param[:target], * and :iterate. Search on _text, "
            "_content, _list, _query and _filter is not supported. Bulk Data $export (IG 2.0) "
            "runs at system, Patient and Group level with _outputFormat (NDJSON), _type, "
            "_since and _typeFilter; its status URL answers 202 with X-Progress, then the "
            "manifest, and DELETE cancels a job.",
            "resource": [_with_operations(_resource_entry(t))
                         for t in sorted(definitions.resource_types())],
            "interaction": [{"code": "transaction"}, {"code": "batch"},
                            {"code": "search-system"}, {"code": "history-system"}],
            "searchParam": [{"name": code, "definition": p.url, "type": p.type}
                            for code, p in sorted(common.items())],
            "operation": [{"name": "export",
                           "definition": f"{BULK}/OperationDefinition/export"},
                          {"name": "viewdefinition-run", "definition": VIEW_RUN,
                           "documentation": "SQL on FHIR v2: POST [base]/$viewdefinition-run "
                           "and ViewDefinition/$run (viewResource or viewReference), GET/POST "
                           "ViewDefinition/[id]/$run for the server's views; _format json, "
                           "ndjson, csv or parquet; patient, group, _since, _limit, header. "
                           "Rows come only from resources the caller may read."}],
        }],
    }
