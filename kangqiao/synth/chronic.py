"""Hypertension and type 2 diabetes: prevalence, awareness/treatment/control, management
(EpisodeOfCare + CarePlan), quarterly follow-ups with BP and glucose readings following
each patient's control trajectory, medications and county-hospital labs."""

from __future__ import annotations

import random
from datetime import date, timedelta

from kangqiao.synth.common import (
    COND_CATEGORY,
    COND_CLINICAL,
    COND_VER,
    CS_CAREPLAN_CATEGORY,
    CS_ENCOUNTER_TYPE,
    CS_EPISODE_TYPE,
    ICD10,
    Resource,
    concept,
    dt,
    ref,
    weighted,
)
from kangqiao.synth.context import Ctx, pick_day
from kangqiao.synth.devices import home_monitoring
from kangqiao.synth.encounters import appointment, encounter, referral, teleconsultation
from kangqiao.synth.institutions import Staff
from kangqiao.synth.labs import annual_labs
from kangqiao.synth.medications import Drug, add_on, initial_regimen, medication_request
from kangqiao.synth.prevalence import (
    COMORBID_RR,
    DM_SHAPE,
    HTN_SHAPE,
    Disease,
    decide,
    scales,
    shape,
)
from kangqiao.synth.residents import Person
from kangqiao.synth.vitals import VitalsWriter

HTN_CODE = ("I10", "Essential (primary) hypertension", "原发性高血压")
DM_CODE = ("E11", "Type 2 diabetes mellitus", "2型糖尿病")
ADHERENCE = [("regular", 0.55), ("irregular", 0.30), ("lapsed", 0.15)]


def chronic_care(ctx: Ctx, rng: random.Random, person: Person) -> list[Resource]:
    """Decide disease status for an adult and emit the whole chronic-care history."""
    if person.age < 18:
        return []
    kh, kd = scales()
    p_htn = min(0.9, kh * shape(HTN_SHAPE, person.age))
    p_dm = min(0.9, kd * shape(DM_SHAPE, person.age))
    has_htn = rng.random() < p_htn
    p_dm_given = (
        min(0.95, COMORBID_RR * p_dm)
        if has_htn
        else max(0.0, (p_dm - p_htn * min(0.95, COMORBID_RR * p_dm)) / (1 - p_htn))
    )
    has_dm = rng.random() < p_dm_given
    diseases = []
    if has_htn:
        diseases.append(decide(rng, "htn", person.age))
    if has_dm:
        diseases.append(decide(rng, "dm", person.age))
    if not diseases:
        return []
    out: list[Resource] = []
    place = person.place
    for d in diseases:
        ctx.truth.record(
            "chronic",
            {
                "patient": person.pid,
                "disease": d.code,
                "aware": d.aware,
                "treated": d.treated,
                "managed": d.managed,
                "trajectory": d.trajectory,
            },
        )
        if not d.aware:
            continue
        years = rng.uniform(0.1, max(0.2, min(15.0, person.age - 25)))
        d.diagnosed = ctx.end - timedelta(days=int(years * 365))
        d.condition_id = ctx.ids.next("cond")
        recorder = (
            rng.choice(place.centre.gps)
            if d.managed
            else rng.choice(
                ctx.inst.specialists["cardiology" if d.code == "htn" else "endocrinology"]
            )
        )
        code, display, text = HTN_CODE if d.code == "htn" else DM_CODE
        out.append(
            {
                "resourceType": "Condition",
                "id": d.condition_id,
                "clinicalStatus": concept(COND_CLINICAL, "active", "Active"),
                "verificationStatus": concept(COND_VER, "confirmed", "Confirmed"),
                "category": [concept(COND_CATEGORY, "problem-list-item", "Problem List Item")],
                "code": concept(ICD10, code, display, text=text),
                "subject": ref("Patient", person.pid),
                "onsetDateTime": d.diagnosed.isoformat(),
                "recordedDate": dt(d.diagnosed, 10 * 60),
                "recorder": ref("PractitionerRole", recorder.role_id, recorder.name),
            }
        )
    managed = [d for d in diseases if d.managed]
    person.facts["diseases"] = diseases
    for d in managed:
        assert d.diagnosed is not None
        d.enrolled = d.diagnosed + timedelta(days=rng.randint(0, 60))
        if d.enrolled >= ctx.end:
            d.enrolled = ctx.end - timedelta(days=1)
        out += _enrolment(ctx, person, d)
    prescriber = place.team.leader
    regimens: dict[str, list[Drug]] = {}
    active_mr: dict[str, list[Resource]] = {}
    for d in diseases:
        if d.treated:
            assert d.diagnosed is not None
            regimens[d.code] = initial_regimen(rng, d.code)
            who = (
                prescriber
                if d.managed
                else rng.choice(
                    ctx.inst.specialists["cardiology" if d.code == "htn" else "endocrinology"]
                )
            )
            active_mr[d.code] = [
                medication_request(
                    ctx, person, drug, d.enrolled or d.diagnosed, who, d.condition_id
                )
                for drug in regimens[d.code]
            ]
    if managed:
        out += _followups(ctx, rng, person, managed, regimens, active_mr)
        dm = next((d for d in managed if d.code == "dm"), None)
        a1c = {"start": 0.6 * dm.start_value + 2.6, "end": 0.6 * dm.end_value + 2.6} if dm else {}
        out += annual_labs(
            ctx, rng, person, min(d.enrolled or ctx.end for d in managed), dm is not None, a1c
        )
    for mrs in active_mr.values():
        out += mrs
    return out


def _enrolment(ctx: Ctx, person: Person, d: Disease) -> list[Resource]:
    assert d.enrolled is not None
    place = person.place
    d.episode_id = ctx.ids.next("eoc")
    label = "高血压患者健康管理" if d.code == "htn" else "2型糖尿病患者健康管理"
    kind = f"{d.code}-management"
    episode: Resource = {
        "resourceType": "EpisodeOfCare",
        "id": d.episode_id,
        "status": "active",
        "type": [concept(CS_EPISODE_TYPE, kind, label)],
        "diagnosis": [{"condition": ref("Condition", d.condition_id), "rank": 1}],
        "patient": ref("Patient", person.pid),
        "managingOrganization": ref("Organization", place.centre.org_id),
        "period": {"start": d.enrolled.isoformat()},
        "careManager": ref("PractitionerRole", place.team.leader.role_id, place.team.leader.name),
        "team": [ref("CareTeam", place.team.id)],
    }
    measure = "测量血压" if d.code == "htn" else "测量空腹血糖和血压"
    plan: Resource = {
        "resourceType": "CarePlan",
        "id": ctx.ids.next("cp"),
        "status": "active",
        "intent": "plan",
        "category": [concept(CS_CAREPLAN_CATEGORY, kind, label)],
        "title": f"{label}计划",
        "subject": ref("Patient", person.pid),
        "period": {"start": d.enrolled.isoformat()},
        "created": dt(d.enrolled, 10 * 60),
        "author": ref("PractitionerRole", place.team.leader.role_id, place.team.leader.name),
        "careTeam": [ref("CareTeam", place.team.id)],
        "addresses": [ref("Condition", d.condition_id)],
        "activity": [
            {
                "detail": {
                    "kind": "Appointment",
                    "code": concept(CS_ENCOUNTER_TYPE, f"{d.code}-followup"),
                    "status": "in-progress",
                    "scheduledTiming": {
                        "repeat": {"frequency": 1, "period": 3, "periodUnit": "mo"}
                    },
                    "description": f"每年至少4次面对面随访，{measure}",  # NBPHS-2017 3
                }
            }
        ],
    }
    return [episode, plan]


def _followups(
    ctx: Ctx,
    rng: random.Random,
    person: Person,
    managed: list[Disease],
    regimens: dict[str, list[Drug]],
    active_mr: dict[str, list[Resource]],
) -> list[Resource]:
    """Visits on the NBPHS-2017 schedule: quarterly when controlled, within 2 weeks after a
    first uncontrolled visit, referral after two consecutive uncontrolled visits."""
    place = person.place
    out: list[Resource] = []
    vitals = VitalsWriter(ctx, rng, person, out)
    adherence = weighted(rng, ADHERENCE)
    enrol = min(d.enrolled or ctx.end for d in managed)
    first = enrol if enrol >= ctx.start else ctx.start + timedelta(days=rng.randint(0, 89))
    lapse = (
        pick_day(rng, max(first, ctx.start) + timedelta(days=60), ctx.end)
        if (adherence == "lapsed")
        else None
    )
    p_miss = {"regular": 0.04, "irregular": 0.35, "lapsed": 0.1}[adherence]
    p_short = {"regular": 0.75, "irregular": 0.3, "lapsed": 0.5}[adherence]
    spread = 10 if adherence == "regular" else 30
    htn = next((d for d in managed if d.code == "htn"), None)
    dm = next((d for d in managed if d.code == "dm"), None)
    conditions = [d.condition_id for d in managed]
    episodes = [d.episode_id for d in managed]
    types = [
        (f"{d.code}-followup", "高血压患者随访" if d.code == "htn" else "2型糖尿病患者随访")
        for d in managed
    ]
    due, short, consecutive = first, False, 0
    prev: date | None = None
    last_ref: date | None = None
    last_check: date | None = None
    visits: list[str] = []
    while due < ctx.end:
        if lapse and due >= lapse:
            break
        is_first = prev is None and due == enrol
        if not is_first and rng.random() < (p_miss if not short else 1 - p_short):
            due, short = due + timedelta(days=90), False
            continue
        day = (
            due
            if is_first
            else due + timedelta(days=rng.randint(-3, 3) if short else rng.randint(-spread, spread))
        )
        if prev and day < prev + timedelta(days=7):
            day = prev + timedelta(days=7)
        if day >= ctx.end:
            break
        where = weighted(rng, [("vc", 0.55), ("thc", 0.35), ("home", 0.10)])
        staff: Staff
        if where == "vc" and place.clinic.doctors:
            staff, org, loc, cls = (
                rng.choice(place.clinic.doctors),
                place.clinic.org_id,
                place.clinic.location_id,
                "AMB",
            )
        elif where == "home":
            staff, org, loc, cls = place.team.leader, place.centre.org_id, None, "HH"
        else:
            staff, org, loc, cls = (
                rng.choice(place.centre.gps),
                place.centre.org_id,
                place.centre.location_id,
                "AMB",
            )
        minute = rng.randint(8 * 60, 16 * 60)
        enc = encounter(
            ctx,
            person,
            day,
            minute,
            cls,
            types[0],
            [staff],
            org,
            loc,
            reason_refs=conditions,
            episodes=episodes,
            extra_types=types[1:],
        )
        out.append(enc)
        visits.append(day.isoformat())
        f = ctx.progress(day)
        annual = last_check is None or (day - last_check).days >= 330
        if annual:
            last_check = day
        ok, urgent = True, False
        sbp_mean = htn.mean_at(f) if htn else rng.gauss(130, 8)
        sbp, dbp = vitals.followup(enc["id"], staff, day, minute, sbp_mean, annual)
        target = 150 if person.age >= 65 else 140  # NBPHS-2017 HTN 4(1)
        if htn:
            ok = sbp < target and dbp < 90
        urgent = sbp >= 180 or dbp >= 110  # NBPHS-2017 HTN 3(1)
        if dm:
            fpg = vitals.glucose(enc["id"], staff, day, minute, dm.mean_at(f))
            ok = ok and fpg < 7.0  # NBPHS-2017 DM 4
            urgent = urgent or fpg >= 16.7 or fpg <= 3.9  # NBPHS-2017 DM 3
        prev = day
        if ok:
            consecutive, short = 0, False
            due = day + timedelta(days=90)
            continue
        consecutive += 1
        disease = "htn" if htn and not (sbp < target and dbp < 90) else "dm"
        dept = "cardiology" if disease == "htn" else "endocrinology"
        if urgent or (
            consecutive >= 2
            and rng.random() < 0.4
            and (last_ref is None or (day - last_ref).days > 180)
        ):
            reason = "随访发现紧急情况，紧急转诊" if urgent else "连续两次随访控制不满意"
            out += referral(
                ctx, rng, person, staff, day, dept, reason, conditions, enc["id"], urgent=urgent
            )
            last_ref, consecutive, short = day, 0, True
            due = day + timedelta(days=14)  # NBPHS-2017 HTN 4(3): follow up within 2 weeks
        elif consecutive == 1:
            if disease in regimens and rng.random() < 0.5 and len(regimens[disease]) < 4:
                drug = add_on(rng, disease, regimens[disease])
                cond = next(d.condition_id for d in managed if d.code == disease)
                if drug:
                    regimens[disease].append(drug)
                    active_mr[disease].append(
                        medication_request(ctx, person, drug, day, staff, cond, encounter=enc["id"])
                    )
            short = True
            due = day + timedelta(days=rng.randint(10, 14))  # NBPHS-2017 HTN 4(2)
        else:
            if rng.random() < 0.1:
                out += teleconsultation(ctx, rng, person, place.team.leader, day, dept, conditions)
            short = False
            due = day + timedelta(days=90)
    out += home_monitoring(
        ctx, rng, person, htn.mean_at if htn else None, dm.mean_at if dm else None
    )
    person.facts["followups"] = visits
    person.facts["adherence"] = adherence
    if not (lapse and due >= lapse) and prev is not None:
        staff = rng.choice(place.clinic.doctors or place.centre.gps)
        loc = place.clinic.location_id if place.clinic.doctors else place.centre.location_id
        out.append(
            appointment(
                ctx,
                ctx.ids.next("appt"),
                person,
                staff,
                loc,
                max(due, ctx.end),
                rng.randint(8 * 60, 11 * 60),
                "booked",
                None,
                "FOLLOWUP",
                created=prev,
            )
        )
    ctx.truth.record(
        "followup",
        {
            "patient": person.pid,
            "adherence": adherence,
            "lapsed_on": lapse.isoformat() if lapse else None,
            "visits": len(visits),
        },
    )
    return out
