"""Charts for the workbench and the dashboards as Apache ECharts options, built on the server.

A chart is a JSON option that ``static/charts.js`` hands to ECharts (served by the app from
``node_modules``, see :mod:`kangqiao.web.assets`), plus what a person without JavaScript
gets instead: a one-line text summary inside the chart's box and the numbers as a table.
Targets are ``markLine`` s (dashed red). Options hold data only, no functions, so they stay
plain JSON; a bar or point that leads somewhere carries its ``href`` in its data item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

TARGET_RED = "#d64545"
REFERENCE_GREY = "#7b8794"
DAY_MS = 86_400_000
FONT = '"Noto Sans CJK SC", "Microsoft YaHei", system-ui, sans-serif'


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    colour: str
    points: list[tuple[date, float]]


@dataclass
class Chart:
    """What a template needs to draw one chart: the ECharts ``option``, a text ``summary``
    (shown until, or unless, ECharts draws) and a data ``table`` (head, rows)."""

    title: str
    option: dict[str, Any]
    summary: str
    head: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    height: int = 260


def mark_lines(lines: list[tuple[str, float, str]], axis: str = "yAxis") -> dict[str, Any]:
    """Lines at ``(label, value, colour)`` on the value axis (``xAxis`` for horizontal
    bars): targets and references."""
    return {"symbol": "none", "silent": True, "data": [
        {axis: value, "name": label,
         "lineStyle": {"color": colour, "type": "dashed", "width": 1.5},
         "label": {"formatter": f"{label}", "color": colour,
                   "position": "insideEndTop" if axis == "yAxis" else "end"}}
        for label, value, colour in lines]}


def base_option(**extra: Any) -> dict[str, Any]:
    return {"textStyle": {"fontFamily": FONT}, "animation": False,
            "tooltip": {"trigger": "axis"}, **extra}


def trend_chart(title: str, series: list[Series], targets: list[tuple[str, float, int]],
                unit: str, empty: str, date_label: str) -> Chart:
    """A line chart of ``series`` over time; ``targets`` are (label, value, index of the
    series the line belongs to), drawn as dashed red lines."""
    days = sorted({d for s in series for d, _ in s.points})
    if not days:
        return Chart(title, {}, empty)
    values = [v for s in series for _, v in s.points] + [v for _, v, _ in targets]
    low, high = min(values), max(values)
    pad = max((high - low) * 0.15, 1.0)
    out = []
    for i, s in enumerate(series):
        mine = [(f"{label} {v:g}", v, TARGET_RED) for label, v, k in targets if k == i]
        out.append({"type": "line", "name": s.label, "color": s.colour, "symbolSize": 7,
                    "data": [[d.isoformat(), v] for d, v in sorted(s.points)],
                    "markLine": mark_lines(mine)})
    step = 10 if high - low >= 20 else 1
    # A few readings close together: at least a month on the axis, labelled by day (the
    # time axis would otherwise count hours between two points).
    first, last = days[0], days[-1]
    widen = max(0, 30 - (last - first).days) // 2 + 3
    option = base_option(
        legend={"top": 0}, grid={"left": 48, "right": 24, "top": 32, "bottom": 28},
        xAxis={"type": "time", "min": (first - timedelta(days=widen)).isoformat(),
               "max": (last + timedelta(days=widen)).isoformat(),
               "minInterval": DAY_MS, "axisLabel": {"formatter": "{yyyy}-{MM}-{dd}",
                                                    "hideOverlap": True}},
        yAxis={"type": "value", "name": unit, "min": math.floor((low - pad) / step) * step,
               "max": math.ceil((high + pad) / step) * step},
        series=out)
    by_day = {d: [""] * len(series) for d in days}
    for i, s in enumerate(series):
        for d, v in s.points:
            by_day[d][i] = f"{v:g}"
    rows = [[d.isoformat(), *by_day[d]] for d in reversed(days)]
    latest = rows[0]
    summary = f"{title}: {latest[0]} " + " / ".join(x for x in latest[1:] if x) + f" {unit}"
    goals = "; ".join(f"{label} {v:g}" for label, v, _ in targets)
    return Chart(title, option, f"{summary} ({goals})" if goals else summary,
                 [date_label, *(s.label for s in series)], rows)
