"""OAuth 2.0 / SMART App Launch 2.0 endpoints: discovery, token (client credentials with
``private_key_jwt`` or a secret, authorisation code with PKCE, refresh), revocation and the
server's public keys. The authorisation (consent) page is in pages.py.

Token endpoint errors follow RFC 6749 section 5.2 (JSON ``error`` / ``error_description``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from kangqiao.fhir.store.db import write_transaction
from kangqiao.security import accounts, audit, clients, rules
from kangqiao.security.accounts import Account
from kangqiao.security.clients import ASSERTION_TYPE, Client, ClientError
from kangqiao.security.scopes import narrow, split
from kangqiao.security.tokens import Grant, TokenError, audience, issuer

router = APIRouter(tags=["OAuth 2.0 / SMART"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
CODE_SECONDS = 60


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def smart_configuration(base: str) -> dict[str, Any]:
    return {
        "issuer": base,
        "jwks_uri": f"{base}/oauth/jwks",
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic",
                                                  "client_secret_post", "none"],
        "token_endpoint_auth_signing_alg_values_supported": list(clients.ASSERTION_ALGORITHMS),
        "grant_types_supported": ["authorization_code", "client_credentials",
                                  "refresh_token"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "fhirUser", "launch/patient", "offline_access",
                             "online_access", "patient/*.cruds", "user/*.cruds",
                             "system/*.cruds", "patient/*.rs", "user/*.rs", "system/*.rs"],
        "capabilities": ["launch-standalone", "client-public", "client-confidential-symmetric",
                         "client-confidential-asymmetric", "context-standalone-patient",
                         "permission-offline", "permission-online", "permission-patient",
                         "permission-user", "permission-v1", "permission-v2"],
    }


@router.get("/fhir/.well-known/smart-configuration", summary="SMART configuration")
async def well_known(request: Request) -> JSONResponse:
    return JSONResponse(smart_configuration(issuer(request.app.state.settings)))


@router.get("/oauth/jwks", summary="Public keys that sign access tokens")
async def jwks(request: Request) -> JSONResponse:
    security = request.app.state.security
    body = await run_in_threadpool(security.tokens.keys.public_jwks,
                                   request.app.state.store.engine)
    return JSONResponse(body)


def user_claims(account: Account, purpose: str, patient: str | None) -> dict[str, Any]:
    return {"role": account.role, "org": account.organization, "username": account.username,
            "fhirUser": account.actor, "prole": account.practitioner_role,
            "patient": patient, "purpose": purpose}


def _client_auth(engine: Engine, form: dict[str, str], request: Request, token_url: str
                 ) -> Client | None:
    """The authenticated client, or None for a public client (then ``client_id`` is taken as
    given and the caller checks it is public)."""
    if form.get("client_assertion_type") == ASSERTION_TYPE:
        return clients.by_assertion(engine, form.get("client_assertion", ""), token_url)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            raw = base64.b64decode(header[6:].strip()).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ClientError("malformed Basic credentials") from exc
        cid, _, secret = raw.partition(":")
        return clients.by_secret(engine, cid, secret)
    if form.get("client_secret"):
        return clients.by_secret(engine, form.get("client_id", ""), form["client_secret"])
    return None


def _public_client(engine: Engine, client_id: str) -> Client:
    client = clients.find(engine, client_id)
    if client is None or not client.active or client.auth_method != "none":
        raise ClientError("the client must authenticate")
    return client


def token_grant(security: Any, engine: Engine, form: dict[str, str], request: Request
                ) -> tuple[dict[str, Any], audit.Record]:
    settings, tokens = security.settings, security.tokens
    token_url = issuer(settings) + "/oauth/token"
    grant_type = form.get("grant_type", "")
    client = _client_auth(engine, form, request, token_url)
    remote = request.client.host if request.client else None
    if grant_type == "client_credentials":
        if client is None or client.kind != "system":
            raise OAuthError("unauthorized_client", "client_credentials is for registered "
                             "system clients authenticating with private_key_jwt or a secret")
        scope = " ".join(narrow(split(form.get("scope", "")), client.scopes))
        if not scope:
            raise OAuthError("invalid_scope", "none of the requested scopes is allowed for "
                             "this client")
        token, seconds = tokens.issue(engine, subject=client.client_id, scope=scope,
                                      client_id=client.client_id,
                                      minutes=settings.system_token_minutes,
                                      claims={"role": rules.SYSTEM})
        body = {"access_token": token, "token_type": "Bearer", "expires_in": seconds,
                "scope": scope}
        return body, _record("client_credentials", client.client_id, None, remote)
    if grant_type not in ("authorization_code", "refresh_token"):
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not "
                         "supported")
    if client is None:
        client = _public_client(engine, form.get("client_id", ""))
    with write_transaction(engine) as conn:
        try:
            if grant_type == "authorization_code":
                grant = tokens.take_grant(conn, "code", form.get("code", ""), client.client_id)
                _check_pkce(grant, form)
            else:
                grant = tokens.take_grant(conn, "refresh", form.get("refresh_token", ""),
                                          client.client_id)
        except TokenError as exc:
            raise OAuthError("invalid_grant", str(exc)) from exc
        account = accounts.find(engine, user_id=grant.user_id) if grant.user_id else None
        if account is None or not account.active:
            raise OAuthError("invalid_grant", "the user's account is no longer active")
        scopes = split(grant.scope)
        refresh = None
        if "offline_access" in scopes or "online_access" in scopes:
            refresh = tokens.store_grant(conn, "refresh", Grant(
                client.client_id, account.id, grant.scope, grant.patient, None, None),
                settings.refresh_token_days * 86400)
    purpose = security.authn.default_purpose(engine, account.access(
        scopes=frozenset(), purpose=rules.TREAT, remote_addr=remote))
    token, seconds = tokens.issue(engine, subject=account.id, scope=grant.scope,
                                  client_id=client.client_id,
                                  minutes=settings.access_token_minutes,
                                  claims=user_claims(account, purpose, grant.patient))
    body = {"access_token": token, "token_type": "Bearer", "expires_in": seconds,
            "scope": grant.scope}
    if refresh:
        body["refresh_token"] = refresh
    if grant.patient:
        body["patient"] = grant.patient.rpartition("/")[2]
    if "fhirUser" in scopes:
        body["fhirUser"] = f"{audience(settings)}/{account.actor}"
    return body, _record(grant_type, client.client_id, account, remote)


def _check_pkce(grant: Grant, form: dict[str, str]) -> None:
    if form.get("redirect_uri") != grant.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
    verifier = form.get("code_verifier", "")
    if not 43 <= len(verifier) <= 128:
        raise OAuthError("invalid_grant", "a PKCE code_verifier of 43-128 characters is "
                         "required")
    computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()
                                        ).rstrip(b"=").decode()
    if not hmac.compare_digest(computed, grant.code_challenge or ""):
        raise OAuthError("invalid_grant", "the PKCE code_verifier does not match")


def _record(subtype: str, client_id: str | None, account: Account | None, remote: str | None,
            outcome: str = "0", message: str | None = None) -> audit.Record:
    return audit.Record(
        category="token", action="E", subtype=subtype, outcome=outcome,
        actor=account.actor if account else f"system/{client_id}",
        username=account.username if account else None,
        role=account.role if account else rules.SYSTEM,
        organization=account.organization if account else None, client_id=client_id,
        remote_addr=remote, detail={"message": message} if message else {})


def _error(exc: OAuthError) -> JSONResponse:
    return JSONResponse({"error": exc.error, "error_description": exc.description},
                        status_code=exc.status, headers=NO_STORE)


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "use application/x-www-form-urlencoded")
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace")))


@router.post("/oauth/token", summary="Token endpoint")
async def token_endpoint(request: Request) -> JSONResponse:
    security = request.app.state.security
    engine: Engine = request.app.state.store.engine
    remote = request.client.host if request.client else "?"
    if not security.limiter.allow(f"token:{remote}"):
        return _error(OAuthError("slow_down", "too many token requests; wait a minute", 429))
    try:
        form = await _form(request)
        body, record = await run_in_threadpool(token_grant, security, engine, form, request)
    except ClientError as exc:
        await run_in_threadpool(audit.write, engine, security.audit_key, [_record(
            "token", None, None, remote, "4", f"invalid_client: {exc}")])
        return _error(OAuthError("invalid_client", str(exc), 401))
    except OAuthError as exc:
        await run_in_threadpool(audit.write, engine, security.audit_key, [_record(
            "token", None, None, remote, "4", f"{exc.error}: {exc.description}")])
        return _error(exc)
    await run_in_threadpool(audit.write, engine, security.audit_key, [record])
    return JSONResponse(body, headers=NO_STORE)


@router.post("/oauth/revoke", summary="Token revocation (RFC 7009)")
async def revoke_endpoint(request: Request) -> JSONResponse:
    security = request.app.state.security
    engine: Engine = request.app.state.store.engine
    try:
        form = await _form(request)

        def revoke() -> None:
            token_url = issuer(security.settings) + "/oauth/token"
            client = _client_auth(engine, form, request, token_url) or _public_client(
                engine, form.get("client_id", ""))
            token = form.get("token", "")
            if token.count(".") == 2:  # a JWT: an access token of ours
                try:
                    claims = security.tokens.verify(engine, token)
                except TokenError:
                    return  # invalid tokens need no revoking (RFC 7009 2.2)
                if claims.get("client_id") == client.client_id:
                    security.tokens.revoke_access(engine, claims)
                return
            with write_transaction(engine) as conn:
                security.tokens.revoke_refresh(conn, token, client.client_id)

        await run_in_threadpool(revoke)
    except ClientError as exc:
        return _error(OAuthError("invalid_client", str(exc), 401))
    except OAuthError as exc:
        return _error(exc)
    return JSONResponse({}, headers=NO_STORE)
