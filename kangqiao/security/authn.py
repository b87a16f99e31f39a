"""Authentication of API requests: who is asking (a bearer token, or the workbench session
cookie), for what purpose, with break-glass, and whether the token's scopes cover the route at
all. The result is the request's ``Access``; the policy then decides each resource.

Failures are FHIR OperationOutcomes: 401 with ``WWW-Authenticate: Bearer`` (RFC 6750) when
there are no credentials or they are not valid; 403 when the credentials are valid but the
scopes do not cover the interaction (``insufficient_scope``), the stated purpose or
break-glass is not allowed for the role, or a cookie-authenticated change lacks its CSRF token.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import unquote

from fastapi import Request
from sqlalchemy import Engine

from kangqiao.fhir.outcome import FhirError, Issue
from kangqiao.security import rules, sessions
from kangqiao.security.context import TRAIL
from kangqiao.security.gate import Access
from kangqiao.security.policy import Policy
from kangqiao.security.scopes import granting, parse_scopes
from kangqiao.security.tokens import TokenError, Tokens
from kangqiao.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REALM = 'Bearer realm="kangqiao"'


def unauthorized(message: str, error: str | None = "invalid_token") -> FhirError:
    challenge = REALM if error is None else \
        f'{REALM}, error="{error}", error_description="{message}"'
    return FhirError(401, [Issue("error", "login", message)],
                     headers={"WWW-Authenticate": challenge})


def forbidden(message: str, error: str | None = None) -> FhirError:
    headers = {"WWW-Authenticate": f'{REALM}, error="{error}"'} if error else {}
    return FhirError(403, [Issue("error", "forbidden", message)], headers=headers)


def session_scopes(role: str) -> frozenset[str]:
    """The workbench acts for the user with everything their role allows."""
    return frozenset({"patient/*.cruds"} if role == rules.RESIDENT else {"user/*.cruds"})


def access_from_claims(claims: dict[str, Any], remote_addr: str | None) -> Access:
    scopes = frozenset(str(claims.get("scope", "")).split())
    client_id = claims.get("client_id")
    role = str(claims.get("role") or rules.SYSTEM)
    if role == rules.SYSTEM:
        return Access(actor=f"system/{client_id or claims['sub']}", scopes=scopes,
                      purpose=str(claims.get("purpose") or rules.TREAT),
                      remote_addr=remote_addr, role=rules.SYSTEM, client_id=client_id)
    return Access(actor=str(claims.get("fhirUser") or f"user/{claims.get('username')}"),
                  scopes=scopes, purpose=str(claims.get("purpose") or rules.TREAT),
                  remote_addr=remote_addr, role=role, organization=claims.get("org"),
                  user=claims.get("username"), patient=claims.get("patient"),
                  practitioner_role=claims.get("prole"), client_id=client_id)


class Authenticator:
    def __init__(self, settings: Settings, tokens: Tokens, policy: Policy) -> None:
        self.settings = settings
        self.tokens = tokens
        self.policy = policy

    def default_purpose(self, engine: Engine, access: Access) -> str:
        return self._purposes(engine, access)[0]

    def _purposes(self, engine: Engine, access: Access) -> tuple[str, frozenset[str]]:
        county_wide = False
        if access.role == rules.PUBLIC_HEALTH:
            with engine.connect() as conn:
                county_wide = self.policy.is_county_wide(conn, access)
        return rules.purposes(access.role, county_wide)

    def resolve(self, request: Request) -> Access:
        """The request's Access (computed once per request)."""
        cached = getattr(request.state, "kq_access", None)
        if isinstance(cached, Access):
            return cached
        engine: Engine = request.app.state.store.engine
        remote = request.client.host if request.client else None
        header = request.headers.get("authorization")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise unauthorized("use an OAuth 2.0 bearer token", "invalid_request")
            try:
                claims = self.tokens.verify(engine, value.strip())
            except TokenError as exc:
                raise unauthorized(str(exc)) from exc
            access = access_from_claims(claims, remote)
        else:
            access = self._from_session(request, engine, remote)
        access = self._stated(request, engine, access)
        trail = TRAIL.get()
        if trail is not None:
            trail.access = access
        self._check_route_scope(request, access)
        request.state.kq_access = access
        return access

    def _from_session(self, request: Request, engine: Engine, remote: str | None) -> Access:
        found = sessions.lookup(engine, self.settings, request.cookies.get(sessions.COOKIE))
        if found is None:
            raise unauthorized("authentication required: a bearer token or a workbench "
                               "session", None)
        account, csrf = found
        if account.must_change_password:
            raise forbidden("the initial password must be changed first (/password)")
        if request.method not in SAFE_METHODS and not sessions.same(
                request.headers.get("x-csrf-token"), csrf):
            raise forbidden("a change made with the workbench session needs its X-CSRF-Token")
        access = account.access(scopes=session_scopes(account.role), purpose=rules.TREAT,
                                remote_addr=remote)
        return dataclasses.replace(access, purpose=self.default_purpose(engine, access))

    def _stated(self, request: Request, engine: Engine, access: Access) -> Access:
        """Apply ``X-Purpose-Of-Use`` and ``X-Break-Glass`` (percent-encoded UTF-8 reason)."""
        purpose = request.headers.get("x-purpose-of-use")
        if purpose:
            allowed = self._purposes(engine, access)[1]
            if purpose not in allowed:
                raise forbidden(f"purpose of use {purpose!r} is not allowed for the "
                                f"{access.role} role (allowed: {', '.join(sorted(allowed))})")
            access = dataclasses.replace(access, purpose=purpose)
        glass = request.headers.get("x-break-glass")
        if glass is not None:
            reason = unquote(glass).strip()
            if access.role not in rules.BREAK_GLASS:
                raise forbidden(f"the {access.role} role cannot break the glass")
            if len(reason) < 4:
                raise forbidden("break-glass needs a stated reason (X-Break-Glass: <reason>)")
            access = dataclasses.replace(access, break_glass=reason[:500], purpose=rules.ETREAT)
        return access

    def _check_route_scope(self, request: Request, access: Access) -> None:
        need = route_need(request.method, request.url.path)
        if need is None:
            return
        resource_type, wanted = need
        contexts = frozenset({"system"} if access.role == rules.SYSTEM else {"user", "patient"})
        if not granting(parse_scopes(access.scopes), contexts, resource_type, wanted):
            raise forbidden(f"the token's scopes do not allow this interaction on "
                            f"{resource_type}", "insufficient_scope")


def route_need(method: str, path: str) -> tuple[str, frozenset[str]] | None:
    """(resource type, permissions of which one is needed) for a type- or instance-level
    FHIR interaction; None for system-level ones (filtered per resource)."""
    if not path.startswith("/fhir/"):
        return None
    parts = path[len("/fhir/"):].split("/")
    rtype = parts[0]
    if not rtype[:1].isupper():
        return None  # metadata, _history, .well-known, ...
    rest = parts[1:]
    if method in SAFE_METHODS:
        if not rest or rest[0] in ("_history", "_search"):
            return rtype, frozenset("s")
        return rtype, frozenset("r")  # read, vread, instance history, $everything
    if method == "POST":
        return (rtype, frozenset("s")) if rest[:1] == ["_search"] else (rtype, frozenset("c"))
    if method == "PUT":
        return rtype, frozenset("cu")
    if method == "PATCH":
        return rtype, frozenset("u")
    if method == "DELETE":
        return rtype, frozenset("d")
    return None
