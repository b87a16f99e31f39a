"""Routes of the dashboards: ``/dashboard/clinic`` (issue 6), ``/dashboard/county``
(issue 7) and its exports ``/dashboard/county/export.csv`` / ``.xlsx``. Signed in with the
workbench's session; the snapshot behind a page is the user's own (see
:mod:`.dashboard_data`)."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from kangqiao.web import dashboard_clinic as clinic
from kangqiao.web import dashboard_county as county
from kangqiao.web import dashboard_export as export
from kangqiao.web import dashboard_i18n  # noqa: F401  (registers the dashboards' strings)
from kangqiao.web.dashboard_access import CLINIC_ROLES, COUNTY_ROLES, cache_of
from kangqiao.web.dashboard_data import Snapshot
from kangqiao.web.i18n import language_of, translator
from kangqiao.web.workbench import Who, _render, _signed_in, _today

router = APIRouter(prefix="/dashboard", include_in_schema=False)


def _url(request: Request) -> Any:
    en = language_of(request) == "en"

    def url(path: str, **params: Any) -> str:
        query = {k: v for k, v in params.items() if v not in (None, "")}
        if en:
            query["lang"] = "en"
        return path + (f"?{urlencode(query)}" if query else "")

    return url


async def _snapshot(request: Request, who: Who) -> Snapshot | Response:
    """The user's snapshot, or a page that says it is being computed and reloads itself."""
    day: date = _today()
    snap = await run_in_threadpool(cache_of(request).get, who.access, day)
    if snap is None:
        return _render(request, "dashboard/building.html", who, 202)
    return snap


def _refused(request: Request, who: Who, message: str, status: int = 403) -> HTMLResponse:
    return _render(request, "workbench/error.html", who, status, status=status,
                   message=translator(language_of(request))(message))


# ---- the county ----------------------------------------------------------------------------


async def _opened(request: Request, roles: frozenset[str], refusal: str
                  ) -> tuple[Who, Snapshot] | Response:
    """The signed-in user and the snapshot of their view, or the page saying why not."""
    who = await _signed_in(request)
    if isinstance(who, Response):
        return who
    if who.account.role not in roles:
        return _refused(request, who, refusal)
    snap = await _snapshot(request, who)
    if isinstance(snap, Response):
        return snap
    return who, snap


async def _county_choice(request: Request) -> tuple[Who, Snapshot, county.Choice] | Response:
    opened = await _opened(request, COUNTY_ROLES, "db_county_only")
    if isinstance(opened, Response):
        return opened
    who, snap = opened
    choice = county.choose(snap, dict(request.query_params))
    if isinstance(choice, str):
        return _refused(request, who, choice, 400)
    return who, snap, choice


@router.get("/county", response_class=HTMLResponse)
async def county_page(request: Request) -> Response:
    chosen = await _county_choice(request)
    if isinstance(chosen, Response):
        return chosen
    who, snap, choice = chosen
    lang = language_of(request)
    context = county.page_context(snap, choice, _url(request), translator(lang), lang == "en")
    return _render(request, "dashboard/county.html", who, **context)


@router.get("/county/export.{fmt}")
async def county_export(fmt: str, request: Request) -> Response:
    chosen = await _county_choice(request)
    if isinstance(chosen, Response):
        return chosen
    who, snap, choice = chosen
    if fmt not in ("csv", "xlsx"):
        return _refused(request, who, "db_bad_format", 400)
    lang = language_of(request)
    rows = export.table(snap, choice, county.lines_of(snap, choice, _url(request)), lang)
    name = f"{choice.indicator.id}_{choice.unit.id}_{choice.period}.{fmt}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"',
                   "Cache-Control": "no-store"}
    if fmt == "csv":
        return Response(export.to_csv(rows, lang), media_type="text/csv; charset=utf-8",
                        headers=disposition)
    body = await run_in_threadpool(export.to_xlsx, rows, lang, choice.indicator.id)
    return Response(body, headers=disposition, media_type=(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))


# ---- the clinic ----------------------------------------------------------------------------


@router.get("/clinic", response_class=HTMLResponse)
async def clinic_page(request: Request) -> Response:
    opened = await _opened(request, CLINIC_ROLES, "db_clinic_only")
    if isinstance(opened, Response):
        return opened
    who, snap = opened
    home = clinic.home_of(snap, who.account.organization)
    if home is None:
        return _refused(request, who, "db_no_clinic")
    years = [str(y) for y in sorted(snap.years, reverse=True)]
    year = request.query_params.get("year") or (years[0] if years else "")
    if year not in years:
        return _refused(request, who, "db_bad_period", 400)
    lang = language_of(request)
    t, en = translator(lang), lang == "en"
    return _render(request, "dashboard/clinic.html", who, home=home, year=year, years=years,
                   snap=snap, places=clinic.places(snap, home),
                   kpis=clinic.kpis(snap, home, year, en),
                   charts=clinic.charts(snap, home, year, t, en, _url(request)))
