"""HTTP routes of the FHIR REST API at ``/fhir``: parse, open a unit of work, call one
interaction, shape the response. Nothing here touches the database directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kangqiao.fhir.outcome import FhirError, Issue, operation_outcome
from kangqiao.fhir.rest import bundles, formats
from kangqiao.fhir.rest import interactions as ix
from kangqiao.fhir.rest.capability import capability_statement
from kangqiao.fhir.store.store import FhirStore, UnitOfWork
from kangqiao.security.gate import Access

router = APIRouter(prefix="/fhir", tags=["FHIR"])
T = TypeVar("T")

PATCH_TYPES = {"application/json-patch+json"}
RESOURCE_BODY = {
    "requestBody": {
        "required": True,
        "content": {formats.FHIR_JSON: {"schema": {"type": "object",
                                                    "required": ["resourceType"]}}},
    }
}
PATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json-patch+json": {"schema": {"type": "array",
                                                                "items": {"type": "object"}}}},
    }
}


def _store(request: Request) -> FhirStore:
    store: FhirStore = request.app.state.store
    return store


def access_of(request: Request) -> Access:
    """Who is asking. The security gate's authentication replaces this per request."""
    resolver: Callable[[Request], Access] = request.app.state.access_resolver
    return resolver(request)


def base_of(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _prefer(request: Request, key: str) -> str | None:
    for part in request.headers.get("prefer", "").split(";"):
        for token in part.split(","):
            name, _, value = token.strip().partition("=")
            if name.strip().lower() == key:
                return value.strip().strip('"')
    return None


def _check_request(request: Request) -> None:
    formats.check_format(request.query_params.get("_format"))
    accept = request.headers.get("accept", "")
    if accept and all(a.split(";")[0].strip().lower() in formats.XML_TYPES
                      for a in accept.split(",")):
        raise FhirError.of(406, "not-supported", "Only JSON is supported")


async def _body(request: Request, *, patch: bool = False) -> Any:
    content_type = request.headers.get("content-type")
    if content_type is not None:
        base = content_type.split(";")[0].strip().lower()
        allowed = PATCH_TYPES if patch else formats.JSON_TYPES
        if base not in allowed:
            raise FhirError.of(415, "not-supported", f"Content-Type {base!r} is not supported; "
                               f"use {', '.join(sorted(allowed))}")
    raw = await request.body()
    if not raw.strip():
        raise FhirError.of(400, "required", "The request body is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FhirError.of(400, "structure", f"The body is not valid JSON: {exc}") from exc


async def _write(request: Request, work: Callable[[UnitOfWork], T]) -> T:
    store, access = _store(request), access_of(request)

    def run() -> T:
        with store.write(access) as uow:
            return work(uow)

    return await run_in_threadpool(run)


async def _read(request: Request, work: Callable[[UnitOfWork], T]) -> T:
    store, access = _store(request), access_of(request)

    def run() -> T:
        with store.read(access) as uow:
            return work(uow)

    return await run_in_threadpool(run)


def _respond(request: Request, result: ix.Result, *, write: bool = False) -> Response:
    headers = dict(result.headers)
    pretty = formats.is_pretty(request.query_params.get("_pretty"))
    if result.stored is not None and write:
        headers["Location"] = f"{base_of(request)}/{result.stored.location}"
    if result.status in (204, 304) or result.body is None:
        return Response(status_code=result.status, headers=headers)
    body = result.body
    if write:
        prefer = _prefer(request, "return") or "representation"
        if prefer == "minimal":
            return Response(status_code=result.status, headers=headers)
        if prefer == "OperationOutcome":
            verb = "created" if result.created else "updated"
            body = operation_outcome([Issue("information", "informational",
                                            f"{result.stored.resource_type}/{result.stored.id} "
                                            f"{verb}" if result.stored else "done")])
    elif result.stored is not None:
        body = formats.shape(body, request.query_params.get("_summary"),
                             request.query_params.get("_elements"))
    return formats.fhir_response(body, result.status, headers, pretty=pretty)


def _criteria(request: Request) -> str:
    query = str(request.url.query)
    if not query:
        raise FhirError.of(400, "invalid", "A conditional operation needs search criteria "
                           "(or an id in the URL)")
    return query


# ---- system level ----------------------------------------------------------------------


@router.get("/metadata", summary="CapabilityStatement")
async def metadata(request: Request) -> Response:
    _check_request(request)
    return formats.fhir_response(capability_statement(base_of(request)),
                                 pretty=formats.is_pretty(request.query_params.get("_pretty")))


@router.post("", summary="Batch or transaction Bundle", openapi_extra=RESOURCE_BODY)
async def batch_or_transaction(request: Request) -> Response:
    _check_request(request)
    body = await _body(request)
    store, access, base = _store(request), access_of(request), base_of(request)
    prefer = _prefer(request, "return") or "representation"
    result = await run_in_threadpool(bundles.process, store, access, body, base, prefer=prefer)
    return formats.fhir_response(result, pretty=formats.is_pretty(
        request.query_params.get("_pretty")))


@router.get("", summary="Search all resource types")
async def search_system(request: Request) -> Response:
    _check_request(request)
    params = list(request.query_params.multi_items())
    strict = _prefer(request, "handling") == "strict"
    result = await _read(request, lambda u: ix.search(u, None, params, base_of(request),
                                                      strict=strict))
    return _respond(request, result)


@router.get("/_history", summary="History of all resources")
async def history_system(request: Request) -> Response:
    _check_request(request)
    params = list(request.query_params.multi_items())
    result = await _read(request, lambda u: ix.history(u, None, None, params, base_of(request)))
    return _respond(request, result)


# ---- type level ------------------------------------------------------------------------


@router.get("/{resource_type}", summary="Search")
async def search_type(request: Request, resource_type: str) -> Response:
    _check_request(request)
    params = list(request.query_params.multi_items())
    strict = _prefer(request, "handling") == "strict"
    result = await _read(request, lambda u: ix.search(u, resource_type, params,
                                                      base_of(request), strict=strict))
    return _respond(request, result)


@router.post("/{resource_type}/_search", summary="Search (POST form)")
async def search_post(request: Request, resource_type: str) -> Response:
    _check_request(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/x-www-form-urlencoded", ""):
        raise FhirError.of(415, "not-supported", "_search takes application/"
                           "x-www-form-urlencoded")
    # Parsed here: Starlette's request.form() needs python-multipart, which we do not ship.
    form = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    params = list(request.query_params.multi_items()) + form
    strict = _prefer(request, "handling") == "strict"
    result = await _read(request, lambda u: ix.search(u, resource_type, params,
                                                      base_of(request), strict=strict))
    return _respond(request, result)


@router.post("/{resource_type}", summary="Create", openapi_extra=RESOURCE_BODY)
async def create(request: Request, resource_type: str) -> Response:
    _check_request(request)
    ix.known_type(resource_type)
    body = await _body(request)
    if_none_exist = request.headers.get("if-none-exist")
    result = await _write(request, lambda u: ix.create(u, resource_type, body,
                                                       if_none_exist=if_none_exist))
    return _respond(request, result, write=True)


@router.put("/{resource_type}", summary="Conditional update", openapi_extra=RESOURCE_BODY)
async def conditional_update(request: Request, resource_type: str) -> Response:
    _check_request(request)
    ix.known_type(resource_type)
    criteria = _criteria(request)
    body = await _body(request)
    if_match = request.headers.get("if-match")
    result = await _write(request, lambda u: ix.conditional_update(
        u, resource_type, criteria, body, if_match=if_match))
    return _respond(request, result, write=True)


@router.patch("/{resource_type}", summary="Conditional patch", openapi_extra=PATCH_BODY)
async def conditional_patch(request: Request, resource_type: str) -> Response:
    _check_request(request)
    ix.known_type(resource_type)
    criteria = _criteria(request)
    body = await _body(request, patch=True)
    if_match = request.headers.get("if-match")
    result = await _write(request, lambda u: ix.conditional_patch(
        u, resource_type, criteria, body, if_match=if_match))
    return _respond(request, result, write=True)


@router.delete("/{resource_type}", summary="Conditional delete")
async def conditional_delete(request: Request, resource_type: str) -> Response:
    _check_request(request)
    ix.known_type(resource_type)
    criteria = _criteria(request)
    result = await _write(request, lambda u: ix.conditional_delete(u, resource_type, criteria))
    return _respond(request, result)


@router.get("/{resource_type}/_history", summary="History of a type")
async def history_type(request: Request, resource_type: str) -> Response:
    _check_request(request)
    params = list(request.query_params.multi_items())
    result = await _read(request, lambda u: ix.history(u, resource_type, None, params,
                                                       base_of(request)))
    return _respond(request, result)


# ---- instance level --------------------------------------------------------------------


@router.get("/{resource_type}/{resource_id}", summary="Read")
async def read(request: Request, resource_type: str, resource_id: str) -> Response:
    _check_request(request)
    summary = request.query_params.get("_summary")
    formats.check_summary(summary)
    if_none_match = request.headers.get("if-none-match")
    if_modified_since = request.headers.get("if-modified-since")
    result = await _read(request, lambda u: ix.read(
        u, resource_type, resource_id, if_none_match=if_none_match,
        if_modified_since=if_modified_since))
    return _respond(request, result)


@router.put("/{resource_type}/{resource_id}", summary="Update (or create with this id)",
            openapi_extra=RESOURCE_BODY)
async def update(request: Request, resource_type: str, resource_id: str) -> Response:
    _check_request(request)
    ix.known_type(resource_type)
    body = await _body(request)
    if_match = request.headers.get("if-match")
    result = await _write(request, lambda u: ix.update(u, resource_type, resource_id, body,
                                                       if_match=if_match))
    return _respond(request, result, write=True)


@router.patch("/{resource_type}/{resource_id}", summary="JSON Patch", openapi_extra=PATCH_BODY)
async def patch(request: Request, resource_type: str, resource_id: str) -> Response:
    _check_request(request)
    ix.known_type(resource_type)
    body = await _body(request, patch=True)
    if_match = request.headers.get("if-match")
    result = await _write(request, lambda u: ix.patch(u, resource_type, resource_id, body,
                                                      if_match=if_match))
    return _respond(request, result, write=True)


@router.delete("/{resource_type}/{resource_id}", summary="Delete (logical)")
async def delete(request: Request, resource_type: str, resource_id: str) -> Response:
    _check_request(request)
    result = await _write(request, lambda u: ix.delete(u, resource_type, resource_id))
    return _respond(request, result)


@router.get("/Patient/{patient_id}/$everything", summary="Patient/$everything")
async def patient_everything(request: Request, patient_id: str) -> Response:
    _check_request(request)
    params = list(request.query_params.multi_items())
    result = await _read(request, lambda u: ix.everything(u, patient_id, params,
                                                          base_of(request)))
    return _respond(request, result)


@router.get("/{resource_type}/{resource_id}/_history", summary="History of a resource")
async def history_instance(request: Request, resource_type: str, resource_id: str) -> Response:
    _check_request(request)
    params = list(request.query_params.multi_items())
    result = await _read(request, lambda u: ix.history(u, resource_type, resource_id, params,
                                                       base_of(request)))
    return _respond(request, result)


@router.get("/{resource_type}/{resource_id}/_history/{version_id}", summary="Version read")
async def vread(request: Request, resource_type: str, resource_id: str,
                version_id: str) -> Response:
    _check_request(request)
    result = await _read(request, lambda u: ix.vread(u, resource_type, resource_id,
                                                     version_id))
    return _respond(request, result)
