"""Access tokens (signed JWTs, short-lived), refresh tokens and authorisation codes (opaque,
stored as digests), and revocation.

An access token says who (``sub``, ``username``, ``role``, ``org``, ``prole``, ``fhirUser``),
for which client (``client_id``), with which ``scope`` and launch ``patient``; it is accepted
only with this server's signature, issuer and audience (the FHIR base URL), before ``exp``,
and while its ``jti`` is not revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from kangqiao.fhir.store.records import utcnow
from kangqiao.security.keys import ALGORITHM, KeyRing
from kangqiao.security.schema import oauth_grant, used_jti
from kangqiao.settings import Settings


class TokenError(Exception):
    """A token that is not accepted; the message says why (safe to show the client)."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issuer(settings: Settings) -> str:
    return settings.base_url.rstrip("/")


def audience(settings: Settings) -> str:
    return issuer(settings) + "/fhir"


@dataclass(frozen=True)
class Grant:
    """A stored authorisation code or refresh token."""

    client_id: str
    user_id: str | None
    scope: str
    patient: str | None
    redirect_uri: str | None
    code_challenge: str | None


class Tokens:
    def __init__(self, settings: Settings, keys: KeyRing | None = None) -> None:
        self.settings = settings
        self.keys = keys or KeyRing()
        self._revoked: tuple[float, frozenset[str]] = (0.0, frozenset())
        self._lock = threading.Lock()

    # ---- access tokens -------------------------------------------------------------------

    def issue(self, engine: Engine, *, subject: str, scope: str, client_id: str | None,
              minutes: int, claims: dict[str, Any] | None = None) -> tuple[str, int]:
        """A signed access token and its lifetime in seconds."""
        key = self.keys.current(engine)
        now = int(time.time())
        body = {"iss": issuer(self.settings), "aud": audience(self.settings), "sub": subject,
                "iat": now, "nbf": now, "exp": now + minutes * 60, "jti": uuid.uuid4().hex,
                "scope": scope, "client_id": client_id,
                **{k: v for k, v in (claims or {}).items() if v is not None}}
        token = jwt.encode({"alg": ALGORITHM, "kid": key.kid, "typ": "at+jwt"}, body, key)
        return token, minutes * 60

    def verify(self, engine: Engine, token: str) -> dict[str, Any]:
        """The claims of a valid access token; ``TokenError`` otherwise."""

        def key_for(guest: Any) -> ECKey:
            kid = guest.headers().get("kid")
            key = self.keys.find(engine, kid) if isinstance(kid, str) else None
            if key is None:
                raise TokenError("the token was not signed by this server")
            return key

        try:
            decoded = jwt.decode(token, key_for, algorithms=[ALGORITHM])
            jwt.JWTClaimsRegistry(
                leeway=5,
                iss={"essential": True, "value": issuer(self.settings)},
                aud={"essential": True, "value": audience(self.settings)},
                exp={"essential": True}, sub={"essential": True}, jti={"essential": True},
            ).validate(decoded.claims)
        except TokenError:
            raise
        except (JoseError, ValueError, TypeError) as exc:
            raise TokenError(_explain(exc)) from exc
        claims = decoded.claims
        if claims["jti"] in self._revoked_ids(engine):
            raise TokenError("the token has been revoked")
        return claims

    def _revoked_ids(self, engine: Engine) -> frozenset[str]:
        # Revocations are rare and tokens short-lived: one query every 2 s per process instead
        # of one per request (a revoked token may live on for up to 2 s).
        with self._lock:
            loaded, ids = self._revoked
        if time.monotonic() - loaded < 2.0:
            return ids
        with engine.connect() as conn:
            ids = frozenset(conn.execute(select(used_jti.c.jti).where(
                used_jti.c.kind == "revoked", used_jti.c.expires > utcnow())).scalars())
        with self._lock:
            self._revoked = (time.monotonic(), ids)
        return ids

    def revoke_access(self, engine: Engine, claims: dict[str, Any]) -> None:
        expires = utcnow() + timedelta(seconds=max(0, int(claims["exp"]) - int(time.time())))
        try:
            with engine.begin() as conn:
                conn.execute(insert(used_jti).values(jti=claims["jti"], kind="revoked",
                                                     expires=expires))
        except IntegrityError:
            pass
        with self._lock:
            self._revoked = (0.0, frozenset())

    # ---- codes and refresh tokens --------------------------------------------------------

    def store_grant(self, conn: Connection, kind: str, grant: Grant, seconds: int) -> str:
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        conn.execute(insert(oauth_grant).values(
            token_hash=digest(secret), kind=kind, client_id=grant.client_id,
            user_id=grant.user_id, scope=grant.scope, patient=grant.patient,
            redirect_uri=grant.redirect_uri, code_challenge=grant.code_challenge,
            expires=now + timedelta(seconds=seconds), used=False, created=now))
        return secret

    def take_grant(self, conn: Connection, kind: str, secret: str, client_id: str) -> Grant:
        """Use a code or refresh token once (marking it used in the caller's transaction)."""
        g = oauth_grant
        row = conn.execute(select(g).where(g.c.token_hash == digest(secret), g.c.kind == kind)
                           ).first()
        if row is None or row.client_id != client_id:
            raise TokenError(f"unknown {kind}")
        if row.used:
            raise TokenError(f"the {kind} was already used")
        if row.expires < utcnow():
            raise TokenError(f"the {kind} has expired")
        done = conn.execute(update(g).where(g.c.token_hash == row.token_hash,
                                            g.c.used.is_(False)).values(used=True))
        if done.rowcount != 1:
            raise TokenError(f"the {kind} was already used")
        return Grant(row.client_id, row.user_id, row.scope, row.patient, row.redirect_uri,
                     row.code_challenge)

    def revoke_refresh(self, conn: Connection, secret: str, client_id: str) -> bool:
        g = oauth_grant
        done = conn.execute(update(g).where(g.c.token_hash == digest(secret),
                                            g.c.kind == "refresh", g.c.client_id == client_id)
                            .values(used=True))
        return bool(done.rowcount)


def _explain(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "ExpiredTokenError":
        return "the token has expired"
    if name in ("BadSignatureError", "UnsupportedAlgorithmError"):
        return "the token's signature is not valid"
    if name in ("InvalidClaimError", "MissingClaimError"):
        return f"the token is not for this server ({exc})"
    return f"the token is malformed ({name})"
