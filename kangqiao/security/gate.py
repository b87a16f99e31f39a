"""The security gate's contract with the store.

Every read, write, search hit and included resource passes one ``Gate``; the store never
touches patient data without asking it. Routes, pages, workers and the CLI all build an
``Access`` and hand it to the store. The policy behind the gate (roles, organisation tree,
care relationships, consent, audit) is the security capability's; until it is configured
the platform runs with ``TrustedGate``, which is what the CLI and system workers use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy import ColumnElement

Action = Literal["read", "vread", "history", "search", "create", "update", "patch", "delete"]


@dataclass(frozen=True, slots=True)
class Access:
    """Who is asking, and why: built once per request (or job) by authentication and handed
    to the store with every call.

    ``actor`` is a reference like ``Practitioner/123``, ``Patient/9`` or ``system/<client>``;
    ``role`` one of village-doctor, gp, specialist, nurse, public-health, county-admin,
    platform-admin, resident, system; ``organization`` the user's place in the county tree
    (``Organization/...``); ``scopes`` SMART v2 scopes; ``purpose`` a v3 PurposeOfUse code;
    ``patient`` the launch context or a resident's own record; ``break_glass`` the reason a
    clinician gave to open a record outside policy; ``user`` the account's username."""

    actor: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    purpose: str = "TREAT"
    remote_addr: str | None = None
    role: str = "system"
    organization: str | None = None
    user: str | None = None
    patient: str | None = None
    break_glass: str | None = None
    # The user's PractitionerRole (care-team membership, referrals to the role) and the
    # OAuth client that obtained the token, when there is one.
    practitioner_role: str | None = None
    client_id: str | None = None


# A query testing at most this many candidate rows has them tested one by one against every
# link of the user's view (``search_filter(few=True)``): ~20 µs each at most, against the
# building of the costlier links' lists (a centre's referrals of all time) in every query.
FEW_ROWS = 1000

SYSTEM = Access(actor="system/kangqiao", scopes=frozenset({"system/*.cruds"}))


class Gate(Protocol):
    def may_read(self, access: Access, resource: dict[str, Any]) -> bool:
        """Whether ``resource`` (one hit, include or history version) may be shown."""

    def search_filter(
        self, access: Access, resource_type: str | None, *, anchored: bool = False,
        few: bool = False,
    ) -> ColumnElement[bool] | None:
        """A SQL condition on the ``resource`` table that removes what ``access`` may not
        see, applied inside the query so counts and pages never leak; None means no filter.
        ``anchored``: the query is driven by a selective condition, so a test of each
        candidate row beats listing everything in view (the same rows either way);
        ``few``: it tests at most ``FEW_ROWS`` candidates, so even the links whose lists
        are costly to build are tested row by row."""

    def check_write(
        self,
        access: Access,
        action: Action,
        resource_type: str,
        new: dict[str, Any] | None,
        old: dict[str, Any] | None,
    ) -> None:
        """Raise ``FhirError`` (403) when ``access`` may not perform this write."""


def readable(gate: Gate, access: Access, resources: list[dict[str, Any]]) -> list[bool]:
    """``gate.may_read`` of each resource (a page of hits, includes, versions). A gate that
    can decide a list at once provides ``may_read_all`` (the policy decides the patients
    of the whole page in one query, not one per patient: 20 queries of ~1.5 ms for a page
    of 20 on PostgreSQL)."""
    many = getattr(gate, "may_read_all", None)
    if callable(many):
        return list(many(access, resources))
    return [gate.may_read(access, r) for r in resources]


class TrustedGate:
    """Allows everything: for the platform's own system actors (CLI, workers, tests of the
    engine). Deployments with users configure the security capability's policy instead."""

    def may_read(self, access: Access, resource: dict[str, Any]) -> bool:
        return True

    def search_filter(
        self, access: Access, resource_type: str | None, *, anchored: bool = False,
        few: bool = False,
    ) -> ColumnElement[bool] | None:
        return None

    def check_write(
        self,
        access: Access,
        action: Action,
        resource_type: str,
        new: dict[str, Any] | None,
        old: dict[str, Any] | None,
    ) -> None:
        return None
