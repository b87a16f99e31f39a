"""HTTP routes of Bulk Data ``$export`` (FHIR Bulk Data Access IG 2.0): kick-off at system,
Patient and Group level, the status URL (poll, cancel) and the output files. Thin: parse, call
``kangqiao.fhir.bulk.export``, shape the answer. Included before the FHIR REST router, whose
``/{type}/{id}`` routes would otherwise take ``/Patient/$export``."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response

from kangqiao.fhir.api import access_of, base_of
from kangqiao.fhir.bulk import export
from kangqiao.fhir.bulk import export_jobs as jobs
from kangqiao.fhir.outcome import FhirError, Issue, operation_outcome
from kangqiao.fhir.rest.formats import fhir_response
from kangqiao.fhir.store.records import instant
from kangqiao.fhir.store.store import FhirStore

ACCEPTED = {"application/fhir+json", "application/json", "*/*", "application/*"}
RETRY_AFTER = "2"  # seconds; a chunk of 1000 resources takes well under that


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    runner = export.ExportRunner(app.state.store, app.state.settings.export_dir)
    app.state.export_runner = runner
    runner.start()
    try:
        yield
    finally:
        await run_in_threadpool(runner.stop)


router = APIRouter(prefix="/fhir", tags=["Bulk Data"], lifespan=_lifespan)


def _store(request: Request) -> FhirStore:
    store: FhirStore = request.app.state.store
    return store


def _export_dir(request: Request) -> Path:
    folder: Path = request.app.state.settings.export_dir
    return folder


def _prefer(request: Request) -> dict[str, str]:
    """``Prefer: respond-async, handling=lenient`` -> {"respond-async": "", "handling": ...}."""
    out: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for token in header.replace(";", ",").split(","):
            name, _, value = token.strip().partition("=")
            if name:
                out[name.strip().lower()] = value.strip().strip('"').lower()
    return out


@router.get("/$export", summary="Bulk Data export of the whole system")
async def export_system(request: Request) -> Response:
    return await _kickoff(request, "system", None)


@router.get("/Patient/$export", summary="Bulk Data export of all patients' compartments")
async def export_patients(request: Request) -> Response:
    return await _kickoff(request, "patient", None)


@router.get("/Group/{group_id}/$export", summary="Bulk Data export of a Group's patients")
async def export_group(request: Request, group_id: str) -> Response:
    return await _kickoff(request, "group", group_id)


async def _kickoff(request: Request, level: export.Level, group_id: str | None) -> Response:
    prefer = _prefer(request)
    if "respond-async" not in prefer:
        raise FhirError.of(400, "invalid", "$export runs asynchronously: send the header "
                           "Prefer: respond-async")
    accept = request.headers.get("accept")
    if accept and not {a.split(";")[0].strip().lower() for a in accept.split(",")} & ACCEPTED:
        raise FhirError.of(406, "not-supported", "The kick-off answers in application/fhir+json"
                           " only (Accept)")
    req = export.parse_kickoff(level, group_id, list(request.query_params.multi_items()),
                               lenient=prefer.get("handling") == "lenient")
    store, access = _store(request), access_of(request)

    def start() -> str:
        if group_id is not None:  # 404 / 410 as for a read, through the gate
            with store.read(access) as uow:
                uow.read("Group", group_id)
        return jobs.create(store.engine, req.to_json(), access, str(request.url),
                           export.Progress().to_json())

    job = await run_in_threadpool(start)
    request.app.state.export_runner.kick()
    body = operation_outcome([Issue("information", "informational",
                                    f"Export job {job} accepted")])
    return fhir_response(body, 202, {"Content-Location": _status_url(request, job)})


def _status_url(request: Request, job: str) -> str:
    return f"{base_of(request)}/bulk-status/{job}"


async def _own_job(request: Request, job: str) -> Any:
    """The job, when the caller is its requester; 404 otherwise (whether it exists or not is
    nobody else's business)."""
    access = access_of(request)
    row = await run_in_threadpool(jobs.get, _store(request).engine, job)
    if row is None or row.status == "cancelled" or row.requester != jobs.requester_of(access):
        raise FhirError.of(404, "not-found", f"No export job {job!r}")
    return row


@router.get("/bulk-status/{job}", summary="Bulk Data export status and manifest")
async def export_status(request: Request, job: str) -> Response:
    row = await _own_job(request, job)
    if row.status in jobs.ACTIVE:
        return Response(status_code=202, headers={"X-Progress": _progress_text(row),
                                                  "Retry-After": RETRY_AFTER})
    if row.status == "failed":
        body = operation_outcome([Issue("fatal", "exception",
                                        f"Export job {job} failed: {row.error}")])
        return fhir_response(body, 500)
    base = base_of(request)
    manifest = {
        "transactionTime": instant(row.transaction_time),
        "request": row.request,
        # the files are served only to the requester, authenticated as for the API
        "requiresAccessToken": True,
        "output": [{"type": o["type"], "url": f"{base}/bulk-files/{job}/{o['file']}",
                    "count": o["count"]} for o in row.progress["outputs"]],
        "error": [],
    }
    return Response(orjson.dumps(manifest), 200, media_type="application/json")


def _progress_text(row: Any) -> str:
    if row.status == "accepted":
        return "queued"
    progress = export.Progress.from_json(row.progress)
    types = row.params["types"]
    at = min(progress.index, len(types) - 1)
    return (f"{progress.exported} resources exported; {types[at]} "
            f"(type {at + 1} of {len(types)})")


@router.delete("/bulk-status/{job}", summary="Cancel a Bulk Data export and delete its files")
async def export_cancel(request: Request, job: str) -> Response:
    await _own_job(request, job)
    await run_in_threadpool(jobs.cancel, _store(request).engine, job)
    # the runner also removes the folder when it notices, in case it wrote after this
    await run_in_threadpool(shutil.rmtree, _export_dir(request) / job, True)
    body = operation_outcome([Issue("information", "informational",
                                    f"Export job {job} cancelled; its files are deleted")])
    return fhir_response(body, 202)


@router.get("/bulk-files/{job}/{name}", summary="A Bulk Data export output file (NDJSON)")
async def export_file(request: Request, job: str, name: str) -> Response:
    row = await _own_job(request, job)
    names = {o["file"] for o in row.progress["outputs"]} if row.status == "completed" else set()
    path = _export_dir(request) / job / name
    if name not in names or not path.is_file():  # only files of the manifest: no traversal
        raise FhirError.of(404, "not-found", f"No file {name!r} in export job {job}")
    return FileResponse(path, media_type="application/fhir+ndjson")
