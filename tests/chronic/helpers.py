"""Small constructors so each test reads as the clause it checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from kangqiao.chronic.rules import (
    BloodPressure,
    Disease,
    FollowUpVisit,
    Patient,
    VisitMode,
)

HTN, DM = Disease.HYPERTENSION, Disease.DIABETES_T2
# Born 1960-06-15: 64 until 2025-06-14, 65 from 2025-06-15.
PATIENT = Patient(date(1960, 6, 15), conditions=frozenset({HTN, DM}))
SIXTY_FIFTH = date(2025, 6, 15)


def d(text: str) -> date:
    return date.fromisoformat(text)


def htn(day: str, sbp: int | None, dbp: int | None = None, **kw: Any) -> FollowUpVisit:
    bp = BloodPressure(sbp, dbp) if sbp is not None and dbp is not None else None
    return FollowUpVisit(d(day), HTN, bp=bp, **kw)


def dm(day: str, fpg: float | None, **kw: Any) -> FollowUpVisit:
    return FollowUpVisit(d(day), DM, fasting_glucose=fpg, **kw)


def phone(visit: FollowUpVisit) -> FollowUpVisit:
    return replace(visit, mode=VisitMode.PHONE)
