"""Per-request and per-transaction state the gate needs but the ``Gate`` protocol does not
carry: the unit of work being run (so policy queries see its own uncommitted writes and run in
its snapshot), and the audit trail of the current request.

Both live in context variables: a request's middleware and the store set them, and the gate,
called synchronously from the same thread, reads them (Starlette copies the context into the
worker thread that runs a route's store work, so the trail object is shared).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kangqiao.fhir.store.store import UnitOfWork
    from kangqiao.security.gate import Access

MAX_ENTITIES = 200  # resources named in one audit record; the count is kept beyond that


@dataclass
class Trail:
    """What one request did, for its audit record."""

    access: Access | None = None
    read: list[str] = field(default_factory=list)
    read_count: int = 0
    patients: set[str] = field(default_factory=set)
    written: list[str] = field(default_factory=list)
    write_audited: bool = False
    denied: list[str] = field(default_factory=list)
    hidden: int = 0  # resources the policy withheld (reads answer 404 / leave them out)

    def saw(self, reference: str, patients: set[str]) -> None:
        self.read_count += 1
        if len(self.read) < MAX_ENTITIES:
            self.read.append(reference)
        self.patients |= patients

    def wrote(self, reference: str, patients: set[str]) -> None:
        if len(self.written) < MAX_ENTITIES:
            self.written.append(reference)
        self.patients |= patients


@dataclass
class UowState:
    """The unit of work the gate is asked about, with its per-transaction decision cache
    (a transaction's snapshot cannot change under it, so caching inside it is exact)."""

    uow: UnitOfWork
    visible: dict[str, bool] = field(default_factory=dict)
    changed_types: set[str] = field(default_factory=set)
    written: list[tuple[str, str, int, str, set[str]]] = field(default_factory=list)


TRAIL: ContextVar[Trail | None] = ContextVar("kangqiao_audit_trail", default=None)
UOW: ContextVar[UowState | None] = ContextVar("kangqiao_unit_of_work", default=None)
