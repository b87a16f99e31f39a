"""The family doctor's work lists, computed from the store with set-based SQL.

Design (why no derived table): every list follows from a handful of facts per managed
patient that the search index already holds - the management EpisodeOfCare (disease, start),
the latest follow-up Encounter of each disease, the Observations and form of that one
encounter, recent referrals, active I10/E11 Conditions. So each fact is one indexed query
over ``search_token`` / ``search_reference`` / ``search_date`` for all patients of the scope
at once, and the pure rules (``protocol_state``, ``annual_check_due``) then run in Python per
patient. Nothing is cached, so a list is never stale and there is no outbox consumer to
keep in step (a derived table would also need a migration).

The next due date follows from the latest visit alone (NBPHS-2017 HTN 4 / DM 4: routine
3 months when controlled, otherwise 2 weeks - a referral after two uncontrolled visits is
also 2 weeks), so only that visit is read; ``tests/chronic/test_worklists.py`` checks this
against the full-history rules on a synthetic county.

Security: the scope's patients are intersected with the gate's ``search_filter`` for
Patient inside the SQL, so no list names or counts a patient the caller may not see. Index
facts of other types (episode start, encounter date and type, referral date, diagnosis code)
are reached only through those patients' references - the policy's own rule for patient data -
and every resource whose content is read (Observations, forms) passes ``may_read``. The
per-type ``search_filter`` is not re-applied to the index-only facts: with the policy each
costs a materialised subquery of 80-250 ms at 20,000 residents, which alone breaks the
300 ms budget; the consequence is that a token whose SMART scopes allow Patient but not,
say, Encounter still sees the dates on its own patients' lists. ``may_read`` needs each
resource's patient to be visible: the gate decides that for all the scope's patients in one
query (``Policy.warm_patients``) rather than one probe per patient (460 probes were half of
a township's list).

Speed (bench/worklist.py, docs/benchmarks.md): id lists go to the database as one bound
JSON / array parameter, not as an ``IN`` of thousands of parameters that SQLAlchemy
re-renders on every execution. A doctor's or team's episodes are index lookups (the
platform's EpisodeOfCare ``care-manager-role`` / ``team`` parameters) instead of a read of
every active episode's JSON, which grew with the county.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Select,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
    union,
)

from kangqiao.chronic.records import (
    COUNTY_TZ,
    EPISODE_TYPE,
    FOLLOWUP_TYPE,
    HEALTH_CHECK_TYPE,
    ICD10,
    ICD_PREFIXES,
    measurements,
    visit_from_resources,
)
from kangqiao.chronic.rules import (
    ControlStatus,
    CountyPolicy,
    Decision,
    Disease,
    Patient,
    ProtocolState,
    add_months,
    annual_check_due,
    protocol_state,
)
from kangqiao.chronic.rules import citations as cite
from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.db import Member, member_of
from kangqiao.fhir.store.store import UnitOfWork

R, REF, TOK, DT = schema.resource, schema.search_reference, schema.search_token, schema.search_date
ScopeKind = Literal["doctor", "team", "organization"]
CHUNK = 5000  # bound parameters per IN list (SQLite allows 32,766)
SCREENING_AGE = 35  # NBPHS-2017 HTN 1 / DM 1: residents aged 35+ are managed
LISTS = ("due_this_week", "overdue", "uncontrolled", "recheck_2w", "referral_follow_up",
         "not_seen_3m", "not_seen_12m", "annual_check_due", "awaiting_enrolment")


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose patients: a doctor (``PractitionerRole/..``: their general-practitioner
    patients, episodes they manage, and their family-doctor teams' episodes), a team
    (``CareTeam/..``), or an organisation with everything below it (``Organization/..``;
    a township is its health centre's subtree)."""

    kind: ScopeKind
    ref: str

    def __post_init__(self) -> None:
        expected = {"doctor": "PractitionerRole", "team": "CareTeam",
                    "organization": "Organization"}[self.kind]
        if not self.ref.startswith(f"{expected}/") or not self.ref.partition("/")[2]:
            raise FhirError.of(400, "invalid", f"a {self.kind} scope is {expected}/<id>")

    @property
    def id(self) -> str:
        return self.ref.partition("/")[2]


@dataclass(frozen=True, slots=True)
class Entry:
    patient_id: str
    disease: Disease | None
    decision: Decision  # why the patient is on the list (with its clause)
    due: date | None = None
    days_overdue: int = 0
    risk: int = 0  # 2 high (HEARTS), 1 uncontrolled, 0 otherwise
    last_visit: date | None = None


@dataclass
class Worklists:
    scope: Scope
    today: date
    patients: int = 0  # patients of the scope the caller may see
    lists: dict[str, list[Entry]] = field(default_factory=lambda: {k: [] for k in LISTS})

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.lists.items()}


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start:start + CHUNK])


def local_day(low: datetime) -> date:
    """Index datetimes are naive UTC; a date without a time is stored as UTC midnight, which
    is the same calendar day in the county's UTC+8, so one conversion serves both."""
    return low.replace(tzinfo=UTC).astimezone(COUNTY_TZ).date()


def _episode_patients(*episodes: Select[Any]) -> Select[Any]:
    """Patients of the active EpisodeOfCare rows among ``episodes`` (selects of ids), all
    by index: the doctor's and team's episodes come from the platform's ``care-manager-role``
    / ``team`` parameters (params.PLATFORM_PARAMS), their status is tested per episode, and
    their patients are read by episode id (``_probe`` hides param and target type, whose
    indexes would have SQLite read every episode's, or every Patient reference's, row)."""
    status = TOK.alias("s")
    active = exists(select(literal(1)).where(
        status.c.resource_type == "EpisodeOfCare", status.c.resource_id == REF.c.resource_id,
        _probe(status.c.param) == "status", _probe(status.c.code) == "active"))
    ids = union(*episodes) if len(episodes) > 1 else episodes[0]
    return select(REF.c.target_id).where(
        REF.c.resource_type == "EpisodeOfCare", _probe(REF.c.param) == "patient",
        _probe(REF.c.target_type) == "Patient", REF.c.resource_id.in_(ids), active)


def _subtree(uow: UnitOfWork, org_id: str) -> list[str]:
    found, frontier = {org_id}, [org_id]
    while frontier:
        rows = uow.conn.execute(select(REF.c.resource_id).where(
            REF.c.resource_type == "Organization", REF.c.param == "partof",
            REF.c.target_type == "Organization", REF.c.target_id.in_(frontier))).scalars()
        frontier = [r for r in rows if r not in found]
        found.update(frontier)
    return sorted(found)


def _referencing(resource_type: str, param: str, target_type: str, targets: list[str]
                 ) -> Select[Any]:
    return select(REF.c.resource_id).where(
        REF.c.resource_type == resource_type, REF.c.param == param,
        REF.c.target_type == target_type, REF.c.target_id.in_(targets))


def scope_patients(uow: UnitOfWork, scope: Scope) -> list[str]:
    """Ids of the scope's patients that the caller may see (gate filter inside the SQL)."""
    uow.flush()
    parts: list[Select[Any]] = []
    if scope.kind == "doctor":
        parts.append(_referencing("Patient", "general-practitioner", "PractitionerRole",
                                  [scope.id]))
        teams = list(uow.conn.execute(
            _referencing("CareTeam", "participant", "PractitionerRole", [scope.id])).scalars())
        parts.append(_episode_patients(
            _referencing("EpisodeOfCare", "care-manager-role", "PractitionerRole", [scope.id]),
            _referencing("EpisodeOfCare", "team", "CareTeam", teams)))
    elif scope.kind == "team":
        parts.append(_episode_patients(_referencing("EpisodeOfCare", "team", "CareTeam",
                                                    [scope.id])))
    else:
        orgs = _subtree(uow, scope.id)
        parts.append(_referencing("Patient", "organization", "Organization", orgs))
        managed = _referencing("EpisodeOfCare", "organization", "Organization", orgs)
        parts.append(select(REF.c.target_id).where(
            REF.c.resource_type == "EpisodeOfCare", _probe(REF.c.param) == "patient",
            REF.c.resource_id.in_(managed)))
    members = union(*parts) if len(parts) > 1 else parts[0]
    stmt = select(R.c.id).where(R.c.resource_type == "Patient", R.c.deleted.is_(False),
                                R.c.id.in_(members))
    visible = getattr(uow.gate, "visible_patients", None)
    if callable(visible):
        # The gate decides the scope's patients once, anchored on their ids (its patient
        # view tested per patient, not listed for the whole county), and keeps the answers
        # for ``may_read`` of their resources below.
        return list(visible(uow.access, uow.conn.execute(stmt).scalars()))
    return sorted(uow.conn.execute(stmt.where(*uow._visible("Patient"))).scalars())


# ---- facts about the scope's patients, one set-based query each ------------------------------


@dataclass
class _Facts:
    birth: dict[str, date] = field(default_factory=dict)
    enrolled: dict[tuple[str, Disease], date] = field(default_factory=dict)
    last: dict[tuple[str, str], tuple[str, date]] = field(default_factory=dict)  # enc, day
    contents: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    forms: dict[str, dict[str, Any]] = field(default_factory=dict)
    referred: dict[str, date] = field(default_factory=dict)  # latest up-referral per patient
    diagnosed: dict[str, set[Disease]] = field(default_factory=lambda: defaultdict(set))



def _facts(uow: UnitOfWork, ids: list[str], today: date) -> _Facts:
    facts = _Facts()
    conn = uow.conn
    kinds = {code: d for d, code in EPISODE_TYPE.items()}
    visit_codes = [*FOLLOWUP_TYPE.values(), HEALTH_CHECK_TYPE]
    # End of the local day ``today`` as the index's naive UTC.
    until = datetime.combine(today + timedelta(days=1), datetime.min.time(), COUNTY_TZ
                             ).astimezone(UTC).replace(tzinfo=None)
    for chunk_ids in _chunks(ids):
        chunk = member_of(conn, chunk_ids)
        for pid, low in conn.execute(select(DT.c.resource_id, DT.c.low).where(
                DT.c.resource_type == "Patient", DT.c.param == "birthdate",
                chunk(DT.c.resource_id))):
            facts.birth[pid] = low.date()
        for pid, code, low in conn.execute(_indexed(
                "EpisodeOfCare", "patient", chunk, ("type", list(kinds)),
                ("status", ["active"]), "date")):
            key = (pid, kinds[code])
            facts.enrolled[key] = min(local_day(low), facts.enrolled.get(key, date.max))
        # The latest visit on or before ``today`` (a list for a past day ignores later ones).
        inner = _indexed("Encounter", "patient", chunk, ("type", visit_codes),
                         None, "date", ranked=True, until=until).subquery()
        for pid, code, low, enc in conn.execute(select(
                inner.c.patient, inner.c.code, inner.c.low, inner.c.rid).where(inner.c.rn == 1)):
            facts.last[(pid, code)] = (enc, local_day(low))
        since = datetime.combine(add_months(today, -3), datetime.min.time())
        for pid, _code, low in conn.execute(_indexed(
                "ServiceRequest", "patient", chunk, ("category", ["referral-up"]),
                ("status", ["active", "on-hold", "completed"]), "authored", since=since,
                until=until)):
            facts.referred[pid] = max(local_day(low), facts.referred.get(pid, date.min))
        for pid, code in conn.execute(_conditions(chunk)):
            disease = next(d for d, p in ICD_PREFIXES.items() if code.startswith(p))
            facts.diagnosed[pid].add(disease)
    encounters = sorted({enc for enc, _ in facts.last.values()})
    # ``may_read`` below (and the page's reads of the listed patients) asks whether each
    # resource's patient is visible: decided for all the scope's patients at once when the
    # gate can (one query, not one per patient; the cost is the gate's view, not the ids).
    warm = getattr(uow.gate, "warm_patients", None)
    if callable(warm):
        warm(uow.access, ids)
    for enc_ids in _chunks(encounters):
        chunk = member_of(conn, enc_ids)
        for rtype in ("Observation", "QuestionnaireResponse"):
            link = REF.alias("link")
            stmt = select(link.c.target_id, R.c.content).join(R, and_(
                R.c.resource_type == rtype, R.c.id == link.c.resource_id,
                R.c.deleted.is_(False))).where(
                link.c.resource_type == rtype, link.c.param == "encounter",
                link.c.target_type == "Encounter", chunk(link.c.target_id))
            for enc, content in conn.execute(stmt):
                if not uow.gate.may_read(uow.access, content):
                    continue
                if rtype == "Observation":
                    facts.contents[enc].append(content)
                elif content.get("status") in ("completed", "amended"):
                    facts.forms[enc] = content
    return facts


def _probe(column: Any) -> Any:
    """``column`` made unusable for an index lookup. Without ANALYZE statistics SQLite would
    drive these joins by the (type, param, code) index and scan every row with that code for
    each patient; hiding the column leaves it the (resource_type, resource_id) index, so the
    join runs from the scope's patients outwards. PostgreSQL plans the same either way."""
    return column.concat("")


def _indexed(rtype: str, patient_param: str, patients: Member,
             token: tuple[str, list[str]], status: tuple[str, list[str]] | None,
             date_param: str, *, ranked: bool = False, since: datetime | None = None,
             until: datetime | None = None) -> Select[Any]:
    """(patient, token code, date low[, id, rank]) of ``rtype`` rows naming ``patients``,
    joined on the index tables only."""
    pat, tok, dt = REF.alias("p"), TOK.alias("t"), DT.alias("d")
    cols: list[Any] = [pat.c.target_id.label("patient"), tok.c.code.label("code"),
                       dt.c.low.label("low")]
    if ranked:
        cols += [tok.c.resource_id.label("rid"), func.row_number().over(
            partition_by=(pat.c.target_id, tok.c.code),
            order_by=(dt.c.low.desc(), tok.c.resource_id.desc())).label("rn")]
    stmt = (
        select(*cols)
        .select_from(pat)
        .join(tok, and_(tok.c.resource_type == rtype, tok.c.resource_id == pat.c.resource_id,
                        _probe(tok.c.param) == token[0], _probe(tok.c.code).in_(token[1])))
        .join(dt, and_(dt.c.resource_type == rtype, dt.c.resource_id == pat.c.resource_id,
                       _probe(dt.c.param) == date_param))
        .where(pat.c.resource_type == rtype, pat.c.param == patient_param,
               pat.c.target_type == "Patient", patients(pat.c.target_id))
    )
    if status is not None:
        st = TOK.alias("s")
        stmt = stmt.join(st, and_(st.c.resource_type == rtype,
                                  st.c.resource_id == pat.c.resource_id,
                                  _probe(st.c.param) == status[0],
                                  _probe(st.c.code).in_(status[1])))
    if since is not None:
        stmt = stmt.where(dt.c.low >= since)
    if until is not None:
        stmt = stmt.where(dt.c.low < until)
    return stmt


def _conditions(patients: Member) -> Select[Any]:
    pat, tok, st = REF.alias("p"), TOK.alias("t"), TOK.alias("s")
    prefixes = [p for ps in ICD_PREFIXES.values() for p in ps]
    return (
        select(pat.c.target_id, tok.c.code)
        .select_from(pat)
        .join(tok, and_(tok.c.resource_type == "Condition", _probe(tok.c.param) == "code",
                        tok.c.resource_id == pat.c.resource_id, tok.c.system == ICD10,
                        or_(*[_probe(tok.c.code).startswith(p) for p in prefixes])))
        .join(st, and_(st.c.resource_type == "Condition",
                       _probe(st.c.param) == "clinical-status",
                       st.c.resource_id == pat.c.resource_id,
                       _probe(st.c.code).in_(["active", "recurrence", "relapse"])))
        .where(pat.c.resource_type == "Condition", pat.c.param == "patient",
               pat.c.target_type == "Patient", patients(pat.c.target_id))
    )


# ---- the lists ---------------------------------------------------------------------------


def _risk(state: ProtocolState) -> int:
    """HEARTS overdue-list order: high risk first (BP >= 180/110, fasting glucose >= 200 mg/dL
    = 11.1 mmol/L, HbA1c >= 9 %, or an urgent finding), then the uncontrolled."""
    last = state.last
    if last is None:
        return 0
    v = last.visit
    high = bool(last.urgent) or (v.bp is not None and (v.bp.systolic >= 180
                                                      or v.bp.diastolic >= 110)) or (
        v.fasting_glucose is not None and v.fasting_glucose >= 11.1) or (
        v.hba1c is not None and v.hba1c >= 9.0)
    return 2 if high else 1 if last.control is ControlStatus.UNCONTROLLED else 0


def _decision(code: str, zh: str, en: str, why_zh: str, why_en: str, where: cite.Citation,
              due: date | None = None) -> Decision:
    return Decision(code, zh, en, why_zh, why_en, where, due, "warning")


def build(uow: UnitOfWork, scope: Scope, today: date, policy: CountyPolicy | None = None
          ) -> Worklists:
    """Every list of ``scope`` as of ``today`` (see the module doc for how)."""
    policy = policy or CountyPolicy()
    ids = scope_patients(uow, scope)
    out = Worklists(scope, today, len(ids))
    facts = _facts(uow, ids, today)
    lists = out.lists
    week_end = today + timedelta(days=7)
    three, twelve = add_months(today, -3), add_months(today, -12)
    for pid in ids:
        birth = facts.birth.get(pid)
        if birth is None:
            continue  # no birth date: no age-specific target can be applied
        managed = {d: facts.enrolled[(pid, d)] for d in Disease
                   if facts.enrolled.get((pid, d), date.max) <= today}
        patient = Patient(birth, conditions=frozenset(managed) | facts.diagnosed.get(pid, set()))
        seen: list[date] = []
        referral_listed = False
        for disease, enrolled_on in managed.items():
            last = facts.last.get((pid, FOLLOWUP_TYPE[disease]))
            visits = []
            if last is not None:
                enc, day = last
                seen.append(day)
                visits.append(visit_from_resources(disease, day, None, measurements(
                    facts.contents.get(enc, [])), facts.forms.get(enc)))
            state = protocol_state(patient, visits, disease, today, enrolled_on, policy)
            entry = Entry(pid, disease, state.decision, state.next_due, state.overdue_days,
                          _risk(state), last[1] if last else None)
            if today <= state.next_due < week_end:
                lists["due_this_week"].append(entry)
            if state.overdue:
                lists["overdue"].append(entry)
            if state.last is not None and state.last.control is ControlStatus.UNCONTROLLED:
                lists["uncontrolled"].append(Entry(
                    pid, disease, state.last.control_decision, state.next_due,
                    state.overdue_days, entry.risk, entry.last_visit))
            code = state.decision.code
            if code.endswith((".next.two-weeks", ".next.measure")):
                lists["recheck_2w"].append(entry)
            if code.endswith(".next.referral-follow-up"):
                lists["referral_follow_up"].append(entry)
                referral_listed = True
        if not managed:
            _awaiting(lists, pid, patient, today, facts)
            continue
        _referral_made(lists, pid, facts, seen, today, policy, referral_listed)
        _not_seen(lists, pid, min(managed.values()), max(seen, default=None), three, twelve)
        check = facts.last.get((pid, HEALTH_CHECK_TYPE))
        first = min(managed)
        due = annual_check_due(check[1] if check else None, today, first, policy)
        if due.code.endswith(".due"):
            lists["annual_check_due"].append(Entry(pid, first, due, due.due_date,
                                                   last_visit=check[1] if check else None))
        _awaiting(lists, pid, patient, today, facts, managed)
    lists["overdue"].sort(key=lambda e: (-e.risk, -e.days_overdue, e.patient_id))
    lists["uncontrolled"].sort(key=lambda e: (-e.risk, e.due or today, e.patient_id))
    for name in ("due_this_week", "recheck_2w", "referral_follow_up"):
        lists[name].sort(key=lambda e: (e.due or today, e.patient_id))
    for name in ("not_seen_3m", "not_seen_12m"):
        lists[name].sort(key=lambda e: (e.last_visit or date.min, e.patient_id))
    return out


def _referral_made(lists: dict[str, list[Entry]], pid: str, facts: _Facts, seen: list[date],
                   today: date, policy: CountyPolicy, listed: bool) -> None:
    """An up-referral with no follow-up since it was made: the standard asks the clinic to
    follow it up within 2 weeks (NBPHS-2017 HTN 4(3) / DM 4)."""
    referred = facts.referred.get(pid)
    if listed or referred is None or any(day > referred for day in seen):
        return
    due = referred + timedelta(days=policy.short_interval_days)
    lists["referral_follow_up"].append(Entry(pid, None, _decision(
        "referral.follow-up", "转诊后随访", "Referral follow-up",
        f"{referred} 已转诊，2周内主动随访转诊情况。",
        f"Referred on {referred}: follow up the referral within 2 weeks.",
        cite.HTN_REFER, due), due, max(0, (today - due).days)))


def _not_seen(lists: dict[str, list[Entry]], pid: str, enrolled: date, last: date | None,
              three: date, twelve: date) -> None:
    """HEARTS cohort: missed visit (none in 3 months) and lost to follow-up (none in 12),
    counted for patients registered at least that long (a newly enrolled patient is not
    'lost')."""
    if enrolled > three or (last is not None and last > three):
        return
    if (last is None or last <= twelve) and enrolled <= twelve:
        lists["not_seen_12m"].append(Entry(pid, None, _decision(
            "hearts.lost-to-follow-up", "失访（12个月无随访）", "Lost to follow-up",
            "12个月内无随访。", "No follow-up in 12 months.", cite.HEARTS_COHORT),
            last_visit=last))
    else:
        lists["not_seen_3m"].append(Entry(pid, None, _decision(
            "hearts.missed-visit", "漏访（3个月无随访）", "Missed visit (3 months)",
            "3个月内无随访。", "No follow-up in 3 months.", cite.HEARTS_COHORT),
            last_visit=last))


def _awaiting(lists: dict[str, list[Entry]], pid: str, patient: Patient, today: date,
              facts: _Facts, managed: dict[Disease, date] | None = None) -> None:
    """Diagnosed (active Condition) but not enrolled: NBPHS-2017 HTN 2 (confirmed ->
    enrolled in management) for residents 35 and over (HTN 1 / DM 1)."""
    if patient.age_on(today) < SCREENING_AGE:
        return
    for disease in sorted(facts.diagnosed.get(pid, set()) - set(managed or {})):
        where = cite.HTN_SCREENING if disease is Disease.HYPERTENSION else cite.DM_WHO
        lists["awaiting_enrolment"].append(Entry(pid, disease, _decision(
            f"{disease.value}.enrolment.due", "待纳入管理", "Awaiting enrolment",
            "已确诊，尚未纳入患者健康管理。", "Diagnosed and not yet enrolled in management.",
            where, today), today))
