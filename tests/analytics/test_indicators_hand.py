"""Each catalogue indicator on a small hand-built county with known answers."""

from __future__ import annotations

import itertools
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from kangqiao.analytics.indicators import STRATA, IndicatorStore, compute_indicators
from kangqiao.analytics.indicators.aggregate import is_suppressed, suppressed_sql

KQ = "https://kangqiao.example/fhir/"
DIV = KQ + "StructureDefinition/admin-division-code"
_ids = itertools.count(1)


class County:
    """Builds resources and writes them as ``<Type>.ndjson`` (the synth layout)."""

    def __init__(self) -> None:
        self.res: list[dict[str, Any]] = []
        self.org("org-hosp", "county-hospital", "431299100000")
        self.org("org-lab", "department", None, part_of="org-hosp")
        self.org("org-thc", "township-centre", "431299100000")
        self.org("org-vc", "village-clinic", "431299100201")
        self.add(
            {
                "resourceType": "PractitionerRole",
                "id": "role-gp",
                "organization": {"reference": "Organization/org-thc"},
                "practitioner": {"display": "王医生"},
            }
        )

    def add(self, r: dict[str, Any]) -> dict[str, Any]:
        r.setdefault("id", f"{r['resourceType'].lower()}-{next(_ids)}")
        self.res.append(r)
        return r

    def org(self, oid: str, kind: str, division: str | None, part_of: str | None = None) -> None:
        r: dict[str, Any] = {
            "resourceType": "Organization",
            "id": oid,
            "name": oid,
            "type": [{"coding": [{"system": KQ + "CodeSystem/institution-type", "code": kind}]}],
        }
        if division:
            r["address"] = [{"extension": [{"url": DIV, "valueCode": division}]}]
        if part_of:
            r["partOf"] = {"reference": f"Organization/{part_of}"}
        self.add(r)

    def patient(self, pid: str, birth: str, gender: str = "female", resident: bool = True) -> str:
        ident = [{"system": KQ + "sid/resident-id", "value": "x"}]
        if resident:
            ident.append({"system": KQ + "sid/health-record", "value": pid})
        self.add(
            {
                "resourceType": "Patient",
                "id": pid,
                "birthDate": birth,
                "gender": gender,
                "identifier": ident,
                "telecom": [{"system": "phone", "value": "1"}],
                "managingOrganization": {"reference": "Organization/org-thc"},
                "generalPractitioner": [{"reference": "PractitionerRole/role-gp"}],
                "address": [{"extension": [{"url": DIV, "valueCode": "431299100201"}]}],
            }
        )
        return pid

    def episode(self, pid: str, kind: str, start: str, end: str | None = None) -> None:
        period = {"start": start} | ({"end": end} if end else {})
        self.add(
            {
                "resourceType": "EpisodeOfCare",
                "status": "active",
                "period": period,
                "patient": {"reference": f"Patient/{pid}"},
                "type": [{"coding": [{"system": KQ + "CodeSystem/episode-type", "code": kind}]}],
            }
        )

    def visit(
        self,
        pid: str,
        day: str,
        bp: tuple[int, int] | None = None,
        *,
        disease: str = "htn",
        glucose: float | None = None,
        cls: str = "AMB",
        org: str = "org-vc",
    ) -> str:
        enc = self.add(
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"code": cls},
                "type": [
                    {
                        "coding": [
                            {
                                "system": KQ + "CodeSystem/encounter-type",
                                "code": f"{disease}-followup",
                            }
                        ]
                    }
                ],
                "subject": {"reference": f"Patient/{pid}"},
                "serviceProvider": {"reference": f"Organization/{org}"},
                "participant": [{"individual": {"reference": "PractitionerRole/role-gp"}}],
                "location": [{"location": {"reference": "Location/l"}}],
                "period": {"start": f"{day}T09:00:00+08:00"},
            }
        )["id"]
        if bp:
            self.bp(pid, f"{day}T09:05:00+08:00", bp, encounter=enc)
        if glucose is not None:
            self.lab(pid, "14771-0", f"{day}T09:05:00+08:00", glucose, encounter=enc)
        return str(enc)

    def bp(
        self,
        pid: str,
        when: str,
        bp: tuple[int, int],
        encounter: str | None = None,
        issued: str | None = None,
    ) -> None:
        def q(c: str, v: int) -> dict[str, Any]:
            return {
                "code": {"coding": [{"system": "http://loinc.org", "code": c}]},
                "valueQuantity": {"value": v, "code": "mm[Hg]"},
            }

        r: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": when,
            "issued": issued or when,
            "component": [q("8480-6", bp[0]), q("8462-4", bp[1])],
        }
        if encounter:
            r["encounter"] = {"reference": f"Encounter/{encounter}"}
        self.add(r)

    def lab(
        self,
        pid: str,
        code: str,
        when: str,
        value: float,
        *,
        encounter: str | None = None,
        performer: str = "Organization/org-lab",
    ) -> None:
        r: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": when,
            "issued": when,
            "valueQuantity": {"value": value},
            "performer": [{"reference": performer}],
        }
        if encounter:
            r["encounter"] = {"reference": f"Encounter/{encounter}"}
        self.add(r)

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        by_type: dict[str, list[bytes]] = {}
        for r in self.res:
            by_type.setdefault(r["resourceType"], []).append(orjson.dumps(r))
        for rtype, lines in by_type.items():
            (folder / f"{rtype}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
        return folder


def county_rows(rows: list[dict[str, Any]], period: str = "2026") -> dict[str, dict[str, Any]]:
    return {
        r["indicator_id"]: r for r in rows if r["stratum"] == "county" and r["period"] == period
    }


def run(c: County, tmp_path: Path, **kw: Any) -> dict[str, dict[str, Any]]:
    kw.setdefault("suppress_below", 0)
    kw.setdefault("as_of", date(2026, 12, 31))
    return county_rows(compute_indicators([c.write(tmp_path / "in")], 2026, **kw))


def day_of_data() -> County:
    """A day's new resources only (no organisations: they would force a full rebuild)."""
    day = County()
    day.res = []
    return day


def managed(c: County, *pids: str) -> None:
    """Hypertensive patients under management since 2020, born in 1960."""
    for pid in pids:
        c.patient(pid, "1960-01-01")
        c.episode(pid, "htn-management", "2020-01-01")


def all_rows(store: IndicatorStore) -> list[str]:
    """Every result row of every stratum, comparable between stores."""
    return sorted(map(repr, store.results(STRATA, suppress_below=0)))


def full_build(inputs: list[Path], **load: Any) -> list[str]:
    """:func:`all_rows` of a store built from scratch on ``inputs``."""
    with IndicatorStore() as full:
        full.load(inputs, [2026], **load)
        return all_rows(full)


def nd(row: dict[str, Any]) -> tuple[Any, Any]:
    return row["numerator"], row["denominator"]


@pytest.fixture
def chronic(tmp_path: Path) -> dict[str, dict[str, Any]]:
    c = County()
    # p1: exactly 4 visits, last BP 139/89 -> standardised, controlled (HEARTS controlled).
    c.patient("p1", "1976-05-01")
    c.episode("p1", "htn-management", "2020-01-01")
    for d in ("2026-02-01", "2026-05-01", "2026-08-01"):
        c.visit("p1", d, (150, 95))
    c.visit("p1", "2026-11-15", (139, 89))
    # p2: 3 distinct days (two visits on one day) -> not standardised; last 140/89 -> not.
    c.patient("p2", "1976-05-01")
    c.episode("p2", "htn-management", "2020-01-01")
    c.visit("p2", "2026-03-01", (120, 80))
    c.visit("p2", "2026-03-01", (120, 80))
    c.visit("p2", "2026-06-01", (120, 80))
    c.visit("p2", "2026-10-15", (140, 89))
    # p3 turns 65 on the day of the last visit: 149/89 meets the elderly target (< 150/90).
    c.patient("p3", "1961-10-20")
    c.episode("p3", "htn-management", "2020-01-01")
    c.visit("p3", "2026-10-20", (149, 89))
    # p4 is 64 on that day (65 the next): 149/89 misses < 140/90.
    c.patient("p4", "1961-10-21")
    c.episode("p4", "htn-management", "2020-01-01")
    c.visit("p4", "2026-10-20", (149, 89))
    # p5: 4 visits, one by phone (VR) -> 3 face-to-face; last 139/90 -> not controlled.
    c.patient("p5", "1976-05-01")
    c.episode("p5", "htn-management", "2020-01-01")
    for d in ("2026-02-01", "2026-05-01", "2026-08-01"):
        c.visit("p5", d, (120, 80))
    c.visit("p5", "2026-10-01", (139, 90), cls="VR")
    # p6 enrolled 1 June: the visit on the enrolment day counts, the one before does not.
    c.patient("p6", "1976-05-01")
    c.episode("p6", "htn-management", "2026-06-01")
    for d in ("2026-05-01", "2026-06-01", "2026-07-01", "2026-08-01", "2026-09-01"):
        c.visit("p6", d, (120, 80))
    # p7: managed, never seen -> denominator only; HEARTS lost to follow-up.
    c.patient("p7", "1976-05-01")
    c.episode("p7", "htn-management", "2020-01-01")
    # p8 registered < 3 months before the reference day: not in the HEARTS cohort.
    c.patient("p8", "1976-05-01")
    c.episode("p8", "htn-management", "2026-11-01")
    c.visit("p8", "2026-11-02", (120, 80))
    # p9: a visit without BP in the last 3 months.
    c.patient("p9", "1976-05-01")
    c.episode("p9", "htn-management", "2020-01-01")
    c.visit("p9", "2026-12-01")
    # Diabetes: 6.9 controlled, 7.0 not; d1 has 4 visits.
    c.patient("d1", "1970-01-01")
    c.episode("d1", "dm-management", "2020-01-01")
    for d in ("2026-02-01", "2026-05-01", "2026-08-01", "2026-11-01"):
        c.visit("d1", d, disease="dm", glucose=6.9)
    c.patient("d2", "1970-01-01")
    c.episode("d2", "dm-management", "2020-01-01")
    c.visit("d2", "2026-11-01", disease="dm", glucose=7.0)
    # Residents who are not managed: one aged 34 (outside the 35+ base), one a hospital-only record.
    c.patient("r1", "1992-06-01")
    c.patient("x1", "1950-01-01", resident=False)
    return run(c, tmp_path, params={"nbphs-htn-health-management": {"prevalence": 0.5}})


def test_standardised_management(chronic: dict[str, dict[str, Any]]) -> None:
    # htn managed in 2026: p1..p9 = 9; standardised: p1 and p6.
    assert nd(chronic["nbphs-htn-standardised-management"]) == (2, 9)
    assert nd(chronic["nbphs-dm-standardised-management"]) == (1, 2)


def test_control_rates_at_the_boundaries(chronic: dict[str, dict[str, Any]]) -> None:
    # controlled: p1 (139/89), p3 (65 on the day, 149/89), p6 (120/80), p8 (120/80).
    assert nd(chronic["nbphs-htn-bp-control"]) == (4, 9)
    assert nd(chronic["nbphs-dm-glucose-control"]) == (1, 2)


def test_health_management_rate_uses_the_prevalence_parameter(
    chronic: dict[str, dict[str, Any]],
) -> None:
    # residents aged 35+ at the end of 2026: p1..p9, d1, d2 = 11 (r1 is 34, x1 no record).
    row = chronic["nbphs-htn-health-management"]
    assert nd(row) == (9, 5.5)
    assert row["rate"] == pytest.approx(9 / 5.5)
    assert chronic["nbphs-dm-health-management"]["denominator"] == pytest.approx(11 * 0.119)


def test_hearts_cohort(chronic: dict[str, dict[str, Any]]) -> None:
    # cohort: p1..p7, p9 (p8 registered 1 Nov). Last 3 months = after 30 Sep.
    counts = {
        k: chronic[f"hearts-{k}"]["numerator"]
        for k in ("controlled", "uncontrolled", "visit-no-bp", "missed-visit", "lost-to-follow-up")
    }
    # p1 139/89 controlled; p2 140/89, p3 149/89, p4 149/89, p5 139/90 uncontrolled
    # (HEARTS uses < 140/90 whatever the age); p9 no BP; p6 last seen 1 Sep: missed; p7 lost.
    assert counts == {
        "controlled": 1,
        "uncontrolled": 4,
        "visit-no-bp": 1,
        "missed-visit": 1,
        "lost-to-follow-up": 1,
    }
    assert {chronic[f"hearts-{k}"]["denominator"] for k in counts} == {8}


HEARTS = ("controlled", "uncontrolled", "visit-no-bp", "missed-visit", "lost-to-follow-up")


def _hearts(store: IndicatorStore, period: str) -> dict[str, tuple[Any, Any]]:
    rows = county_rows(store.results(("county",), suppress_below=0), period)
    return {k: nd(rows[f"hearts-{k}"]) for k in HEARTS if f"hearts-{k}" in rows}


def test_hearts_states_change_when_only_the_reference_day_moves(tmp_path: Path) -> None:
    # The base data end on 10 June (z's visit), the new day's data on 20 June: another
    # visit of z. No new data of a-e, yet a-d change state because the reference day
    # moved from 10 to 20 June (3 months before: 10 to 20 March; 12: 10 to 20 June 2025).
    c = County()
    c.patient("z", "1970-01-01")
    c.visit("z", "2026-06-10", disease="dm")
    c.patient("a", "1970-01-01")  # registered 15 March: 3 months on 20 June, not on 10 June
    c.episode("a", "htn-management", "2026-03-15")
    c.visit("a", "2026-05-01", (120, 80))
    c.patient("b", "1970-01-01")  # seen 15 March: within 3 months of 10 June, not 20 June
    c.episode("b", "htn-management", "2020-01-01")
    c.visit("b", "2025-12-01", (150, 95))
    c.visit("b", "2026-03-15", (120, 80))
    c.patient("c", "1970-01-01")  # seen 15 June 2025: within 12 months of 10 June only
    c.episode("c", "htn-management", "2020-01-01")
    c.visit("c", "2025-06-15", (120, 80))
    c.patient("d", "1970-01-01")  # management ended 15 June: in the cohort on 10 June only
    c.episode("d", "htn-management", "2020-01-01", "2026-06-15")
    c.visit("d", "2026-05-01", (120, 80))
    c.patient("e", "1970-01-01")  # nothing near either day: the same state
    c.episode("e", "htn-management", "2020-01-01")
    c.visit("e", "2026-05-01", (150, 95))
    base = c.write(tmp_path / "base")
    day = day_of_data()  # only the new visit
    day.visit("z", "2026-06-20", disease="dm")
    new = day.write(tmp_path / "new")

    with IndicatorStore(tmp_path / "state.duckdb") as inc:
        inc.load([base], [2026])
        assert _hearts(inc, "2026-06") == {
            "controlled": (2, 4),  # b, d
            "uncontrolled": (1, 4),  # e
            "visit-no-bp": (0, 4),
            "missed-visit": (1, 4),  # c
            "lost-to-follow-up": (0, 4),
        }
        info = inc.refresh([new])
        assert info["mode"] == "incremental" and info["patients"] == 1  # z
        assert info["as_of_patients"] == 4  # a-d, not e
        for period in ("2026", "2026-06"):
            assert _hearts(inc, period) == {
                "controlled": (1, 4),  # a
                "uncontrolled": (1, 4),  # e
                "visit-no-bp": (0, 4),
                "missed-visit": (1, 4),  # b
                "lost-to-follow-up": (1, 4),  # c
            }
        got = all_rows(inc)
    assert got == full_build([base, new])


def test_refresh_moves_a_resource_to_another_patient(tmp_path: Path) -> None:
    # A visit recorded against the wrong patient is corrected: both patients change.
    c = County()
    managed(c, "m1", "m2")
    c.visit("m1", "2026-04-01", (150, 95))
    enc = c.visit("m1", "2026-05-01", (120, 80))
    base = c.write(tmp_path / "base")
    day = day_of_data()
    wrong = next(r for r in c.res if r["id"] == enc)
    day.res = [dict(wrong, subject={"reference": "Patient/m2"})]
    new = day.write(tmp_path / "new")
    with IndicatorStore() as inc:
        inc.load([base], [2026], as_of=date(2026, 6, 30))
        info = inc.refresh([new])
        assert (info["mode"], info["patients"]) == ("incremental", 2)
        got = all_rows(inc)
        visits = inc.con.execute(
            "SELECT k.patient_id FROM d_visit v "
            "JOIN s_patient_keys k ON k.patient_no = v.patient_id ORDER BY day"
        ).fetchall()
        assert visits == [("m1",), ("m2",)]
    assert got == full_build([base, new], as_of=date(2026, 6, 30))


@pytest.mark.parametrize(
    ("moved_to", "last_day"),
    [("2026-05-20", date(2026, 5, 20)), ("2026-03-01", date(2026, 4, 1))],
    ids=["later", "earlier"],
)
def test_the_reference_day_follows_a_replaced_last_encounter(
    tmp_path: Path, moved_to: str, last_day: date
) -> None:
    # The latest encounter day is kept between refreshes; when the encounter on that day
    # is corrected to another day the reference day moves with it, back as well as on.
    c = County()
    managed(c, "m1")
    c.visit("m1", "2026-04-01", (150, 95))
    last = c.visit("m1", "2026-05-01", (120, 80))
    base = c.write(tmp_path / "base")
    day = day_of_data()
    encounter = next(r for r in c.res if r["id"] == last)
    day.res = [dict(encounter, period={"start": f"{moved_to}T09:00:00+08:00"})]
    new = day.write(tmp_path / "new")
    with IndicatorStore() as inc:
        inc.load([base], [2026])
        assert inc.data_as_of() == date(2026, 5, 1)
        inc.refresh([new])
        assert inc.data_as_of() == last_day
        got = all_rows(inc)
    with IndicatorStore() as full:
        full.load([base, new], [2026])
        assert full.data_as_of() == last_day
        assert got == all_rows(full)


def test_a_store_with_text_patient_ids_is_numbered_at_its_first_refresh(tmp_path: Path) -> None:
    # Stores written before patient ids were numbered keep working: the first refresh
    # numbers the ids of their view tables and rebuilds the rest.
    c = County()
    managed(c, "m1", "m2")
    c.visit("m1", "2026-04-01", (150, 95))
    base = c.write(tmp_path / "base")
    day = day_of_data()
    day.visit("m2", "2026-05-01", (120, 80))
    new = day.write(tmp_path / "new")
    with IndicatorStore(tmp_path / "old.duckdb") as old:
        old.load([base], [2026], as_of=date(2026, 6, 30))
        for name in old.views:
            if old._patient_keyed(name):  # back to the ids as text, as older stores had them
                old.con.execute(
                    f"CREATE OR REPLACE TABLE v_{name} AS SELECT v.* REPLACE (k.patient_id AS "
                    f"patient_id) FROM v_{name} v "
                    "JOIN s_patient_keys k ON k.patient_no = v.patient_id"
                )
        old.con.execute("DROP TABLE s_patient_keys")
    with IndicatorStore(tmp_path / "old.duckdb") as inc:
        assert inc.refresh([new])["mode"] == "incremental"
        got = all_rows(inc)
        kinds = inc.con.execute(
            "SELECT DISTINCT data_type FROM duckdb_columns() "
            "WHERE column_name = 'patient_id' AND table_name LIKE 'v\\_%' ESCAPE '\\'"
        ).fetchall()
        assert kinds == [("INTEGER",)]
    assert got == full_build([base, new], as_of=date(2026, 6, 30))


def test_home_monitoring_coverage_counts_device_readings_within_the_period(
    tmp_path: Path,
) -> None:
    # Managed patients with a home-device reading (Observation.device) dated in the
    # period, blood pressure or glucose; clinic readings do not count.
    c = County()
    for pid in ("last-day", "glucose", "clinic", "next-day", "unmanaged"):
        c.patient(pid, "1960-01-01")
        if pid != "unmanaged":
            c.episode(pid, "htn-management", "2020-01-01")
    c.bp("last-day", "2026-05-31T23:30:00+08:00", (130, 80))  # local day 31 May
    c.lab("glucose", "14771-0", "2026-05-01T07:00:00+08:00", 6.1)
    c.bp("clinic", "2026-05-10T09:00:00+08:00", (130, 80))
    c.bp("next-day", "2026-06-01T00:10:00+08:00", (130, 80))
    c.bp("unmanaged", "2026-05-10T09:00:00+08:00", (130, 80))
    for r in c.res:
        subject = r.get("subject", {}).get("reference")
        if r["resourceType"] == "Observation" and subject != "Patient/clinic":
            r["device"] = {"reference": "Device/cuff-1"}
    rows = compute_indicators(
        [c.write(tmp_path / "in")], 2026, suppress_below=0, as_of=date(2026, 12, 31)
    )
    cov = {
        r["period"]: nd(r)
        for r in rows
        if r["indicator_id"] == "home-monitoring-coverage" and r["stratum"] == "county"
    }
    assert cov["2026-05"] == (2, 4)  # last-day and glucose
    assert cov["2026-06"] == (1, 4)  # next-day
    assert cov["2026-07"] == (0, 4)
    assert cov["2026"] == (3, 4)


def test_a_day_of_home_readings_without_encounters_refreshes(tmp_path: Path) -> None:
    # A day's data of home-device readings only: no Observation of the day has an
    # encounter, so the view's encounter key is NULL in every staged row (DuckDB 2.0.0
    # could not bind split_part compared with text over such a column).
    c = County()
    managed(c, "m1")
    c.visit("m1", "2026-04-01", (150, 95))
    base = c.write(tmp_path / "base")
    day = day_of_data()
    day.bp("m1", "2026-04-02T07:00:00+08:00", (135, 85))
    day.res[-1]["device"] = {"reference": "Device/cuff-1"}
    new = day.write(tmp_path / "new")
    with IndicatorStore() as inc:
        inc.load([base], [2026], as_of=date(2026, 6, 30))
        assert inc.refresh([new])["mode"] == "incremental"
        got = all_rows(inc)
    assert got == full_build([base, new], as_of=date(2026, 6, 30))


def test_contract_coverage_key_groups(tmp_path: Path) -> None:
    c = County()
    c.patient("a65", "1961-12-31")  # 65 on 31 Dec 2026: in the 65+ group
    c.patient("a64", "1962-01-01")  # 64 at the end of the year
    c.patient("b", "1990-01-01")
    c.patient("h", "1980-01-01")
    c.add(
        {
            "resourceType": "Condition",
            "subject": {"reference": "Patient/h"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]},
            "recordedDate": "2024-01-01",
        }
    )
    c.episode("a65", "family-doctor-contract", "2026-03-01", "2027-02-28")
    c.episode("h", "family-doctor-contract", "2025-03-01", "2026-02-28")  # overlaps 2026
    c.episode("b", "family-doctor-contract", "2025-01-01", "2025-12-31")  # ended in 2025
    rows = run(c, tmp_path)
    assert nd(rows["family-doctor-contract-coverage"]) == (2, 4)
    assert nd(rows["family-doctor-contract-coverage-65plus"]) == (1, 1)
    assert nd(rows["family-doctor-contract-coverage-hypertension"]) == (1, 1)
    assert nd(rows["family-doctor-contract-coverage-diabetes"]) == (0, 0)


def test_data_sharing_duplicate_tests_referrals_and_quality(tmp_path: Path) -> None:
    c = County()
    c.patient("s", "1970-01-01")
    c.patient("n", "1970-01-01")
    c.add(
        {
            "resourceType": "Consent",
            "status": "active",
            "patient": {"reference": "Patient/s"},
            "provision": {
                "type": "permit",
                "period": {"start": "2026-01-01", "end": "2026-06-30"},
                "actor": [
                    {
                        "role": {"coding": [{"code": "IRCP"}]},
                        "reference": {"reference": "Organization/org-hosp"},
                    }
                ],
            },
        }
    )
    c.visit("s", "2026-02-01", (120, 80), org="org-vc")  # shared with the hospital
    c.visit("s", "2026-03-01", (120, 80), org="org-hosp")  # only the provider itself
    c.visit("s", "2026-04-01", (120, 80), org="org-lab")  # a department of the recipient
    c.visit("s", "2026-08-01", (120, 80), org="org-vc")  # consent expired
    c.visit("n", "2026-02-01", (120, 80), org="org-vc")  # no consent
    # HbA1c: at the centre, 30 days later at the hospital (duplicate), 31 days after that
    # at the hospital again (same institution: not), then at the centre 31 days on (not).
    c.lab("s", "4548-4", "2026-03-01T08:00:00+08:00", 7.0, performer="PractitionerRole/role-gp")
    c.lab("s", "4548-4", "2026-03-31T08:00:00+08:00", 7.0)
    c.lab("s", "4548-4", "2026-05-01T08:00:00+08:00", 7.0)
    c.lab("s", "4548-4", "2026-06-01T08:00:00+08:00", 7.0, performer="Organization/org-thc")
    for authored, done in [("03-01", "03-04"), ("04-01", "04-02"), ("05-01", "05-06")]:
        sr = c.add(
            {
                "resourceType": "ServiceRequest",
                "status": "completed",
                "subject": {"reference": "Patient/s"},
                "category": [
                    {
                        "coding": [
                            {
                                "system": KQ + "CodeSystem/service-request-category",
                                "code": "referral-up",
                            }
                        ]
                    }
                ],
                "authoredOn": f"2026-{authored}T10:00:00+08:00",
            }
        )
        c.add(
            {
                "resourceType": "Task",
                "status": "completed",
                "for": {"reference": "Patient/s"},
                "focus": {"reference": f"ServiceRequest/{sr['id']}"},
                "executionPeriod": {"end": f"2026-{done}T10:00:00+08:00"},
            }
        )
    c.bp("n", "2026-05-01T09:00:00+08:00", (260, 40), issued="2026-05-03T09:00:00+08:00")  # 48 h
    c.bp("n", "2026-05-02T09:00:00+08:00", (261, 80), issued="2026-05-04T09:01:00+08:00")
    c.bp("n", "2026-05-03T09:00:00+08:00", (80, 90))  # systolic below diastolic: swapped
    rows = run(c, tmp_path)
    assert nd(rows["data-sharing-rate"]) == (1, 5)
    assert nd(rows["duplicate-test-rate"]) == (1, 4)
    assert rows["referral-up-volume"]["numerator"] == 3
    assert rows["referral-up-median-days"]["numerator"] == 3
    assert rows["referral-up-median-days"]["rate"] == pytest.approx(3.0)
    # BP readings: 5 at visits (plausible, on time) + 3 standalone.
    assert nd(rows["dq-bp-plausibility"]) == (6, 8)
    assert nd(rows["dq-result-timeliness"]) == (11, 12)  # 8 BP + 4 HbA1c; one 48 h + 1 min
    monthly = county_rows(
        compute_indicators([tmp_path / "in"], 2026, suppress_below=0, as_of=date(2026, 12, 31)),
        "2026-03",
    )
    assert nd(monthly["duplicate-test-rate"]) == (1, 2)
    # A longer window for HbA1c makes the June test at the centre a repeat of May's.
    wide = run(c, tmp_path / "w", params={"windows": {"4548-4": 31}})
    assert nd(wide["duplicate-test-rate"]) == (2, 4)


@pytest.mark.parametrize(("count", "suppressed"), [(9, True), (10, False)])
def test_small_cells_suppressed_below_ten(tmp_path: Path, count: int, suppressed: bool) -> None:
    c = County()
    c.patient("s", "1970-01-01")
    for _ in range(count):
        c.add(
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "subject": {"reference": "Patient/s"},
                "category": [
                    {
                        "coding": [
                            {
                                "system": KQ + "CodeSystem/service-request-category",
                                "code": "teleconsultation",
                            }
                        ]
                    }
                ],
                "authoredOn": "2026-03-01T10:00:00+08:00",
            }
        )
    row = run(c, tmp_path, suppress_below=10)["teleconsultation-volume"]
    assert row["suppressed"] is suppressed
    assert row["numerator"] == (None if suppressed else count)


def test_suppression_rule() -> None:
    assert is_suppressed(0, 10, 10) is False  # a zero count discloses nobody
    assert is_suppressed(9, 100, 10) is True
    assert is_suppressed(10, 9, 10) is True  # rate on fewer than 10 people
    assert is_suppressed(3, 5, 0) is False  # inside the county: no suppression


def test_the_results_query_suppresses_by_the_same_rule() -> None:
    # results() applies the rule in SQL; it must agree with is_suppressed case by case.
    cases = list(itertools.product([None, 0, 1, 9, 10, 11], [None, 0, 9, 10, 100], [0, 10]))
    with IndicatorStore() as store:
        for num, den, below in cases:
            row = store.con.execute(
                f"SELECT {suppressed_sql('n', 'd', below)} FROM "
                "(SELECT CAST(? AS DOUBLE) AS n, CAST(? AS DOUBLE) AS d)",
                [num, den],
            ).fetchone()
            assert row is not None and row[0] is is_suppressed(num, den, below), (num, den, below)



def test_a_full_build_drops_derived_tables_no_longer_defined(tmp_path: Path) -> None:
    """A store written when a derived table (``labtest``) still existed loses it at its next
    full build instead of carrying a table nothing keeps up to date."""
    c = County()
    managed(c, "p1")
    with IndicatorStore() as store:
        store.load([c.write(tmp_path / "in")], [2026])
        store.con.execute("CREATE TABLE d_labtest AS SELECT 1 AS id")
        store.load([c.write(tmp_path / "again")], [2026])
        tables = store.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    names = {r[0] for r in tables}
    assert "d_labtest" not in names and "d_dim" in names
