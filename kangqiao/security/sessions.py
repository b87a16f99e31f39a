"""Workbench sessions: a random id in an HttpOnly, SameSite=Lax cookie (Secure over HTTPS),
its SHA-256 digest in ``web_session``; ended after ``session_idle_minutes`` unused or
``session_max_hours`` after login, and at logout.

CSRF: every form carries a token. Before login it is a double-submit token (a random cookie
and the same value in the form); after login it is the session's own token, which the
session-authenticated API also requires in ``X-CSRF-Token`` for any unsafe method.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from typing import Any

from fastapi import Request
from sqlalchemy import Engine, delete, insert, select, update

from kangqiao.fhir.store.records import utcnow
from kangqiao.security.accounts import Account, _account
from kangqiao.security.schema import user_account, web_session
from kangqiao.security.tokens import digest
from kangqiao.settings import Settings

COOKIE = "kq_session"
CSRF_COOKIE = "kq_csrf"
S = web_session


def cookie_options(request: Request) -> dict[str, Any]:
    forwarded = request.headers.get("x-forwarded-proto", "").lower()
    secure = request.url.scheme == "https" or forwarded == "https"
    return {"httponly": True, "samesite": "lax", "secure": secure, "path": "/"}


def start(engine: Engine, settings: Settings, account: Account, remote_addr: str | None
          ) -> tuple[str, str]:
    """A new session for ``account``: (session id for the cookie, CSRF token)."""
    sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(delete(S).where(S.c.expires < now))  # housekeeping
        conn.execute(insert(S).values(
            id_hash=digest(sid), user_id=account.id, csrf=csrf, created=now, last_seen=now,
            expires=now + timedelta(hours=settings.session_max_hours),
            remote_addr=remote_addr))
    return sid, csrf


def lookup(engine: Engine, settings: Settings, sid: str | None) -> tuple[Account, str] | None:
    """The signed-in account and the session's CSRF token, or None."""
    if not sid:
        return None
    now = utcnow()
    with engine.connect() as conn:
        row = conn.execute(select(S, user_account).join(
            user_account, user_account.c.id == S.c.user_id).where(
            S.c.id_hash == digest(sid))).first()
    if row is None or not row.active or row.expires < now or \
            row.last_seen + timedelta(minutes=settings.session_idle_minutes) < now:
        return None
    if now - row.last_seen > timedelta(minutes=1):  # touch at most once a minute
        with engine.begin() as conn:
            conn.execute(update(S).where(S.c.id_hash == row.id_hash).values(last_seen=now))
    return _account(row), row.csrf


def end(engine: Engine, sid: str | None) -> None:
    if sid:
        with engine.begin() as conn:
            conn.execute(delete(S).where(S.c.id_hash == digest(sid)))


def end_all(engine: Engine, user_id: str) -> None:
    """After a password change: every other session of the user ends."""
    with engine.begin() as conn:
        conn.execute(delete(S).where(S.c.user_id == user_id))


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
