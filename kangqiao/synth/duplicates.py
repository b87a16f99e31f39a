"""The same person registered again at another institution, with the variations real
registration desks produce; the true identities go to the ground truth (``duplicates``)."""

from __future__ import annotations

import copy
import random
from datetime import date

from kangqiao.synth.common import (
    MRN_SYSTEM_PREFIX,
    RESIDENT_ID_SYSTEM,
    Resource,
    ref,
    weighted,
)
from kangqiao.synth.context import Ctx
from kangqiao.synth.encounters import encounter
from kangqiao.synth.idcard import to_first_generation
from kangqiao.synth.institutions import Staff, phone
from kangqiao.synth.names import Name, homophones, human_names, pinyin_of, with_homophone
from kangqiao.synth.residents import Person


def _sites(ctx: Ctx, person: Person) -> list[tuple[str, str, list[Staff]]]:
    inst = ctx.inst
    sites = [
        (
            inst.departments["general-internal"],
            inst.department_locations["general-internal"],
            inst.specialists["general-internal"],
        ),
        (inst.tcm_hospital, "loc-tcm-hospital", inst.tcm_doctors),
    ]
    for c in inst.centres:
        if c.org_id != person.place.centre.org_id:
            sites.append((c.org_id, c.location_id, c.gps))
            break
    return sites


def _mistype(rng: random.Random, rid: str) -> tuple[str, str]:
    kind = weighted(rng, [("digit", 0.6), ("transpose", 0.4)])
    chars = list(rid)
    if kind == "digit":
        i = rng.randrange(17)
        chars[i] = rng.choice([c for c in "0123456789" if c != chars[i]])
    else:
        positions = [i for i in range(16) if chars[i] != chars[i + 1]]
        if not positions:
            return rid, "none"
        i = rng.choice(positions)
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars), f"id-{kind}"


def duplicate_records(
    ctx: Ctx, rng: random.Random, person: Person, patient: Resource
) -> list[Resource]:
    """0..2 further registrations of ``person`` (rate ``ctx.duplicate_rate``)."""
    if ctx.duplicate_rate <= 0 or rng.random() >= ctx.duplicate_rate:
        return []
    n = 1 if rng.random() < 0.8 else 2
    sites = _sites(ctx, person)
    rng.shuffle(sites)
    out: list[Resource] = []
    records = [person.pid]
    variations: dict[str, list[str]] = {}
    for org, loc, staff in sites[:n]:
        dup = copy.deepcopy(patient)
        dup_id = ctx.ids.next("pat")
        dup["id"] = dup_id
        dup.pop("generalPractitioner", None)
        changes: list[str] = []
        name: Name = person.name
        roll = rng.random()
        if roll < 0.35:
            variant = with_homophone(rng, name)
            if variant:
                name = variant
                changes.append("name-homophone")
        elif roll < 0.40 and homophones(name.family):
            fam = rng.choice(homophones(name.family))
            name = Name(fam, name.given, pinyin_of(fam) or name.family_pinyin, name.given_pinyin)
            changes.append("surname-homophone")
        dup["name"] = human_names(name, with_pinyin=rng.random() < 0.5)
        ident: list[Resource] = [
            {"system": MRN_SYSTEM_PREFIX + org, "value": f"{rng.randint(10**7, 10**8 - 1)}"}
        ]
        id_kind = weighted(
            rng, [("missing", 0.3), ("mistyped", 0.3), ("old", 0.05), ("same", 0.35)]
        )
        if id_kind == "old" and person.age < 40:
            id_kind = "same"
        rid = person.resident_id
        if id_kind == "mistyped":
            rid, tag = _mistype(rng, rid)
            changes.append(tag)
        elif id_kind == "old":
            rid = to_first_generation(rid)
            changes.append("id-15-digit")
        elif id_kind == "missing":
            changes.append("id-missing")
        if id_kind != "missing":
            ident.insert(0, {"system": RESIDENT_ID_SYSTEM, "value": rid})
        dup["identifier"] = ident
        p = rng.random()
        if p < 0.25:
            dup["telecom"] = [{"system": "phone", "value": phone(rng), "use": "mobile"}]
            changes.append("phone-changed")
        elif p < 0.40:
            dup.pop("telecom", None)
            changes.append("phone-missing")
        b = person.birth
        roll = rng.random()
        if roll < 0.05:
            dup["birthDate"] = date.fromordinal(b.toordinal() + rng.choice([-1, 1])).isoformat()
            changes.append("birthdate-off-by-one")
        elif roll < 0.10 and b.day <= 12 and b.day != b.month:
            dup["birthDate"] = date(b.year, b.day, b.month).isoformat()
            changes.append("birthdate-day-month-swapped")
        elif roll < 0.14:
            dup["birthDate"] = f"{b.year}-01-01"
            changes.append("birthdate-year-only")
        roll = rng.random()
        if roll < 0.2:
            dup.pop("address", None)
            changes.append("address-missing")
        elif roll < 0.35:
            addr = dup["address"][0]
            addr["text"] = addr["line"][0] = addr["line"][0].split("组")[0].rstrip("0123456789")
            addr.pop("extension", None)
            changes.append("address-abbreviated")
        if rng.random() < 0.01:
            dup["gender"] = "female" if person.sex == "male" else "male"
            changes.append("gender-wrong")
        dup["managingOrganization"] = ref("Organization", org)
        for key in ("maritalStatus",):
            if rng.random() < 0.5:
                dup.pop(key, None)
        out.append(dup)
        records.append(dup_id)
        variations[dup_id] = changes
        visit_day = date.fromordinal(ctx.end.toordinal() - rng.randint(1, 700))
        fake = Person(
            dup_id,
            name,
            person.sex,
            person.birth,
            rid,
            None,
            person.household,
            person.relation,
            person.place,
            person.marital,
            person.age,
        )
        out.append(
            encounter(
                ctx,
                fake,
                visit_day,
                rng.randint(8 * 60, 17 * 60),
                "AMB",
                ("outpatient", "门诊"),
                [rng.choice(staff)],
                org,
                loc,
            )
        )
    ctx.truth.record(
        "duplicates", {"person": person.pid, "records": records, "variations": variations}
    )
    return out
