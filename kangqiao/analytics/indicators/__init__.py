"""County indicators from the record: a catalogue kept as data, computed on DuckDB.

Public interface::

    compute_indicators(input_paths, period, strata=..., suppress_below=10) -> list[dict]
    IndicatorStore(path).load(inputs, years) / .refresh(new_inputs) / .results(...)
    load_catalogue() -> tuple[Indicator, ...]
"""

from kangqiao.analytics.indicators.catalogue import (
    STRATA,
    CatalogueError,
    Indicator,
    load_catalogue,
    load_views,
)
from kangqiao.analytics.indicators.engine import IndicatorStore, compute_indicators

__all__ = [
    "STRATA",
    "CatalogueError",
    "Indicator",
    "IndicatorStore",
    "compute_indicators",
    "load_catalogue",
    "load_views",
]
