"""The patients a resource is about, found exactly as the search index finds them: through
the search parameters that the CompartmentDefinition names for its type (Observation.subject
and .performer, Encounter.subject, ...), so a read by id and a search agree."""

from __future__ import annotations

from functools import cache
from typing import Any

from kangqiao.fhir.search.index import reference_parts
from kangqiao.fhir.search.params import search_params
from kangqiao.fhir.search.paths import Extractor, compile_expression
from kangqiao.security.rules import compartment


@cache
def _extractors(resource_type: str) -> tuple[Extractor, ...]:
    params = search_params(resource_type)
    out = []
    for name in compartment().get(resource_type, ()):
        sp = params.get(name)
        if sp is not None and sp.expression:
            extract = compile_expression(sp.expression, resource_type)
            if extract is not None:
                out.append(extract)
    return tuple(out)


def patients_of(resource: dict[str, Any]) -> set[str]:
    """Ids of the patients ``resource`` belongs to (a Patient belongs to itself)."""
    rtype = resource.get("resourceType")
    if rtype == "Patient":
        rid = resource.get("id")
        return {rid} if isinstance(rid, str) else set()
    if not isinstance(rtype, str):
        return set()
    ids: set[str] = set()
    for extract in _extractors(rtype):
        try:
            nodes = extract(resource)
        except (AttributeError, TypeError, ValueError):
            continue
        for value, _type in nodes:
            ref = value.get("reference") if isinstance(value, dict) else value
            if isinstance(ref, str):
                target_type, target_id, _, _ = reference_parts(ref)
                if target_type == "Patient" and target_id:
                    ids.add(target_id)
    return ids
