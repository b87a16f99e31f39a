"""Constants and small helpers shared by the synthetic-county modules.

Every resource the generator builds is a plain ``dict`` shaped as FHIR R4 (4.0.1) JSON.
Code systems that are not international standards live under the Kangqiao namespace
``https://kangqiao.example/fhir/CodeSystem/...`` and are documented in
``docs/synthetic-county.md``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

Resource = dict[str, Any]

KQ = "https://kangqiao.example/fhir"
RESIDENT_ID_SYSTEM = f"{KQ}/sid/resident-id"  # 居民身份证号 (GB 11643-1999)
HOUSEHOLD_SYSTEM = f"{KQ}/sid/household"  # 户号 (synthetic household register number)
HEALTH_RECORD_SYSTEM = f"{KQ}/sid/health-record"  # 居民健康档案编号
MRN_SYSTEM_PREFIX = f"{KQ}/sid/mrn/"  # + organisation id: 门诊/病案号 of one institution
ORG_CODE_SYSTEM = f"{KQ}/sid/org-code"  # institution registration code
PRACTITIONER_LICENSE_SYSTEM = f"{KQ}/sid/practitioner-license"  # 执业证书编码
DEVICE_SERIAL_SYSTEM = f"{KQ}/sid/device-serial"
ADMIN_DIVISION_EXT = f"{KQ}/StructureDefinition/admin-division-code"  # 统计用区划代码 (12 digits)
EN_REPRESENTATION_EXT = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"

CS_INSTITUTION = f"{KQ}/CodeSystem/institution-type"
CS_ROLE = f"{KQ}/CodeSystem/practitioner-role"
CS_SPECIALTY = f"{KQ}/CodeSystem/specialty"
CS_QUALIFICATION = f"{KQ}/CodeSystem/qualification"
CS_ENCOUNTER_TYPE = f"{KQ}/CodeSystem/encounter-type"
CS_EPISODE_TYPE = f"{KQ}/CodeSystem/episode-type"
CS_CAREPLAN_CATEGORY = f"{KQ}/CodeSystem/careplan-category"
CS_SERVICE_CATEGORY = f"{KQ}/CodeSystem/service-request-category"
CS_FOLLOWUP_CLASS = f"{KQ}/CodeSystem/followup-classification"  # 此次随访分类 1..4
CS_DEVICE_TYPE = f"{KQ}/CodeSystem/device-type"
CS_CONDITION_CATEGORY = f"{KQ}/CodeSystem/condition-category"
CS_COMMUNICATION_CATEGORY = f"{KQ}/CodeSystem/communication-category"
CS_DISEASE_CLASS = f"{KQ}/CodeSystem/notifiable-disease-class"

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ATC = "http://www.whocc.no/atc"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
COND_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
COND_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
HL7_PRACT_ROLE = "http://terminology.hl7.org/CodeSystem/practitioner-role"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_CATEGORY = "http://loinc.org"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"

TZ = "+08:00"
DEFAULT_END_DATE = date(2026, 11, 1)
HISTORY_DAYS = 730  # two years of clinical history before ``end_date``


def coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(
    system: str, code: str, display: str | None = None, text: str | None = None
) -> Resource:
    out: Resource = {"coding": [coding(system, code, display)]}
    if text:
        out["text"] = text
    return out


def ref(resource_type: str, rid: str, display: str | None = None) -> dict[str, str]:
    out = {"reference": f"{resource_type}/{rid}"}
    if display:
        out["display"] = display
    return out


def quantity(value: float, unit: str, code: str | None = None) -> Resource:
    return {"value": value, "unit": unit, "system": UCUM, "code": code or unit}


def dt(day: date, minutes: int) -> str:
    """A FHIR dateTime at ``minutes`` after local midnight (China Standard Time)."""
    minutes = max(0, min(minutes, 24 * 60 - 1))
    return f"{day.isoformat()}T{minutes // 60:02d}:{minutes % 60:02d}:00{TZ}"


def daterange(start: date, end: date) -> Iterator[date]:
    d = start
    while d < end:
        yield d
        d += timedelta(days=1)


def weighted(rng: random.Random, items: list[tuple[Any, float]]) -> Any:
    """Pick one value from ``(value, weight)`` pairs."""
    total = sum(w for _, w in items)
    x = rng.random() * total
    for value, w in items:
        x -= w
        if x < 0:
            return value
    return items[-1][0]


def clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def age_on(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


@dataclass
class IdFactory:
    """Sequential, seed-stable resource ids: ``pat-000001``, ``enc-000042`` ..."""

    counters: dict[str, int] = field(default_factory=dict)

    def next(self, prefix: str) -> str:
        n = self.counters.get(prefix, 0) + 1
        self.counters[prefix] = n
        return f"{prefix}-{n:06d}"


def household_rng(seed: int, stream: str, index: int) -> random.Random:
    """An independent random stream per household and purpose (str seeds hash with SHA-512)."""
    return random.Random(f"kangqiao/{seed}/{stream}/{index}")
