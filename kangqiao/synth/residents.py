"""Residents and households with a rural age/sex structure, and their Patient resources.

Households are drawn from rural household types (elderly living alone, empty-nest
couples, nuclear and three-generation families, left-behind children living with
grandparents while the parents work away). The type weights are calibrated so that
the population matches the 7th national census figures for rural China (65+: 17.7%,
60+: 23.8%; see docs/synthetic-county.md); tests check the result.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from kangqiao.synth.common import (
    HEALTH_RECORD_SYSTEM,
    HOUSEHOLD_SYSTEM,
    RESIDENT_ID_SYSTEM,
    V2_0203,
    Resource,
    age_on,
    concept,
    ref,
    weighted,
)
from kangqiao.synth.context import Ctx, Place
from kangqiao.synth.geography import OTHER_BIRTH_CODES, address
from kangqiao.synth.idcard import make_resident_id
from kangqiao.synth.institutions import phone
from kangqiao.synth.names import Name, human_names, make_name, pick_surname

MARITAL = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"

# (type, weight) calibrated against the census targets (see tests/synth).
HOUSEHOLD_TYPES: list[tuple[str, float]] = [
    ("single-elder", 0.07),
    ("elder-couple", 0.10),
    ("couple", 0.11),
    ("nuclear", 0.35),
    ("three-gen", 0.19),
    ("left-behind", 0.085),
    ("single-adult", 0.095),
]


@dataclass
class Person:
    pid: str
    name: Name
    sex: str
    birth: date
    resident_id: str
    phone: str | None
    household: str
    relation: str
    place: Place
    marital: str
    age: int
    facts: dict[str, Any] = field(default_factory=dict)  # set by later modules


def _ages(rng: random.Random, kind: str) -> list[tuple[int, str, str]]:
    """Members as (age, sex, relation)."""

    def u(a: int, b: int) -> int:
        return rng.randint(a, b)

    def kids(parent_age: int, n: int, max_age: int) -> list[tuple[int, str, str]]:
        out = []
        for _ in range(n):
            a = parent_age - u(21, 36)
            if 0 <= a <= max_age:
                out.append((a, "male" if rng.random() < 0.535 else "female", "child"))
        return out

    if kind == "single-elder":
        return [
            (
                min(100, 65 + int(rng.expovariate(1 / 10))),
                "female" if rng.random() < 0.62 else "male",
                "head",
            )
        ]
    if kind == "elder-couple":
        h = min(98, 62 + int(rng.expovariate(1 / 9)))
        return [(h, "male", "head"), (max(55, h - u(0, 5)), "female", "spouse")]
    if kind == "couple":
        h = u(25, 64)
        return [(h, "male", "head"), (max(20, h - u(0, 5)), "female", "spouse")]
    if kind == "nuclear":
        h = u(26, 58)
        n = weighted(rng, [(1, 0.4), (2, 0.45), (3, 0.15)])
        return [(h, "male", "head"), (h - u(0, 4), "female", "spouse"), *kids(h, n, 24)]
    if kind == "three-gen":
        g = u(58, 88)
        members = [(g, "male", "head")]
        if rng.random() < 0.6:
            members.append((g - u(0, 5), "female", "spouse"))
        else:
            members[0] = (g, "female" if rng.random() < 0.6 else "male", "head")
        p = g - u(23, 32)
        members += [(p, "male", "child"), (p - u(0, 4), "female", "child-in-law")]
        members += [
            (a, s, "grandchild") for a, s, _ in kids(p, weighted(rng, [(1, 0.5), (2, 0.5)]), 22)
        ]
        return members
    if kind == "left-behind":
        g = u(52, 82)
        members = [(g, "male", "head"), (g - u(0, 5), "female", "spouse")]
        if rng.random() < 0.3:
            members.pop()
        members += [
            (u(0, 15), "male" if rng.random() < 0.535 else "female", "grandchild")
            for _ in range(weighted(rng, [(1, 0.55), (2, 0.45)]))
        ]
        return members
    return [(u(18, 64), "male" if rng.random() < 0.6 else "female", "head")]


def make_household(
    ctx: Ctx, rng: random.Random, place: Place, hh_number: str, max_members: int
) -> list[Person]:
    kind = weighted(rng, HOUSEHOLD_TYPES)
    members = _ages(rng, kind)[:max_members]
    family = pick_surname(rng)
    home_phone = phone(rng)
    line = f"{rng.randint(1, 12)}组{rng.randint(1, 80)}号"
    people: list[Person] = []
    for age, sex, relation in members:
        birth = ctx.end - timedelta(days=365 * age + rng.randint(1, 364) + age // 4)
        surname = family if relation in ("head", "child", "grandchild") else pick_surname(rng)
        if relation == "child-in-law" or (relation == "spouse" and sex == "female"):
            surname = pick_surname(rng)
        name = make_name(rng, sex, birth.year, surname)
        addr_code = ctx.county.code if rng.random() < 0.92 else rng.choice(OTHER_BIRTH_CODES)
        if relation in ("child", "grandchild") and age < 30:
            addr_code = ctx.county.code
        rid = _resident_id(ctx, addr_code, birth, sex)
        own_phone = phone(rng) if age >= 16 and rng.random() < 0.9 else None
        if relation == "head" and age >= 16:
            own_phone = home_phone
        marital = (
            "S"
            if age < 22
            else (
                "M"
                if relation in ("head", "spouse", "child-in-law") and kind != "single-elder"
                else "W"
                if age >= 65
                else "M"
            )
        )
        if kind == "single-adult":
            marital = "S" if age < 35 else weighted(rng, [("D", 0.5), ("S", 0.3), ("W", 0.2)])
        people.append(
            Person(
                ctx.ids.next("pat"),
                name,
                sex,
                birth,
                rid,
                own_phone or None,
                hh_number,
                relation,
                place,
                marital,
                age_on(birth, ctx.end),
            )
        )
    adult_phone = next((p.phone for p in people if p.phone), home_phone)
    for p in people:
        if p.phone is None and p.age < 16:
            p.phone = adult_phone
        p.facts["line"] = line
    return people


def _resident_id(ctx: Ctx, addr_code: str, birth: date, sex: str) -> str:
    # one small int key per (address code, birth date, sex): bounded by the calendar
    key = (int(addr_code) * 1_000_000 + birth.toordinal()) * 2 + (sex == "male")
    n = ctx.id_seq.get(key, 0)
    ctx.id_seq[key] = n + 1
    if n >= 499:  # sequence space of the day exhausted: registered in a neighbouring county
        return _resident_id(ctx, OTHER_BIRTH_CODES[n % len(OTHER_BIRTH_CODES)], birth, sex)
    seq = 2 * n + (1 if sex == "male" else 2)
    return make_resident_id(addr_code, birth, seq)


def patient_resource(ctx: Ctx, p: Person, general_practitioner: str | None) -> Resource:
    place = p.place
    res: Resource = {
        "resourceType": "Patient",
        "id": p.pid,
        "identifier": [
            {
                "use": "official",
                "type": concept(
                    V2_0203, "NI", "National unique individual identifier", text="居民身份证"
                ),
                "system": RESIDENT_ID_SYSTEM,
                "value": p.resident_id,
            },
            {"system": HOUSEHOLD_SYSTEM, "value": p.household},
            {
                "system": HEALTH_RECORD_SYSTEM,
                "value": f"{place.village.code}{int(p.pid.split('-')[1]):07d}",
                "assigner": ref("Organization", place.centre.org_id),
            },
        ],
        "active": True,
        "name": human_names(p.name),
        "gender": p.sex,
        "birthDate": p.birth.isoformat(),
        "address": [address(ctx.county, place.town, place.village, p.facts["line"])],
        "maritalStatus": concept(MARITAL, p.marital),
        "managingOrganization": ref("Organization", place.centre.org_id),
    }
    if p.phone:
        res["telecom"] = [{"system": "phone", "value": p.phone, "use": "mobile"}]
    if general_practitioner:
        res["generalPractitioner"] = [ref("PractitionerRole", general_practitioner)]
    return res
