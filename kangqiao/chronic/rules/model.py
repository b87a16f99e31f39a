"""Plain inputs of the chronic-disease rules: no FHIR, no I/O.

The service layer turns FHIR resources (Patient, Observation, QuestionnaireResponse ...)
into these values; the rules never see a resource dict, so they can be tested with
literal values clause by clause.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import Enum, StrEnum
from typing import Literal


class Disease(StrEnum):
    HYPERTENSION = "htn"
    DIABETES_T2 = "dm"


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


class VisitMode(StrEnum):
    """随访方式 on both national forms: 1 门诊 / 2 家庭 / 3 电话."""

    CLINIC = "1"
    HOME = "2"
    PHONE = "3"

    @property
    def face_to_face(self) -> bool:
        # The standard asks for face-to-face follow-ups; a phone call is a contact, not one.
        return self is not VisitMode.PHONE


class Adherence(StrEnum):
    """服药依从性: 1 规律 / 2 间断 / 3 不服药."""

    REGULAR = "1"
    INTERMITTENT = "2"
    NONE = "3"


class Symptom(StrEnum):
    """Symptoms named in the urgent-referral lists (NBPHS-2017 HTN 3(1), DM 3)."""

    ALTERED_CONSCIOUSNESS = "altered-consciousness"  # 意识改变 (DM: 意识或行为改变)
    ALTERED_BEHAVIOUR = "altered-behaviour"  # DM only
    SEVERE_HEADACHE_OR_DIZZINESS = "severe-headache-dizziness"  # HTN only
    NAUSEA = "nausea"
    VOMITING = "vomiting"
    BLURRED_VISION = "blurred-vision"  # HTN only
    EYE_PAIN = "eye-pain"  # HTN only
    PALPITATIONS = "palpitations"
    CHEST_TIGHTNESS = "chest-tightness"  # HTN only
    ORTHOPNOEA = "orthopnoea"  # 喘憋不能平卧, HTN only
    ACETONE_BREATH = "acetone-breath"  # 呼气有烂苹果样丙酮味, DM only
    SWEATING = "sweating"  # DM only
    LOSS_OF_APPETITE = "loss-of-appetite"  # DM only
    POLYDIPSIA = "polydipsia"  # DM only
    POLYURIA = "polyuria"  # DM only
    ABDOMINAL_PAIN = "abdominal-pain"  # DM only
    DEEP_RAPID_BREATHING = "deep-rapid-breathing"  # DM only
    FLUSHED_SKIN = "flushed-skin"  # 皮肤潮红, DM only
    SUDDEN_VISION_LOSS = "sudden-vision-loss"  # DM only


class ControlStatus(StrEnum):
    CONTROLLED = "controlled"
    UNCONTROLLED = "uncontrolled"
    UNKNOWN = "unknown"  # nothing measured at this visit


class VisitClass(Enum):
    """此次随访分类: the codes are the form's answer codes."""

    CONTROLLED = ("1", "控制满意", "Controlled")
    UNCONTROLLED = ("2", "控制不满意", "Not controlled")
    ADVERSE_REACTION = ("3", "不良反应", "Adverse drug reaction")
    COMPLICATION = ("4", "并发症", "Complication")

    def __init__(self, code: str, zh: str, en: str) -> None:
        self.code = code
        self.zh = zh
        self.en = en


@dataclass(frozen=True, slots=True)
class BloodPressure:
    """An office reading in mmHg (the mean of the readings taken at one sitting)."""

    systolic: int
    diastolic: int

    def __str__(self) -> str:
        return f"{self.systolic}/{self.diastolic} mmHg"


@dataclass(frozen=True, slots=True)
class Patient:
    birth_date: date
    sex: Sex = Sex.UNKNOWN
    conditions: frozenset[Disease] = frozenset()
    # Who is "high risk" is decided by the clinician / the record: the reference gives
    # no criteria, so the rules take the judgement as an input.
    htn_high_risk: bool = False
    dm_high_risk: bool = False
    ascvd: bool = False  # prior heart attack, stroke ...: lowers the LDL-C target

    def age_on(self, on: date) -> int:
        return age_on(self.birth_date, on)


@dataclass(frozen=True, slots=True)
class Implausible:
    """A recorded value outside its plausible range, set aside by the rules (a typing or
    unit error: ``1389`` for 138 mmHg)."""

    name_zh: str
    name_en: str
    value: str  # as recorded ("1389", "85/138")
    unit: str
    low: float | None  # the plausible range, when the rule is one
    high: float | None


@dataclass(frozen=True, slots=True)
class FollowUpVisit:
    """One follow-up of one disease, as recorded on its national form."""

    date: date
    disease: Disease
    mode: VisitMode = VisitMode.CLINIC
    bp: BloodPressure | None = None
    fasting_glucose: float | None = None  # mmol/L
    hba1c: float | None = None  # %
    heart_rate: int | None = None  # beats/min
    temperature: float | None = None  # °C
    symptoms: frozenset[Symptom] = frozenset()
    adherence: Adherence | None = None
    adverse_reaction: bool = False
    # Clinician's judgement that a reaction persists despite adjustment (难以控制).
    adverse_reaction_uncontrolled: bool = False
    new_or_worse_complication: bool = False
    pregnant_or_breastfeeding: bool = False
    other_unmanageable: bool = False  # 其他基层医疗机构处理不了的情况
    ldl_c: float | None = None  # mmol/L, decision support only
    bmi: float | None = None  # kg/m², decision support only
    # values recorded for the visit but outside their plausible range: not used by any rule
    implausible: tuple[Implausible, ...] = ()


@dataclass(frozen=True, slots=True)
class CountyPolicy:
    """What a county may set differently; every default is the national standard."""

    # NBPHS-2017 HTN 6 / DM 6: local practice counts 4 face-to-face follow-ups a year.
    required_visits_per_year: int = 4
    count_phone_visits: bool = False
    # Some counties also require one visit in every quarter, or the annual check.
    require_each_quarter: bool = False
    require_annual_check: bool = False
    # Pro-rate the required visits for patients enrolled during the year.
    prorate_by_enrolment: bool = False
    routine_interval_months: int = 3  # "at least 4 a year" -> one every 3 months
    short_interval_days: int = 14  # "within 2 weeks"
    # None: the standard sets no limit on the gap between two "consecutive" visits.
    consecutive_max_gap_days: int | None = None
    annual_check_basis: Literal["calendar-year", "rolling-12-months"] = "calendar-year"
    screening_interval_months: int = 12
    high_risk_screening_interval_months: int = 6


def age_on(birth: date, on: date) -> int:
    """Completed years. Someone born on 29 February turns a year older on 1 March in a
    common year, the usual civil reckoning."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def birthday(birth: date, age: int) -> date:
    """The day ``age_on`` first returns ``age`` (1 March for 29 February in a common year)."""
    year = birth.year + age
    if birth.month == 2 and birth.day == 29 and not calendar.isleap(year):
        return date(year, 3, 1)
    return birth.replace(year=year)


def add_days(day: date, days: int) -> date:
    return day + timedelta(days=days)


def add_months(day: date, months: int) -> date:
    """Calendar months, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def visits_of(visits: Iterable[FollowUpVisit], disease: Disease) -> list[FollowUpVisit]:
    """The visits of one disease in date order (a stable sort keeps same-day entry order)."""
    return sorted((v for v in visits if v.disease is disease), key=lambda v: v.date)


SYMPTOM_LABELS: dict[Symptom, tuple[str, str]] = {
    Symptom.ALTERED_CONSCIOUSNESS: ("意识改变", "altered consciousness"),
    Symptom.ALTERED_BEHAVIOUR: ("行为改变", "altered behaviour"),
    Symptom.SEVERE_HEADACHE_OR_DIZZINESS: ("剧烈头痛或头晕", "severe headache or dizziness"),
    Symptom.NAUSEA: ("恶心", "nausea"),
    Symptom.VOMITING: ("呕吐", "vomiting"),
    Symptom.BLURRED_VISION: ("视力模糊", "blurred vision"),
    Symptom.EYE_PAIN: ("眼痛", "eye pain"),
    Symptom.PALPITATIONS: ("心悸", "palpitations"),
    Symptom.CHEST_TIGHTNESS: ("胸闷", "chest tightness"),
    Symptom.ORTHOPNOEA: ("喘憋不能平卧", "breathless, unable to lie flat"),
    Symptom.ACETONE_BREATH: ("呼气有烂苹果样丙酮味", "acetone (rotten-apple) breath"),
    Symptom.SWEATING: ("出汗", "sweating"),
    Symptom.LOSS_OF_APPETITE: ("食欲减退", "loss of appetite"),
    Symptom.POLYDIPSIA: ("多饮", "polydipsia"),
    Symptom.POLYURIA: ("多尿", "polyuria"),
    Symptom.ABDOMINAL_PAIN: ("腹痛", "abdominal pain"),
    Symptom.DEEP_RAPID_BREATHING: ("深大呼吸", "deep, rapid breathing"),
    Symptom.FLUSHED_SKIN: ("皮肤潮红", "flushed skin"),
    Symptom.SUDDEN_VISION_LOSS: ("视力突然骤降", "sudden loss of vision"),
}
