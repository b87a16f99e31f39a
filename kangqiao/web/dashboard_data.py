"""The numbers behind the dashboards: the indicator engine's results over what one user may
see, cached per view.

A snapshot is built in three steps. (1) Every resource type the catalogue's views read is
written to NDJSON in a temporary folder, read in a unit of work opened with the user's
``Access`` under the gate's SQL condition (:func:`write_visible`): the security gate decides
what goes in, as it does for a search or a ``$export``. (2)
``IndicatorStore.load`` computes the whole catalogue on DuckDB from that folder (the code
behind ``kangqiao indicators compute``) for the years the data covers and their months.
(3) The results per county, township, village and doctor are kept in memory with the
organisation tree, the doctors and the townships' coordinates (Location.position).

Cache and refresh: one snapshot per view key (:func:`view_key`: the user, or one for all
county administrators, whose view the policy makes the same). The first request of a key
starts the build in a background thread and gets ``None`` (the page says "computing" and
reloads itself); later requests get the snapshot at once. At most every ``CHECK_SECONDS``
a request compares the store's data version (the latest ``resource_history.last_updated``,
one index lookup); when it moved, a new snapshot is built in the background and the old one
is served until it is ready. Results are unsuppressed (they stay in the county's system);
exports apply the engine's small-cell rule (:mod:`.dashboard_export`).
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Text, cast, func, select

from kangqiao.analytics.indicators import IndicatorStore, load_views
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security import rules
from kangqiao.security.gate import Access

log = logging.getLogger("kangqiao.dashboard")
CHECK_SECONDS = 60.0  # how often a request looks whether the store changed
CHUNK = 5000
CENTRE_KINDS = ("township-centre", "community-centre")
LEVELS = ("county", "township", "village", "doctor")
MAX_YEARS = 3
# Encounter.period.start's year in the stored JSON text (compact, or jsonb's "key": value).
START_YEAR = re.compile(r'"period":\s*\{[^{}]*"start":\s*"(\d{4})')


@dataclass(frozen=True, slots=True)
class Unit:
    """A place in the drill-down: the county, a township (its health centre), a village
    (its clinic) or a doctor (PractitionerRole)."""

    id: str
    name: str
    level: str
    parent: str | None
    lat: float | None = None
    lon: float | None = None


@dataclass
class Snapshot:
    rows: dict[tuple[str, str, str], dict[str, Any]]  # (indicator, period, unit id) -> row
    units: dict[str, Unit]
    years: list[int]
    months: list[str]
    as_of: date | None
    built_at: datetime
    version: str
    seconds: float
    resources: int
    children: dict[str, list[str]] = field(default_factory=dict)

    def row(self, indicator: str, period: str, unit: str) -> dict[str, Any] | None:
        return self.rows.get((indicator, period, unit))

    def rate(self, indicator: str, period: str, unit: str) -> float | None:
        row = self.row(indicator, period, unit)
        return None if row is None else row.get("rate")

    def kids(self, unit: str) -> list[Unit]:
        return [self.units[c] for c in self.children.get(unit, [])]

    def path(self, unit: str) -> list[Unit]:
        """The county down to ``unit`` (the breadcrumb)."""
        out: list[Unit] = []
        current: str | None = unit
        while current is not None and current in self.units and len(out) < 5:
            out.append(self.units[current])
            current = self.units[current].parent
        return list(reversed(out))


def resource_types() -> list[str]:
    """What the catalogue's views read, plus Location for the townships' coordinates."""
    return sorted({str(v["resource"]) for v in load_views().values()} | {"Location"})


def data_version(store: FhirStore) -> str:
    with store.engine.connect() as conn:
        latest = conn.execute(select(func.max(schema.resource_history.c.last_updated))
                              ).scalar()
    return "" if latest is None else str(latest)


def write_visible(store: FhirStore, access: Access, folder: Path) -> tuple[int, set[int]]:
    """The user's view of the store as NDJSON files (one per type) in ``folder``: how many
    resources, and the years in which encounters started.

    Each type is read in keyset chunks of the ``resource`` table under the gate's SQL
    condition for this user (``Gate.search_filter``: by the gate's contract it removes what
    the user may not see, and it is the condition every search and ``$export`` applies
    inside its query). The rows are copied as JSON text, neither decoded nor shown one by
    one to ``may_read`` as a searchset's hits are: on the 20,000-resident county those two
    took 60% of the time (bench/dashboard.py, docs/benchmarks.md)."""
    total, years = 0, set()
    R = schema.resource
    text = cast(R.c.content, Text)
    with store.read(access) as uow:
        for rtype in resource_types():
            where = [R.c.resource_type == rtype, R.c.deleted.is_(False),
                     R.c.content.is_not(None)]
            visible = uow.gate.search_filter(uow.access, rtype)
            if visible is not None:
                where.append(visible)
            after: str | None = None
            with (folder / f"{rtype}.ndjson").open("w", encoding="utf-8") as out:
                while True:
                    page = uow.conn.execute(
                        select(R.c.id, text).where(
                            *where, *([R.c.id > after] if after is not None else []))
                        .order_by(R.c.id).limit(CHUNK)).all()
                    if not page:
                        break
                    for _, content in page:
                        out.write(content + "\n")
                    total += len(page)
                    if rtype == "Encounter":
                        years |= {int(y) for _, c in page for y in START_YEAR.findall(c)}
                    after = page[-1][0]
    return total, years


def _positions(folder: Path) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for line in (folder / "Location.ndjson").read_bytes().splitlines():
        loc = orjson.loads(line)
        pos, org = loc.get("position") or {}, (loc.get("managingOrganization") or {})
        ref = str(org.get("reference") or "")
        if ref.startswith("Organization/") and "latitude" in pos and "longitude" in pos:
            out.setdefault(ref.split("/", 1)[1], (float(pos["latitude"]),
                                                  float(pos["longitude"])))
    return out


def _units(engine: IndicatorStore, positions: dict[str, tuple[float, float]]
           ) -> tuple[dict[str, Unit], dict[str, set[str]]]:
    """The drill-down's places, and for each doctor the places where their patients live."""
    con = engine.con
    orgs = con.execute("SELECT id, name, kind, part_of FROM v_organization").fetchall()
    units = {"county": Unit("county", "全县", "county", None)}
    kind_of = {oid: kind for oid, _, kind, _ in orgs}
    for oid, name, kind, part_of in orgs:
        lat, lon = positions.get(oid, (None, None))
        if kind in CENTRE_KINDS:
            units[oid] = Unit(oid, name or oid, "township", "county", lat, lon)
        elif kind == "village-clinic":
            parent = part_of if kind_of.get(part_of) in CENTRE_KINDS else None
            units[oid] = Unit(oid, name or oid, "village", parent, lat, lon)
    # A doctor is listed under every village (else township) where their patients live,
    # and belongs (for the breadcrumb) to the one with most of them; a doctor's figures
    # cover all of their patients.
    homes: dict[str, Counter[str]] = {}
    for doctor, village, township, n in con.execute(
            "SELECT doctor_id, village_id, township_id, count(*) FROM d_dim "
            "WHERE doctor_id IS NOT NULL GROUP BY ALL").fetchall():
        place = village if village in units else township if township in units else None
        if place is not None:
            homes.setdefault(doctor, Counter())[place] += int(n)
    for rid, name in con.execute("SELECT id, name FROM v_practitioner_role").fetchall():
        if rid in homes:
            units[rid] = Unit(rid, name or rid, "doctor", homes[rid].most_common(1)[0][0])
    return units, {d: set(places) for d, places in homes.items() if d in units}


def build_snapshot(store: FhirStore, access: Access, today: date) -> Snapshot:
    started, version = time.monotonic(), data_version(store)
    with tempfile.TemporaryDirectory(prefix="kangqiao-dash-") as tmp:
        folder = Path(tmp)
        total, seen_years = write_visible(store, access, folder)
        last = max(seen_years or {today.year})
        years = [y for y in range(last - MAX_YEARS + 1, last + 1)
                 if y in seen_years or y == last]
        with IndicatorStore() as engine:
            engine.load([folder], years)
            results = engine.results(LEVELS, suppress_below=0)
            units, doctor_places = _units(engine, _positions(folder))
            as_of = engine.data_as_of()
    rows = {(r["indicator_id"], r["period"], r["stratum_id"]): r for r in results
            if r["stratum"] in LEVELS}
    for (_, _, uid), row in rows.items():
        if uid != "county" and uid in units:
            row["stratum_name"] = units[uid].name
    children: dict[str, list[str]] = {}
    for u in units.values():
        if u.parent is not None and u.level != "doctor":
            children.setdefault(u.parent, []).append(u.id)
    for doctor, places in sorted(doctor_places.items()):
        for place in sorted(places):
            children.setdefault(place, []).append(doctor)
    months = sorted({r["period"] for r in results if r["period_type"] == "month"})
    return Snapshot(rows, units, years, months, as_of, datetime.now(), version,
                    round(time.monotonic() - started, 2), total, children)


def view_key(access: Access) -> tuple[str | None, ...]:
    """Users with the same key see the same records. County administrators all see every
    patient of the county except those who refused sharing (docs/security.md), so they
    share one snapshot per purpose; everyone else has their own."""
    if access.role == rules.COUNTY_ADMIN:
        return ("county-admin", access.purpose)
    return (access.actor, access.role, access.organization, access.purpose,
            access.practitioner_role)


@dataclass
class _Entry:
    snapshot: Snapshot | None = None
    checked: float = 0.0
    building: bool = False


class DashboardCache:
    """Snapshots per view key; see the module's docstring for when they are rebuilt."""

    def __init__(self, store: FhirStore, check_seconds: float = CHECK_SECONDS) -> None:
        self.store = store
        self.check_seconds = check_seconds
        self._entries: dict[tuple[str | None, ...], _Entry] = {}
        self._guard = threading.Lock()

    def get(self, access: Access, today: date) -> Snapshot | None:
        """The snapshot of ``access``'s view, or None while its first one is being built."""
        with self._guard:
            entry = self._entries.setdefault(view_key(access), _Entry())
            start = entry.snapshot is None and not entry.building
            if entry.snapshot is not None and not entry.building and (
                    time.monotonic() - entry.checked >= self.check_seconds):
                entry.checked = time.monotonic()
                start = data_version(self.store) != entry.snapshot.version
            if start:
                entry.building = True
                threading.Thread(target=self._build, args=(entry, access, today),
                                 name="kangqiao-dashboard", daemon=True).start()
        return entry.snapshot

    def wait(self, access: Access, today: date, timeout: float = 600.0) -> Snapshot:
        """The snapshot, waiting for its build (benchmarks, the CLI)."""
        deadline = time.monotonic() + timeout
        while (snap := self.get(access, today)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the dashboard snapshot took too long")
            time.sleep(0.1)
        return snap

    def _build(self, entry: _Entry, access: Access, today: date) -> None:
        try:
            entry.snapshot = build_snapshot(self.store, access, today)
            entry.checked = time.monotonic()
        except Exception:  # the next request tries again; the log says why
            log.exception("dashboard snapshot failed")
        finally:
            entry.building = False
