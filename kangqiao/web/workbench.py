"""The family doctor's workbench (server-rendered, zh-CN first, ``?lang=en``): "today" with
the chronic work lists and a patient search, the patient page, and the national follow-up
form. Every read and write goes through the store's unit of work with the signed-in user's
Access (the policy gate); the session and its CSRF token are the login pages' own."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from kangqiao.chronic import service, worklists
from kangqiao.chronic.records import COUNTY_TZ
from kangqiao.chronic.rules import Disease
from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.store.store import FhirStore, UnitOfWork
from kangqiao.security import rules, sessions
from kangqiao.security.accounts import Account
from kangqiao.security.authn import session_scopes
from kangqiao.security.gate import Access
from kangqiao.web import workbench_form as wf
from kangqiao.web.assets import echarts_url
from kangqiao.web.i18n import language_of, translator
from kangqiao.web.workbench_patient import display_name, mask_id, patient_view

router = APIRouter(prefix="/workbench", include_in_schema=False)
HERE = Path(__file__).resolve().parent
templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                        autoescape=select_autoescape(["html"]))
NO_CACHE = {"Cache-Control": "no-store"}
T = TypeVar("T")
ID_NUMBER = re.compile(r"^[0-9]{6,17}[0-9Xx]$")
TODAY_ROWS = 10  # rows of each list on "today" (the riskiest first); the rest on its own page
LIST_ROWS = 1000  # rows of one list on its own page: far above a doctor's panel
LISTS = ("overdue", "due_this_week", "uncontrolled", "recheck_2w", "referral_follow_up",
         "not_seen_3m", "not_seen_12m", "annual_check_due", "awaiting_enrolment")


@dataclass(frozen=True)
class Who:
    account: Account
    csrf: str
    access: Access


def _today() -> date:
    return datetime.now(COUNTY_TZ).date()


def _who(request: Request) -> Who | None:
    engine = request.app.state.store.engine
    found = sessions.lookup(engine, request.app.state.settings,
                            request.cookies.get(sessions.COOKIE))
    if found is None:
        return None
    account, csrf = found
    access = account.access(scopes=session_scopes(account.role), purpose=rules.TREAT,
                            remote_addr=request.client.host if request.client else None)
    purpose = request.app.state.security.authn.default_purpose(engine, access)
    return Who(account, csrf, dataclasses.replace(access, purpose=purpose))


async def _signed_in(request: Request) -> Who | Response:
    who = await run_in_threadpool(_who, request)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if who is None:
        return RedirectResponse(f"/login?{urlencode({'next': here})}", status_code=303)
    if who.account.must_change_password:
        return RedirectResponse(f"/password?{urlencode({'next': here})}", status_code=303)
    return who


async def _signed_in_form(request: Request) -> tuple[Who, FormData] | Response:
    """The signed-in user and their posted form, once its CSRF token checks out."""
    who = await _signed_in(request)
    if isinstance(who, Response):
        return who
    form = await request.form()
    if not sessions.same(who.csrf, str(form.get("csrf"))):
        return _render(request, "workbench/error.html", who, 403, status=403,
                       message="csrf_failed")
    return who, form


async def _run(request: Request, who: Who, write: bool, work: Callable[[UnitOfWork], T]) -> T:
    store: FhirStore = request.app.state.store

    def inner() -> T:
        with (store.write(who.access) if write else store.read(who.access)) as uow:
            return work(uow)

    return await run_in_threadpool(inner)


def _render(request: Request, template: str, who: Who | None, code: int = 200,
            **context: Any) -> HTMLResponse:
    lang = language_of(request)
    t = translator(lang)

    def url(path: str, **params: Any) -> str:
        query = {k: v for k, v in params.items() if v not in (None, "")}
        if lang == "en":
            query["lang"] = "en"
        return path + (f"?{urlencode(query, doseq=True)}" if query else "")

    switch = dict(request.query_params)
    switch["lang"] = "zh-CN" if lang == "en" else "en"
    html = templates.get_template(template).render(
        t=t, lang=lang, en=lang == "en", url=url, who=who, csrf=who.csrf if who else "",
        switch_url=f"{request.url.path}?{urlencode(switch)}", echarts_url=echarts_url(),
        nav_links=nav_links, **context)
    return HTMLResponse(html, status_code=code, headers=NO_CACHE)


def nav_links(who: Who) -> list[tuple[str, str]]:
    """The header's links: today for clinical staff, the dashboards by role."""
    from kangqiao.web.dashboard_access import dashboards_of

    links = [("wb_today", "/workbench")] if who.account.practitioner_role else []
    return links + dashboards_of(who.account.role)


def _error_page(request: Request, who: Who, exc: FhirError) -> HTMLResponse:
    status = 404 if exc.status in (404, 410) else exc.status
    message = exc.issues[0].diagnostics if exc.issues else str(exc)
    return _render(request, "workbench/error.html", who, status, message=message,
                   status=status)


@router.get("/static/workbench.css")
async def stylesheet() -> FileResponse:
    return FileResponse(HERE / "static" / "workbench.css", media_type="text/css")


# ---- today ---------------------------------------------------------------------------


def _scope(account: Account) -> worklists.Scope | None:
    if account.practitioner_role:
        return worklists.Scope("doctor", account.practitioner_role)
    if account.organization:
        return worklists.Scope("organization", account.organization)
    return None


def _names(uow: UnitOfWork, ids: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 200):
        chunk = ids[start:start + 200]
        page = uow.search("Patient", [("_id", ",".join(chunk))], count=len(chunk),
                          total="none")
        for s in page.items:
            if s.content is not None:
                out[s.id] = s.content
    return out


def _patient_row(p: dict[str, Any]) -> dict[str, Any]:
    return {"id": p.get("id"), "name": display_name(p), "gender": p.get("gender"),
            "birth": p.get("birthDate"), "id_number": mask_id(p)}


def _today_data(uow: UnitOfWork, account: Account, today: date, query: str,
                only: str | None) -> dict[str, Any]:
    """The day's counts and lists: every list's first rows, or all of ``only``."""
    scope = _scope(account)
    lists = worklists.build(uow, scope, today) if scope else None
    shown: dict[str, list[worklists.Entry]] = {}
    if lists is not None:
        shown = {k: lists.lists[k][:LIST_ROWS if k == only else TODAY_ROWS]
                 for k in LISTS if only in (None, k)}
    ids = sorted({e.patient_id for entries in shown.values() for e in entries})
    names = _names(uow, ids)
    found: list[dict[str, Any]] | None = None
    if query:
        param = ("identifier", query) if ID_NUMBER.match(query) else ("name", query)
        page = uow.search("Patient", [param], count=20, total="none")
        found = [_patient_row(s.content) for s in page.items if s.content is not None]
    return {"counts": lists.counts() if lists else {}, "patients": lists.patients if lists
            else 0, "lists": shown, "names": {k: display_name(v) for k, v in names.items()},
            "found": found}


@router.get("", response_class=HTMLResponse)
async def today_page(request: Request) -> Response:
    who = await _signed_in(request)
    if isinstance(who, Response):
        return who
    query = request.query_params.get("q", "").strip()[:64]
    only = request.query_params.get("list")
    if only not in LISTS:
        only = None  # an unknown list name: the whole day, as without one
    day = _today()
    try:
        data = await _run(request, who, False,
                          lambda uow: _today_data(uow, who.account, day, query, only))
    except FhirError as exc:
        return _error_page(request, who, exc)
    return _render(request, "workbench/today.html", who, today=day, q=query,
                   list_keys=LISTS, only=only, **data)


# ---- the patient page ----------------------------------------------------------------


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
async def patient_page(patient_id: str, request: Request) -> Response:
    who = await _signed_in(request)
    if isinstance(who, Response):
        return who
    day, en = _today(), language_of(request) == "en"
    base = str(request.base_url).rstrip("/")
    try:
        view = await _run(request, who, False, lambda uow: patient_view(
            uow, patient_id, who.access, day, en, base))
    except FhirError as exc:
        return _error_page(request, who, exc)
    return _render(request, "workbench/patient.html", who, today=day, **view)


# ---- the follow-up form --------------------------------------------------------------


def _disease(value: str | None) -> Disease:
    try:
        return Disease(value or "htn")
    except ValueError:
        raise FhirError.of(400, "invalid", "disease must be 'htn' or 'dm'") from None


def _form_page(request: Request, who: Who, patient: dict[str, Any], disease: Disease,
               values: dict[str, Any], errors: dict[str, str], status: int = 200
               ) -> HTMLResponse:
    en = language_of(request) == "en"
    title, fields = wf.form_fields(disease, en)
    return _render(request, "workbench/follow_up.html", who, status, patient=patient,
                   name=display_name(patient), disease=disease.value, title=title,
                   fields=fields, values=values, errors=errors)


@router.get("/patients/{patient_id}/follow-up", response_class=HTMLResponse)
async def follow_up_form(patient_id: str, request: Request) -> Response:
    who = await _signed_in(request)
    if isinstance(who, Response):
        return who
    try:
        disease = _disease(request.query_params.get("disease"))
        patient = await _run(request, who, False,
                             lambda uow: uow.read("Patient", patient_id).content or {})
    except FhirError as exc:
        return _error_page(request, who, exc)
    return _form_page(request, who, patient, disease, wf.defaults(_today()), {})


def _when(visit_day: date, today: date) -> date | datetime:
    return datetime.now(COUNTY_TZ).replace(microsecond=0) if visit_day == today else visit_day


@router.post("/patients/{patient_id}/follow-up", response_class=HTMLResponse)
async def follow_up(patient_id: str, request: Request) -> Response:
    posted = await _signed_in_form(request)
    if isinstance(posted, Response):
        return posted
    who, form = posted
    en, day = language_of(request) == "en", _today()
    practitioner = who.account.practitioner_role or who.account.practitioner
    try:
        disease = _disease(str(form.get("disease") or "htn"))
        patient = await _run(request, who, False,
                             lambda uow: uow.read("Patient", patient_id).content or {})
        if practitioner is None:
            raise FhirError.of(403, "forbidden", "only clinical staff record follow-ups")
    except FhirError as exc:
        return _error_page(request, who, exc)
    _, fields = wf.form_fields(disease, en)
    answers, raw, errors = wf.read_form(form, fields, day, en)
    if errors:
        return _form_page(request, who, patient, disease, raw, errors, 422)
    when = _when(date.fromisoformat(answers["visit-date"]), day)
    try:
        done = await _run(request, who, True, lambda uow: service.record_follow_up(
            uow, patient_id, disease, answers, practitioner, when,
            organization_ref=who.account.organization))
    except FhirError as exc:
        message = exc.issues[0].diagnostics if exc.issues else str(exc)
        if exc.status in (400, 422):
            return _form_page(request, who, patient, disease, raw, {"_form": message}, 422)
        return _error_page(request, who, exc)
    return _render(request, "workbench/result.html", who, 201, patient=patient,
                   name=display_name(patient), disease=disease.value,
                   assessment=done.assessment, referred=None)


@router.post("/patients/{patient_id}/referral", response_class=HTMLResponse)
async def referral(patient_id: str, request: Request) -> Response:
    posted = await _signed_in_form(request)
    if isinstance(posted, Response):
        return posted
    who, form = posted
    practitioner = who.account.practitioner_role or who.account.practitioner
    now = datetime.now(COUNTY_TZ).replace(microsecond=0)

    def work(uow: UnitOfWork) -> tuple[dict[str, Any], service.ReferralMade]:
        if practitioner is None:
            raise FhirError.of(403, "forbidden", "only clinical staff refer patients")
        disease = _disease(str(form.get("disease") or "htn"))
        patient = uow.read("Patient", patient_id).content or {}
        target = _county_hospital(uow, who.account.organization)
        return patient, service.refer(uow, patient_id, disease, practitioner, target, now)

    try:
        patient, made = await _run(request, who, True, work)
    except FhirError as exc:
        return _error_page(request, who, exc)
    return _render(request, "workbench/result.html", who, 201, patient=patient,
                   name=display_name(patient), disease=None, assessment=None, referred=made)


def _county_hospital(uow: UnitOfWork, organization: str | None) -> str:
    """Up-referrals go to the top of the user's organisation tree (the county hospital)."""
    if not organization:
        raise FhirError.of(422, "business-rule", "the account has no organisation")
    ref, seen = organization, set()
    while ref not in seen:
        seen.add(ref)
        kind, _, oid = ref.partition("/")
        parent = ((uow.read(kind, oid).content or {}).get("partOf") or {}).get("reference")
        if not parent:
            break
        ref = parent
    return ref
