"""Encounters at every level: acute visits, two-way referrals (ServiceRequest + Task),
teleconsultations and appointments."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

from kangqiao.synth.common import (
    CS_ENCOUNTER_TYPE,
    CS_SERVICE_CATEGORY,
    ICD10,
    SNOMED,
    V3_ACT_CODE,
    Resource,
    coding,
    concept,
    dt,
    ref,
    weighted,
)
from kangqiao.synth.context import Ctx, pick_day
from kangqiao.synth.institutions import Staff
from kangqiao.synth.residents import Person

PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
APPOINTMENT_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0276"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"

CLASS_DISPLAY = {
    "AMB": "ambulatory",
    "HH": "home health",
    "VR": "virtual",
    "EMER": "emergency",
    "IMP": "inpatient encounter",
}

# ICD-10 code, Chinese text, department at the county hospital, weight
ACUTE_ADULT = [
    ("J06.9", "急性上呼吸道感染", "respiratory", 0.30),
    ("J20.9", "急性支气管炎", "respiratory", 0.10),
    ("K29.7", "胃炎", "general-internal", 0.12),
    ("M54.5", "腰痛", "general-internal", 0.10),
    ("M17.9", "膝关节病", "surgery", 0.07),
    ("R51", "头痛", "general-internal", 0.06),
    ("L30.9", "皮炎", "general-internal", 0.06),
    ("N39.0", "泌尿道感染", "general-internal", 0.05),
    ("H10.9", "结膜炎", "general-internal", 0.04),
    ("R05", "咳嗽", "respiratory", 0.10),
]
ACUTE_CHILD = [
    ("J06.9", "急性上呼吸道感染", "pediatrics", 0.55),
    ("J20.9", "急性支气管炎", "pediatrics", 0.15),
    ("R50.9", "发热", "pediatrics", 0.15),
    ("L30.9", "皮炎", "pediatrics", 0.07),
    ("R05", "咳嗽", "pediatrics", 0.08),
]


def poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def encounter(
    ctx: Ctx,
    person: Person,
    when: date,
    minute: int,
    cls: str,
    type_code: tuple[str, str],
    staff: list[Staff],
    provider: str,
    location: str | None,
    *,
    duration: int = 15,
    reason_refs: list[str] | None = None,
    reason_code: tuple[str, str] | None = None,
    episodes: list[str] | None = None,
    based_on: str | None = None,
    appointment: str | None = None,
    extra_types: list[tuple[str, str]] | None = None,
) -> Resource:
    res: Resource = {
        "resourceType": "Encounter",
        "id": ctx.ids.next("enc"),
        "status": "finished",
        "class": coding(V3_ACT_CODE, cls, CLASS_DISPLAY[cls]),
        "type": [concept(CS_ENCOUNTER_TYPE, c, d) for c, d in [type_code, *(extra_types or [])]],
        "subject": ref("Patient", person.pid),
        "participant": [{"individual": ref("PractitionerRole", s.role_id, s.name)} for s in staff],
        "period": {"start": dt(when, minute), "end": dt(when, minute + duration)},
        "serviceProvider": ref("Organization", provider),
    }
    if episodes:
        res["episodeOfCare"] = [ref("EpisodeOfCare", e) for e in episodes]
    if based_on:
        res["basedOn"] = [ref("ServiceRequest", based_on)]
    if appointment:
        res["appointment"] = [ref("Appointment", appointment)]
    if reason_code:
        res["reasonCode"] = [concept(ICD10, reason_code[0], text=reason_code[1])]
    if reason_refs:
        res["reasonReference"] = [ref("Condition", c) for c in reason_refs]
    if location:
        res["location"] = [{"location": ref("Location", location)}]
    return res


def acute_visits(ctx: Ctx, rng: random.Random, person: Person) -> list[Resource]:
    """Ordinary outpatient visits in the last year, mostly at the village clinic."""
    age = person.age
    lam = 2.5 if age < 7 else 1.0 if age < 18 else 0.8 if age < 60 else 1.5
    out: list[Resource] = []
    place = person.place
    for _ in range(poisson(rng, lam)):
        day = pick_day(rng, ctx.end - timedelta(days=365), ctx.end)
        code, text, dept, _ = weighted(
            rng, [(row, row[3]) for row in (ACUTE_CHILD if age < 14 else ACUTE_ADULT)]
        )
        level = weighted(rng, [("vc", 0.55), ("thc", 0.30), ("ch", 0.12), ("tcm", 0.03)])
        cls = "AMB"
        if level == "vc" and place.clinic.doctors:
            staff, org, loc = (
                rng.choice(place.clinic.doctors),
                place.clinic.org_id,
                place.clinic.location_id,
            )
        elif level in ("vc", "thc"):
            staff = rng.choice(place.centre.gps + place.centre.clinicians)
            org, loc = place.centre.org_id, place.centre.location_id
        elif level == "ch":
            staff = rng.choice(ctx.inst.specialists[dept])
            org, loc = ctx.inst.departments[dept], ctx.inst.department_locations[dept]
            cls = "EMER" if rng.random() < 0.15 else "AMB"
        else:
            staff, org, loc = (
                rng.choice(ctx.inst.tcm_doctors),
                ctx.inst.tcm_hospital,
                "loc-tcm-hospital",
            )
        out.append(
            encounter(
                ctx,
                person,
                day,
                rng.randint(8 * 60, 17 * 60),
                cls,
                ("outpatient", "门诊"),
                [staff],
                org,
                loc,
                reason_code=(code, text),
            )
        )
    return out


def referral(
    ctx: Ctx,
    rng: random.Random,
    person: Person,
    requester: Staff,
    when: date,
    dept: str,
    reason: str,
    conditions: list[str],
    from_encounter: str,
    *,
    urgent: bool = False,
) -> list[Resource]:
    """Up-referral to a county hospital department; usually followed by a visit there and a
    down-referral back to the township health centre."""
    inst = ctx.inst
    out: list[Resource] = []
    sr_id = ctx.ids.next("sr")
    attended = rng.random() < (0.9 if urgent else 0.8)
    accepted = attended or rng.random() < 0.5
    visit_day = when + timedelta(days=rng.randint(0, 1) if urgent else rng.randint(2, 14))
    if visit_day >= ctx.end:
        attended = False
        accepted = rng.random() < 0.7
    specialist = rng.choice(inst.specialists[dept])
    sr: Resource = {
        "resourceType": "ServiceRequest",
        "id": sr_id,
        "status": "completed" if attended else "active" if accepted else "revoked",
        "intent": "order",
        "category": [concept(CS_SERVICE_CATEGORY, "referral-up", "上转")],
        "priority": "urgent" if urgent else "routine",
        "code": concept(SNOMED, "3457005", "Patient referral", text="转诊"),
        "subject": ref("Patient", person.pid),
        "encounter": ref("Encounter", from_encounter),
        "occurrenceDateTime": dt(visit_day, 9 * 60),
        "authoredOn": dt(when, rng.randint(9 * 60, 16 * 60)),
        "requester": ref("PractitionerRole", requester.role_id, requester.name),
        "performer": [ref("Organization", inst.departments[dept])],
        "reasonCode": [{"text": reason}],
        "reasonReference": [ref("Condition", c) for c in conditions],
    }
    out.append(sr)
    done_day = visit_day if attended else when + timedelta(days=1)
    out.append(
        _task(
            ctx,
            person,
            sr_id,
            requester,
            inst.departments[dept],
            when,
            done_day,
            "completed" if attended else "accepted" if accepted else "rejected",
        )
    )
    if not accepted:
        return out
    appt_id = ctx.ids.next("appt")
    minute = rng.randint(8 * 60, 11 * 60)
    out.append(
        appointment(
            ctx,
            appt_id,
            person,
            specialist,
            inst.department_locations[dept],
            visit_day,
            minute,
            "fulfilled" if attended else "booked",
            sr_id,
            "EMERGENCY" if urgent else "ROUTINE",
            created=when,
        )
    )
    if not attended:
        return out
    enc = encounter(
        ctx,
        person,
        visit_day,
        minute,
        "EMER" if urgent else "AMB",
        ("referral-visit", "转诊接诊"),
        [specialist],
        inst.departments[dept],
        inst.department_locations[dept],
        duration=30,
        reason_refs=conditions,
        based_on=sr_id,
        appointment=appt_id,
    )
    out.append(enc)
    back = visit_day + timedelta(days=rng.randint(0, 7) if not urgent else rng.randint(2, 10))
    if back < ctx.end:
        down_id = ctx.ids.next("sr")
        out.append(
            {
                "resourceType": "ServiceRequest",
                "id": down_id,
                "status": "completed",
                "intent": "order",
                "category": [concept(CS_SERVICE_CATEGORY, "referral-down", "下转")],
                "priority": "routine",
                "code": concept(SNOMED, "3457005", "Patient referral", text="下转社区管理"),
                "subject": ref("Patient", person.pid),
                "encounter": ref("Encounter", enc["id"]),
                "authoredOn": dt(back, rng.randint(9 * 60, 16 * 60)),
                "requester": ref("PractitionerRole", specialist.role_id, specialist.name),
                "performer": [ref("Organization", person.place.centre.org_id)],
                "basedOn": [ref("ServiceRequest", sr_id)],
                "reasonCode": [{"text": "诊疗方案已调整，转回基层继续管理"}],
                "reasonReference": [ref("Condition", c) for c in conditions],
            }
        )
        out.append(
            _task(
                ctx,
                person,
                down_id,
                specialist,
                person.place.centre.org_id,
                back,
                back + timedelta(days=rng.randint(1, 5)),
                "completed",
            )
        )
    return out


def _task(
    ctx: Ctx,
    person: Person,
    focus: str,
    requester: Staff,
    owner: str,
    start: date,
    done: date,
    status: str,
) -> Resource:
    end = min(done, ctx.end - timedelta(days=1))
    res: Resource = {
        "resourceType": "Task",
        "id": ctx.ids.next("task"),
        "status": status,
        "intent": "order",
        "code": concept(TASK_CODE, "fulfill"),
        "focus": ref("ServiceRequest", focus),
        "for": ref("Patient", person.pid),
        "authoredOn": dt(start, 10 * 60),
        "lastModified": dt(max(start, end), 16 * 60),
        "requester": ref("PractitionerRole", requester.role_id, requester.name),
        "owner": ref("Organization", owner),
    }
    if status == "completed":
        res["executionPeriod"] = {"start": dt(start, 10 * 60), "end": dt(max(start, end), 16 * 60)}
    return res


def appointment(
    ctx: Ctx,
    appt_id: str,
    person: Person,
    staff: Staff,
    location: str,
    day: date,
    minute: int,
    status: str,
    based_on: str | None,
    kind: str,
    *,
    created: date,
    minutes: int = 15,
) -> Resource:
    res: Resource = {
        "resourceType": "Appointment",
        "id": appt_id,
        "status": status,
        "appointmentType": concept(APPOINTMENT_TYPE, kind),
        "start": f"{dt(day, minute)}",
        "end": f"{dt(day, minute + minutes)}",
        "minutesDuration": minutes,
        "created": dt(created, 10 * 60),
        "participant": [
            {"actor": ref("Patient", person.pid), "required": "required", "status": "accepted"},
            {
                "actor": ref("PractitionerRole", staff.role_id, staff.name),
                "required": "required",
                "status": "accepted",
            },
            {"actor": ref("Location", location), "required": "required", "status": "accepted"},
        ],
    }
    if based_on:
        res["basedOn"] = [ref("ServiceRequest", based_on)]
    return res


def teleconsultation(
    ctx: Ctx,
    rng: random.Random,
    person: Person,
    requester: Staff,
    when: date,
    dept: str,
    conditions: list[str],
) -> list[Resource]:
    """A remote consultation: the GP with the patient, a county specialist by video."""
    inst = ctx.inst
    specialist = rng.choice(inst.specialists[dept])
    sr_id = ctx.ids.next("sr")
    day = min(when + timedelta(days=rng.randint(0, 3)), ctx.end - timedelta(days=1))
    minute = rng.randint(14 * 60, 17 * 60)
    sr: Resource = {
        "resourceType": "ServiceRequest",
        "id": sr_id,
        "status": "completed",
        "intent": "order",
        "category": [concept(CS_SERVICE_CATEGORY, "teleconsultation", "远程会诊")],
        "priority": "routine",
        "code": concept(CS_SERVICE_CATEGORY, "teleconsultation", "远程会诊"),
        "subject": ref("Patient", person.pid),
        "occurrenceDateTime": dt(day, minute),
        "authoredOn": dt(when, rng.randint(9 * 60, 12 * 60)),
        "requester": ref("PractitionerRole", requester.role_id, requester.name),
        "performer": [ref("PractitionerRole", specialist.role_id, specialist.name)],
        "reasonReference": [ref("Condition", c) for c in conditions],
    }
    enc = encounter(
        ctx,
        person,
        day,
        minute,
        "VR",
        ("teleconsultation", "远程会诊"),
        [requester, specialist],
        person.place.centre.org_id,
        person.place.centre.location_id,
        duration=20,
        reason_refs=conditions,
        based_on=sr_id,
    )
    enc["participant"][0]["type"] = [concept(PARTICIPATION, "PPRF", "primary performer")]
    enc["participant"][1]["type"] = [concept(PARTICIPATION, "CON", "consultant")]
    task = _task(ctx, person, sr_id, requester, inst.departments[dept], when, day, "completed")
    return [sr, task, enc]
