"""The ASGI application: the FHIR API, the web pages, and errors as OperationOutcomes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from kangqiao import __version__
from kangqiao.analytics import api as analytics_api
from kangqiao.chronic import api as chronic_api
from kangqiao.chronic.records import COUNTY_TZ
from kangqiao.fhir import api as fhir_api
from kangqiao.fhir.bulk import export_api, import_api
from kangqiao.fhir.outcome import FhirError, Issue, operation_outcome
from kangqiao.fhir.rest.formats import fhir_response
from kangqiao.fhir.store.db import make_engine
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security import setup as security
from kangqiao.settings import Settings, get_settings
from kangqiao.web import assets, dashboard, pages, workbench
from kangqiao.web.dashboard_access import warm_up

log = logging.getLogger("kangqiao")

HTTP_CODES = {404: "not-found", 405: "not-supported", 406: "not-supported",
              413: "too-costly", 415: "not-supported"}


def create_app(settings: Settings | None = None, store: FhirStore | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Kangqiao (康桥)", version=__version__,
                  description="FHIR R4 platform for a county medical community",
                  lifespan=_lifespan)
    app.state.settings = settings
    engine = store.engine if store is not None else make_engine(
        settings.database_url, echo=settings.sql_echo,
        sqlite_synchronous=settings.sqlite_synchronous)
    # Every request is authenticated and every store access passes the policy (the store
    # handed in is used for its engine only: its gate is replaced by the policy).
    app.state.store = security.install(app, settings, engine)
    app.include_router(export_api.router)  # first: /fhir/{type}/{id} would take $export
    app.include_router(import_api.router)  # and /fhir/{type} would take $import
    app.include_router(analytics_api.router)  # ViewDefinition/$run, before /fhir/{type}/{id}
    app.include_router(fhir_api.router)
    app.include_router(pages.router)
    app.include_router(chronic_api.routes())  # /chronic and /cds-services
    app.include_router(workbench.router)  # /workbench pages
    app.include_router(dashboard.router)  # /dashboard/clinic, /dashboard/county
    app.include_router(assets.router)  # /assets: ECharts from node_modules, charts.js
    _install_error_handlers(app)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # in the background: the server answers at once; the first county administrator to
    # open the dashboard finds it built (minutes on a large county)
    if app.state.settings.dashboard_warmup and warm_up(
            app.state, datetime.now(COUNTY_TZ).date()):
        log.info("building the county dashboard snapshot in the background")
    yield


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FhirError)
    async def fhir_error(_request: Request, exc: FhirError) -> Response:
        return fhir_response(exc.outcome(), exc.status, exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, "processing")
        body = operation_outcome([Issue("error", code, str(exc.detail))])
        return fhir_response(body, exc.status_code, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        issues = [Issue("error", "invalid", str(e.get("msg")),
                        ".".join(str(p) for p in e.get("loc", ()))) for e in exc.errors()]
        return fhir_response(operation_outcome(issues), 400)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        body = operation_outcome([Issue("fatal", "exception", "Internal server error")])
        return fhir_response(body, 500)
