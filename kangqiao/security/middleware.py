"""ASGI middleware: the audit record of every FHIR API request, and security headers on pages.

Reads, denials and failures are recorded here, in a short transaction after the response;
successful changes were already recorded inside their own transaction (security/store.py).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kangqiao.security import audit
from kangqiao.security.context import TRAIL, Trail
from kangqiao.security.fieldcrypt import redact_query

log = logging.getLogger("kangqiao.audit")
UNAUDITED = ("/fhir/metadata", "/fhir/.well-known/")
PAGE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy",
     b"default-src 'self'; style-src 'self' 'unsafe-inline'; form-action 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'"),
]


def interaction(method: str, path: str) -> tuple[str, str]:
    """(AuditEvent.action, subtype) of a FHIR REST request."""
    parts = [p for p in path[len("/fhir"):].split("/") if p]
    if method == "GET":
        if not parts:
            return "R", "search-system"
        if parts[0] == "_history":
            return "R", "history-system"
        if len(parts) == 1:
            return "R", "search-type"
        if parts[-1] == "$everything":
            return "E", "operation"
        if parts[1] == "_history":
            return "R", "history-type"
        if len(parts) == 2:
            return "R", "read"
        return ("R", "history-instance") if len(parts) == 3 else ("R", "vread")
    if method == "POST":
        if not parts:
            return "E", "batch"
        return ("R", "search-type") if parts[-1] == "_search" else ("C", "create")
    return {"PUT": ("U", "update"), "PATCH": ("U", "patch"),
            "DELETE": ("D", "delete")}.get(method, ("E", method.lower()))


def request_record(scope: Scope, status: int, trail: Trail) -> audit.Record | None:
    path: str = scope["path"]
    method: str = scope["method"]
    access = trail.access
    if access is None and status not in (401, 403):
        return None  # nothing was attempted (e.g. a 404 for an unknown route)
    if trail.write_audited and status < 400 and not trail.read:
        return None  # the change's own transaction recorded it
    action, subtype = interaction(method, path)
    outcome = "0" if status < 400 else "8" if status >= 500 else "4"
    if status < 400 and trail.hidden and subtype in ("read", "vread"):
        outcome = "4"
    # searched ID and phone numbers are kept as their blind index: the trail shows which
    # record was looked for without storing the number in clear
    query = redact_query(scope.get("query_string", b"").decode("latin-1"))[:2000]
    client = scope.get("client")
    detail: dict[str, Any] = {"method": method, "path": path[:500], "query": query,
                              "read": trail.read, "read_count": trail.read_count,
                              "withheld": trail.hidden}
    if trail.denied:
        detail["denied"] = trail.denied[:20]
    if trail.written and not trail.write_audited:
        detail["written"] = trail.written
    if access is None:
        return audit.Record(category="rest", action=action, subtype=subtype, outcome=outcome,
                            status=status, actor="anonymous",
                            remote_addr=client[0] if client else None, detail=detail)
    return audit.Record(
        category="rest", action=action, subtype=subtype, outcome=outcome, status=status,
        actor=access.actor, username=access.user, role=access.role,
        organization=access.organization, client_id=access.client_id,
        remote_addr=access.remote_addr, purpose=access.purpose,
        break_glass=access.break_glass, patients=sorted(trail.patients), detail=detail)


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith("/fhir") or path.startswith(UNAUDITED):
            await self.app(scope, receive, self._with_page_headers(send))
            return
        trail = Trail()
        token = TRAIL.set(trail)
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            TRAIL.reset(token)
            record = request_record(scope, status, trail)
            if record is not None:
                app_state = scope["app"].state
                try:
                    await run_in_threadpool(audit.write, app_state.store.engine,
                                            app_state.security.audit_key, [record])
                except Exception:  # the response is gone; make the loss loud
                    log.exception("audit record of %s %s could not be written",
                                  scope["method"], path)
                    raise

    def _with_page_headers(self, send: Send) -> Send:
        async def add(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    message = {**message, "headers": headers + PAGE_HEADERS}
            await send(message)

        return add
