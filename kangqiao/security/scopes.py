"""SMART App Launch 2.0 scopes: parsing, matching and their search-parameter constraints.

A resource scope is ``<context>/<Type|*>.<permissions>[?<search params>]`` with context
``patient``, ``user`` or ``system`` and permissions a subsequence of ``cruds`` (v2), or the v1
forms ``read`` (= ``rs``), ``write`` (= ``cud``) and ``*`` (= ``cruds``). A constraint such as
``patient/Observation.rs?category=vital-signs`` limits the scope to resources matching that
search, compiled with the search engine's own query builder so it means exactly what the same
search would mean. Other scopes (``openid``, ``fhirUser``, ``launch/patient``,
``offline_access``, ...) are kept as they are and never grant access to data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import ColumnElement, and_

from kangqiao.fhir import definitions
from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.search.index import index_rows
from kangqiao.fhir.search.params import search_params
from kangqiao.fhir.search.query import build_search

V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
ORDER = "cruds"
_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.([a-z*]+)(?:\?(.+))?$")
OTHER_SCOPES = frozenset({"openid", "fhirUser", "profile", "launch", "launch/patient",
                          "offline_access", "online_access"})
READ = frozenset("rs")


class ScopeError(ValueError):
    """A scope string that is not a valid SMART scope."""


@dataclass(frozen=True, slots=True)
class Scope:
    context: str  # patient | user | system
    resource_type: str  # a type, or "*"
    permissions: frozenset[str]
    constraints: tuple[tuple[str, str], ...]
    text: str

    def covers(self, resource_type: str, wanted: frozenset[str]) -> bool:
        """Whether this scope grants one of ``wanted`` permissions on ``resource_type``."""
        return (self.resource_type in ("*", resource_type)
                and not self.permissions.isdisjoint(wanted))

    def within(self, other: Scope) -> bool:
        """Whether everything this scope grants is also granted by ``other`` (narrowing a
        request to what a client or user may have)."""
        return (self.context == other.context
                and other.resource_type in ("*", self.resource_type)
                and self.permissions <= other.permissions
                and set(other.constraints) <= set(self.constraints))


def _permissions(text: str) -> frozenset[str]:
    if text in V1_PERMISSIONS:
        return frozenset(V1_PERMISSIONS[text])
    # v2: a non-empty subsequence of "cruds" in that order (e.g. "rs", "cud")
    position = 0
    for ch in text:
        found = ORDER.find(ch, position)
        if found < 0:
            raise ScopeError(f"permissions {text!r} are not a subsequence of 'cruds'")
        position = found + 1
    return frozenset(text)


@lru_cache(maxsize=4096)
def parse_scope(text: str) -> Scope | None:
    """The resource scope ``text`` stands for; None for other known scopes."""
    if text in OTHER_SCOPES:
        return None
    m = _SCOPE.match(text)
    if m is None:
        raise ScopeError(f"{text!r} is not a SMART scope")
    context, resource_type, perms, query = m.groups()
    if resource_type != "*" and resource_type not in definitions.resource_types():
        raise ScopeError(f"{text!r}: unknown resource type {resource_type}")
    constraints: tuple[tuple[str, str], ...] = ()
    if query:
        if resource_type == "*":
            raise ScopeError(f"{text!r}: search constraints need a resource type")
        constraints = tuple(sorted(parse_qsl(query, keep_blank_values=False)))
        known = search_params(resource_type)
        for name, _value in constraints:
            # Token parameters only (category, code, status, ...): they are what constraints
            # are used for, and the gate can then check a single resource without the database
            # exactly as the SQL filter checks a search.
            param = known.get(name)
            if param is None or param.type != "token":
                raise ScopeError(f"{text!r}: {name!r} is not a token search parameter of "
                                 f"{resource_type}")
    return Scope(context, resource_type, _permissions(perms), constraints, text)


def parse_scopes(texts: Iterable[str]) -> list[Scope]:
    out = []
    for text in texts:
        scope = parse_scope(text)
        if scope is not None:
            out.append(scope)
    return out


def split(scope_param: str) -> list[str]:
    return [s for s in scope_param.split() if s]


def granting(scopes: Iterable[Scope], contexts: frozenset[str], resource_type: str,
             wanted: frozenset[str]) -> list[Scope]:
    """The scopes of ``contexts`` that grant one of ``wanted`` on ``resource_type``."""
    return [s for s in scopes if s.context in contexts and s.covers(resource_type, wanted)]


def constraint_sql(scope: Scope) -> list[ColumnElement[bool]]:
    """Conditions on the ``resource`` table for the scope's search constraints."""
    if not scope.constraints:
        return []
    return _compiled(scope.resource_type, scope.constraints)


@lru_cache(maxsize=1024)
def _compiled(resource_type: str, constraints: tuple[tuple[str, str], ...]
              ) -> list[ColumnElement[bool]]:
    try:
        spec = build_search(resource_type, list(constraints), strict=True)
    except FhirError as exc:  # parse_scope checked the names; a bad value ends up here
        raise ScopeError(f"scope constraint {constraints!r}: {exc}") from exc
    return [and_(*spec.where)] if spec.where else []


def matches(scope: Scope, resource: dict[str, Any]) -> bool:
    """Whether ``resource`` satisfies the scope's constraints (each parameter must match one
    of its comma-separated values: ``code``, ``system|code``, ``|code`` or ``system|``)."""
    if not scope.constraints:
        return True
    tokens = index_rows(resource)["token"]
    for name, value in scope.constraints:
        rows = [(r["system"], r["code"]) for r in tokens if r["param"] == name]
        if not any(_token_match(alt, rows) for alt in value.split(",")):
            return False
    return True


def _token_match(value: str, rows: list[tuple[str | None, str | None]]) -> bool:
    if "|" not in value:
        return any(code == value for _, code in rows)
    system, _, code = value.partition("|")
    if not system:
        return any(s is None and c == code for s, c in rows)
    if not code:
        return any(s == system for s, _ in rows)
    return (system, code) in rows


def narrow(requested: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The requested scopes that ``allowed`` covers (unknown ones are dropped, as SMART lets
    a server grant less than asked)."""
    allowed_list = list(allowed)
    allowed_scopes = parse_scopes(allowed_list)
    out = []
    for text in requested:
        try:
            scope = parse_scope(text)
        except ScopeError:
            continue
        if scope is None:
            if text in allowed_list or text in OTHER_SCOPES:
                out.append(text)
        elif any(scope.within(a) for a in allowed_scopes):
            out.append(text)
    return out
