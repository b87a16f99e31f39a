"""Readings that reach the record without the form's check (other systems, typed-in paper
records, the synthetic county's injected defects) are held to the form's own plausibility
ranges (HEARTS DHIS2: SBP 60-260, DBP 40-260 mmHg) before any rule sees them."""

from __future__ import annotations

from datetime import date

import pytest

from kangqiao.chronic.records import DBP, HEART_RATE, SBP, plausible, visit_from_resources
from kangqiao.chronic.rules import BloodPressure, Disease


@pytest.mark.parametrize(("sbp", "dbp", "kept"), [
    (260, 259, True), (60, 40, True),  # the ranges' ends are plausible
    (261, 90, False), (59, 40, False), (120, 39, False), (120, 261, False),
    (1389, 85, False),  # an extra digit typed
    (120, 119, True), (120, 120, False), (85, 138, False),  # systolic must exceed diastolic
])
def test_blood_pressure_range_boundaries(sbp: float, dbp: float, kept: bool) -> None:
    values, set_aside = plausible({SBP: sbp, DBP: dbp, HEART_RATE: 76})
    assert values.get(HEART_RATE) == 76  # other values untouched
    if kept:
        assert values[SBP] == sbp and values[DBP] == dbp and set_aside == ()
    else:
        # one half out of range sets the whole reading aside; only that half is reported
        assert SBP not in values and DBP not in values
        out_of_range = [(f"{v:g}", "mmHg") for v, ok in (
            (sbp, 60 <= sbp <= 260), (dbp, 40 <= dbp <= 260)) if not ok]
        swapped = [(f"{sbp:g}/{dbp:g}", "mmHg")] if not out_of_range else []
        assert [(i.value, i.unit) for i in set_aside] == out_of_range + swapped


def test_an_implausible_reading_is_not_classified() -> None:
    day = date(2026, 10, 3)
    typo = visit_from_resources(Disease.HYPERTENSION, day, None,
                                {SBP: 1389.0, DBP: 85.0}, None)
    assert typo.bp is None and [i.name_zh for i in typo.implausible] == ["收缩压"]
    fine = visit_from_resources(Disease.HYPERTENSION, day, None, {SBP: 138.0, DBP: 85.0},
                                None)
    assert fine.bp == BloodPressure(138, 85) and fine.implausible == ()
