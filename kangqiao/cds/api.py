"""CDS Hooks 2.0 routes: ``GET /cds-services`` (discovery) and ``POST /cds-services/{id}``.

Errors are CDS Hooks style, an HTTP status with ``{"error": ...}`` (never an
OperationOutcome, never a 500 for a bad request)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from kangqiao.cds import hooks
from kangqiao.cds.cards import patient_cards
from kangqiao.chronic.records import COUNTY_TZ
from kangqiao.fhir.api import access_of
from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.store.store import FhirStore

router = APIRouter(prefix="/cds-services", tags=["CDS Hooks"])


def english(accept_language: str | None) -> bool:
    """English when the client prefers it (highest q) to Chinese; Chinese by default."""
    best, best_q = "zh", -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = tag.strip().lower()[:2]
        if lang in ("zh", "en") and q > best_q:
            best, best_q = lang, q
    return best == "en"


@router.get("")
def discovery() -> dict[str, Any]:
    return {"services": list(hooks.SERVICES.values())}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@router.post("/{service_id}")
async def call(service_id: str, request: Request) -> JSONResponse:
    try:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise hooks.CdsError(400, f"the body is not JSON: {exc}") from exc
        parsed = hooks.parse(service_id, body)
        cards = await run_in_threadpool(_cards, request, parsed)
    except hooks.CdsError as exc:
        return _error(exc.status, exc.message)
    except FhirError as exc:
        return _error(exc.status, exc.issues[0].diagnostics if exc.issues else str(exc))
    return JSONResponse({"cards": cards})


def _cards(request: Request, parsed: hooks.HookRequest) -> list[dict[str, Any]]:
    base = str(request.base_url).rstrip("/")
    en = english(request.headers.get("accept-language"))
    today = datetime.now(COUNTY_TZ).date()
    if parsed.diseases is not None and not parsed.diseases:
        return []  # order-select of a drug that is neither antihypertensive nor antidiabetic
    if parsed.fhir_server is not None and parsed.fhir_server != f"{base}/fhir":
        record = hooks.gather(parsed, hooks.remote_fetcher(parsed.fhir_server, parsed.token))
    else:
        store: FhirStore = request.app.state.store
        with store.read(access_of(request)) as uow:
            record = hooks.gather(parsed, hooks.local_fetcher(uow))
    return patient_cards(record, today, en, base, parsed.diseases)

