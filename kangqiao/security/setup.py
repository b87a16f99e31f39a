"""Wiring the security capability into the application: the policy store, authentication of
API requests, the OAuth / SMART, audit and login routes, and the audit middleware."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy import Engine

from kangqiao.security.audit import hmac_key
from kangqiao.security.authn import Authenticator
from kangqiao.security.middleware import AuditMiddleware
from kangqiao.security.policy import Policy
from kangqiao.security.ratelimit import RateLimiter
from kangqiao.security.store import PolicyStore
from kangqiao.security.tokens import Tokens
from kangqiao.settings import Settings


@dataclass
class Security:
    settings: Settings
    policy: Policy
    tokens: Tokens
    authn: Authenticator
    audit_key: bytes
    limiter: RateLimiter


def install(app: FastAPI, settings: Settings, engine: Engine) -> PolicyStore:
    """Set up security on ``app`` (before the FHIR router, whose catch-all routes would
    otherwise take /fhir/AuditEvent and /fhir/.well-known/...); returns the app's store."""
    from kangqiao.security import audit_api, oauth, pages

    policy = Policy(engine, referral_days=settings.referral_access_days)
    tokens = Tokens(settings)
    key = hmac_key(settings)
    security = Security(settings, policy, tokens, Authenticator(settings, tokens, policy), key,
                        RateLimiter(settings.auth_rate_per_minute))
    app.state.security = security
    app.state.access_resolver = security.authn.resolve
    app.include_router(oauth.router)
    app.include_router(audit_api.router)
    app.include_router(pages.router)
    app.add_middleware(AuditMiddleware)
    return PolicyStore(engine, policy, key)
