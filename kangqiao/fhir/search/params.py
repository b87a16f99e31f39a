"""The FHIR R4 SearchParameter definitions, by resource type, plus custom registrations."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Any

import orjson

from kangqiao.settings import get_settings

HL7_PREFIX = "http://hl7.org/fhir/SearchParameter/"
PLATFORM_PREFIX = "https://kangqiao.example/fhir/SearchParameter/"

# The platform's own parameters, always registered (written into the index of every write and
# bulk import; migration c7d1e9a4b2f3 indexed the rows stored before them). R4 indexes
# EpisodeOfCare.careManager only when it is a Practitioner and has no parameter for
# EpisodeOfCare.team, but the county's contracts and management episodes name the family
# doctor's PractitionerRole and team: the work lists look a doctor's episodes up by these
# instead of reading every episode's JSON, and the gate's care links (security/visibility.py)
# read both ``care-manager`` and ``care-manager-role``. A new code, not the spec's
# ``care-manager`` widened, so that searches by the spec's parameter keep its meaning.
PLATFORM_PARAMS: tuple[dict[str, Any], ...] = (
    {"resourceType": "SearchParameter", "url": PLATFORM_PREFIX + "EpisodeOfCare-care-manager-role",
     "code": "care-manager-role", "type": "reference", "base": ["EpisodeOfCare"],
     "expression": "EpisodeOfCare.careManager.where(resolve() is PractitionerRole)",
     "target": ["PractitionerRole"]},
    {"resourceType": "SearchParameter", "url": PLATFORM_PREFIX + "EpisodeOfCare-team",
     "code": "team", "type": "reference", "base": ["EpisodeOfCare"],
     "expression": "EpisodeOfCare.team", "target": ["CareTeam"]},
)

# Resource types that are not DomainResources: DomainResource-level params do not apply.
_NOT_DOMAIN = frozenset({"Bundle", "Binary", "Parameters"})


@dataclass(frozen=True)
class SearchParam:
    code: str
    type: str  # number | date | string | token | reference | composite | quantity | uri | special
    expression: str | None
    base: tuple[str, ...]
    targets: tuple[str, ...] = ()
    # (definition canonical URL, FHIRPath expression relative to the composite's element)
    components: tuple[tuple[str, str], ...] = ()
    url: str = ""


def _from_resource(sp: Mapping[str, Any]) -> SearchParam:
    return SearchParam(
        code=sp["code"],
        type=sp["type"],
        expression=sp.get("expression"),
        base=tuple(sp.get("base", ())),
        targets=tuple(sp.get("target", ())),
        components=tuple((c["definition"], c["expression"]) for c in sp.get("component", ())),
        url=sp.get("url", ""),
    )


_lock = threading.Lock()
_custom: dict[str, SearchParam] = {}  # url -> param, registered at run time
_generation = 0  # bumped on registration so dependent caches can invalidate


@lru_cache(maxsize=1)
def _spec_params() -> tuple[SearchParam, ...]:
    path = get_settings().fhir_definitions_dir / "search-parameters.json"
    bundle = orjson.loads(path.read_bytes())
    out: list[SearchParam] = []
    for entry in bundle.get("entry", []):
        sp = entry.get("resource", {})
        if sp.get("resourceType") == "SearchParameter" and sp.get("url", "").startswith(
            HL7_PREFIX
        ):
            out.append(_from_resource(sp))
    return tuple(out)


@cache
def _platform_params() -> tuple[SearchParam, ...]:
    return tuple(_from_resource(sp) for sp in PLATFORM_PARAMS)


def _all_params() -> list[SearchParam]:
    return [*_spec_params(), *_platform_params(), *_custom.values()]


def generation() -> int:
    """Changes whenever a custom parameter is registered (cache key for compiled indexers)."""
    return _generation


@cache
def _by_url(gen: int) -> Mapping[str, SearchParam]:
    return MappingProxyType({p.url: p for p in _all_params()})


def param_by_url(url: str) -> SearchParam | None:
    """Look up a definition by canonical URL (composite components refer to them this way)."""
    return _by_url(_generation).get(url)


def _applies(p: SearchParam, resource_type: str | None) -> bool:
    if "Resource" in p.base:
        return True
    if resource_type is None:
        return False
    if "DomainResource" in p.base:
        return resource_type not in _NOT_DOMAIN
    return resource_type in p.base


@cache
def _params_for(resource_type: str | None, gen: int) -> Mapping[str, SearchParam]:
    out: dict[str, SearchParam] = {}
    for p in _all_params():
        if _applies(p, resource_type):
            out[p.code] = p  # custom params come last and win over a same-code spec param
    return MappingProxyType(out)


def search_params(resource_type: str | None) -> Mapping[str, SearchParam]:
    """Params searchable on ``resource_type`` (None: system-level search, common params only)."""
    return _params_for(resource_type, _generation)


def register_search_param(sp: Mapping[str, Any]) -> SearchParam:
    """Add a SearchParameter resource (e.g. a Chinese national extension) to the registry.

    Resources written before registration are not re-indexed here: the caller must reindex.
    """
    global _generation
    for key in ("code", "type", "base", "url"):
        if not sp.get(key):
            raise ValueError(f"SearchParameter.{key} is required")
    if sp["type"] not in {
        "number", "date", "string", "token", "reference", "composite", "quantity", "uri"
    }:
        raise ValueError(f"unsupported SearchParameter.type {sp['type']!r}")
    if sp["type"] != "composite" and not sp.get("expression"):
        raise ValueError("SearchParameter.expression is required")
    param = _from_resource(sp)
    with _lock:
        _custom[param.url] = param
        _generation += 1
    return param
