"""``POST /fhir/$import``: the HTTP door to bulk NDJSON import.

The body (``application/fhir+ndjson``, gzip allowed with ``Content-Encoding: gzip``) is
streamed to a file first, so memory stays bounded, then imported with the same code as
``kangqiao import`` under the caller's Access: every resource passes the security gate and is
audited. The answer is an OperationOutcome with the counts and one issue per rejected line.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kangqiao.fhir.api import access_of
from kangqiao.fhir.bulk.importer import ImportReport, import_ndjson
from kangqiao.fhir.outcome import FhirError, Issue, operation_outcome
from kangqiao.fhir.rest.formats import fhir_response
from kangqiao.settings import REPO_ROOT

router = APIRouter(prefix="/fhir", tags=["Bulk Data"])
NDJSON_TYPES = {"application/fhir+ndjson", "application/ndjson", "application/x-ndjson"}
MAX_REPORTED = 100
IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/fhir+ndjson": {"schema": {"type": "string"}}},
    }
}


@router.post("/$import", summary="Bulk NDJSON import", openapi_extra=IMPORT_BODY)
async def bulk_import(request: Request) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in NDJSON_TYPES:
        raise FhirError.of(415, "not-supported", "$import takes application/fhir+ndjson")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise FhirError.of(415, "not-supported", f"Content-Encoding {encoding!r} is not "
                           "supported (gzip or none)")
    access = access_of(request)
    folder = REPO_ROOT / "var" / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4()}.ndjson{'.gz' if encoding == 'gzip' else ''}"
    try:
        with path.open("wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
        if path.stat().st_size == 0:
            raise FhirError.of(400, "required", "The request body is empty")
        report = await run_in_threadpool(
            import_ndjson, request.app.state.store, access, [path], job=path.stem,
            workers=0)
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip body
        raise FhirError.of(400, "invalid", f"The body could not be read: {exc}") from exc
    finally:
        path.unlink(missing_ok=True)
    return fhir_response(outcome(report))


def outcome(report: ImportReport) -> dict[str, object]:
    issues = [Issue("information", "informational",
                    f"{report.accepted} resources imported, {len(report.rejected)} lines "
                    f"rejected in {report.seconds:.2f} s")]
    issues += [Issue("error", "invalid", f"line {bad.line}: {bad.reason}")
               for bad in report.rejected[:MAX_REPORTED]]
    if len(report.rejected) > MAX_REPORTED:
        issues.append(Issue("warning", "too-costly",
                            f"{len(report.rejected) - MAX_REPORTED} more lines rejected"))
    return operation_outcome(issues)
