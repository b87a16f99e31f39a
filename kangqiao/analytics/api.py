"""HTTP routes of the SQL-on-FHIR v2 ``$viewdefinition-run`` operation (also ``$run``).

Thin: parse (``viewrun.parse_request``, which compiles the view: 400 before any data is
read), run through the caller's gated store (``viewrun.run``), answer with the rows.
Included before the FHIR REST router, whose ``/{type}/{id}`` routes would take the paths.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kangqiao.analytics import viewrun
from kangqiao.fhir.api import access_of
from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.rest.formats import JSON_TYPES
from kangqiao.fhir.store.store import FhirStore

router = APIRouter(prefix="/fhir", tags=["Analytics"])


async def _parameters(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    if not raw.strip():
        return None
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type and content_type not in JSON_TYPES:
        raise FhirError.of(415, "not-supported", f"Content-Type {content_type!r} is not "
                           "supported; send a Parameters resource as application/fhir+json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FhirError.of(400, "structure", f"The body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise FhirError.of(400, "structure", "The body must be a Parameters resource")
    return body


async def _run(request: Request, view_id: str | None) -> Response:
    body = await _parameters(request) if request.method == "POST" else None
    req = viewrun.parse_request(body, list(request.query_params.multi_items()), view_id,
                                request.headers.get("accept"))  # fmt: skip
    store: FhirStore = request.app.state.store
    access = access_of(request)

    def work() -> tuple[bytes, str]:
        with store.read(access) as uow:
            return viewrun.run(req, uow)

    content, media_type = await run_in_threadpool(work)
    return Response(content, media_type=media_type)


@router.post("/$viewdefinition-run", summary="Run a ViewDefinition (system level, R4 mode)")
async def run_system(request: Request) -> Response:
    return await _run(request, None)


@router.post("/ViewDefinition/$viewdefinition-run", summary="Run a ViewDefinition given inline "
             "(viewResource) or by reference (viewReference)")
@router.post("/ViewDefinition/$run", summary="Run a ViewDefinition ($run, the earlier name)")
async def run_type(request: Request) -> Response:
    return await _run(request, None)


@router.get("/ViewDefinition/{view_id}/$viewdefinition-run", summary="Run a stored ViewDefinition")
@router.post("/ViewDefinition/{view_id}/$viewdefinition-run", summary="Run a stored ViewDefinition")
@router.get("/ViewDefinition/{view_id}/$run", summary="Run a stored ViewDefinition ($run)")
@router.post("/ViewDefinition/{view_id}/$run", summary="Run a stored ViewDefinition ($run)")
async def run_instance(request: Request, view_id: str) -> Response:
    return await _run(request, view_id)
