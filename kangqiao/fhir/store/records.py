"""Plain values the store hands out, and the small rules about versions and ids."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from kangqiao.fhir.outcome import FhirError

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
ETAG_RE = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


@dataclass(frozen=True, slots=True)
class Stored:
    """One version of a resource as stored. ``content`` is None for a deletion."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime  # naive UTC
    deleted: bool
    content: dict[str, Any] | None
    method: str = "PUT"  # the HTTP verb that wrote this version

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'

    @property
    def last_modified(self) -> str:
        return format_datetime(self.last_updated.replace(tzinfo=UTC), usegmt=True)

    @property
    def location(self) -> str:
        return f"{self.resource_type}/{self.id}/_history/{self.version_id}"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def instant(value: datetime) -> str:
    """A FHIR ``instant`` in UTC with microseconds, so it round-trips through ``_since``."""
    return value.isoformat(timespec="microseconds") + "Z"


def new_id() -> str:
    return str(uuid.uuid4())


def is_valid_id(resource_id: object) -> bool:
    """A FHIR id (fullmatch: with ``match``, the ``$`` would let a final newline through)."""
    return isinstance(resource_id, str) and ID_RE.fullmatch(resource_id) is not None


def check_id(resource_id: str) -> None:
    if not is_valid_id(resource_id):
        raise FhirError.of(400, "invalid", f"Invalid resource id {resource_id!r}", "id")


def parse_etag(value: str) -> int:
    """``W/"3"`` (or ``"3"`` or ``3``) -> 3; anything else is a client error."""
    match = ETAG_RE.match(value)
    if not match:
        raise FhirError.of(400, "invalid", f"Invalid ETag {value!r}; expected W/\"<version>\"")
    return int(match.group(1))


def stamp(resource: dict[str, Any], resource_id: str, version_id: int,
          last_updated: datetime) -> dict[str, Any]:
    """Return a copy of ``resource`` carrying the server-assigned id and meta."""
    out = dict(resource)
    out["id"] = resource_id
    meta = dict(out.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = instant(last_updated)
    out["meta"] = meta
    return out
