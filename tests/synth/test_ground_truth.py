"""The ground-truth files agree with the generated resources."""

from __future__ import annotations

from datetime import date, datetime

from kangqiao.synth.common import RESIDENT_ID_SYSTEM
from kangqiao.synth.idcard import is_valid_resident_id
from kangqiao.synth.names import pinyin_of
from tests.synth.conftest import RESIDENTS, County, codes


def _rid(p: dict) -> str | None:
    return next(
        (i["value"] for i in p["identifier"] if i.get("system") == RESIDENT_ID_SYSTEM), None
    )


def test_duplicates(county: County) -> None:
    truth = county.truth["duplicates"]
    assert abs(len(truth) / RESIDENTS - 0.03) < 0.01
    defects = county.defect_ids
    for t in truth:
        original = county.index[("Patient", t["person"])]
        for dup_id in t["records"][1:]:
            dup = county.index[("Patient", dup_id)]
            tags = t["variations"][dup_id]
            assert dup["managingOrganization"] != original["managingOrganization"]
            if ("Patient", dup_id) in defects or ("Patient", t["person"]) in defects:
                continue
            rid = _rid(dup)
            if "id-missing" in tags:
                assert rid is None
            elif "id-digit" in tags or "id-transpose" in tags:
                assert rid != _rid(original)
            elif "id-15-digit" in tags:
                assert rid is not None and len(rid) == 15
            else:
                assert rid == _rid(original)
            a, b = original["name"][0]["text"], dup["name"][0]["text"]
            if "name-homophone" in tags or "surname-homophone" in tags:
                assert a != b and pinyin_of(a) == pinyin_of(b)
            else:
                assert a == b


def test_mistyped_ids_mostly_fail_the_check_digit(county: County) -> None:
    mistyped = [
        d
        for t in county.truth["duplicates"]
        for d, tags in t["variations"].items()
        if "id-digit" in tags
    ]
    invalid = sum(
        not is_valid_resident_id(_rid(county.index[("Patient", d)]) or "") for d in mistyped
    )
    assert mistyped and invalid / len(mistyped) > 0.8


def test_defects(county: County) -> None:
    defects = county.truth["defects"]
    eligible = sum(
        len(county.by_type.get(t, []))
        for t in (
            "Patient",
            "Observation",
            "Encounter",
            "Condition",
            "MedicationRequest",
            "DiagnosticReport",
            "Communication",
        )
    )
    assert 0.01 < len(defects) / eligible < 0.03  # default defect rate 2%
    kinds = {d["kind"] for d in defects}
    assert {"late-entry", "implausible-value", "missing-telecom", "missing-participant"} <= kinds
    for d in defects:
        r = county.index[(d["resourceType"], d["id"])]
        kind = d["kind"]
        if kind.startswith("missing-"):
            assert d["path"] not in r
        elif kind == "late-entry":
            lag = datetime.fromisoformat(r["issued"]) - datetime.fromisoformat(
                r["effectiveDateTime"]
            )
            assert lag.days >= 30
        elif kind == "implausible-value" and "component" in r:
            sbp, dbp = (c["valueQuantity"]["value"] for c in r["component"])
            assert sbp > 300 or sbp < dbp
        elif kind == "invalid-id-check-digit":
            assert not is_valid_resident_id(_rid(r) or "")


def test_outbreaks(county: County) -> None:
    outbreaks = county.truth["outbreaks"]
    assert len(outbreaks) == 4
    assert sum(o["cases"] for o in outbreaks) > 5
    for o in outbreaks:
        assert len(o["conditions"]) == o["cases"]
        for cid in o["conditions"]:
            cond = county.index[("Condition", cid)]
            assert o["icd10"] in codes(cond["code"])
            day = cond["recordedDate"][:10]
            assert o["start"] <= day <= o["end"]
            patient = county.get(cond["subject"]["reference"])
            division = (
                patient["address"][0]["extension"][0]["valueCode"]
                if patient.get("address")
                else o["township"]
            )
            assert division.startswith(o["township"])


def test_report_cards(county: County) -> None:
    cards = county.by_type["Communication"]
    assert cards
    late = {d["id"] for d in county.truth["defects"] if d["kind"] == "late-report"}
    on_time = 0
    for card in cards:
        cond = county.get(card["about"][0]["reference"])
        assert "notifiable-disease" in {c for cat in cond["category"] for c in codes(cat)}
        delay = datetime.fromisoformat(card["sent"]) - datetime.fromisoformat(cond["recordedDate"])
        assert delay.total_seconds() > 0
        if card["id"] in late:
            assert delay.days >= 2
        else:
            on_time += delay.total_seconds() <= 24 * 3600
    assert on_time / len(cards) > 0.85


def test_manifest(county: County) -> None:
    import json

    manifest = json.loads((county.dir / "manifest.json").read_text())
    assert manifest["resources"] == county.report.counts
    assert manifest["residents"] == RESIDENTS
    assert manifest["end_date"] == date(2026, 11, 1).isoformat()
    assert sum(t["residents"] for t in manifest["county"]["townships"]) == RESIDENTS
