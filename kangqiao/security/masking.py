"""Masking of identifiers per role: pure rules, no I/O (the policy applies them).

Who sees the full resident ID number, phone numbers and detailed address of a Patient or
RelatedPerson (``sees_full``): the platform's system clients, the resident themself, a
clinician who broke the glass, and treating clinicians (village doctor, GP, specialist,
nurse, clinician) of the patient's managing organisation (for a village doctor also the
township centre above the clinic) or named as the patient's general practitioner. Everyone
else who may read the record (supervising organisations, referral recipients, lab staff,
public health, county administrators) sees ``110101********1234``, ``138****5678`` and the
first third of an address line, and the resource carries meta.security ``MASKED``.

A masked value written back (a PUT of what was read) is restored from the stored value
(``restore``), so that masking never destroys data.
"""

from __future__ import annotations

from typing import Any

from kangqiao.security import rules
from kangqiao.security.fieldcrypt import walk
from kangqiao.security.gate import Access

Json = dict[str, Any]
V3_OBSERVATION_VALUE = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
MASKED_TAG = {"system": V3_OBSERVATION_VALUE, "code": "MASKED", "display": "masked"}
MASKED_TYPES = frozenset({"Patient", "RelatedPerson"})
TREATING = rules.BREAK_GLASS  # the roles that treat


def mask_id(value: str) -> str:
    """110101********1234: the area code and the last 4 characters stay visible."""
    if len(value) <= 10:
        return "*" * max(len(value) - 4, 2) + value[-4:]
    return value[:6] + "*" * max(len(value) - 10, 2) + value[-4:]


def mask_phone(value: str) -> str:
    """138****5678: the carrier prefix and the last 4 digits stay visible."""
    if len(value) <= 7:
        return "*" * max(len(value) - 2, 2) + value[-2:]
    return value[:3] + "*" * max(len(value) - 7, 2) + value[-4:]


def mask_text(value: str) -> str:
    """An address line or text: the first third stays visible (the township), the rest is
    starred (village, group, house number)."""
    keep = len(value) // 3
    return value[:keep] + "*" * max(len(value) - keep, 2)


MASKS = {"id": mask_id, "phone": mask_phone, "line": mask_text, "text": mask_text}


def is_masked(value: str) -> bool:
    return "**" in value  # every mask above leaves at least two stars


def _ref_id(ref: Any) -> str | None:
    if type(ref) is not dict or type(ref.get("reference")) is not str:
        return None
    return str(ref["reference"]).rsplit("/", 1)[-1]


def sees_full(access: Access, resource: Json, own_orgs: frozenset[str]) -> bool:
    """Whether ``access`` sees ``resource``'s protected fields unmasked. ``own_orgs``: ids of
    the user's organisation (and a village doctor's township centre)."""
    if resource.get("resourceType") not in MASKED_TYPES:
        return True
    if access.role in (rules.SYSTEM, rules.RESIDENT) or access.break_glass:
        return True
    if access.role not in TREATING or access.purpose not in rules.CARE_PURPOSES:
        return False
    if resource.get("resourceType") != "Patient":
        return True  # a treating clinician sees the contacts of patients in their view
    if _ref_id(resource.get("managingOrganization")) in own_orgs:
        return True
    mine = {_ref_id({"reference": r}) for r in (access.actor, access.practitioner_role) if r}
    return any(_ref_id(gp) in mine for gp in resource.get("generalPractitioner") or ())


def masked(resource: Json) -> Json:
    """A masked copy (``resource`` itself when it has nothing to mask)."""
    out = walk(resource, lambda kind, value: value if is_masked(value) else MASKS[kind](value))
    if out is resource:
        return resource
    meta = dict(out.get("meta") or {})
    tags = [t for t in meta.get("security") or () if t.get("code") != "MASKED"]
    meta["security"] = [*tags, MASKED_TAG]
    return {**out, "meta": meta}


def mask_in_place(resource: Json) -> None:
    """Mask ``resource`` itself: the store hands the policy the very dict it returns."""
    out = masked(resource)
    if out is not resource:
        resource.update(out)


def restore(new: Json, stored: Json | None) -> list[str]:
    """Put back the stored values that ``new`` holds masked; returns the masked values that
    match nothing stored (which must not be written). Drops the MASKED tag."""
    originals: dict[tuple[str, str], str] = {}
    if stored is not None:
        def remember(kind: str, value: str) -> str:
            originals.setdefault((kind, MASKS[kind](value)), value)
            return value

        walk(stored, remember)
    unknown: list[str] = []

    def put_back(kind: str, value: str) -> str:
        if not is_masked(value):
            return value
        original = originals.get((kind, value))
        if original is None:
            unknown.append(value)
            return value
        return original

    out = walk(new, put_back)
    meta = out.get("meta")
    if type(meta) is dict and meta.get("security"):
        tags = [t for t in meta["security"] if not (
            type(t) is dict and t.get("code") == "MASKED"
            and t.get("system") == V3_OBSERVATION_VALUE)]
        out = {**out, "meta": {**meta, "security": tags} if tags else {
            k: v for k, v in meta.items() if k != "security"}}
    if out is not new:
        new.clear()
        new.update(out)
    return unknown
