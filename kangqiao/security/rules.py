"""The policy's vocabulary as pure data and functions: roles, what kind of data a resource
type is, who may write which type, and which purposes of use each role may claim. No I/O;
``policy.py`` applies these to the store. The full rule set is written out in
docs/security.md."""

from __future__ import annotations

from functools import cache

from kangqiao.fhir import definitions

# ---- roles --------------------------------------------------------------------------------

VILLAGE_DOCTOR = "village-doctor"
GP = "gp"
SPECIALIST = "specialist"
NURSE = "nurse"
CLINICIAN = "clinician"
PUBLIC_HEALTH = "public-health"
LAB = "lab"
COUNTY_ADMIN = "county-admin"
PLATFORM_ADMIN = "platform-admin"
RESIDENT = "resident"
SYSTEM = "system"

# Staff who look after patients: their view is the patients they have a care relationship with.
CLINICAL = frozenset({VILLAGE_DOCTOR, GP, SPECIALIST, NURSE, CLINICIAN, PUBLIC_HEALTH, LAB})
ADMINS = frozenset({COUNTY_ADMIN, PLATFORM_ADMIN})
USER_ROLES = CLINICAL | ADMINS | {RESIDENT}
ROLES = USER_ROLES | {SYSTEM}
# Who may open a record outside policy in an emergency (those who treat).
BREAK_GLASS = frozenset({VILLAGE_DOCTOR, GP, SPECIALIST, NURSE, CLINICIAN})
# Who reads the audit trail (AuditEvent).
AUDIT_READERS = ADMINS

# ---- purposes of use (HL7 v3 ActReason) ---------------------------------------------------

TREAT, ETREAT, PUBHLTH, HOPERAT, PATRQT = "TREAT", "ETREAT", "PUBHLTH", "HOPERAT", "PATRQT"
CARE_PURPOSES = frozenset({TREAT, ETREAT})
POPULATION_PURPOSES = frozenset({PUBHLTH, HOPERAT})
SUPERVISION_PURPOSES = frozenset({TREAT, HOPERAT})


def purposes(role: str, county_wide: bool) -> tuple[str, frozenset[str]]:
    """(default, allowed) purposes of use of ``role``; ``county_wide`` for public-health
    doctors of a government body (the CDC)."""
    if role == PUBLIC_HEALTH:
        return (PUBHLTH, frozenset({PUBHLTH})) if county_wide else (
            TREAT, frozenset({TREAT, PUBHLTH}))
    if role in CLINICAL:
        return TREAT, frozenset({TREAT})
    if role == COUNTY_ADMIN:
        return HOPERAT, frozenset({HOPERAT, PUBHLTH})
    if role == PLATFORM_ADMIN:
        return HOPERAT, frozenset({HOPERAT})
    if role == RESIDENT:
        return PATRQT, frozenset({PATRQT})
    return TREAT, frozenset({TREAT, ETREAT, PUBHLTH, HOPERAT, PATRQT})


# ---- kinds of resource types --------------------------------------------------------------

ADMIN_ONLY = frozenset({"AuditEvent"})
# Compartment types whose rows may legitimately name no patient (a family-doctor team, a
# doctor's schedule, a staff list): shown to staff. Any other patient-data row without a
# patient is shown to system clients only.
PATIENTLESS_STAFF = frozenset({"CareTeam", "Schedule", "Group", "List"})
# Directory resources county and platform administrators maintain.
DIRECTORY = frozenset({"Organization", "OrganizationAffiliation", "Location", "Practitioner",
                       "PractitionerRole", "HealthcareService", "Endpoint", "CareTeam",
                       "Schedule", "Slot"})
# Orders nurses and laboratory staff may not write.
ORDERS = frozenset({"MedicationRequest", "ServiceRequest", "DeviceRequest", "NutritionOrder",
                    "VisionPrescription", "CarePlan"})
LAB_WRITES = frozenset({"Observation", "DiagnosticReport", "Specimen", "Task"})
# What a resident may record about themselves: home readings, consent, questionnaires,
# appointments and messages.
RESIDENT_WRITES = frozenset({"Observation", "Consent", "QuestionnaireResponse",
                             "Appointment", "Communication"})


@cache
def compartment() -> dict[str, tuple[str, ...]]:
    """Patient-data types -> the search parameters that name their patient."""
    return {t: p for t, p in definitions.patient_compartment().items() if t != "Patient"}


def is_patient_data(resource_type: str) -> bool:
    return resource_type == "Patient" or resource_type in compartment()


def staff_may_write(role: str, resource_type: str) -> bool:
    """Clinical writes by role (patients must also be in view: see policy.py)."""
    if role == LAB:
        return resource_type in LAB_WRITES
    if role == NURSE:
        return resource_type not in ORDERS
    return role in CLINICAL
