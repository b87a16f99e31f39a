"""The county's statistics against their sourced targets (docs/synthetic-county.md)."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import date, timedelta

from kangqiao.synth.common import RESIDENT_ID_SYSTEM
from kangqiao.synth.geography import COUNTY_CODE, OTHER_BIRTH_CODES
from kangqiao.synth.idcard import is_valid_resident_id
from tests.synth.conftest import END, RESIDENTS, County, age_on, codes


def _with_birth(county: County) -> list[dict]:
    return [p for p in county.residents() if "birthDate" in p]


def test_resident_count_and_households(county: County) -> None:
    assert len(county.residents()) == RESIDENTS
    households = Counter(
        i["value"]
        for p in county.residents()
        for i in p["identifier"]
        if i["system"].endswith("/household")
    )
    size = RESIDENTS / len(households)
    assert 2.4 < size < 3.3  # rural household size (census 2020: ~2.6 nationally)


def test_age_structure(county: County) -> None:
    ages = [age_on(p["birthDate"]) for p in _with_birth(county)]
    share65 = sum(a >= 65 for a in ages) / len(ages)
    share60 = sum(a >= 60 for a in ages) / len(ages)
    assert abs(share65 - 0.177) < 0.025  # 7th census, rural 65+: 17.7%
    assert abs(share60 - 0.238) < 0.03  # 7th census, rural 60+: 23.8%
    assert 0.10 < sum(a < 15 for a in ages) / len(ages) < 0.25
    assert max(ages) <= 100 and min(ages) >= 0


def test_sex_ratio(county: County) -> None:
    sexes = Counter(p["gender"] for p in county.residents())
    ratio = 100 * sexes["male"] / sexes["female"]
    assert 100 < ratio < 110  # census 2020: 105.07 nationally


def test_resident_ids_are_valid_and_consistent(county: County) -> None:
    defects = county.defect_ids
    seen: set[str] = set()
    for p in county.residents():
        rid = next(i["value"] for i in p["identifier"] if i["system"] == RESIDENT_ID_SYSTEM)
        assert rid not in seen
        seen.add(rid)
        if ("Patient", p["id"]) in defects:
            continue
        birth = date.fromisoformat(p["birthDate"])
        assert is_valid_resident_id(rid, birth_date=birth, gender=p["gender"]), rid
        assert rid[:6] in (COUNTY_CODE, *OTHER_BIRTH_CODES)


def _adults(county: County) -> set[str]:
    return {p["id"] for p in _with_birth(county) if age_on(p["birthDate"]) >= 18}


def test_chronic_prevalence(county: County) -> None:
    adults = _adults(county)
    truth = [t for t in county.truth["chronic"] if t["patient"] in adults]
    htn = [t for t in truth if t["disease"] == "htn"]
    dm = [t for t in truth if t["disease"] == "dm"]
    assert abs(len(htn) / len(adults) - 0.275) < 0.025  # 2020 report: 27.5%
    assert abs(len(dm) / len(adults) - 0.119) < 0.02  # 2020 report: 11.9%
    # awareness / treatment among hypertensives: 46.9% / 40.7% (Wang Z. 2018)
    assert abs(sum(t["aware"] for t in htn) / len(htn) - 0.469) < 0.05
    assert abs(sum(t["treated"] for t in htn) / len(htn) - 0.407) < 0.05
    # diabetes: 36.7% / 32.9% (Wang L. 2021)
    assert abs(sum(t["aware"] for t in dm) / len(dm) - 0.367) < 0.06
    assert abs(sum(t["treated"] for t in dm) / len(dm) - 0.329) < 0.06


def test_conditions_match_truth(county: County) -> None:
    by_patient = defaultdict(set)
    for c in county.by_type["Condition"]:
        by_patient[c["subject"]["reference"][8:]] |= codes(c["code"])
    enrolled = defaultdict(set)
    for e in county.by_type["EpisodeOfCare"]:
        kind = next(iter(codes(e["type"][0])))
        enrolled[e["patient"]["reference"][8:]].add(kind)
    for t in county.truth["chronic"]:
        code = "I10" if t["disease"] == "htn" else "E11"
        assert (code in by_patient[t["patient"]]) == t["aware"]
        assert (f"{t['disease']}-management" in enrolled[t["patient"]]) == t["managed"]


def _followups(county: County) -> dict[str, list[dict]]:
    visits: dict[str, list[dict]] = defaultdict(list)
    for e in county.by_type["Encounter"]:
        types = {c for t in e["type"] for c in codes(t)}
        if types & {"htn-followup", "dm-followup"}:
            visits[e["subject"]["reference"][8:]].append(e)
    for v in visits.values():
        v.sort(key=lambda e: e["period"]["start"])
    return visits


def test_schedule_adherence(county: County) -> None:
    """NBPHS-2017: at least 4 follow-ups a year; the standardised management rate in
    grassroots is below 60% (seed report), so lapses and gaps must show."""
    visits = _followups(county)
    year_ago = (END - timedelta(days=365)).isoformat()
    enrolled_long = {
        e["patient"]["reference"][8:]
        for e in county.by_type["EpisodeOfCare"]
        if next(iter(codes(e["type"][0]))).endswith("-management")
        and e["period"]["start"] <= year_ago
    }
    adherence = {t["patient"]: t["adherence"] for t in county.truth["followup"]}

    def rate(cls: str | None) -> float:
        group = [p for p in enrolled_long if cls is None or adherence[p] == cls]
        ok = sum(sum(e["period"]["start"] >= year_ago for e in visits[p]) >= 4 for p in group)
        return ok / len(group)

    assert rate("regular") > 0.8
    assert rate("lapsed") < 0.3
    assert 0.40 < rate(None) < 0.70


def test_two_week_followup_after_uncontrolled_visit(county: County) -> None:
    """NBPHS-2017 HTN 4(2): a first uncontrolled visit is followed up within 2 weeks."""
    bp_of = {}
    for o in county.by_type["Observation"]:
        if "85354-9" in codes(o["code"]) and "encounter" in o:
            values = [c["valueQuantity"]["value"] for c in o["component"]]
            bp_of[o["encounter"]["reference"][10:]] = values
    adherence = {t["patient"]: t["adherence"] for t in county.truth["followup"]}
    htn_patients = {t["patient"] for t in county.truth["chronic"] if t["disease"] == "htn"}
    short = total = 0
    for patient, visits in _followups(county).items():
        if adherence.get(patient) != "regular" or patient not in htn_patients:
            continue
        birth = county.index[("Patient", patient)].get("birthDate")
        if birth is None:
            continue
        target = 150 if age_on(birth) >= 65 else 140  # NBPHS-2017 HTN 4(1)
        previous_ok = True
        for a, b in itertools.pairwise(visits):
            bp = bp_of.get(a["id"])
            if not bp:
                previous_ok = True
                continue
            uncontrolled = (bp[0] >= target or bp[1] >= 90) and bp[0] < 180 and bp[1] < 110
            if uncontrolled and previous_ok:
                total += 1
                gap = date.fromisoformat(b["period"]["start"][:10]) - date.fromisoformat(
                    a["period"]["start"][:10]
                )
                short += gap.days <= 17
            previous_ok = not uncontrolled
    assert total > 50
    assert short / total > 0.5


def test_readings_follow_the_control_trajectory(county: County) -> None:
    trajectory = {
        t["patient"]: t["trajectory"]
        for t in county.truth["chronic"]
        if t["disease"] == "htn" and t["managed"]
    }
    defects = county.defect_ids
    sbp: dict[str, list[float]] = defaultdict(list)
    for o in county.by_type["Observation"]:
        if (
            "85354-9" in codes(o["code"])
            and "device" not in o
            and ("Observation", o["id"]) not in defects
        ):
            patient = o["subject"]["reference"][8:]
            if patient in trajectory:
                sbp[trajectory[patient]].append(o["component"][0]["valueQuantity"]["value"])
    mean = {k: sum(v) / len(v) for k, v in sbp.items() if v}
    assert mean["controlled"] < 133
    assert mean["uncontrolled"] > 145
    assert mean["controlled"] < mean["untreated"] < mean["uncontrolled"] + 5


def test_contracts_cover_key_groups(county: County) -> None:
    contracted = {
        e["patient"]["reference"][8:]
        for e in county.by_type["EpisodeOfCare"]
        if "family-doctor-contract" in codes(e["type"][0])
    }
    elderly = [p["id"] for p in _with_birth(county) if age_on(p["birthDate"]) >= 65]
    share = sum(p in contracted for p in elderly) / len(elderly)
    assert 0.65 < share < 0.9
    consents = {c["patient"]["reference"][8:] for c in county.by_type["Consent"]}
    assert consents == contracted
    for p in county.residents():
        if p["id"] in contracted:
            assert p["generalPractitioner"][0]["reference"].startswith("PractitionerRole/")


def test_home_device_readings_have_gaps_and_outliers(county: County) -> None:
    per_device = Counter(
        o["device"]["reference"] for o in county.by_type["Observation"] if "device" in o
    )
    assert per_device
    assert all(n < 90 * 1.1 for n in per_device.values())
    assert sum(per_device.values()) < 0.9 * 90 * len(per_device)
    outliers = county.truth["device_outliers"]
    assert outliers
    for t in outliers:
        obs = county.index[("Observation", t["observation"])]
        assert obs["device"]["reference"] == f"Device/{t['device']}"


def test_institutions(county: County) -> None:
    orgs = county.by_type["Organization"]
    kinds = Counter(
        c["code"]
        for o in orgs
        for t in o["type"]
        for c in t["coding"]
        if c["system"].endswith("institution-type")
    )
    assert kinds["county-hospital"] == 1 and kinds["cdc"] == 1 and kinds["health-commission"] == 1
    assert 8 <= kinds["township-centre"] + kinds["community-centre"] <= 15
    centres = kinds["township-centre"] + kinds["community-centre"]
    assert 5 * centres <= kinds["village-clinic"] <= 20 * centres
    for loc in county.by_type["Location"]:
        assert 20 < loc["position"]["latitude"] < 35 and 100 < loc["position"]["longitude"] < 120
    roles = Counter(
        c["code"]
        for r in county.by_type["PractitionerRole"]
        for t in r["code"]
        for c in t["coding"]
        if c["system"].endswith("practitioner-role") and "kangqiao" in c["system"]
    )
    grassroots = roles["village-doctor"] + roles["gp"] + roles["clinician"]
    assert 0.2 < roles["gp"] / grassroots < 0.4  # ~30% GPs (seed report)
    assert county.by_type["CareTeam"]
