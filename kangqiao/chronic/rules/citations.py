"""Where each rule comes from, and the decision value every rule returns.

Clause numbers follow ``shared/reference/chronic-disease-standard.md``, which numbers
the two NBPHS-2017 service specifications as: 1 who, 2 screening, 3 follow-up (urgent
screen), 4 classification and intervention, 5 annual health check, 6 assessment
indicators. A citation the reference marks as not checked against the official text
(local practice, inference, guideline targets to be verified) carries
``verified=False`` so the workbench and the CDS cards can say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

Severity = Literal["info", "warning", "critical"]

NBPHS = "NBPHS-2017"
NBPHS_TITLE = "国家基本公共卫生服务规范（第三版）, 国卫基层发〔2017〕13号"
HTN_SPEC = "高血压患者健康管理服务规范"
DM_SPEC = "2型糖尿病患者健康管理服务规范"
HTN_GUIDE = "国家基层高血压防治管理指南（2020版）"
DM_GUIDE = "国家基层糖尿病防治管理指南（2022）"
HEARTS = "WHO HEARTS technical package"


@dataclass(frozen=True, slots=True)
class Citation:
    source: str  # short name: "NBPHS-2017", a guideline title, "WHO HEARTS"
    clause: str  # "HTN 4(2)"; empty when the clause number has not been verified
    title_zh: str
    verified: bool = True
    note_en: str = ""  # why it is unverified (local practice, inference ...)

    @property
    def label(self) -> str:
        text = f"{self.source} {self.clause}".strip()
        if not self.verified:
            text += "（未核对原文 / not checked against the official text）"
        return text


def _htn(clause: str) -> Citation:
    return Citation(NBPHS, f"HTN {clause}", f"{NBPHS_TITLE} {HTN_SPEC}")


def _dm(clause: str) -> Citation:
    return Citation(NBPHS, f"DM {clause}", f"{NBPHS_TITLE} {DM_SPEC}")


HTN_WHO = _htn("1")
HTN_SCREENING = _htn("2")
HTN_URGENT = _htn("3(1)")
HTN_FOLLOW_UP = _htn("3")
HTN_CONTROLLED = _htn("4(1)")
HTN_FIRST_UNCONTROLLED = _htn("4(2)")
HTN_REFER = _htn("4(3)")
HTN_EDUCATION = _htn("4(4)")
HTN_ANNUAL_CHECK = _htn("5")
HTN_STANDARD_MANAGEMENT = Citation(
    NBPHS,
    "HTN 6",
    f"{NBPHS_TITLE} {HTN_SPEC} 工作指标",
    verified=False,
    note_en="4 face-to-face follow-ups a year is local assessment practice, configurable",
)
HTN_CONTROL_RATE = Citation(
    NBPHS,
    "HTN 6",
    f"{NBPHS_TITLE} {HTN_SPEC} 工作指标",
    verified=False,
    note_en="a patient with no follow-up counted as not controlled is an inference",
)

DM_WHO = _dm("1")
DM_SCREENING = _dm("2")
DM_FOLLOW_UP = _dm("3")
DM_URGENT = _dm("3")
DM_CLASSIFICATION = _dm("4")
DM_ANNUAL_CHECK = _dm("5")
DM_STANDARD_MANAGEMENT = Citation(
    NBPHS,
    "DM 6",
    f"{NBPHS_TITLE} {DM_SPEC} 工作指标",
    verified=False,
    note_en="4 face-to-face follow-ups a year is local assessment practice, configurable",
)
DM_CONTROL_RATE = Citation(
    NBPHS,
    "DM 6",
    f"{NBPHS_TITLE} {DM_SPEC} 工作指标",
    verified=False,
    note_en="a patient with no follow-up counted as not controlled is an inference",
)

# The reference asks to verify the guideline text before citing a clause: no clause.
HTN_GUIDELINE = Citation(
    "国家基层高血压防治管理指南 2020",
    "",
    HTN_GUIDE,
    verified=False,
    note_en="targets from the reference's summary; clause not verified",
)
DM_GUIDELINE = Citation(
    "国家基层糖尿病防治管理指南 2022",
    "",
    DM_GUIDE,
    verified=False,
    note_en="targets from the reference's summary; clause not verified",
)
HEARTS_COHORT = Citation("WHO HEARTS", "cohort indicators", HEARTS)
# The data-entry plausibility ranges of the HEARTS DHIS2 hypertension package (design guide).
HEARTS_PLAUSIBILITY = Citation("WHO HEARTS", "DHIS2 data entry ranges",
                               "WHO HEARTS DHIS2 高血压数据包：录入数值合理范围")

# Rules that are Kangqiao's reading where the standard is silent.
KANGQIAO_DECISION = Citation(
    "Kangqiao",
    "decision",
    "康桥对规范未明确之处的约定",
    verified=False,
    note_en="the standard is silent; documented project decision",
)


@dataclass(frozen=True, slots=True)
class Decision:
    """What a rule concluded, why, on whose authority, and by when.

    ``code`` is stable and machine-readable (``htn.visit.uncontrolled``); the labels and
    reasons are what the workbench and the CDS cards show, Chinese first.
    """

    code: str
    label_zh: str
    label_en: str
    reason_zh: str
    reason_en: str
    citation: Citation
    due_date: date | None = None
    severity: Severity = "info"
