"""The policy behind the gate: roles, the organisation tree, care relationships, consent,
purpose of use, break-glass and SMART scopes, applied to every store operation.

Reads are decided twice with the same rules: ``search_filter`` as SQL inside every search,
history, include and $everything query (so totals and pages only count what may be seen), and
``may_read`` per resource in Python (the only check of read and vread, and a second one of
every search hit). ``check_write`` decides creates, updates, patches and deletes. Decisions
that need the database run on the unit of work's own connection (``context.UOW``), so they see
its uncommitted writes and its snapshot.

Denials: what may not be read is filtered out, or 404 for a read by id (a resource outside the
caller's view is indistinguishable from one that does not exist); a write outside policy is
403. See docs/security.md for the rules in full.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    String,
    and_,
    bindparam,
    false,
    literal,
    or_,
    select,
    true,
)

from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.search.dates import now_utc
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.db import member_of, member_of_named
from kangqiao.security import masking, rules
from kangqiao.security.context import TRAIL, UOW
from kangqiao.security.fieldcrypt import values_of
from kangqiao.security.gate import FEW_ROWS, Access, Action
from kangqiao.security.orgtree import OrgTree
from kangqiao.security.patients import patients_of
from kangqiao.security.scopes import READ, Scope, constraint_sql, granting, parse_scopes
from kangqiao.security.scopes import matches as scope_matches
from kangqiao.security.visibility import (
    PatientView,
    care_links,
    managed_by,
    naming_no_patient,
    referral_links,
    rows_naming,
    teams_of,
)

R = schema.resource
PERMISSION = {"create": "c", "update": "u", "patch": "u", "delete": "d"}
EXCLUDED = rules.ADMIN_ONLY


def _patients(resource: dict[str, Any]) -> set[str]:
    """The patients (ids) a resource of patient data names; none for other types."""
    rtype = str(resource.get("resourceType"))
    return patients_of(resource) if rules.is_patient_data(rtype) else set()


def _id(reference: str | None) -> str | None:
    return reference.partition("/")[2] or None if reference else None


class Policy:
    """The Gate of the platform (see module doc)."""

    def __init__(self, engine: Engine, *, referral_days: int = 30,
                 org_cache_seconds: float = 300.0) -> None:
        self.engine = engine
        self.referral_days = referral_days
        self.orgs = OrgTree(org_cache_seconds)
        self._lock = threading.Lock()
        self._lru: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    # ---- plumbing ------------------------------------------------------------------------

    @contextmanager
    def _conn(self) -> Any:
        state = UOW.get()
        if state is not None:
            state.uow.flush()  # index rows of this transaction's earlier writes
            yield state.uow.conn
            return
        with self.engine.connect() as conn:
            yield conn

    def is_county_wide(self, conn: Connection, access: Access) -> bool:
        if access.role == rules.COUNTY_ADMIN:
            return True
        org = _id(access.organization)
        return access.role == rules.PUBLIC_HEALTH and org is not None and \
            org in self.orgs.government(conn)

    def _cached(self, conn: Connection, access: Access, what: str, build: Any) -> Any:
        """Policy SQL is costly to build (a dozen nested selects) but the same for every
        request of one user: kept in a small LRU keyed by everything it depends on, the org
        tree's generation and the minute (referral windows move with the clock); a committed
        change to a CareTeam clears it (``committed``), another process's within the minute."""
        self.orgs.subtree(conn, "")  # reloads the tree when its time is up
        key = (what, access.role, access.purpose, access.organization, access.actor,
               access.practitioner_role, access.patient, access.break_glass is not None,
               access.scopes, self.orgs.generation, int(time.time() // 60))
        with self._lock:
            if key in self._lru:
                self._lru.move_to_end(key)
                return self._lru[key]
        value = build()
        with self._lock:
            self._lru[key] = value
            while len(self._lru) > 512:
                self._lru.popitem(last=False)
        return value

    def view(self, conn: Connection, access: Access) -> PatientView:
        """The patients ``access`` may see (visibility.py explains the links)."""
        return self._cached(conn, access, "view", lambda: self._view(conn, access))  # type: ignore[no-any-return]

    def _view(self, conn: Connection, access: Access) -> PatientView:
        role, purpose = access.role, access.purpose
        if role == rules.SYSTEM or (access.break_glass and role in rules.BREAK_GLASS):
            return PatientView(everyone=True)
        if role == rules.RESIDENT:
            return PatientView(only=_id(access.patient)) if access.patient else PatientView()
        if self.is_county_wide(conn, access):
            return PatientView(population_all=purpose in rules.POPULATION_PURPOSES)
        if role not in rules.CLINICAL:
            return PatientView()  # platform administrators see no patient data
        view = PatientView()
        org = _id(access.organization)
        treating = purpose in rules.CARE_PURPOSES or (
            role == rules.PUBLIC_HEALTH and purpose == rules.PUBHLTH)
        if treating:
            subtree = self.orgs.subtree(conn, org) if org else frozenset()
            if org:
                view.treating.append(managed_by([org]))
            teams, mates = teams_of(conn, access.practitioner_role)
            view.treating.extend(care_links(access.actor if access.actor.startswith(
                "Practitioner/") else None, access.practitioner_role, teams, mates))
            recipients = [f"Organization/{o}" for o in subtree]
            recipients += [r for r in (access.practitioner_role, access.actor) if r]
            view.treating.extend(referral_links(recipients, now_utc(), self.referral_days))
        if org and purpose in rules.SUPERVISION_PURPOSES:
            below = self.orgs.subtree(conn, org) - {org}
            if below:
                view.population.append(managed_by(below))
        return view

    def _contexts(self, access: Access) -> frozenset[str]:
        return frozenset({"system"}) if access.role == rules.SYSTEM else \
            frozenset({"user", "patient"})

    def _scopes(self, access: Access) -> list[Scope]:
        return parse_scopes(access.scopes)

    # ---- search_filter -------------------------------------------------------------------

    def search_filter(self, access: Access, resource_type: str | None, *,
                      anchored: bool = False, few: bool = False) -> ColumnElement[bool] | None:
        anchored = anchored or few
        with self._conn() as conn:
            return self._cached(conn, access, f"filter:{resource_type}:{anchored}:{few}",  # type: ignore[no-any-return]
                                lambda: self._filter(conn, access, resource_type, anchored, few))

    def _filter(self, conn: Connection, access: Access, resource_type: str | None,
                anchored: bool, few: bool) -> ColumnElement[bool] | None:
        policy = self._policy_sql(conn, access, resource_type, anchored, few)
        scope = self._scope_sql(access, resource_type)
        parts = [p for p in (policy, scope) if p is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else and_(*parts)

    def _policy_sql(self, conn: Connection, access: Access, resource_type: str | None,
                    anchored: bool = False, few: bool = False) -> ColumnElement[bool] | None:
        if access.role == rules.SYSTEM:
            return None
        admin = access.role in rules.AUDIT_READERS
        if resource_type is not None and not rules.is_patient_data(resource_type):
            return None  # directory and conformance resources: every signed-in user
        if resource_type in EXCLUDED:
            return None if admin else false()
        view = self.view(conn, access)
        staff = access.role in rules.CLINICAL | rules.ADMINS
        parts: list[ColumnElement[bool]] = []
        if not view.nobody:
            # anchored: test each candidate's patients (view.probe, index lookups per row)
            # rather than list every patient in view and every row naming one
            def probe(patient: ColumnElement[str]) -> ColumnElement[bool]:
                return view.probe(patient, few=few)
            parts.append(rows_naming(probe if anchored else view.condition,
                                     resource_type, EXCLUDED, anchored=anchored))
        patientless = rules.PATIENTLESS_STAFF if resource_type is None else \
            rules.PATIENTLESS_STAFF & {resource_type}
        if staff and patientless:
            parts.append(naming_no_patient(patientless))
        if resource_type is None:
            data_types = sorted({"Patient", *rules.compartment()})
            parts.append(R.c.resource_type.not_in(data_types))
            if admin:
                parts.append(R.c.resource_type.in_(sorted(EXCLUDED)))
        return or_(*parts) if parts else false()

    def _scope_sql(self, access: Access, resource_type: str | None
                   ) -> ColumnElement[bool] | None:
        scopes = [s for s in self._scopes(access) if s.context in self._contexts(access)
                  and not s.permissions.isdisjoint(READ)
                  and (resource_type is None or s.covers(resource_type, READ))]
        clauses: list[ColumnElement[bool]] = []
        for s in scopes:
            parts = list(constraint_sql(s))
            if resource_type is None and s.resource_type != "*":
                parts.append(R.c.resource_type == s.resource_type)
            if s.context == "patient":
                parts.append(self._own_compartment(access, s.resource_type if s.resource_type
                                                   != "*" else resource_type))
            if not parts:
                return None  # an unconstrained scope: no narrowing
            clauses.append(and_(*parts))
        return or_(*clauses) if clauses else false()

    def _own_compartment(self, access: Access, resource_type: str | None
                         ) -> ColumnElement[bool]:
        pid = _id(access.patient)
        if resource_type is not None and not rules.is_patient_data(resource_type):
            return true()
        if pid is None:
            return false()
        rows = rows_naming(lambda col: col == pid, resource_type, frozenset())
        if resource_type is None:
            data_types = sorted({"Patient", *rules.compartment()})
            return or_(R.c.resource_type.not_in(data_types), rows)
        return rows

    # ---- may_read ------------------------------------------------------------------------

    def may_read(self, access: Access, resource: dict[str, Any]) -> bool:
        return self._read(access, resource, _patients(resource))

    def may_read_all(self, access: Access, resources: list[dict[str, Any]]) -> list[bool]:
        """``may_read`` of each, the visibility of all their patients decided at once."""
        patients = [_patients(r) for r in resources]
        if access.role != rules.SYSTEM and len(resources) > 1:
            self.warm_patients(access, set().union(*patients))
        return [self._read(access, r, p) for r, p in zip(resources, patients, strict=True)]

    def _read(self, access: Access, resource: dict[str, Any], patients: set[str]) -> bool:
        rtype = str(resource.get("resourceType"))
        allowed = self._may_read(access, rtype, resource, patients)
        if allowed and self.must_mask(access, resource):
            masking.mask_in_place(resource)  # the very dict the store returns
        trail = TRAIL.get()
        if trail is not None:
            if allowed:
                trail.saw(f"{rtype}/{resource.get('id')}", patients)
            else:
                trail.hidden += 1
        return allowed

    def _may_read(self, access: Access, rtype: str, resource: dict[str, Any],
                  patients: set[str]) -> bool:
        scopes = granting(self._scopes(access), self._contexts(access), rtype, READ)
        if not any(self._scope_admits(access, s, resource, patients) for s in scopes):
            return False
        if access.role == rules.SYSTEM:
            return True
        if rtype in EXCLUDED:
            return access.role in rules.AUDIT_READERS
        if not rules.is_patient_data(rtype):
            return True
        if not patients:
            return rtype in rules.PATIENTLESS_STAFF and access.role in (
                rules.CLINICAL | rules.ADMINS)
        return any(self.patient_visible(access, p) for p in patients)

    def _scope_admits(self, access: Access, scope: Scope, resource: dict[str, Any],
                      patients: set[str]) -> bool:
        if scope.context == "patient" and rules.is_patient_data(str(resource.get(
                "resourceType"))) and _id(access.patient) not in patients:
            return False
        return scope_matches(scope, resource)

    def patient_visible(self, access: Access, patient_id: str) -> bool:
        state = UOW.get()
        if state is not None and patient_id in state.visible:
            return state.visible[patient_id]
        with self._conn() as conn:
            view = self.view(conn, access)
            if view.everyone:
                result = True
            elif view.nobody:
                result = False
            else:
                probe = self._cached(conn, access, "probe", lambda: select(literal(1)).where(
                    view.probe(bindparam("patient_id", type_=String()), few=True)))
                result = conn.execute(probe, {"patient_id": patient_id}).first() is not None
        if state is not None:
            state.visible[patient_id] = result
        return result

    def warm_patients(self, access: Access, patient_ids: Iterable[str]) -> None:
        """Decide ``patient_visible`` for many patients at once and keep the answers in the
        unit of work's cache, so that ``may_read`` over a list's resources (a work list reads
        thousands) costs no query per patient. The same ``PatientView`` decides, through the
        same ``probe`` as ``patient_visible``, in one statement driven by the id list (each
        link an index lookup on those patients: the cost follows the list, not the county -
        ``condition`` would list every patient in view, which grows with the county)."""
        state = UOW.get()
        if state is None:
            return  # nowhere to keep the answers: each check runs on its own
        todo = sorted({p for p in patient_ids if p not in state.visible})
        if not todo:
            return
        with self._conn() as conn:
            view = self.view(conn, access)
            if view.everyone or view.nobody:
                state.visible.update(dict.fromkeys(todo, view.everyone))
                return
            # built once per user (the probe is a large expression: building it and its
            # cache key cost more than running it for a page of hits)
            few = len(todo) <= FEW_ROWS
            stmt, ids_value = self._cached(conn, access, f"warm:{few}", lambda: self._warm_sql(
                conn, view, few))
            for start in range(0, len(todo), 20_000):
                # Only ids with a Patient row are decided here (as ``condition`` would,
                # which tests rows); any other id is left to ``patient_visible``.
                decided = conn.execute(stmt, {"ids": ids_value(todo[start:start + 20_000])})
                state.visible.update({pid: bool(flag) for pid, flag in decided})

    @staticmethod
    def _warm_sql(conn: Connection, view: PatientView, few: bool) -> tuple[Select[Any], Any]:
        among, ids_value = member_of_named(conn, "ids")
        return select(R.c.id, view.probe(R.c.id, few=few)).where(
            R.c.resource_type == "Patient", among(R.c.id)), ids_value

    def visible_patients(self, access: Access, patient_ids: Iterable[str]) -> list[str]:
        """The ids among ``patient_ids`` (ids of Patient rows: the filter tests rows) that
        ``search_filter(access, "Patient")`` admits, sorted: the same answer as that filter
        in a query over those rows, but the policy's part is decided once for the list
        (``warm_patients``, whose answers ``may_read`` then reuses) and only the SMART
        scopes' part, if any, is left to SQL over the admitted ids. Outside a unit of
        work, or if the Patient filter ever admitted patientless rows, it falls back to
        that filter as such."""
        ids = sorted(set(patient_ids))
        state = UOW.get()
        with self._conn() as conn:
            exact = state is not None and not (
                rules.PATIENTLESS_STAFF & {"Patient"}) and rules.is_patient_data("Patient")
            if not exact:
                where = self.search_filter(access, "Patient", anchored=True)
                among = member_of(conn, ids)
                return sorted(conn.execute(select(R.c.id).where(
                    R.c.resource_type == "Patient", among(R.c.id),
                    *([] if where is None else [where]))).scalars())
            assert state is not None
            if access.role != rules.SYSTEM:  # the policy's part (SYSTEM: none)
                self.warm_patients(access, ids)
                # An id without a Patient row stays undecided by warm_patients: the filter
                # tests rows, so it is not admitted.
                ids = [p for p in ids if state.visible.get(p, False)]
            scope = self._scope_sql(access, "Patient")
            if scope is None or not ids:
                return ids
            among = member_of(conn, ids)
            return sorted(conn.execute(select(R.c.id).where(
                R.c.resource_type == "Patient", among(R.c.id), scope)).scalars())

    # ---- check_write ---------------------------------------------------------------------

    def check_write(self, access: Access, action: Action, resource_type: str,
                    new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        state = UOW.get()
        if state is not None:
            state.changed_types.add(resource_type)
        if new is not None and resource_type in masking.MASKED_TYPES and \
                access.role != rules.SYSTEM:
            self._unmask(resource_type, new)
        reason = self._write_refusal(access, action, resource_type, new, old)
        if reason is not None:
            trail = TRAIL.get()
            if trail is not None:
                trail.denied.append(f"{action} {resource_type}: {reason}")
            raise FhirError.of(403, "forbidden", reason)

    def _write_refusal(self, access: Access, action: Action, rtype: str,
                       new: dict[str, Any] | None, old: dict[str, Any] | None) -> str | None:
        perm = frozenset(PERMISSION.get(action, "u"))
        versions = [v for v in (new, old) if v is not None]
        patients = [patients_of(v) if rules.is_patient_data(rtype) else set()
                    for v in versions]
        scopes = granting(self._scopes(access), self._contexts(access), rtype, perm)
        if not any(all(self._scope_admits(access, s, v, p) for v, p in zip(versions, patients,
                                                                          strict=True))
                   for s in scopes):
            return f"the token's scopes do not allow {action} of {rtype}"
        role = access.role
        if role == rules.SYSTEM:
            return None
        if rtype in EXCLUDED:
            return f"{rtype} is written by the platform only"
        if not rules.is_patient_data(rtype) or (rtype in rules.DIRECTORY and not any(
                patients)):
            if role in rules.ADMINS and rtype in rules.DIRECTORY:
                return None
            return f"only administrators change {rtype} (the directory)"
        if role == rules.RESIDENT:
            own = _id(access.patient)
            if rtype not in rules.RESIDENT_WRITES and not (rtype == "Patient" and
                                                           action != "delete"):
                return f"a resident may not {action} {rtype}"
            if not all(p == {own} for p in patients):
                return "a resident may only change their own record"
            if rtype == "Patient" and old is not None and new is not None and any(
                    new.get(k) != old.get(k) for k in ("managingOrganization",
                                                       "generalPractitioner")):
                return "a resident's institution and family doctor change by a new contract"
            return None
        if role not in rules.CLINICAL:
            return f"the {role} role does not change clinical records"
        if not rules.staff_may_write(role, rtype):
            return f"the {role} role may not {action} {rtype}"
        if rtype == "Patient":
            return self._patient_refusal(access, action, new, old)
        if any(not p for p in patients):
            return f"{rtype} must name the patient it is about"
        for p in set().union(*patients):
            if not self.patient_visible(access, p):
                return f"Patient/{p} is not in your care"
        return None

    def _patient_refusal(self, access: Access, action: Action, new: dict[str, Any] | None,
                         old: dict[str, Any] | None) -> str | None:
        if action == "delete":
            return "patients are not deleted by users (records are merged or inactivated)"
        if old is not None and not self.patient_visible(access, str(old.get("id"))):
            return f"Patient/{old.get('id')} is not in your care"
        org = _id(((new or {}).get("managingOrganization") or {}).get("reference"))
        old_org = _id(((old or {}).get("managingOrganization") or {}).get("reference"))
        if org is not None and org == old_org:
            return None
        if org is None or org not in self.registration_orgs(access):
            return ("a patient must be registered with your institution "
                    "(managingOrganization)")
        return None

    def must_mask(self, access: Access, resource: dict[str, Any]) -> bool:
        """Whether ``access`` sees ``resource``'s identifiers masked (masking.py)."""
        return resource.get("resourceType") in masking.MASKED_TYPES and not \
            masking.sees_full(access, resource, self.own_orgs(access))

    def own_orgs(self, access: Access) -> frozenset[str]:
        """The organisations whose patients ``access`` treats with full identifiers: their
        own, and for a village doctor the township centre that manages their residents."""
        org = _id(access.organization)
        if org is None:
            return frozenset()
        if access.role != rules.VILLAGE_DOCTOR:
            return frozenset({org})
        with self._conn() as conn:
            parent = self.orgs.parent(conn, org)
        return frozenset({org, parent} if parent else {org})

    def _unmask(self, resource_type: str, new: dict[str, Any]) -> None:
        """A masked value written back (what a masked reader was shown) is replaced by the
        stored value; one that matches nothing stored is refused."""
        values = values_of(new)
        tagged = any(type(t) is dict and t.get("code") == "MASKED"
                     for t in (new.get("meta") or {}).get("security") or ())
        if not tagged and not any(masking.is_masked(v) for vs in values.values() for v in vs):
            return
        state = UOW.get()
        stored = None
        if state is not None and isinstance(new.get("id"), str):
            current = state.uow._current(resource_type, new["id"])
            stored = current.content if current is not None else None
        unknown = masking.restore(new, stored)
        if unknown:
            raise FhirError.of(422, "processing", f"{resource_type} holds masked values that "
                               "match nothing stored (e.g. an identifier shown masked cannot "
                               "be copied into a new record)")

    def registration_orgs(self, access: Access) -> frozenset[str]:
        """Where the user may register residents: their organisation and below, and for a
        village doctor the township centre their clinic belongs to (residents are managed by
        the centre)."""
        org = _id(access.organization)
        if org is None:
            return frozenset()
        with self._conn() as conn:
            orgs = self.orgs.subtree(conn, org)
            parent = self.orgs.parent(conn, org)
        if access.role == rules.VILLAGE_DOCTOR and parent:
            orgs = orgs | {parent}
        return orgs

    def committed(self, changed_types: Iterable[str]) -> None:
        """Called after a transaction commits: drop caches its writes made stale."""
        changed = set(changed_types)
        if "Organization" in changed:
            self.orgs.invalidate()
        if "CareTeam" in changed:  # views carry their users' teams (visibility.teams_of)
            with self._lock:
                self._lru.clear()
