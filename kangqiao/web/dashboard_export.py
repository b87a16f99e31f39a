"""The county dashboard's table as CSV or Excel: what leaves the county's system, so small
cells are suppressed with the indicator engine's own rule (a count from 1 to 9, or a
denominator under 10: ``aggregate.is_suppressed``) and the file says so."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from kangqiao.analytics.indicators.aggregate import is_suppressed
from kangqiao.web.dashboard_access import target_of
from kangqiao.web.dashboard_county import Choice, Line
from kangqiao.web.dashboard_data import Snapshot

SUPPRESS_BELOW = 10
HEAD = {
    "zh-CN": ["指标编码", "指标", "期间", "层级", "单位编码", "单位", "排名", "分子", "分母",
              "值", "目标", "是否达标", "是否抑制"],
    "en": ["indicator_id", "indicator", "period", "level", "unit_id", "unit", "rank",
           "numerator", "denominator", "value", "target", "target_met", "suppressed"],
}


def table(snap: Snapshot, choice: Choice, lines: list[Line], lang: str) -> list[list[Any]]:
    """The header, the chosen unit (rank 0), then its ranking; suppressed cells blank."""
    ind, en = choice.indicator, lang == "en"
    target = target_of(ind)
    current = snap.row(ind.id, choice.period, choice.unit.id) or {}
    value = current.get("rate") if ind.aggregate != "count" else current.get("numerator")
    scale = 100 if ind.aggregate == "ratio" else 1
    first = (0, choice.unit, current.get("numerator"), current.get("denominator"),
             None if value is None else round(value * scale, 1),
             None if target is None else target.met(current.get("rate")))
    rows = [first] + [(x.rank, x.unit, x.numerator, x.denominator, x.rate, x.met)
                      for x in lines]
    out: list[list[Any]] = [HEAD[lang]]
    for rank, unit, num, den, shown, met in rows:
        hidden = is_suppressed(num, den, SUPPRESS_BELOW)
        out.append([ind.id, ind.name["en" if en else "zh"], choice.period, unit.level,
                    unit.id, unit.name, rank, None if hidden else num,
                    None if hidden else den, None if hidden else shown,
                    None if target is None else target.label(en),
                    None if hidden or met is None else ("yes" if en else "是") if met
                    else ("no" if en else "否"), hidden])
    return out


def note(lang: str) -> str:
    if lang == "en":
        return (f"Cells with a count of 1-{SUPPRESS_BELOW - 1} or a denominator under "
                f"{SUPPRESS_BELOW} are suppressed (blank). Values of ratios are in %.")
    return (f"分子为1-{SUPPRESS_BELOW - 1}或分母小于{SUPPRESS_BELOW}的单元格已抑制（留空）；"
            "率以%表示。")


def to_csv(rows: list[list[Any]], lang: str) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerows([["" if v is None else v for v in r] for r in rows])
    writer.writerow([note(lang)])
    # A BOM so that Excel opens the Chinese text as UTF-8.
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(rows: list[list[Any]], lang: str, title: str) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31] or "indicator"
    for r in rows:
        sheet.append(r)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.append([])
    sheet.append([note(lang)])
    for column, width in zip("ABCDEFGHIJKLM", (26, 30, 9, 9, 22, 30, 6, 9, 9, 8, 12, 9, 9),
                             strict=True):
        sheet.column_dimensions[column].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
