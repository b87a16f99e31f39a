"""What the workbench's patient page shows, read through one unit of work: identity (ID
number masked), problems, medications, a timeline of encounters, BP and glucose trends
against their targets, results from other institutions, the CDS cards and the protocol
state of each managed disease."""

from __future__ import annotations

from datetime import date
from typing import Any

from kangqiao.cds.cards import patient_cards
from kangqiao.chronic import service
from kangqiao.chronic.records import FASTING_GLUCOSE, codes, local_date
from kangqiao.chronic.rules import Disease
from kangqiao.chronic.rules.hypertension import bp_target
from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.store.store import UnitOfWork
from kangqiao.security import masking
from kangqiao.security.gate import Access
from kangqiao.web.i18n import MEDICATION_STATUS, status_label
from kangqiao.web.workbench_charts import Chart, Series, trend_chart

Json = dict[str, Any]
RESIDENT_ID = "https://kangqiao.example/fhir/sid/resident-id"
GLUCOSE_TARGET = 7.0  # fasting plasma glucose < 7.0 mmol/L (primary-care DM guideline)
ROWS = 100


def display_name(patient: Json) -> str:
    for name in patient.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        parts = [str(name.get("family") or ""), *map(str, name.get("given") or [])]
        if any(parts):
            return "".join(parts)
    return str(patient.get("id", ""))


def mask(value: str) -> str:
    """110101********1234: the same mask as the security layer's (a value it already masked
    for this user's role stays as it is)."""
    return masking.mask_id(value)


def mask_id(patient: Json) -> str:
    for ident in patient.get("identifier") or []:
        is_ni = "NI" in codes(ident.get("type"))
        if (ident.get("system") == RESIDENT_ID or is_ni) and ident.get("value"):
            return mask(str(ident["value"]))
    return ""


def _search(uow: UnitOfWork, rtype: str, params: list[tuple[str, str]]) -> list[Json]:
    page = uow.search(rtype, params, count=ROWS, total="none")
    return [s.content for s in page.items if s.content is not None]


def _text(concept: Json | None, *, with_code: bool = False) -> str:
    """What a doctor reads for a concept: its text, else its first coding's display (after
    its code for diagnoses, "I10 原发性高血压"), else the bare code."""
    concept = concept or {}
    if concept.get("text"):
        return str(concept["text"])
    for c in concept.get("coding") or []:
        code, display = c.get("code"), c.get("display")
        if display:
            return f"{code} {display}" if with_code and code else str(display)
        if code:
            return str(code)
    return ""


def _status_of(concept: Json | None, lang: str) -> str:
    found = codes(concept)
    return status_label(found[0], lang) if found else _text(concept)


def _value(obs: Json) -> str:
    q = obs.get("valueQuantity")
    if q and q.get("value") is not None:
        return f"{q['value']:g} {q.get('unit') or q.get('code') or ''}".strip()
    if obs.get("valueString"):
        return str(obs["valueString"])
    if obs.get("component"):
        vals = [str((c.get("valueQuantity") or {}).get("value", "")) for c in obs["component"]]
        return "/".join(vals)
    return _text(obs.get("valueCodeableConcept"))


def _org_name(uow: UnitOfWork, ref: str, cache: dict[str, str]) -> str:
    if ref not in cache:
        kind, _, oid = ref.partition("/")
        try:
            cache[ref] = str((uow.read(kind, oid).content or {}).get("name") or ref)
        except FhirError:
            cache[ref] = ref
    return cache[ref]


def _shared_results(uow: UnitOfWork, pid: str, access: Access, names: dict[str, str]
                    ) -> list[Json]:
    """DiagnosticReports and laboratory Observations performed by another organisation."""
    mine = access.organization
    rows: list[Json] = []
    found = _search(uow, "DiagnosticReport", [("patient", pid)]) + _search(
        uow, "Observation", [("patient", pid), ("category", "laboratory")])
    for res in found:
        orgs = [p["reference"] for p in res.get("performer") or []
                if str(p.get("reference", "")).startswith("Organization/")]
        other = [o for o in orgs if o != mine]
        if not other:
            continue
        when = res.get("effectiveDateTime") or res.get("issued")
        rows.append({"type": res["resourceType"], "id": res["id"], "name": _text(res.get("code")),
                     "date": local_date(when), "value": _value(res)
                     if res["resourceType"] == "Observation" else res.get("conclusion", ""),
                     "performer": _org_name(uow, other[0], names)})
    rows.sort(key=lambda r: r["date"] or date.min, reverse=True)
    return rows


def _timeline(uow: UnitOfWork, pid: str, lang: str, names: dict[str, str]) -> list[Json]:
    rows = []
    for enc in _search(uow, "Encounter", [("patient", pid)]):
        kinds = [_text(t) for t in enc.get("type") or []]
        where = (enc.get("serviceProvider") or {}).get("reference") or ""
        rows.append({"date": local_date((enc.get("period") or {}).get("start")),
                     "type": ", ".join(k for k in kinds if k) or _text(enc.get("class")),
                     "status": status_label(enc.get("status"), lang),
                     "where": _org_name(uow, where, names) if where else ""})
    rows.sort(key=lambda r: r["date"] or date.min, reverse=True)
    return rows[:20]


def _charts(state: service.ChronicState, today: date, en: bool) -> dict[str, Chart]:
    record = state.record
    bp = [(v.date, v.bp) for v in record.visits_of(Disease.HYPERTENSION) if v.bp is not None]
    target = bp_target(record.patient.age_on(today))
    sbp_label, dbp_label = ("SBP", "DBP") if en else ("收缩压", "舒张压")
    goal, day = ("target <", "date") if en else ("目标 <", "日期")
    out = {"bp": trend_chart(
        "Blood pressure (mmHg)" if en else "血压趋势（mmHg）",
        [Series(sbp_label, "#0b6e4f", [(d, float(b.systolic)) for d, b in bp]),
         Series(dbp_label, "#2680c2", [(d, float(b.diastolic)) for d, b in bp])],
        [(goal, float(target.systolic), 0), (goal, float(target.diastolic), 1)],
        "mmHg", "no readings" if en else "暂无血压记录", day)}
    glucose = {(lab.on, lab.value) for lab in record.labs if lab.code == FASTING_GLUCOSE}
    glucose |= {(v.date, v.fasting_glucose) for v in record.visits
                if v.fasting_glucose is not None}
    out["glucose"] = trend_chart(
        "Fasting glucose (mmol/L)" if en else "空腹血糖趋势（mmol/L）",
        [Series("FPG" if en else "空腹血糖", "#c65d21", sorted(glucose))],
        [(goal, GLUCOSE_TARGET, 0)], "mmol/L", "no readings" if en else "暂无血糖记录", day)
    return out


def patient_view(uow: UnitOfWork, pid: str, access: Access, today: date, en: bool,
                 base: str) -> dict[str, Any]:
    patient = uow.read("Patient", pid).content or {}  # 404 outside the user's view
    try:
        state: service.ChronicState | None = service.protocol_state_for(uow, pid, today)
    except FhirError as exc:
        if exc.status in (404, 410):
            raise
        state = None  # e.g. no birth date: the page still shows the record
    lang = "en" if en else "zh-CN"
    names: dict[str, str] = {}  # organisation names read once for the page
    conditions = [{"name": _text(c.get("code"), with_code=True),
                   "status": _status_of(c.get("clinicalStatus"), lang),
                   "since": c.get("onsetDateTime") or c.get("recordedDate") or ""}
                  for c in _search(uow, "Condition", [("patient", pid)])]
    meds = [{"name": _text(m.get("medicationCodeableConcept")) or
             str((m.get("medicationReference") or {}).get("display") or ""),
             "status": status_label(m.get("status"), lang, MEDICATION_STATUS),
             "dosage": "; ".join(
                 str(d.get("text")) for d in m.get("dosageInstruction") or [] if d.get("text")),
             "authored": str(m.get("authoredOn") or "")[:10]}
            for m in _search(uow, "MedicationRequest", [("patient", pid)])]
    protocol = []
    if state is not None:
        for disease, s in sorted(state.states.items(), key=lambda kv: kv[0].value, reverse=True):
            check = state.annual_checks[disease]
            protocol.append({"disease": disease.value, "state": s, "check": check,
                             "last": s.last})
    return {
        "patient": patient, "name": display_name(patient), "id_number": mask_id(patient),
        "age": state.record.patient.age_on(today) if state else None,
        "conditions": conditions, "medications": meds, "timeline": _timeline(uow, pid, lang, names),
        "charts": _charts(state, today, en) if state else {},
        "shared": _shared_results(uow, pid, access, names),
        "cards": patient_cards(state.record, today, en, base) if state else [],
        "protocol": protocol,
        "enrolled": [d.value for d in state.record.episodes] if state else [],
    }
