"""The store as the application uses it: ``FhirStore`` with the policy as its gate, which
also makes each unit of work known to the policy (context.UOW) and appends the audit record of
every change inside the transaction that makes it, so a change and its audit record commit or
roll back together."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine

from kangqiao.fhir.store.db import read_transaction, write_transaction
from kangqiao.fhir.store.records import Stored
from kangqiao.fhir.store.store import FhirStore, UnitOfWork
from kangqiao.security import audit, masking
from kangqiao.security.context import TRAIL, UOW, UowState
from kangqiao.security.gate import Access
from kangqiao.security.patients import patients_of
from kangqiao.security.policy import Policy
from kangqiao.security.rules import is_patient_data

_ACTION = {"create": "C", "update": "U", "delete": "D"}


class _AuditedUnitOfWork(UnitOfWork):
    watches_writes = True

    def created_in_bulk(self, created: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        state = UOW.get()
        if state is not None:
            state.written.extend(
                (t, i, 1, "create", patients_of(r) if is_patient_data(t) else set())
                for t, i, r in created)

    def _write(self, resource_type: str, resource_id: str, resource: dict[str, Any] | None,
               old: Stored | None, method: str, **kwargs: Any) -> Stored:
        # Every create / update / patch / delete goes through _write: the one place that sees
        # the assigned id and version of what was written.
        stored = super()._write(resource_type, resource_id, resource, old, method, **kwargs)
        state = UOW.get()
        if state is not None:
            content = stored.content if stored.content is not None else (
                old.content if old is not None else None)
            patients = patients_of(content) if content and is_patient_data(resource_type) \
                else set()
            verb = "delete" if stored.deleted else (
                "create" if old is None or old.deleted else "update")
            state.written.append((resource_type, resource_id, stored.version_id, verb,
                                  patients))
        policy = self.gate
        if stored.content is not None and isinstance(policy, Policy) and policy.must_mask(
                self.access, stored.content):
            # the answer to a write shows what a read would: masked identifiers
            stored = replace(stored, content=masking.masked(stored.content))
        return stored


def change_record(access: Access, written: list[tuple[str, str, int, str, set[str]]]
                  ) -> audit.Record:
    """One audit record for the changes of one transaction."""
    verbs = {w[3] for w in written}
    single = len(verbs) == 1
    verb = next(iter(verbs)) if single else "transaction"
    patients: set[str] = set()
    for w in written:
        patients |= w[4]
    entities = [f"{t}/{i}/_history/{v}" for t, i, v, _, _ in written[:200]]
    return audit.Record(
        category="rest", action=_ACTION.get(verb, "E"), subtype=verb, outcome="0",
        actor=access.actor, username=access.user, role=access.role,
        organization=access.organization, client_id=access.client_id,
        remote_addr=access.remote_addr, purpose=access.purpose,
        break_glass=access.break_glass, patients=sorted(patients),
        detail={"entities": entities, "count": len(written)})


class PolicyStore(FhirStore):
    """``FhirStore`` whose gate is ``policy``, auditing every committed change."""

    def __init__(self, engine: Engine, policy: Policy, audit_key: bytes) -> None:
        super().__init__(engine, policy)
        self.policy = policy
        self.audit_key = audit_key

    @contextmanager
    def write(self, access: Access) -> Iterator[UnitOfWork]:
        state: UowState | None = None
        with write_transaction(self.engine) as conn:
            uow = _AuditedUnitOfWork(conn, access, self.gate, writable=True)
            state = UowState(uow)
            token = UOW.set(state)
            try:
                yield uow
                uow.flush()
                if state.written:
                    audit.append(conn, self.audit_key, [change_record(access, state.written)])
            finally:
                UOW.reset(token)
        # committed
        trail = TRAIL.get()
        if trail is not None and state.written:
            trail.write_audited = True
            for t, i, v, _, patients in state.written:
                trail.wrote(f"{t}/{i}/_history/{v}", patients)
        self.policy.committed(state.changed_types)

    @contextmanager
    def read(self, access: Access) -> Iterator[UnitOfWork]:
        with read_transaction(self.engine) as conn:
            uow = UnitOfWork(conn, access, self.gate, writable=False)
            token = UOW.set(UowState(uow))
            try:
                yield uow
            finally:
                UOW.reset(token)
