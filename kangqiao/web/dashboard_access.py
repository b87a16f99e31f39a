"""Who sees which dashboard, where the snapshots live, and each indicator's target.

The clinic dashboard (issue 6) is for the staff of a township health centre or a village
clinic; the county indicator dashboard (issue 7) for the county health commission
(county-admin) and public-health staff. What the numbers cover is still the security gate's
decision: each user's snapshot is built from their own view of the record
(:mod:`.dashboard_data`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request

from kangqiao.analytics.indicators import Indicator, load_catalogue
from kangqiao.security import accounts, rules
from kangqiao.security.authn import session_scopes
from kangqiao.web.dashboard_data import DashboardCache

CLINIC_ROLES = frozenset({rules.VILLAGE_DOCTOR, rules.GP, rules.NURSE, rules.PUBLIC_HEALTH,
                          rules.CLINICIAN})
COUNTY_ROLES = frozenset({rules.COUNTY_ADMIN, rules.PUBLIC_HEALTH})
TARGETS_FILE = Path(__file__).resolve().parent / "dashboard_targets.json"


def warm_up(state: Any, today: date) -> bool:
    """Start building the snapshot every county administrator shares (county-admin view,
    their default purpose), as the first of them to open the dashboard would; False when the
    county has no active county-admin account. The build reads through the gate with a
    county administrator's view, acting as ``system/dashboard-warmup``, not as a person."""
    engine = state.store.engine
    admin = accounts.first_with_role(engine, rules.COUNTY_ADMIN)
    if admin is None:
        return False
    access = admin.access(scopes=session_scopes(admin.role),
                          purpose=rules.purposes(admin.role, False)[0], remote_addr=None)
    access = dataclasses.replace(access, actor="system/dashboard-warmup", user=None)
    app_cache(state).get(access, today)
    return True


def dashboards_of(role: str) -> list[tuple[str, str]]:
    """(label key, path) of the dashboards ``role`` may open."""
    out = []
    if role in CLINIC_ROLES:
        out.append(("db_clinic", "/dashboard/clinic"))
    if role in COUNTY_ROLES:
        out.append(("db_county", "/dashboard/county"))
    return out


def cache_of(request: Request) -> DashboardCache:
    return app_cache(request.app.state)


def app_cache(state: Any) -> DashboardCache:
    """The app's snapshots (``app.state``), made on first use."""
    found = getattr(state, "dashboards", None)
    if found is None:
        found = state.dashboards = DashboardCache(state.store)
    assert isinstance(found, DashboardCache)
    return found


@dataclass(frozen=True, slots=True)
class Target:
    value: float
    direction: str  # ">=" (higher is better) or "<"
    source_zh: str
    source_en: str

    def met(self, rate: float | None) -> bool | None:
        if rate is None:
            return None
        return rate >= self.value if self.direction == ">=" else rate < self.value

    def label(self, en: bool) -> str:
        shown = f"{self.value * 100:g}%"
        return ("target " if en else "目标 ") + ("≥ " if self.direction == ">=" else "< ") + shown


@cache
def _county_targets() -> dict[str, Any]:
    return dict(json.loads(TARGETS_FILE.read_text(encoding="utf-8")))


def target_of(ind: Indicator) -> Target | None:
    """The catalogue's target (a plan's), else the county's own, else none."""
    if ind.target is not None:
        source = str(ind.target.get("source") or "")
        return Target(float(ind.target["value"]), str(ind.target.get("direction") or ">="),
                      source, source)
    county = _county_targets()
    mine = county["targets"].get(ind.id)
    if mine is None:
        return None
    return Target(float(mine["value"]), str(mine.get("direction") or ">="),
                  county["source"]["zh"], county["source"]["en"])


def indicators() -> dict[str, Indicator]:
    return {i.id: i for i in load_catalogue()}
