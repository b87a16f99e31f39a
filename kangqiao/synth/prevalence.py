"""Who has hypertension or type 2 diabetes, knows it, is treated, managed and controlled.

Prevalence rises with age along a relative gradient that is scaled, on the generator's
own adult age distribution, to the national adult prevalence.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from dataclasses import dataclass
from datetime import date

from kangqiao.synth.common import clamp, weighted
from kangqiao.synth.residents import HOUSEHOLD_TYPES, _ages

# Adult (18+) prevalence: 27.5% hypertension, 11.9% diabetes (中国居民营养与慢性病状况报告 2020).
HTN_PREVALENCE = 0.275
DM_PREVALENCE = 0.119
# Hypertension awareness / treatment / control among all hypertensives (Wang Z. et al.,
# Circulation 2018): 46.9% / 40.7% / 15.3%.
HTN_AWARE, HTN_TREATED, HTN_CONTROLLED = 0.469, 0.407, 0.153
# Diabetes (Wang L. et al., JAMA 2021, 2018 survey): aware 36.7%, treated 32.9%,
# adequately controlled 50.1% of the treated.
DM_AWARE, DM_TREATED, DM_CONTROL_OF_TREATED = 0.367, 0.329, 0.501
MANAGED_OF_AWARE = 0.85  # assumption: aware patients aged 35+ registered in NBPHS management
# Relative age gradients (shape only; scaled to the prevalence above).
HTN_SHAPE = (
    (25, 0.04),
    (35, 0.061),
    (45, 0.15),
    (55, 0.296),
    (65, 0.446),
    (75, 0.557),
    (200, 0.602),
)
DM_SHAPE = ((30, 0.02), (40, 0.05), (50, 0.10), (60, 0.16), (70, 0.22), (200, 0.24))
COMORBID_RR = 1.6  # diabetes is more common among hypertensives (assumption)


# SBP mean at (start, end) of the history window, and fasting glucose likewise.
_SBP = {
    "controlled": (127, 127),
    "improving": (156, 130),
    "uncontrolled": (153, 153),
    "worsening": (132, 152),
    "untreated": (147, 147),
}
_FPG = {
    "controlled": (6.2, 6.2),
    "improving": (9.0, 6.5),
    "uncontrolled": (8.9, 8.9),
    "worsening": (6.6, 9.0),
    "untreated": (8.5, 8.5),
}


def shape(table: tuple[tuple[int, float], ...], age: int) -> float:
    return next(v for limit, v in table if age < limit)


@functools.lru_cache(maxsize=1)
def scales() -> tuple[float, float]:
    """Scale factors so that the shapes give the target prevalence on our adult ages."""
    rng = random.Random(20_201)
    ages = Counter(
        a
        for _ in range(10_000)
        for a, _, _ in _ages(rng, weighted(rng, HOUSEHOLD_TYPES))
        if a >= 18
    )
    adults = sum(ages.values())
    h = sum(shape(HTN_SHAPE, a) * n for a, n in ages.items()) / adults
    d = sum(shape(DM_SHAPE, a) * n for a, n in ages.items()) / adults
    return HTN_PREVALENCE / h, DM_PREVALENCE / d


@dataclass
class Disease:
    code: str  # "htn" | "dm"
    aware: bool
    treated: bool
    trajectory: str
    managed: bool
    diagnosed: date | None = None
    enrolled: date | None = None
    condition_id: str = ""
    episode_id: str = ""
    start_value: float = 0.0
    end_value: float = 0.0

    def mean_at(self, f: float) -> float:
        return self.start_value + (self.end_value - self.start_value) * clamp(f, 0.0, 1.0)


def decide(rng: random.Random, code: str, age: int) -> Disease:
    aware_p, treated_p = (HTN_AWARE, HTN_TREATED) if code == "htn" else (DM_AWARE, DM_TREATED)
    control_of_treated = HTN_CONTROLLED / HTN_TREATED if code == "htn" else DM_CONTROL_OF_TREATED
    aware = rng.random() < aware_p
    treated = aware and rng.random() < treated_p / aware_p
    if treated:
        if rng.random() < control_of_treated:
            trajectory = "controlled" if rng.random() < 0.85 else "improving"
        else:
            trajectory = "uncontrolled" if rng.random() < 0.75 else "worsening"
    else:
        trajectory = "untreated"
    managed = aware and age >= 35 and rng.random() < MANAGED_OF_AWARE
    table = _SBP if code == "htn" else _FPG
    s, e = table[trajectory]
    sd = 5.0 if code == "htn" else 0.4
    d = Disease(code, aware, treated, trajectory, managed)
    d.start_value, d.end_value = rng.gauss(s, sd), rng.gauss(e, sd)
    return d
