"""A small UCUM canonicaliser: enough units to compare blood pressure, lab values and body
measurements recorded in different units (kPa vs mmHg, mg/dL vs mmol/L glucose, lb vs kg)."""

from __future__ import annotations

UCUM = "http://unitsofmeasure.org"

# unit code (or common spelling) -> (canonical code, factor to multiply by)
_FACTORS: dict[str, tuple[str, float]] = {
    "mm[Hg]": ("mm[Hg]", 1.0),
    "mmHg": ("mm[Hg]", 1.0),
    "kPa": ("mm[Hg]", 7.500615758),
    "Pa": ("mm[Hg]", 0.007500615758),
    "mmol/L": ("mmol/L", 1.0),
    "umol/L": ("mmol/L", 0.001),
    "mg/dL": ("mg/dL", 1.0),
    "mg/L": ("mg/dL", 0.1),
    "g/L": ("mg/dL", 100.0),
    "%": ("%", 1.0),
    "g": ("g", 1.0),
    "kg": ("g", 1000.0),
    "mg": ("g", 0.001),
    "[lb_av]": ("g", 453.59237),
    "lb": ("g", 453.59237),
    "m": ("m", 1.0),
    "cm": ("m", 0.01),
    "mm": ("m", 0.001),
    "[in_i]": ("m", 0.0254),
    "kg/m2": ("kg/m2", 1.0),
    "/min": ("/min", 1.0),
    "{beats}/min": ("/min", 1.0),
    "Cel": ("Cel", 1.0),
}

# Glucose in mg/dL converts to mmol/L (molar mass 180.16 g/mol): only for glucose codes,
# since mg/dL -> mmol/L depends on the analyte. Glucose values get their own canonical unit
# (UCUM annotation) so a mg/dL search converts for glucose and never for other analytes.
GLUCOSE_CODES = frozenset(
    {"2345-7", "2339-0", "15074-8", "14749-6", "14771-0", "41653-7", "1558-6", "2341-6",
     "14743-9",
     "1547-9", "41604-0"}
)
_GLUCOSE_MG_DL_TO_MMOL_L = 1 / 18.016
GLUCOSE_UNIT = "mmol/L{glucose}"


def canonical(
    value: float, code: str | None, system: str | None, glucose: bool = False
) -> tuple[float, str] | None:
    """(canonical value, canonical unit) for a UCUM quantity, or None for unknown units."""
    if code is None or (system is not None and system != UCUM):
        return None
    hit = _FACTORS.get(code)
    if hit is None:
        return None
    unit, factor = hit
    if glucose and unit == "mg/dL":
        return value * factor * _GLUCOSE_MG_DL_TO_MMOL_L, GLUCOSE_UNIT
    if glucose and unit == "mmol/L":
        return value * factor, GLUCOSE_UNIT
    return value * factor, unit


def query_forms(code: str, system: str | None) -> list[tuple[str, float]]:
    """(canonical unit, factor) pairs a search value in ``code`` must be compared under."""
    if system not in (None, "", UCUM):
        return []
    hit = _FACTORS.get(code)
    if hit is None:
        return []
    unit, factor = hit
    if unit == "mg/dL":
        return [(unit, factor), (GLUCOSE_UNIT, factor * _GLUCOSE_MG_DL_TO_MMOL_L)]
    if unit == "mmol/L":
        return [(unit, factor), (GLUCOSE_UNIT, factor)]
    return [(unit, factor)]
