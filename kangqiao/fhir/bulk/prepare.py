"""The CPU-heavy half of bulk import, run in worker processes: parse, validate and index each
NDJSON line. Returns plain picklable values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from kangqiao.fhir import definitions
from kangqiao.fhir.search.index import index_rows
from kangqiao.fhir.store.records import ID_RE
from kangqiao.fhir.store.store import Prepared, index_tuples
from kangqiao.fhir.validation import validate_resource


@dataclass(frozen=True, slots=True)
class LineResult:
    line: int
    outcome: Prepared | str  # the prepared resource, or why the line was rejected


def derived_id(seed: str, line: int) -> str:
    """The id of a line that has none: the same for the same file and line on every run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kangqiao-import:{seed}:{line}"))


def prepare_lines(task: tuple[str, int, list[bytes]]) -> list[LineResult]:
    seed, first, lines = task
    return [LineResult(first + n, prepare_one(seed, first + n, raw))
            for n, raw in enumerate(lines) if raw.strip()]


def resource_of(seed: str, line: int, raw: bytes) -> dict[str, Any]:
    """The resource of an accepted line as ``prepare_one`` stores it (parsed again)."""
    resource: dict[str, Any] = orjson.loads(raw)
    if resource.get("id") is None:
        resource = {**resource, "id": derived_id(seed, line)}
    return resource


def prepare_one(seed: str, line: int, raw: bytes) -> Prepared | str:
    """The prepared resource of one line, or why the line is rejected."""
    try:
        resource = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"not valid JSON: {exc}"
    if not isinstance(resource, dict):
        return "a line must hold one JSON object (a resource)"
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in definitions.resource_types():
        return f"unknown resourceType {resource_type!r}"
    resource_id = resource.get("id")
    if resource_id is None:
        resource = {**resource, "id": derived_id(seed, line)}
    elif not isinstance(resource_id, str) or not ID_RE.match(resource_id):
        return f"invalid id {resource_id!r}"
    errors = [i for i in validate_resource(resource, resource_type)
              if i.severity in ("error", "fatal")]
    if errors:
        return "; ".join(f"{i.expression or resource_type}: {i.diagnostics}" for i in errors[:5])
    resource_id = resource["id"]
    return Prepared(resource_type, resource_id, resource,
                    index_tuples(resource_type, resource_id, index_rows(resource)))
