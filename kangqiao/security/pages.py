"""Workbench sign-in pages (zh-CN first, ``?lang=en``): login, logout, password change, and the
OAuth authorisation (consent) page for apps acting for the signed-in user."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from kangqiao.fhir.store.db import write_transaction
from kangqiao.security import accounts, audit, clients, rules, sessions
from kangqiao.security.accounts import Account, LoginRefused
from kangqiao.security.messages import translate
from kangqiao.security.scopes import narrow, parse_scope, split
from kangqiao.security.tokens import Grant, audience
from kangqiao.web.i18n import language_of

router = APIRouter(include_in_schema=False)
templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "web" / "templates"),
    autoescape=select_autoescape(["html"]))
NO_CACHE = {"Cache-Control": "no-store"}


def _safe_next(value: str | None) -> str:
    """Only same-site paths: never an open redirect."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = language_of(request)
    t: Callable[..., str] = translate(lang)
    html = templates.get_template(name).render(t=t, lang=lang, **context)
    return HTMLResponse(html, status_code=status, headers=NO_CACHE)


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.store.engine
    return engine


def _remote(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _audit(request: Request, category: str, outcome: str, account: Account | None,
                 username: str | None = None, message: str | None = None) -> None:
    record = audit.Record(
        category=category, action="E", subtype=category, outcome=outcome,
        actor=account.actor if account else "anonymous",
        username=account.username if account else username,
        role=account.role if account else None,
        organization=account.organization if account else None,
        remote_addr=_remote(request), detail={"message": message} if message else {})
    security = request.app.state.security
    await run_in_threadpool(audit.write, _engine(request), security.audit_key, [record])


def _session(request: Request) -> tuple[Account, str] | None:
    return sessions.lookup(_engine(request), request.app.state.settings,
                           request.cookies.get(sessions.COOKIE))


# ---- login / logout --------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    token = secrets.token_urlsafe(24)
    response = _render(request, "login.html", csrf=token,
                       next=_safe_next(request.query_params.get("next")))
    response.set_cookie(sessions.CSRF_COOKIE, token, **sessions.cookie_options(request))
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await request.form()
    username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
    nxt = _safe_next(str(form.get("next", "/")))
    security = request.app.state.security
    if not sessions.same(request.cookies.get(sessions.CSRF_COOKIE), str(form.get("csrf"))):
        return _render(request, "login.html", 403, error="csrf_failed", csrf="", next=nxt,
                       expired=True)
    csrf = str(form.get("csrf"))
    if not security.limiter.allow(f"login:{_remote(request)}"):
        return _render(request, "login.html", 429, error="login_rate", csrf=csrf, next=nxt,
                       username=username)
    settings = request.app.state.settings
    try:
        account = await run_in_threadpool(accounts.authenticate, _engine(request), settings,
                                          username, password)
    except LoginRefused as exc:
        await _audit(request, "login", "4", None, username[:64], exc.key)
        return _render(request, "login.html", 401, error=exc.key, csrf=csrf, next=nxt,
                       username=username)
    sid, _ = await run_in_threadpool(sessions.start, _engine(request), settings, account,
                                     _remote(request))
    await _audit(request, "login", "0", account)
    target = f"/password?{urlencode({'next': nxt})}" if account.must_change_password else nxt
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(sessions.COOKIE, sid, **sessions.cookie_options(request))
    response.delete_cookie(sessions.CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    found = await run_in_threadpool(_session, request)
    if found is not None:
        account, csrf = found
        if not sessions.same(csrf, str(form.get("csrf"))):
            return _render(request, "login.html", 403, error="csrf_failed", csrf="", next="/")
        await run_in_threadpool(sessions.end, _engine(request),
                                request.cookies.get(sessions.COOKIE))
        await _audit(request, "logout", "0", account)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


# ---- password change ---------------------------------------------------------------------


@router.get("/password", response_class=HTMLResponse)
async def password_form(request: Request) -> Response:
    found = await run_in_threadpool(_session, request)
    nxt = _safe_next(request.query_params.get("next"))
    if found is None:
        return RedirectResponse(f"/login?{urlencode({'next': '/password'})}", status_code=303)
    account, csrf = found
    return _render(request, "login_password.html", csrf=csrf, next=nxt, account=account,
                   min_length=request.app.state.settings.password_min_length)


@router.post("/password", response_class=HTMLResponse)
async def change_password(request: Request) -> Response:
    found = await run_in_threadpool(_session, request)
    if found is None:
        return RedirectResponse("/login", status_code=303)
    account, csrf = found
    form = await request.form()
    nxt = _safe_next(str(form.get("next", "/")))
    settings = request.app.state.settings
    page = {"csrf": csrf, "next": nxt, "account": account,
            "min_length": settings.password_min_length}
    if not sessions.same(csrf, str(form.get("csrf"))):
        return _render(request, "login_password.html", 403, errors=["csrf_failed"], **page)
    new = str(form.get("new_password", ""))
    if new != str(form.get("new_password2", "")):
        return _render(request, "login_password.html", 400, errors=["pw_mismatch"], **page)
    errors = await run_in_threadpool(accounts.change_password, _engine(request), settings,
                                     account, str(form.get("old_password", "")), new)
    if errors:
        return _render(request, "login_password.html", 400, errors=errors, **page)
    # Every session of the account ends (a stolen one too); this browser gets a fresh one.
    await run_in_threadpool(sessions.end_all, _engine(request), account.id)
    sid, _ = await run_in_threadpool(sessions.start, _engine(request), settings, account,
                                     _remote(request))
    await _audit(request, "login", "0", account, message="password changed")
    response = RedirectResponse(nxt, status_code=303)
    response.set_cookie(sessions.COOKIE, sid, **sessions.cookie_options(request))
    return response


# ---- OAuth authorisation (consent) ----------------------------------------------------------

AUTHORIZE_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state", "aud",
                    "code_challenge", "code_challenge_method")


def _offered_scopes(account: Account, client: clients.Client, requested: str) -> list[str]:
    """What the app may get: the request, within the client's registration, and only the
    contexts the user has (a resident: patient/; staff: user/)."""
    context = "patient" if account.role == rules.RESIDENT else "user"
    out = []
    for text in narrow(split(requested), client.scopes):
        scope = parse_scope(text)
        if scope is None or scope.context == context:
            out.append(text)
    return out


def _check_authorize(request: Request, params: dict[str, str]) -> clients.Client:
    client = clients.find(_engine(request), params.get("client_id", ""))
    if client is None or client.kind != "app" or not client.active:
        raise ValueError("unknown_client")
    if params.get("redirect_uri") not in client.redirect_uris:
        raise ValueError("bad_redirect")
    return client


def _redirect_error(params: dict[str, str], error: str) -> RedirectResponse:
    query = {"error": error, **({"state": params["state"]} if params.get("state") else {})}
    return RedirectResponse(f"{params['redirect_uri']}?{urlencode(query)}", status_code=303)


@router.get("/oauth/authorize", response_class=HTMLResponse)
async def authorize_form(request: Request) -> Response:
    params = {k: request.query_params.get(k, "") for k in AUTHORIZE_PARAMS}
    try:
        client = await run_in_threadpool(_check_authorize, request, params)
    except ValueError as exc:  # never redirect to an unregistered URI
        return _render(request, "login_authorize.html", 400, error=str(exc))
    if params["response_type"] != "code" or params["code_challenge_method"] != "S256" or \
            not params["code_challenge"]:
        return _redirect_error(params, "invalid_request")
    if params["aud"] != audience(request.app.state.settings):
        return _redirect_error(params, "invalid_request")
    here = f"{request.url.path}?{request.url.query}"
    found = await run_in_threadpool(_session, request)
    if found is None:
        return RedirectResponse(f"/login?{urlencode({'next': here})}", status_code=303)
    account, csrf = found
    if account.must_change_password:
        return RedirectResponse(f"/password?{urlencode({'next': here})}", status_code=303)
    offered = _offered_scopes(account, client, params["scope"])
    return _render(request, "login_authorize.html", client=client, scopes=offered,
                   params=params, csrf=csrf, account=account)


@router.post("/oauth/authorize", response_class=HTMLResponse)
async def authorize(request: Request) -> Response:
    form = await request.form()
    params = {k: str(form.get(k, "")) for k in AUTHORIZE_PARAMS}
    try:
        client = await run_in_threadpool(_check_authorize, request, params)
    except ValueError as exc:
        return _render(request, "login_authorize.html", 400, error=str(exc))
    found = await run_in_threadpool(_session, request)
    if found is None:
        return RedirectResponse("/login", status_code=303)
    account, csrf = found
    if not sessions.same(csrf, str(form.get("csrf"))) or account.must_change_password:
        return _render(request, "login_authorize.html", 403, error="csrf_failed")
    if form.get("decision") != "approve":
        return _redirect_error(params, "access_denied")
    scope = " ".join(_offered_scopes(account, client, params["scope"]))
    patient = account.patient if account.role == rules.RESIDENT else None
    security = request.app.state.security

    def store_code() -> str:
        with write_transaction(_engine(request)) as conn:
            return str(security.tokens.store_grant(conn, "code", Grant(
                client.client_id, account.id, scope, patient, params["redirect_uri"],
                params["code_challenge"]), 60))

    code = await run_in_threadpool(store_code)
    query = {"code": code, **({"state": params["state"]} if params["state"] else {})}
    return RedirectResponse(f"{params['redirect_uri']}?{urlencode(query)}", status_code=303)
