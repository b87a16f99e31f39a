"""Notifiable infectious-disease report cards (传染病报告卡) with seasonal baselines per
township and injected outbreaks (written to the ground truth).

A card is an Encounter (where the case was diagnosed), a Condition (the diagnosis,
category ``notifiable-disease``) and a Communication (the report sent to the county CDC;
``sent`` minus the Condition's ``recordedDate`` is the reporting delay, legally ≤ 24 h
for these Class B/C diseases under 传染病信息报告管理规范 2015).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from kangqiao.synth.common import (
    COND_CATEGORY,
    COND_CLINICAL,
    COND_VER,
    CS_COMMUNICATION_CATEGORY,
    CS_CONDITION_CATEGORY,
    CS_DISEASE_CLASS,
    ICD10,
    Resource,
    concept,
    dt,
    ref,
)
from kangqiao.synth.context import Ctx
from kangqiao.synth.encounters import encounter
from kangqiao.synth.residents import Person


@dataclass(frozen=True)
class DiseaseSpec:
    key: str
    icd10: str
    display: str
    zh: str
    klass: str  # legal class: B (乙类) or C (丙类)
    per_100k_year: float  # approximate reported incidence (parameter)
    months: tuple[float, ...]  # relative seasonal weight Jan..Dec
    ages: tuple[tuple[int, float], ...]  # (upper age bound, relative risk)


DISEASES = (
    DiseaseSpec(
        "influenza",
        "J11",
        "Influenza, virus not identified",
        "流行性感冒",
        "C",
        200.0,
        (3.0, 2.0, 1.2, 0.6, 0.4, 0.5, 0.6, 0.5, 0.4, 0.5, 1.2, 2.6),
        ((6, 2.0), (15, 2.5), (60, 0.6), (200, 1.2)),
    ),
    DiseaseSpec(
        "hfmd",
        "B08.4",
        "Enteroviral vesicular stomatitis with exanthem",
        "手足口病",
        "C",
        120.0,
        (0.3, 0.3, 0.6, 1.6, 2.6, 2.2, 1.2, 0.8, 1.0, 1.1, 0.7, 0.4),
        ((6, 18.0), (10, 2.0), (200, 0.02)),
    ),
    DiseaseSpec(
        "tuberculosis",
        "A16.2",
        "Tuberculosis of lung, without mention of bacteriological or histological confirmation",
        "肺结核",
        "B",
        50.0,
        (1.0, 1.0, 1.3, 1.3, 1.1, 1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9),
        ((15, 0.1), (40, 0.8), (65, 1.2), (200, 2.0)),
    ),
    DiseaseSpec(
        "hepatitis-b",
        "B18.1",
        "Chronic viral hepatitis B without delta-agent",
        "乙型病毒性肝炎",
        "B",
        70.0,
        (1.0,) * 12,
        ((15, 0.05), (60, 1.4), (200, 0.9)),
    ),
    DiseaseSpec(
        "dysentery",
        "A03.9",
        "Shigellosis, unspecified",
        "细菌性痢疾",
        "B",
        5.0,
        (0.3, 0.3, 0.4, 0.6, 1.0, 1.6, 2.4, 2.6, 1.8, 0.9, 0.5, 0.3),
        ((6, 2.0), (60, 0.8), (200, 1.2)),
    ),
    DiseaseSpec(
        "diarrhoea",
        "A09",
        "Diarrhoea and gastroenteritis of presumed infectious origin",
        "其他感染性腹泻病",
        "C",
        60.0,
        (1.6, 1.2, 0.8, 0.7, 0.8, 1.0, 1.2, 1.2, 0.9, 1.0, 1.2, 1.5),
        ((6, 4.0), (15, 1.0), (200, 0.7)),
    ),
)
BY_KEY = {d.key: d for d in DISEASES}
CLASS_ZH = {"A": "甲类", "B": "乙类", "C": "丙类"}


@dataclass
class Outbreak:
    id: str
    disease: str
    township: str
    township_name: str
    start: date
    days: int
    min_age: int
    max_age: int
    attack_rate: float
    cases: list[str] = field(default_factory=list)

    def truth(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "disease": self.disease,
            "icd10": BY_KEY[self.disease].icd10,
            "township": self.township,
            "township_name": self.township_name,
            "start": self.start.isoformat(),
            "end": (self.start + timedelta(days=self.days - 1)).isoformat(),
            "ages": [self.min_age, self.max_age],
            "attack_rate": self.attack_rate,
            "cases": len(self.cases),
            "conditions": self.cases,
        }


def _season_day(rng: random.Random, spec: DiseaseSpec, start: date, end: date) -> date:
    top = max(spec.months)
    span = (end - start).days
    while True:
        d = start + timedelta(days=rng.randrange(span))
        if rng.random() * top < spec.months[d.month - 1]:
            return d


def _age_rr(spec: DiseaseSpec, age: int) -> float:
    return next(rr for limit, rr in spec.ages if age < limit)


class Surveillance:
    """Per-township baselines and planned outbreaks, fixed at set-up from the seed."""

    def __init__(self, ctx: Ctx, rng: random.Random) -> None:
        self.ctx = ctx
        self.multiplier = {
            (t.code, d.key): rng.lognormvariate(0, 0.3)
            for t in ctx.county.townships
            for d in DISEASES
        }
        towns = ctx.county.townships[1:] or ctx.county.townships
        last_year = ctx.end.year - 1 if ctx.end.month < 7 else ctx.end.year
        plans = [
            ("hfmd", date(last_year, 5, 1), 21, 0, 5, 0.06),
            ("dysentery", date(last_year - 1, 8, 10), 10, 0, 99, 0.006),
            ("influenza", date(last_year - 1, 12, 1), 14, 6, 17, 0.05),
            ("diarrhoea", date(last_year, 1, 8), 12, 6, 14, 0.04),
        ]
        self.outbreaks = []
        chosen = rng.sample(towns, min(len(towns), len(plans)))
        for i, (key, start, days, lo, hi, attack) in enumerate(plans):
            start = start + timedelta(days=rng.randint(-20, 20))
            if not ctx.start <= start <= ctx.end - timedelta(days=days):
                start = ctx.end - timedelta(days=days + 30)
            town = chosen[i % len(chosen)]
            self.outbreaks.append(
                Outbreak(
                    f"outbreak-{i + 1}", key, town.code, town.name, start, days, lo, hi, attack
                )
            )

    def cases(self, rng: random.Random, person: Person) -> list[Resource]:
        ctx = self.ctx
        years = (ctx.end - ctx.start).days / 365.0
        out: list[Resource] = []
        town = person.place.town.code
        for spec in DISEASES:
            p = (
                spec.per_100k_year
                / 1e5
                * years
                * _age_rr(spec, person.age)
                * self.multiplier[(town, spec.key)]
            )
            if rng.random() < p:
                day = _season_day(rng, spec, ctx.start, ctx.end)
                out += self._card(rng, person, spec, day, None)
        for ob in self.outbreaks:
            if (
                ob.township == town
                and ob.min_age <= person.age <= ob.max_age
                and (rng.random() < ob.attack_rate)
            ):
                offset = int(rng.triangular(0, ob.days - 1, ob.days * 0.35))
                out += self._card(
                    rng, person, BY_KEY[ob.disease], ob.start + timedelta(days=offset), ob
                )
        return out

    def _card(
        self, rng: random.Random, person: Person, spec: DiseaseSpec, day: date, ob: Outbreak | None
    ) -> list[Resource]:
        ctx, place = self.ctx, person.place
        if spec.key in ("tuberculosis", "hepatitis-b") or rng.random() < 0.3:
            dept = "infectious" if person.age >= 14 else "pediatrics"
            staff = rng.choice(ctx.inst.specialists[dept])
            org, loc = ctx.inst.departments[dept], ctx.inst.department_locations[dept]
        else:
            staff = rng.choice(place.centre.gps + place.centre.clinicians)
            org, loc = place.centre.org_id, place.centre.location_id
        minute = rng.randint(8 * 60, 17 * 60)
        enc = encounter(
            ctx,
            person,
            day,
            minute,
            "AMB",
            ("outpatient", "门诊"),
            [staff],
            org,
            loc,
            reason_code=(spec.icd10, spec.zh),
        )
        cond_id = ctx.ids.next("cond")
        onset = day - timedelta(days=rng.randint(0, 3 if spec.klass == "C" else 30))
        recorded = minute + 20
        condition: Resource = {
            "resourceType": "Condition",
            "id": cond_id,
            "clinicalStatus": concept(COND_CLINICAL, "active", "Active"),
            "verificationStatus": concept(
                COND_VER, "confirmed" if rng.random() < 0.6 else "provisional"
            ),
            "category": [
                concept(COND_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis"),
                concept(CS_CONDITION_CATEGORY, "notifiable-disease", "法定传染病"),
                concept(CS_DISEASE_CLASS, spec.klass, CLASS_ZH[spec.klass]),
            ],
            "code": concept(ICD10, spec.icd10, spec.display, text=spec.zh),
            "subject": ref("Patient", person.pid),
            "encounter": ref("Encounter", enc["id"]),
            "onsetDateTime": onset.isoformat(),
            "recordedDate": dt(day, recorded),
            "recorder": ref("PractitionerRole", staff.role_id, staff.name),
        }
        delay = rng.randint(10, 600) if rng.random() < 0.93 else rng.randint(600, 1380)
        sent_day = day + timedelta(days=(recorded + delay) // 1440)
        report: Resource = {
            "resourceType": "Communication",
            "id": ctx.ids.next("comm"),
            "status": "completed",
            "category": [
                concept(CS_COMMUNICATION_CATEGORY, "notifiable-disease-report", "传染病报告卡")
            ],
            "priority": "routine",
            "subject": ref("Patient", person.pid),
            "about": [ref("Condition", cond_id)],
            "encounter": ref("Encounter", enc["id"]),
            "sent": dt(sent_day, (recorded + delay) % 1440),
            "recipient": [ref("Organization", ctx.inst.cdc)],
            "sender": ref("PractitionerRole", staff.role_id, staff.name),
            "payload": [
                {
                    "contentString": f"传染病报告卡：{spec.zh}（{CLASS_ZH[spec.klass]}），"
                    f"发病日期{onset.isoformat()}"
                },
                {"contentReference": ref("Condition", cond_id)},
            ],
        }
        if ob is not None:
            ob.cases.append(cond_id)
        return [enc, condition, report]
