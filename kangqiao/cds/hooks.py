"""The CDS Hooks 2.0 services: discovery, request validation and the patient's data
(prefetch first; what is missing from ``fhirServer`` with ``fhirAuthorization``, or from the
local store when ``fhirServer`` is this server or absent)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx

from kangqiao.chronic.records import SEARCHES, ChronicRecord, assemble
from kangqiao.chronic.rules import Disease
from kangqiao.fhir.outcome import FhirError
from kangqiao.fhir.store.store import UnitOfWork

Json = dict[str, Any]
PATIENT_VIEW = "kangqiao-chronic-patient-view"
ORDER_SELECT = "kangqiao-chronic-order-select"
ATC = "http://www.whocc.no/atc"
# ATC groups: C02/C03/C07/C08/C09 antihypertensives, A10 drugs used in diabetes.
ATC_DISEASE = {"C02": Disease.HYPERTENSION, "C03": Disease.HYPERTENSION,
               "C07": Disease.HYPERTENSION, "C08": Disease.HYPERTENSION,
               "C09": Disease.HYPERTENSION, "A10": Disease.DIABETES_T2}
MAX_PAGES = 20


class CdsError(Exception):
    """A request the service cannot answer: CDS Hooks errors are plain HTTP codes with a
    JSON body ``{"error": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def prefetch_templates() -> dict[str, str]:
    out = {"patient": "Patient/{{context.patientId}}"}
    for key, (rtype, query) in SEARCHES.items():
        out[key] = f"{rtype}?" + query.replace("{id}", "{{context.patientId}}")
    return out


SERVICES: dict[str, Json] = {
    PATIENT_VIEW: {
        "hook": "patient-view",
        "id": PATIENT_VIEW,
        "title": "高血压和2型糖尿病管理 / Hypertension and type 2 diabetes management",
        "description": "Control status, NBPHS-2017 classification, next follow-up, urgent "
                       "referral criteria, overdue tests and treatment suggestions.",
        "prefetch": prefetch_templates(),
    },
    ORDER_SELECT: {
        "hook": "order-select",
        "id": ORDER_SELECT,
        "title": "降压/降糖药物医嘱 / Antihypertensive and antidiabetic orders",
        "description": "When an antihypertensive (ATC C02/C03/C07/C08/C09) or antidiabetic "
                       "(ATC A10) MedicationRequest is selected: control status and the "
                       "standard's advice on adjusting treatment.",
        "prefetch": prefetch_templates(),
    },
}


@dataclass(frozen=True)
class HookRequest:
    service: str
    patient_id: str
    fhir_server: str | None
    token: str | None
    prefetch: Mapping[str, Any]
    diseases: set[Disease] | None  # order-select: the diseases of the selected drugs


def parse(service_id: str, body: Any) -> HookRequest:
    if service_id not in SERVICES:
        raise CdsError(404, f"no CDS service {service_id!r}")
    if not isinstance(body, dict):
        raise CdsError(400, "the request body must be a JSON object")
    hook = SERVICES[service_id]["hook"]
    if body.get("hook") != hook:
        raise CdsError(400, f"service {service_id} answers the {hook!r} hook, not "
                            f"{body.get('hook')!r}")
    if not isinstance(body.get("hookInstance"), str) or not body["hookInstance"]:
        raise CdsError(400, "hookInstance (a UUID string) is required")
    context = body.get("context")
    if not isinstance(context, dict) or not isinstance(context.get("patientId"), str) \
            or not context["patientId"]:
        raise CdsError(400, "context.patientId (a string) is required")
    server = body.get("fhirServer")
    if server is not None and (not isinstance(server, str) or
                               not server.startswith(("http://", "https://"))):
        raise CdsError(400, "fhirServer must be an absolute http(s) URL")
    auth = body.get("fhirAuthorization")
    token = None
    if auth is not None:
        if not isinstance(auth, dict) or not isinstance(auth.get("access_token"), str):
            raise CdsError(400, "fhirAuthorization needs an access_token string")
        token = auth["access_token"]
    prefetch = body.get("prefetch") or {}
    if not isinstance(prefetch, dict):
        raise CdsError(400, "prefetch must be an object")
    diseases = _ordered_diseases(context) if hook == "order-select" else None
    return HookRequest(service_id, context["patientId"], server.rstrip("/") if server else None,
                       token, prefetch, diseases)


def _ordered_diseases(context: Json) -> set[Disease]:
    selections = context.get("selections")
    draft = context.get("draftOrders")
    if not isinstance(selections, list) or not isinstance(draft, dict):
        raise CdsError(400, "order-select needs context.selections and context.draftOrders")
    chosen = set(selections)
    out: set[Disease] = set()
    for entry in draft.get("entry") or []:
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict) or res.get("resourceType") != "MedicationRequest":
            continue
        if chosen and f"MedicationRequest/{res.get('id')}" not in chosen:
            continue
        for coding in (res.get("medicationCodeableConcept") or {}).get("coding") or []:
            if coding.get("system") == ATC:
                disease = ATC_DISEASE.get(str(coding.get("code", ""))[:3])
                if disease is not None:
                    out.add(disease)
    return out


def _resources(value: Any) -> list[Json]:
    """A prefetched value: one resource or a searchset Bundle."""
    if not isinstance(value, dict):
        raise CdsError(400, "a prefetch value must be a FHIR resource or Bundle")
    if value.get("resourceType") == "Bundle":
        return [e["resource"] for e in value.get("entry") or []
                if isinstance(e, dict) and isinstance(e.get("resource"), dict)
                and (e.get("search") or {}).get("mode", "match") == "match"]
    return [value]


Fetch = Callable[[str], list[Json]]  # "Type?query" or "Type/id" -> resources


def remote_fetcher(server: str, token: str | None) -> Fetch:
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    def fetch(path: str) -> list[Json]:
        out: list[Json] = []
        url: str | None = f"{server}/{path}"
        try:
            with httpx.Client(timeout=10.0, headers=headers) as client:
                for _ in range(MAX_PAGES):
                    if url is None:
                        break
                    response = client.get(url)
                    if response.status_code in (401, 403):
                        raise CdsError(401, f"fhirServer refused {path}: "
                                            f"{response.status_code}")
                    if response.status_code != 200:
                        raise CdsError(412, f"fhirServer answered {response.status_code} "
                                            f"for {path}")
                    body = response.json()
                    out += _resources(body)
                    url = next((link.get("url") for link in body.get("link") or []
                                if link.get("relation") == "next"), None)
        except httpx.HTTPError as exc:
            raise CdsError(412, f"could not fetch {path} from fhirServer: {exc}") from exc
        except ValueError as exc:
            raise CdsError(412, f"fhirServer sent no JSON for {path}") from exc
        return out

    return fetch


def local_fetcher(uow: UnitOfWork) -> Fetch:
    def fetch(path: str) -> list[Json]:
        rtype, _, query = path.partition("?")
        try:
            if not query:
                kind, _, rid = rtype.partition("/")
                stored = uow.read(kind, rid).content
                return [stored] if stored else []
            page = uow.search(rtype, parse_qsl(query), count=5000, total="none")
        except FhirError as exc:
            raise CdsError(404 if exc.status in (404, 410) else 412,
                           f"{path}: {exc.issues[0].diagnostics if exc.issues else exc}"
                           ) from exc
        return [s.content for s in page.items if s.content is not None]

    return fetch


def gather(request: HookRequest, fetch: Fetch) -> ChronicRecord:
    """The chronic record from prefetch, fetching only the keys that are missing (or were
    prefetched as null, which CDS Hooks uses for a prefetch the client could not do)."""
    pid = request.patient_id
    found: dict[str, list[Json]] = {}
    templates = prefetch_templates()
    for key, template in templates.items():
        value = request.prefetch.get(key)
        path = template.replace("{{context.patientId}}", pid)
        found[key] = _resources(value) if value is not None else fetch(path)
    patients = [p for p in found.pop("patient") if p.get("resourceType") == "Patient"]
    if not patients:
        raise CdsError(412, f"Patient/{pid} could not be read")
    try:
        return assemble(pid, patients[0], found)
    except FhirError as exc:
        raise CdsError(412, exc.issues[0].diagnostics if exc.issues else str(exc)) from exc
