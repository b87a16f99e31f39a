"""The dashboards' ECharts options: rankings, trends, the township map and the HEARTS
cohort, each with its target drawn and its numbers as a table (see
:mod:`kangqiao.web.workbench_charts` for the conventions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kangqiao.web.dashboard_access import Target
from kangqiao.web.workbench_charts import REFERENCE_GREY, TARGET_RED, Chart, base_option, mark_lines

GREEN, RED, BLUE, GREY = "#0b6e4f", "#d64545", "#2680c2", "#9aa5b1"
HEARTS_COLOURS = {"hearts-controlled": "#0b6e4f", "hearts-uncontrolled": "#d64545",
                  "hearts-visit-no-bp": "#f0b429", "hearts-missed-visit": "#9aa5b1",
                  "hearts-lost-to-follow-up": "#52606d"}


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar or point: a unit's value in display units (% for rates)."""

    label: str
    value: float | None
    href: str | None = None
    detail: str = ""


def scale(rate: float | None, aggregate: str) -> float | None:
    if rate is None:
        return None
    return round(rate * 100, 1) if aggregate == "ratio" else round(rate, 1)


def shown(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value:g}%" if unit == "%" else f"{value:g}"


def lines(target: Target | None, reference: tuple[str, float | None] | None, aggregate: str,
          en: bool) -> list[tuple[str, float, str]]:
    """The target (red) and, where there is none, a reference value (grey)."""
    out: list[tuple[str, float, str]] = []
    if target is not None:
        value = scale(target.value, aggregate)
        assert value is not None
        out.append((target.label(en), value, TARGET_RED))
    elif reference is not None and reference[1] is not None:
        out.append((f"{reference[0]} {reference[1]:g}", reference[1], REFERENCE_GREY))
    return out


def _colour(value: float | None, target: Target | None, aggregate: str) -> str:
    if value is None or target is None:
        return BLUE
    met = target.met(value / 100 if aggregate == "ratio" else value)
    return GREEN if met else RED


def ranking(title: str, bars: list[Bar], unit: str, target: Target | None,
            reference: tuple[str, float | None] | None, aggregate: str, en: bool,
            head: list[str]) -> Chart:
    """Horizontal bars, best first from the top; green at or beyond the target, red short
    of it; a click on a bar with an href drills down."""
    ordered = list(reversed(bars))  # ECharts draws the first category at the bottom
    data = [{"value": b.value, "href": b.href,
             "itemStyle": {"color": _colour(b.value, target, aggregate)}} for b in ordered]
    option = base_option(
        tooltip={"trigger": "item"},
        grid={"left": 8, "right": 56, "top": 34, "bottom": 24, "containLabel": True},
        xAxis={"type": "value", "name": unit, **({"max": 100} if unit == "%" else {})},
        yAxis={"type": "category", "data": [b.label for b in ordered],
               "axisLabel": {"width": 150, "overflow": "truncate"}},
        series=[{"type": "bar", "name": title, "data": data, "cursor": "pointer",
                 "label": {"show": True, "position": "right",
                           "formatter": "{c}" + ("%" if unit == "%" else "")},
                 "markLine": mark_lines(lines(target, reference, aggregate, en), "xAxis")}])
    rows = [[str(i + 1), b.label, shown(b.value, unit), b.detail] for i, b in enumerate(bars)]
    best = bars[0] if bars and bars[0].value is not None else None
    summary = f"{title}: " + (f"{best.label} {shown(best.value, unit)}" if best else "—")
    return Chart(title, option, summary, head, rows, height=max(220, 34 * len(bars) + 60))


def trend(title: str, periods: list[str], series: list[tuple[str, list[float | None], str]],
          unit: str, target: Target | None, reference: tuple[str, float | None] | None,
          aggregate: str, en: bool, period_label: str, kind: str = "line") -> Chart:
    """Values over periods (months or years), the target line on the first series."""
    out = []
    for i, (name, values, colour) in enumerate(series):
        item: dict[str, Any] = {"type": kind, "name": name, "data": values, "color": colour,
                                "connectNulls": True, "symbolSize": 6}
        if i == 0:
            item["markLine"] = mark_lines(lines(target, reference, aggregate, en))
        out.append(item)
    option = base_option(
        legend={"top": 0, "type": "scroll"},  # one line, however long the names
        grid={"left": 48, "right": 56, "top": 44, "bottom": 28},
        xAxis={"type": "category", "data": periods},
        yAxis={"type": "value", "name": unit, **({"min": 0, "max": 100} if unit == "%"
                                                 else {})},
        series=out)
    rows = [[p, *(shown(s[1][k], unit) for s in series)] for k, p in enumerate(periods)]
    last = next((k for k in range(len(periods) - 1, -1, -1)
                 if series and series[0][1][k] is not None), None)
    summary = f"{title}: " + ("—" if last is None else
                              f"{periods[last]} {shown(series[0][1][last], unit)}")
    return Chart(title, option, summary, [period_label, *(s[0] for s in series)],
                 list(reversed(rows)))


def township_map(title: str, points: list[tuple[Bar, float, float]], unit: str,
                 target: Target | None, aggregate: str, en: bool, head: list[str]) -> Chart:
    """Townships at their health centre's coordinates (longitude, latitude on a plain
    value grid: no map tiles), coloured by the indicator (red short of the target, green
    beyond it; a continuous scale when there is no target)."""
    values = [b.value for b, _, _ in points if b.value is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if target is not None:
        cut = scale(target.value, aggregate)
        good_high = target.direction == ">="
        pieces = [{"lt": cut, "color": RED if good_high else GREEN,
                   "label": ("< " if en else "低于 ") + f"{cut:g}"},
                  {"gte": cut, "color": GREEN if good_high else RED,
                   "label": ("≥ " if en else "不低于 ") + f"{cut:g}"}]
        visual: dict[str, Any] = {"type": "piecewise", "pieces": pieces, "dimension": 2,
                                  "orient": "horizontal", "left": "center", "bottom": 0}
    else:
        visual = {"type": "continuous", "min": low, "max": high if high > low else low + 1,
                  "dimension": 2, "calculable": True, "orient": "horizontal",
                  "left": "center", "bottom": 0, "inRange": {"color": ["#fde2e1", GREEN]}}
    data = [{"name": b.label, "value": [lon, lat, b.value], "href": b.href}
            for b, lat, lon in points]
    option = base_option(
        tooltip={"trigger": "item", "formatter": "{b}: {@[2]}" + ("%" if unit == "%" else "")},
        grid={"left": 40, "right": 40, "top": 20, "bottom": 60},
        xAxis={"type": "value", "name": "经度" if not en else "lon",
               "splitLine": {"show": False}, **_span([lon for _, _, lon in points])},
        yAxis={"type": "value", "name": "纬度" if not en else "lat",
               "splitLine": {"show": False}, **_span([lat for _, lat, _ in points])},
        visualMap=visual,
        # A plain scatter: a rippling effectScatter never stops animating (CPU on clinic PCs).
        series=[{"type": "scatter", "symbolSize": 26, "data": data, "cursor": "pointer",
                 "label": {"show": True, "position": "bottom", "formatter": "{b}",
                           "color": "#1f2933"}}])
    rows = [[b.label, shown(b.value, unit), f"{lat:.3f}, {lon:.3f}"] for b, lat, lon in points]
    return Chart(title, option, f"{title}: {len(points)}", head, rows, height=420)


def _span(values: list[float]) -> dict[str, float]:
    """Axis bounds around the coordinates, so one township alone still sits in a sensible
    frame (ECharts' automatic scale would stretch a single point's axis to whole tens)."""
    low, high = min(values), max(values)
    pad = max((high - low) * 0.12, 0.05)
    return {"min": round(low - pad, 2), "max": round(high + pad, 2)}


def cohort(title: str, labels: list[str], states: list[tuple[str, str, list[float | None]]],
           target: Target | None, en: bool, head: list[str], hrefs: list[str | None]
           ) -> Chart:
    """HEARTS: one 100% stacked bar per place, one segment per state (ids, names, shares
    in %), the target on the controlled share."""
    ordered = list(reversed(labels))
    out = []
    for i, (sid, name, values) in enumerate(states):
        item: dict[str, Any] = {
            "type": "bar", "stack": "cohort", "name": name, "color": HEARTS_COLOURS.get(sid),
            "data": [{"value": v, "href": h, **({} if v else {"label": {"show": False}})}
                     for v, h in zip(reversed(values), reversed(hrefs), strict=True)],
            "label": {"show": True, "formatter": "{c}%", "color": "#fff", "fontSize": 11}}
        if i == 0:
            item["markLine"] = mark_lines(lines(target, None, "ratio", en), "xAxis")
        out.append(item)
    option = base_option(
        tooltip={"trigger": "axis", "axisPointer": {"type": "shadow"}},
        legend={"top": 0, "type": "scroll"}, grid={"left": 8, "right": 24, "top": 44, "bottom": 24,
                                 "containLabel": True},
        xAxis={"type": "value", "max": 100, "name": "%"},
        yAxis={"type": "category", "data": ordered}, series=out)
    rows = [[label, *(("—" if s[2][k] is None else f"{s[2][k]:g}%") for s in states)]
            for k, label in enumerate(labels)]
    return Chart(title, option, f"{title}: {len(labels)}", head, rows,
                 height=max(200, 38 * len(labels) + 80))
