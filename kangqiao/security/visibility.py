"""Which patients an access may see, as SQL over the search index.

The view is built from three kinds of links, all read from ``search_reference`` /
``search_token`` / ``search_date`` rows, so it is always as current as the store:

* **treating** links (care relationships): the patient is managed by the user's own
  organisation; their general practitioner, or the care manager of their active
  EpisodeOfCare, is the user or a member of a CareTeam the user belongs to (the family-doctor
  team); the user takes part in a CareTeam about the patient; or an active referral
  (ServiceRequest.performer / Task.owner) sent the patient to the user, the user's role or an
  organisation in the user's subtree within the last ``referral_days`` days.
* **population** links: the patient is managed by an organisation *below* the user's (the
  county hospital supervising its township centres), or the whole county for county-wide
  roles. Residents who refused sharing beyond the institutions treating them (an active
  Consent whose provision is ``deny``) are excluded from these.
* **everyone** for break-glass, and a single patient for a resident.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Connection,
    FromClause,
    Select,
    and_,
    exists,
    false,
    literal,
    or_,
    select,
    true,
    tuple_,
    union,
)

from kangqiao.fhir.search.plan import unindexed
from kangqiao.fhir.store import schema
from kangqiao.security.rules import compartment

R = schema.resource
REF = schema.search_reference
TOK = schema.search_token
DT = schema.search_date

Cond = Callable[[ColumnElement[str]], ColumnElement[bool]]


@dataclass(frozen=True)
class Link:
    """Patients linked to the user one way. ``rows`` lists their ids (first column), for
    ``PatientView.condition``; ``anchored``, when given, is the same set written for a test
    of one patient (``probe``): the same select with its target tests hidden from SQLite's
    index choice, so the lookup is driven by the patient's own references rather than by
    every patient of the target (without ANALYZE SQLite prefers the index that matches more
    columns, i.e. reads a centre's whole panel for each patient probed)."""

    rows: Select
    anchored: Select | None = None
    # the same set written as a test of each row that could name the patient, for a check of
    # few patients (``probe(few=True)``), where building ``rows`` costs more than the test
    per_row: Select | None = None

    def test(self, patient_id: ColumnElement[str], few: bool = False) -> ColumnElement[bool]:
        s = self.rows if self.anchored is None else self.anchored
        if few and self.per_row is not None:
            s = self.per_row
        return exists(s.where(s.selected_columns[0] == patient_id))


@dataclass
class PatientView:
    everyone: bool = False
    only: str | None = None
    treating: list[Link] = field(default_factory=list)
    population: list[Link] = field(default_factory=list)
    population_all: bool = False

    @property
    def nobody(self) -> bool:
        return not (self.everyone or self.only or self.treating or self.population
                    or self.population_all)

    def condition(self, col: ColumnElement[str]) -> ColumnElement[bool]:
        """``col`` (a patient id) is one of the patients in view."""
        if self.everyone:
            return true()
        if self.only is not None:
            return col == self.only
        parts: list[ColumnElement[bool]] = []
        if self.treating:
            parts.append(col.in_(_union([link.rows for link in self.treating])))
        if self.population_all:
            parts.append(col.not_in(refused_sharing()))
        elif self.population:
            parts.append(and_(col.in_(_union([link.rows for link in self.population])),
                              col.not_in(refused_sharing())))
        return or_(*parts) if parts else false()

    def probe(self, patient_id: ColumnElement[str], few: bool = False) -> ColumnElement[bool]:
        """The same test as ``condition`` for one patient, anchored on that patient so every
        link is an index lookup (``condition`` lists all patients in view: right for a
        search, wasteful to check one resource or a list of them). ``few``: for few
        patients, also the links whose lists are costly (``Link.per_row``)."""
        if self.everyone:
            return true()
        if self.only is not None:
            return patient_id == self.only
        refused = refused_sharing()
        not_refused = ~exists(refused.where(refused.selected_columns[0] == patient_id))
        parts: list[ColumnElement[bool]] = [link.test(patient_id, few)
                                            for link in self.treating]
        if self.population_all:
            parts.append(not_refused)
        elif self.population:
            parts.append(and_(or_(*[link.test(patient_id, few) for link in self.population]),
                              not_refused))
        return or_(*parts) if parts else false()


def _union(selects: list[Select]) -> Select:
    return selects[0] if len(selects) == 1 else union(*selects)  # type: ignore[return-value]


def _target_terms(refs: Iterable[str], *, hidden: bool = False, table: FromClause = REF
                  ) -> list[ColumnElement[bool]]:
    """One test of ``search_reference``'s (or its alias ``table``'s) target per resource type
    of ``refs``; ``hidden``: written so that no index is chosen for it (``Link.anchored``)."""
    by_type: dict[str, list[str]] = {}
    for ref in refs:
        rtype, _, rid = ref.partition("/")
        if rid:
            by_type.setdefault(rtype, []).append(rid)
    target = unindexed(table.c.target_id) if hidden else table.c.target_id
    return [and_(table.c.target_type == t, target.in_(ids)) for t, ids in by_type.items()]


def _targets(refs: Iterable[str]) -> ColumnElement[bool]:
    terms = _target_terms(refs)
    return or_(*terms) if terms else false()


def _sent_to(resource_type: str, params: tuple[str, ...], refs: Sequence[str],
             ids: ColumnElement[str]) -> ColumnElement[bool]:
    """The ``resource_type`` row ``ids`` (a correlated id column) names one of ``refs`` in one
    of ``params``: ``_referring`` written for one row, read through its own references."""
    ref = REF.alias()
    return exists(select(literal(1)).where(
        ref.c.resource_type == resource_type, ref.c.resource_id == ids,
        unindexed(ref.c.param).in_(params),
        or_(*_target_terms(refs, hidden=True, table=ref))))


def _referring(resource_type: str, params: str | tuple[str, ...],
               terms: list[ColumnElement[bool]], *conditions: ColumnElement[bool]
               ) -> Select | CompoundSelect:
    """Ids of ``resource_type`` whose ``params`` (one, or any of several) match one of the
    target ``terms``: a UNION of one index lookup per parameter and term, where one OR of the
    terms would read every row of the parameter (SQLite then scans the county's referrals,
    e.g., to find one centre's)."""
    if not terms:
        return select(REF.c.resource_id).where(false())
    return _union([select(REF.c.resource_id).where(
        REF.c.resource_type == resource_type, REF.c.param == param, term, *conditions)
        for param in ((params,) if isinstance(params, str) else params) for term in terms])


def _having_status(resource_type: str, ids: ColumnElement[str], codes: Iterable[str]
                   ) -> ColumnElement[bool]:
    """Resource ``ids`` (a column of ``resource_type`` ids) has one of the status ``codes``.
    A semi-join on the row at hand, not an INTERSECT with every resource of that status:
    the county's set would be built for each statement, even to check one patient."""
    tok = TOK.alias()
    return exists(select(literal(1)).where(
        tok.c.resource_type == resource_type, tok.c.resource_id == ids,
        unindexed(tok.c.param) == "status", unindexed(tok.c.code).in_(list(codes))))


def _patients_of(resource_type: str, param: str, resource_ids: Select | CompoundSelect | list[str],
                 per_row: Cond | None = None) -> Link:
    """Patients named in ``param`` of the ``resource_type`` rows ``resource_ids``; ``per_row``,
    when given, is the same choice of rows as a test of one row's id (``Link.per_row``)."""
    ref = REF.alias()

    def rows(test: ColumnElement[bool]) -> Select:
        return select(ref.c.target_id).where(
            ref.c.resource_type == resource_type, ref.c.param == param,
            ref.c.target_type == "Patient", test)
    return Link(rows(ref.c.resource_id.in_(resource_ids)),
                per_row=rows(per_row(ref.c.resource_id)) if per_row is not None else None)


def _patients_sent_to(resource_type: str, params: tuple[str, ...], refs: Sequence[str],
                      patient: str, live: Cond) -> Link:
    """Patients named in ``patient`` of the ``resource_type`` rows whose ``params`` name one of
    ``refs`` and that pass ``live`` (a test of a row's id column). Its ``per_row`` form reads
    the patient's own rows of that type and tests each (a few index lookups) instead of every
    row sent to ``refs`` in the county (a centre's referrals of all time: 8,731 Tasks probed
    for their date and status at 1,000,000 residents, ~50 ms in each GP search)."""
    def chosen(ids: ColumnElement[str]) -> ColumnElement[bool]:
        return and_(_sent_to(resource_type, params, refs, ids), live(ids))
    sent = _referring(resource_type, params, _target_terms(refs), live(REF.c.resource_id))
    return _patients_of(resource_type, patient, sent, chosen)


def managed_by(orgs: Iterable[str]) -> Link:
    """Patients whose managingOrganization is one of ``orgs`` (ids)."""
    def rows(target: ColumnElement[str]) -> Select:
        return select(REF.c.resource_id).where(
            REF.c.resource_type == "Patient", REF.c.param == "organization",
            REF.c.target_type == "Organization", target.in_(sorted(orgs)))
    return Link(rows(REF.c.target_id), rows(unindexed(REF.c.target_id)))


def teams_of(conn: Connection, role: str | None) -> tuple[list[str], list[str]]:
    """The CareTeams (ids) the user's PractitionerRole takes part in, and every
    PractitionerRole (ids) taking part in one of them: read once when the view is built, so
    that the view's SQL carries them as lists (as nested selects they were repeated in every
    link and made PostgreSQL plan each search for several milliseconds)."""
    role_id = role.partition("/")[2] if role else ""
    if not role_id:
        return [], []
    teams = sorted(conn.execute(select(REF.c.resource_id).where(
        REF.c.resource_type == "CareTeam", REF.c.param == "participant",
        REF.c.target_type == "PractitionerRole", REF.c.target_id == role_id)).scalars())
    if not teams:
        return [], []
    mates = sorted(set(conn.execute(select(REF.c.target_id).where(
        REF.c.resource_type == "CareTeam", REF.c.param == "participant",
        REF.c.target_type == "PractitionerRole", REF.c.resource_id.in_(teams),
        REF.c.target_id.is_not(None))).scalars()))
    return teams, mates


def care_links(practitioner: str | None, role: str | None, teams: Sequence[str] = (),
               teammates: Sequence[str] = ()) -> list[Link]:
    """Patients of the user's own care: GP, care manager, care teams. ``teams`` and
    ``teammates`` are ``teams_of(role)``."""
    own = [r for r in (practitioner, role) if r]
    own += [f"PractitionerRole/{m}" for m in teammates if f"PractitionerRole/{m}" != role]
    if not own:
        return []

    def gp(hidden: bool) -> Select:
        return select(REF.c.resource_id).where(
            REF.c.resource_type == "Patient", REF.c.param == "general-practitioner",
            or_(*_target_terms(own, hidden=hidden)))

    def active(ids: ColumnElement[str]) -> ColumnElement[bool]:
        return _having_status("EpisodeOfCare", ids, ["active"])
    # R4's care-manager indexes Practitioner references only; the platform's
    # care-manager-role (kangqiao.fhir.search.params) the PractitionerRole ones the county uses
    out = [Link(gp(False), gp(True)), _patients_sent_to(
        "EpisodeOfCare", ("care-manager", "care-manager-role"), own, "patient", active)]
    if teams:
        out.append(_patients_of("CareTeam", "patient", list(teams)))
    return out


# (type, recipient param, date param, patient param, live statuses) of a referral
REFERRALS = (
    ("ServiceRequest", "performer", "authored", "subject", ("active", "on-hold", "completed")),
    ("Task", "owner", "authored-on", "patient",
     ("requested", "received", "accepted", "ready", "in-progress", "on-hold", "completed")),
)


def referral_links(recipients: Iterable[str], now: datetime, days: int) -> list[Link]:
    """Patients referred to ``recipients`` (references) by a ServiceRequest or Task authored
    in the last ``days`` days and not cancelled."""
    since = now - timedelta(days=days)
    refs = list(recipients)
    # The referrals sent to ``recipients``, recent and live: semi-joins on each sent row (the
    # recipients' own referrals), not the county's recent or live ones.
    return [_patients_sent_to(rtype, (to,), refs, patient, _live_since(rtype, when, live, since))
            for rtype, to, when, patient, live in REFERRALS]


def _live_since(resource_type: str, when: str, live: tuple[str, ...], since: datetime) -> Cond:
    """A test of a referral's id: authored (``when``) since ``since`` and in a ``live`` status."""
    def test(ids: ColumnElement[str]) -> ColumnElement[bool]:
        dt = DT.alias()
        recent = exists(select(literal(1)).where(
            dt.c.resource_type == resource_type, dt.c.resource_id == ids,
            unindexed(dt.c.param) == when, dt.c.high >= since))
        return and_(recent, _having_status(resource_type, ids, live))
    return test


def refused_sharing() -> Select:
    """Patients with an active Consent whose provision denies sharing beyond the institutions
    that treat them (a join, so a check for one patient reads only that patient's consents)."""
    consent = R.alias("consent")
    ref = REF.alias()
    tok = TOK.alias()
    active = exists(select(literal(1)).where(
        tok.c.resource_type == "Consent", tok.c.resource_id == consent.c.id,
        tok.c.param == "status", tok.c.code == "active"))
    return select(ref.c.target_id).join(consent, and_(
        consent.c.resource_type == "Consent", consent.c.id == ref.c.resource_id)).where(
        ref.c.resource_type == "Consent", ref.c.param == "patient",
        ref.c.target_type == "Patient", ref.c.target_id.is_not(None),
        consent.c.deleted.is_(False),
        consent.c.content[("provision", "type")].as_string() == "deny", active)


# ---- rows of the resource table ------------------------------------------------------------


def rows_naming(cond: Cond, resource_type: str | None, excluded: frozenset[str], *,
                anchored: bool = False) -> ColumnElement[bool]:
    """Rows of ``resource`` that are a patient in view, or patient data naming one (through
    the CompartmentDefinition's parameters); types in ``excluded`` never match. ``anchored``
    reads the references of the row at hand (a probe per candidate) instead of collecting
    every row that names a patient in view."""
    comp = compartment()
    if resource_type == "Patient":
        return cond(R.c.id)
    if resource_type is not None:
        if resource_type in excluded or resource_type not in comp:
            return false()
        if anchored:
            ref = REF.alias()
            return exists(select(literal(1)).select_from(ref).where(
                ref.c.resource_type == resource_type, ref.c.resource_id == R.c.id,
                unindexed(ref.c.param).in_(comp[resource_type]),
                ref.c.target_type == "Patient", cond(ref.c.target_id)))
        return R.c.id.in_(select(REF.c.resource_id).where(
            REF.c.resource_type == resource_type, REF.c.param.in_(comp[resource_type]),
            REF.c.target_type == "Patient", cond(REF.c.target_id)))
    pairs = [(t, p) for t, params in comp.items() if t not in excluded for p in params]
    # an alias: the view's own selects read search_reference too, and a probe correlated on
    # the bare table would compare their rows with themselves
    ref = REF.alias()
    return or_(and_(R.c.resource_type == "Patient", cond(R.c.id)),
               tuple_(R.c.resource_type, R.c.id).in_(
                   select(ref.c.resource_type, ref.c.resource_id).where(
                       tuple_(ref.c.resource_type, ref.c.param).in_(pairs),
                       ref.c.target_type == "Patient", cond(ref.c.target_id))))


def naming_no_patient(types: frozenset[str]) -> ColumnElement[bool]:
    """Rows of ``types`` (patient-data types) that name no patient at all."""
    comp = compartment()
    pairs = [(t, p) for t in sorted(types) for p in comp.get(t, ())]
    return and_(R.c.resource_type.in_(sorted(types)), ~exists(select(literal(1)).where(
        REF.c.resource_type == R.c.resource_type, REF.c.resource_id == R.c.id,
        REF.c.target_type == "Patient", tuple_(REF.c.resource_type, REF.c.param).in_(pairs))))
