"""The security capability's tables, on the store's ``metadata`` (so one Alembic history and
one drift test cover them).

Secrets are never stored in a form that can be replayed: passwords as Argon2id hashes, session
ids, refresh tokens and authorisation codes as SHA-256 digests. The server's token-signing key
is kept here (every API worker must share it); the audit chain's HMAC key is deliberately *not*
(see audit.py).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from kangqiao.fhir.store.schema import metadata

REF_LEN = 140  # "PractitionerRole/<64-char id>"

user_account = Table(
    "user_account",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    Column("organization", String(REF_LEN), nullable=True),
    Column("practitioner", String(REF_LEN), nullable=True),
    Column("practitioner_role", String(REF_LEN), nullable=True),
    Column("patient", String(REF_LEN), nullable=True),
    Column("password_hash", String(256), nullable=False),
    Column("must_change_password", Boolean, nullable=False),
    Column("failed_logins", Integer, nullable=False),
    Column("locked_until", DateTime(timezone=False), nullable=True),
    Column("password_changed", DateTime(timezone=False), nullable=False),
    Column("last_login", DateTime(timezone=False), nullable=True),
    Column("active", Boolean, nullable=False),
    Column("created", DateTime(timezone=False), nullable=False),
)

web_session = Table(
    "web_session",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(32), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created", DateTime(timezone=False), nullable=False),
    Column("last_seen", DateTime(timezone=False), nullable=False),
    Column("expires", DateTime(timezone=False), nullable=False),
    Column("remote_addr", String(64), nullable=True),
    Index(None, "user_id"),
    Index(None, "expires"),
)

oauth_client = Table(
    "oauth_client",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    # system: SMART Backend Services; app: authorization code + PKCE on behalf of a user
    Column("kind", String(16), nullable=False),
    # private_key_jwt | client_secret_basic | none (public app, PKCE only)
    Column("auth_method", String(32), nullable=False),
    Column("jwks", JSON, nullable=True),
    Column("secret_hash", String(256), nullable=True),
    Column("redirect_uris", JSON, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created", DateTime(timezone=False), nullable=False),
)

# Authorisation codes and refresh tokens, by digest.
oauth_grant = Table(
    "oauth_grant",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # code | refresh
    Column("client_id", String(64), nullable=False),
    Column("user_id", String(32), nullable=True),
    Column("scope", Text, nullable=False),
    Column("patient", String(REF_LEN), nullable=True),
    Column("redirect_uri", String(1024), nullable=True),
    Column("code_challenge", String(128), nullable=True),
    Column("expires", DateTime(timezone=False), nullable=False),
    Column("used", Boolean, nullable=False),
    Column("created", DateTime(timezone=False), nullable=False),
    Index(None, "user_id"),
    Index(None, "expires"),
)

# Token ids that may not be used again: client assertions seen (replay protection) and
# revoked access tokens; kept until the token would have expired anyway.
used_jti = Table(
    "used_jti",
    metadata,
    Column("jti", String(200), primary_key=True),
    Column("kind", String(16), nullable=False),  # assertion | revoked
    Column("expires", DateTime(timezone=False), nullable=False),
    Index(None, "expires"),
)

signing_key = Table(
    "signing_key",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("private_jwk", JSON, nullable=False),
    Column("created", DateTime(timezone=False), nullable=False),
)

# The audit trail: one row per request / login / change, chained by an HMAC over the previous
# row's hash (audit.py). ``seq`` is assigned without gaps under a lock, so a deleted row shows.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
    Column("recorded", DateTime(timezone=False), nullable=False),
    Column("category", String(16), nullable=False),  # rest | login | logout | token | admin
    Column("action", String(1), nullable=False),  # C R U D E
    Column("subtype", String(40), nullable=False),
    Column("outcome", String(2), nullable=False),  # 0 success, 4 minor (denied), 8 serious
    Column("status", Integer, nullable=True),
    Column("actor", String(REF_LEN), nullable=False),
    Column("username", String(64), nullable=True),
    Column("role", String(32), nullable=True),
    Column("organization", String(REF_LEN), nullable=True),
    Column("client_id", String(64), nullable=True),
    Column("remote_addr", String(64), nullable=True),
    Column("purpose", String(16), nullable=True),
    Column("break_glass", String(500), nullable=True),
    Column("patients", JSON, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index(None, "recorded"),
    Index(None, "username", "recorded"),
)

audit_patient = Table(
    "audit_patient",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
    Column("patient_id", String(64), primary_key=True),
    Index(None, "patient_id", "seq"),
)

# Where verification starts after old rows were purged (retention): the last purged row's
# seq and hash, themselves authenticated by ``mac``.
audit_anchor = Table(
    "audit_anchor",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("mac", String(64), nullable=False),
)
