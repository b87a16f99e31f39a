"""A code and a date indexed together: "this code in this period" as one index range.

A search for a code within a period (a county's HbA1c results of the last 90 days, its new
hypertension diagnoses this year) otherwise drives from the code and probes each candidate's
date: the candidates are every result with the code ever recorded, and they grow with the
years kept while the matches do not (11,580 HbA1c results probed for 1,701 at 200,000
residents). Each pair below is also indexed as rows of ``search_token_date`` holding the
token's system and code and the date's range, under the param name ``<token>+<date>``, one
row per (token row, date row) of the resource: the cross product, so that a row matching
both predicates exists exactly when the token parameter and the date parameter each match
(``query._Builder.combo``). The same idea as the token-datetime composite tables of
Microsoft's FHIR server and HAPI FHIR's non-unique combo indexes.
"""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]

# (token parameter, date parameter) per resource type: the clinical "code in a period" lists
COMBOS: dict[str, tuple[tuple[str, str], ...]] = {
    "Observation": (("code", "date"),),
    "DiagnosticReport": (("code", "date"),),
    "Condition": (("code", "onset-date"),),
    "Procedure": (("code", "date"),),
    "MedicationRequest": (("code", "authoredon"),),
    "Immunization": (("vaccine-code", "date"),),
}


def combo_param(token: str, date: str) -> str:
    return f"{token}+{date}"


def combo_rows(resource_type: str, rows: dict[str, list[Row]]) -> list[Row]:
    """The ``search_token_date`` rows of a resource, from its token and date index rows."""
    out: list[Row] = []
    for token, date in COMBOS.get(resource_type, ()):
        codes = {(r["system"], r["code"]) for r in rows["token"]
                 if r["param"] == token and (r["code"] is not None or r["system"] is not None)}
        if not codes:
            continue
        ranges = {(r["low"], r["high"]) for r in rows["date"] if r["param"] == date}
        param = combo_param(token, date)
        out.extend({"param": param, "system": system, "code": code, "low": low, "high": high,
                    "grp": None}
                   for system, code in codes for low, high in ranges)
    return out
