"""Registered OAuth clients and how they prove who they are at the token endpoint.

* System clients (SMART Backend Services) sign a client assertion (``private_key_jwt``) with a
  key from the JWKS registered for them (RS384 or ES384), or present a secret
  (``client_secret_basic`` / ``client_secret_post``; stored as an Argon2id hash).
* Apps acting for a signed-in user use the authorisation code flow with PKCE; they are public
  (``none``) or confidential (a secret).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from kangqiao.fhir.store.records import utcnow
from kangqiao.security import passwords
from kangqiao.security.schema import oauth_client, used_jti
from kangqiao.security.scopes import ScopeError, parse_scope, split

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_SECONDS = 300  # SMART Backend Services: exp no more than five minutes ahead
KINDS = ("system", "app")
METHODS = ("private_key_jwt", "client_secret_basic", "none")


class ClientError(Exception):
    """The client could not be authenticated (OAuth ``invalid_client``)."""


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    kind: str
    auth_method: str
    jwks: dict[str, Any] | None
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    secret_hash: str | None
    active: bool


def _client(row: Any) -> Client:
    return Client(row.client_id, row.name, row.kind, row.auth_method, row.jwks,
                  tuple(row.redirect_uris or ()), tuple(split(row.scopes)), row.secret_hash,
                  row.active)


def check_jwks(jwks: Any) -> dict[str, Any]:
    """A registrable public JWKS: RS384 / ES384 keys with a ``kid``, no private parts."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValueError("a JWKS is an object with a non-empty 'keys' array")
    for key in jwks["keys"]:
        if not isinstance(key, dict) or not key.get("kid"):
            raise ValueError("every key needs a 'kid'")
        if "d" in key or "p" in key:
            raise ValueError(f"key {key['kid']!r} contains private material: register only "
                             "the public key")
        if key.get("kty") == "EC" and key.get("crv") != "P-384":
            raise ValueError(f"key {key['kid']!r}: EC keys must be P-384 (ES384)")
        if key.get("kty") not in ("RSA", "EC"):
            raise ValueError(f"key {key['kid']!r}: only RSA (RS384) and EC (ES384) keys")
    try:
        KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"the JWKS cannot be read: {exc}") from exc
    return jwks


def register(engine: Engine, *, name: str, kind: str, scopes: str,
             client_id: str | None = None, jwks: dict[str, Any] | None = None,
             with_secret: bool = False, redirect_uris: tuple[str, ...] = ()
             ) -> tuple[Client, str | None]:
    """Register a client; returns it and its secret (shown once) when it has one."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    for text in split(scopes):
        try:
            scope = parse_scope(text)
        except ScopeError as exc:
            raise ValueError(str(exc)) from exc
        if scope is not None and (scope.context == "system") != (kind == "system"):
            raise ValueError(f"{text}: system clients take system/ scopes, apps user/ and "
                             "patient/ scopes")
    if kind == "app" and not redirect_uris:
        raise ValueError("an app needs at least one redirect URI")
    secret = secrets.token_urlsafe(32) if with_secret else None
    method = "private_key_jwt" if jwks else "client_secret_basic" if secret else "none"
    if kind == "system" and method == "none":
        raise ValueError("a system client needs a JWKS (private_key_jwt) or a secret")
    row = {"client_id": client_id or f"kq-{secrets.token_hex(6)}", "name": name, "kind": kind,
           "auth_method": method, "jwks": check_jwks(jwks) if jwks else None,
           "secret_hash": passwords.hash_password(secret) if secret else None,
           "redirect_uris": list(redirect_uris), "scopes": scopes, "active": True,
           "created": utcnow()}
    try:
        with engine.begin() as conn:
            conn.execute(insert(oauth_client).values(**row))
    except IntegrityError as exc:
        raise ValueError(f"client id {row['client_id']!r} is taken") from exc
    client = find(engine, str(row["client_id"]))
    assert client is not None
    return client, secret


def find(engine: Engine, client_id: str) -> Client | None:
    with engine.connect() as conn:
        row = conn.execute(select(oauth_client).where(oauth_client.c.client_id == client_id)
                           ).first()
    return None if row is None else _client(row)


def by_secret(engine: Engine, client_id: str, secret: str) -> Client:
    client = find(engine, client_id)
    if client is None or not client.active or client.secret_hash is None:
        passwords.verify_password(None, secret)
        raise ClientError("unknown client or wrong secret")
    if not passwords.verify_password(client.secret_hash, secret):
        raise ClientError("unknown client or wrong secret")
    return client


def by_assertion(engine: Engine, assertion: str, token_url: str) -> Client:
    """Verify a ``private_key_jwt`` client assertion and use up its ``jti``."""
    try:
        compact = jws.extract_compact(assertion.encode())
        header = compact.headers()
        unverified = _claims(compact.payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise ClientError(f"the client assertion is malformed: {exc}") from exc
    if header.get("alg") not in ASSERTION_ALGORITHMS:
        raise ClientError("client assertions must be signed with RS384 or ES384")
    client_id = unverified.get("iss")
    client = find(engine, client_id) if isinstance(client_id, str) else None
    if client is None or not client.active or client.jwks is None:
        raise ClientError("unknown client, or no keys registered for it")
    try:
        keys = KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
        token = jwt.decode(assertion, keys, algorithms=list(ASSERTION_ALGORITHMS))
        jwt.JWTClaimsRegistry(
            leeway=5, iss={"essential": True, "value": client.client_id},
            sub={"essential": True, "value": client.client_id},
            aud={"essential": True, "value": token_url},
            exp={"essential": True}, jti={"essential": True}).validate(token.claims)
    except (JoseError, ValueError, TypeError) as exc:
        raise ClientError(f"the client assertion is not valid: {exc}") from exc
    exp = int(token.claims["exp"])
    if exp > time.time() + MAX_ASSERTION_SECONDS + 5:
        raise ClientError("the client assertion must expire within five minutes")
    try:
        with engine.begin() as conn:
            conn.execute(insert(used_jti).values(
                jti=f"{client.client_id}:{token.claims['jti']}"[:200], kind="assertion",
                expires=datetime.fromtimestamp(exp, UTC).replace(tzinfo=None)))
    except IntegrityError as exc:
        raise ClientError("the client assertion was already used (jti replay)") from exc
    return client


def _claims(payload: bytes) -> dict[str, Any]:
    value = orjson.loads(payload)
    if not isinstance(value, dict):
        raise ValueError("the claims are not an object")
    return value
