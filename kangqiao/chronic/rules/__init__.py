"""The chronic-disease protocol as pure rules (NBPHS-2017 and the primary-care guidelines).

No I/O and no FHIR here: the service layer maps resources to the plain values of
``model`` and shows the returned ``Decision`` values (reason and citation, zh and en).
"""

from kangqiao.chronic.rules.citations import Citation, Decision, Severity
from kangqiao.chronic.rules.diabetes import dm_urgent_findings, glucose_control
from kangqiao.chronic.rules.followup import VisitAssessment, assess_history, assess_visit
from kangqiao.chronic.rules.hypertension import (
    bp_control,
    bp_meets_target,
    bp_target,
    htn_urgent_findings,
    is_elevated,
)
from kangqiao.chronic.rules.indicators import (
    StandardManagement,
    controlled_at_latest_visit,
    hearts_status,
    standardised_management,
)
from kangqiao.chronic.rules.model import (
    Adherence,
    BloodPressure,
    ControlStatus,
    CountyPolicy,
    Disease,
    FollowUpVisit,
    Implausible,
    Patient,
    Sex,
    Symptom,
    VisitClass,
    VisitMode,
    add_days,
    add_months,
    age_on,
    birthday,
)
from kangqiao.chronic.rules.schedule import ProtocolState, annual_check_due, protocol_state
from kangqiao.chronic.rules.screening import (
    ConfirmationReferral,
    ScreeningReading,
    dm_screening,
    htn_screening,
)
from kangqiao.chronic.rules.treatment import treatment_suggestions

__all__ = [
    "Adherence",
    "BloodPressure",
    "Citation",
    "ConfirmationReferral",
    "ControlStatus",
    "CountyPolicy",
    "Decision",
    "Disease",
    "FollowUpVisit",
    "Implausible",
    "Patient",
    "ProtocolState",
    "ScreeningReading",
    "Severity",
    "Sex",
    "StandardManagement",
    "Symptom",
    "VisitAssessment",
    "VisitClass",
    "VisitMode",
    "add_days",
    "add_months",
    "age_on",
    "annual_check_due",
    "assess_history",
    "assess_visit",
    "birthday",
    "bp_control",
    "bp_meets_target",
    "bp_target",
    "controlled_at_latest_visit",
    "dm_screening",
    "dm_urgent_findings",
    "glucose_control",
    "hearts_status",
    "htn_screening",
    "htn_urgent_findings",
    "is_elevated",
    "protocol_state",
    "standardised_management",
    "treatment_suggestions",
]
