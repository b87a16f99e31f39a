"""A real third-party FHIR client (fhirpy, over ``requests``) against Kangqiao served by uvicorn.

Also loads HL7 R4 example resources. The official ``examples-json`` package is not on this
machine, so ``SPEC_EXAMPLES`` are hand-written copies of the R4 (4.0.1) examples' content
(Patient/example, Practitioner/example, Organization/hl7, Encounter/example,
Observation/example, Condition/example) with the narrative ``text`` shortened.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import requests
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound, OperationOutcome, ResourceNotFound

ID_SYSTEM = "urn:oid:2.16.156.10011.1.1"


@pytest.fixture
def fhir(live_server: str, system_token: str) -> SyncFHIRClient:
    return SyncFHIRClient(live_server + "/fhir", requests_config={"timeout": 30},
                          authorization=f"Bearer {system_token}")


def _patient(ident: str, family: str = "王", given: str = "秀英") -> dict[str, Any]:
    return {"identifier": [{"system": ID_SYSTEM, "value": ident}],
            "name": [{"family": family, "given": [given], "text": family + given}],
            "gender": "female", "birthDate": "1958-03-02"}


def test_crud_round_trip(fhir: SyncFHIRClient) -> None:
    patient = fhir.resource("Patient", **_patient("110101195803021234"))
    patient.save()
    pid = patient.id
    assert pid and patient["meta"]["versionId"] == "1"
    assert patient["name"][0]["family"] == "王"

    got = fhir.reference("Patient", pid).to_resource()
    assert got.serialize() == patient.serialize()
    assert fhir.get("Patient", pid)["birthDate"] == "1958-03-02"

    patient["gender"] = "male"
    patient["telecom"] = [{"system": "phone", "value": "13800000000", "use": "mobile"}]
    patient.save()  # PUT Patient/<id>
    assert patient.id == pid and patient["meta"]["versionId"] == "2"
    assert fhir.get("Patient", pid)["gender"] == "male"

    patient.refresh()  # GET with If-None-Match: 2 -> 304, nothing changes
    assert patient["meta"]["versionId"] == "2"

    patient.delete()
    with pytest.raises(ResourceNotFound):  # 410 Gone
        fhir.get("Patient", pid)
    assert fhir.resources("Patient").search(_id=pid).fetch() == []


def test_search_by_identifier_and_name(fhir: SyncFHIRClient) -> None:
    for ident, family, given in (("1", "王", "秀英"), ("2", "王", "桂兰"), ("3", "李", "建国")):
        fhir.resource("Patient", **_patient(ident, family, given)).save()
    fhir.resource("Organization", name="青山镇卫生院").save()

    by_id = fhir.resources("Patient").search(identifier=f"{ID_SYSTEM}|2").get()
    assert by_id["name"][0]["given"] == ["桂兰"]
    with pytest.raises(ResourceNotFound):
        fhir.resources("Patient").search(identifier=f"{ID_SYSTEM}|404").get()
    with pytest.raises(MultipleResourcesFound):
        fhir.resources("Patient").search(family="王").get()

    wangs = fhir.resources("Patient").search(family="王").sort("given").fetch_all()
    assert sorted(p["name"][0]["given"][0] for p in wangs) == ["桂兰", "秀英"]
    assert fhir.resources("Patient").search(name="建国").count() == 1
    assert fhir.resources("Patient").count() == 3
    assert fhir.resources("Organization").search(name="青山").first()["name"] == "青山镇卫生院"

    # fetch_all follows Bundle.link next across pages
    paged = fhir.resources("Patient").limit(1).fetch_all()
    assert len(paged) == 3 and len({p.id for p in paged}) == 3
    raw = fhir.resources("Patient").search(family="王").limit(1).fetch_raw()
    assert raw["type"] == "searchset" and raw["total"] == 2
    assert {link["relation"] for link in raw["link"]} >= {"self", "next"}


def test_conditional_create_update_delete(live_server: str, fhir: SyncFHIRClient,
                                          system_token: str) -> None:
    criteria = f"identifier={ID_SYSTEM}|110101195803021234"
    # fhirpy's get_or_create() puts the criteria in the query string (not FHIR); the standard
    # conditional create is the If-None-Exist header.
    conditional = SyncFHIRClient(live_server + "/fhir", authorization=f"Bearer {system_token}",
                                 extra_headers={"If-None-Exist": criteria})
    first = conditional.resource("Patient", **_patient("110101195803021234"))
    first.save()
    again = conditional.resource("Patient", **_patient("110101195803021234", given="另一个"))
    again.save()
    assert again.id == first.id and again["name"][0]["given"] == ["秀英"]
    assert fhir.resources("Patient").count() == 1

    patients = fhir.resources("Patient").search(identifier=f"{ID_SYSTEM}|110101195803021234")
    updated, created = patients.update(fhir.resource(
        "Patient", **_patient("110101195803021234", given="桂兰")))
    assert not created and updated.id == first.id
    assert updated["meta"]["versionId"] == "2" and updated["name"][0]["given"] == ["桂兰"]

    new, created = fhir.resources("Patient").search(identifier=f"{ID_SYSTEM}|9").update(
        fhir.resource("Patient", **_patient("9")))
    assert created and new.id != first.id

    fhir.resource("Patient", **_patient("10", family="李")).save()
    fhir.resource("Patient", **_patient("11", family="李")).save()
    with pytest.raises(MultipleResourcesFound):  # 412: conditional update with 2 matches
        fhir.resources("Patient").search(family="李").update(
            fhir.resource("Patient", **_patient("12")))
    with pytest.raises(MultipleResourcesFound):
        fhir.resources("Patient").search(family="李").delete()

    _, status = patients.delete()
    assert status == 204
    with pytest.raises(ResourceNotFound):
        fhir.get("Patient", first.id)
    assert fhir.resources("Patient").count() == 3


def test_transaction_bundle(fhir: SyncFHIRClient) -> None:
    bundle = {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
             "resource": {"resourceType": "Patient", **_patient("20")},
             "request": {"method": "POST", "url": "Patient",
                         "ifNoneExist": f"identifier={ID_SYSTEM}|20"}},
            {"resource": {"resourceType": "Observation", "status": "final",
                          "code": {"coding": [{"system": "http://loinc.org",
                                               "code": "8480-6"}]},
                          "subject": {"reference":
                                      "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"},
                          "effectiveDateTime": "2026-11-01T09:00:00+08:00",
                          "valueQuantity": {"value": 150, "unit": "mmHg",
                                            "system": "http://unitsofmeasure.org",
                                            "code": "mm[Hg]"}},
             "request": {"method": "POST", "url": "Observation"}},
            {"resource": {"resourceType": "Organization", "id": "qs", "name": "青山镇卫生院"},
             "request": {"method": "PUT", "url": "Organization/qs"}},
        ]}
    out = fhir.execute("", method="post", data=bundle)
    assert out["type"] == "transaction-response"
    assert [e["response"]["status"] for e in out["entry"]] == ["201", "201", "201"]
    pid = out["entry"][0]["resource"]["id"]
    assert out["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    obs = fhir.resources("Observation").search(subject=f"Patient/{pid}").get()
    assert obs["valueQuantity"]["value"] == 150
    assert fhir.get("Organization", "qs")["name"] == "青山镇卫生院"

    # run again: the conditional POST matches, the PUT makes version 2
    again = fhir.execute("", method="post", data=bundle)
    assert [e["response"]["status"] for e in again["entry"]] == ["200", "201", "200"]
    assert again["entry"][0]["resource"]["id"] == pid

    bad = copy.deepcopy(bundle)
    bad["entry"][1]["resource"]["status"] = "finished"
    before = fhir.resources("Observation").count()
    with pytest.raises(OperationOutcome) as err:  # 422, and nothing of it is kept
        fhir.execute("", method="post", data=bad)
    assert "Bundle.entry[1]" in str(err.value)
    assert fhir.resources("Observation").count() == before
    assert fhir.get("Organization", "qs")["meta"]["versionId"] == "2"


def test_version_read_history_and_patch(fhir: SyncFHIRClient) -> None:
    patient = fhir.resource("Patient", id="hist", **_patient("30"))
    patient.save()  # update-as-create
    for given in ("桂兰", "建国"):
        patient["name"][0]["given"] = [given]
        patient.save()
    assert patient["meta"]["versionId"] == "3"

    v1 = fhir.execute("Patient/hist/_history/1", method="get")
    assert v1["meta"]["versionId"] == "1" and v1["name"][0]["given"] == ["秀英"]
    history = fhir.execute("Patient/hist/_history", method="get")
    assert history["type"] == "history" and history["total"] == 3
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["3", "2", "1"]
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "PUT", "PUT"]
    assert fhir.execute("Patient/_history", method="get")["total"] == 3
    with pytest.raises(ResourceNotFound):
        fhir.execute("Patient/hist/_history/4", method="get")

    # fhirpy's patch sends a partial resource as JSON; Kangqiao takes JSON Patch only (415)
    with pytest.raises(OperationOutcome) as err:
        patient.patch(gender="male")
    assert "not-supported" in str(err.value) or "json-patch" in str(err.value)
    # ...which a plain HTTP client can send
    r = requests.patch(fhir.url + "/Patient/hist",
                       json=[{"op": "replace", "path": "/gender", "value": "male"}],
                       headers={"Content-Type": "application/json-patch+json",
                                "If-Match": 'W/"3"', "Authorization": fhir.authorization},
                       timeout=30)
    assert r.status_code == 200 and r.json()["meta"]["versionId"] == "4"
    assert fhir.get("Patient", "hist")["gender"] == "male"


def test_validation_error_is_an_operation_outcome(fhir: SyncFHIRClient) -> None:
    with pytest.raises(OperationOutcome) as err:
        fhir.resource("Patient", birthDate="1958-02-30").save()
    assert "Patient.birthDate" in str(err.value)
    with pytest.raises(ResourceNotFound):
        fhir.get("Patient", "nope")


# ---- HL7 R4 example resources -------------------------------------------------------------

XHTML = '<div xmlns="http://www.w3.org/1999/xhtml">{}</div>'
SPEC_EXAMPLES: list[dict[str, Any]] = [
    {
        "resourceType": "Patient", "id": "example",
        "text": {"status": "generated", "div": XHTML.format(
            "<table><tbody><tr><td>Name</td><td>Peter James <b>Chalmers</b> "
            "(&quot;Jim&quot;)</td></tr></tbody></table>")},
        "identifier": [{"use": "usual", "type": {"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
            "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345",
            "period": {"start": "2001-05-06"}, "assigner": {"display": "Acme Healthcare"}}],
        "active": True,
        "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
                 {"use": "usual", "given": ["Jim"]},
                 {"use": "maiden", "family": "Windsor", "given": ["Peter", "James"],
                  "period": {"end": "2002"}}],
        "telecom": [{"use": "home"},
                    {"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1},
                    {"system": "phone", "value": "(03) 3410 5613", "use": "mobile",
                     "rank": 2},
                    {"system": "phone", "value": "(03) 5555 8834", "use": "old",
                     "period": {"end": "2014"}}],
        "gender": "male", "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
            "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
        "deceasedBoolean": False,
        "address": [{"use": "home", "type": "both",
                     "text": "534 Erewhon St PeasantVille, Rainbow, Vic  3999",
                     "line": ["534 Erewhon St"], "city": "PleasantVille",
                     "district": "Rainbow", "state": "Vic", "postalCode": "3999",
                     "period": {"start": "1974-12-25"}}],
        "contact": [{
            "relationship": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}]}],
            "name": {"family": "du Marché", "_family": {"extension": [{
                "url": "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix",
                "valueString": "VV"}]}, "given": ["Bénédicte"]},
            "telecom": [{"system": "phone", "value": "+33 (237) 998327"}],
            "address": {"use": "home", "type": "both", "line": ["534 Erewhon St"],
                        "city": "PleasantVille", "district": "Rainbow", "state": "Vic",
                        "postalCode": "3999", "period": {"start": "1974-12-25"}},
            "gender": "female", "period": {"start": "2012"}}],
        "managingOrganization": {"reference": "Organization/1"},
    },
    {
        "resourceType": "Practitioner", "id": "example",
        "text": {"status": "generated", "div": XHTML.format("Dr Adam Careful")},
        "identifier": [{"system": "http://www.acme.org/practitioners", "value": "23"}],
        "active": True,
        "name": [{"family": "Careful", "given": ["Adam"], "prefix": ["Dr"]}],
        "address": [{"use": "home", "line": ["534 Erewhon St"], "city": "PleasantVille",
                     "state": "Vic", "postalCode": "3999"}],
        "qualification": [{
            "identifier": [{"system": "http://example.org/UniversityIdentifier",
                            "value": "12345"}],
            "code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0360/2.7",
                                 "code": "BS", "display": "Bachelor of Science"}],
                     "text": "Bachelor of Science"},
            "period": {"start": "1995"}, "issuer": {"display": "Example University"}}],
    },
    {
        "resourceType": "Organization", "id": "hl7",
        "text": {"status": "generated", "div": XHTML.format("Health Level Seven International")},
        "name": "Health Level Seven International", "alias": ["HL7 International"],
        "telecom": [{"system": "phone", "value": "(+1) 734-677-7777"},
                    {"system": "fax", "value": "(+1) 734-677-6622"},
                    {"system": "email", "value": "hq@HL7.org"}],
        "address": [{"line": ["3300 Washtenaw Avenue, Suite 227"], "city": "Ann Arbor",
                     "state": "MI", "postalCode": "48104", "country": "USA"}],
        "endpoint": [{"reference": "Endpoint/example"}],
    },
    {
        "resourceType": "Encounter", "id": "example",
        "text": {"status": "generated", "div": XHTML.format("Encounter with patient @example")},
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP",
                  "display": "inpatient encounter"},
        "subject": {"reference": "Patient/example"},
    },
    {
        "resourceType": "Observation", "id": "example",
        "text": {"status": "generated", "div": XHTML.format("Body weight 185 lbs")},
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [
            {"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"},
            {"system": "http://loinc.org", "code": "3141-9", "display": "Body weight Measured"},
            {"system": "http://snomed.info/sct", "code": "27113001", "display": "Body weight"},
            {"system": "http://acme.org/devices/clinical-codes", "code": "body-weight",
             "display": "Body Weight"}]},
        "subject": {"reference": "Patient/example"},
        "encounter": {"reference": "Encounter/example"},
        "effectiveDateTime": "2016-03-28",
        "valueQuantity": {"value": 185, "unit": "lbs", "system": "http://unitsofmeasure.org",
                          "code": "[lb_av]"},
    },
    {
        "resourceType": "Condition", "id": "example",
        "text": {"status": "generated", "div": XHTML.format("Severe burn of left ear")},
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": "active"}]},
        "verificationStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            "code": "confirmed"}]},
        "category": [{"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/condition-category",
             "code": "encounter-diagnosis", "display": "Encounter Diagnosis"},
            {"system": "http://snomed.info/sct", "code": "439401001", "display": "Diagnosis"}]}],
        "severity": {"coding": [{"system": "http://snomed.info/sct", "code": "24484000",
                                 "display": "Severe"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "39065001",
                             "display": "Burn of ear"}], "text": "Burnt Ear"},
        "bodySite": [{"coding": [{"system": "http://snomed.info/sct", "code": "49521004",
                                  "display": "Left external ear structure"}],
                      "text": "Left Ear"}],
        "subject": {"reference": "Patient/example"},
        "onsetDateTime": "2012-05-24",
    },
]


def _without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


@pytest.mark.parametrize("example", SPEC_EXAMPLES,
                         ids=[f"{e['resourceType']}-{e['id']}" for e in SPEC_EXAMPLES])
def test_spec_example_round_trips(fhir: SyncFHIRClient, example: dict[str, Any]) -> None:
    resource = fhir.resource(example["resourceType"], **copy.deepcopy(example))
    resource.save()  # PUT <type>/<id>: update-as-create keeps the example's id
    assert resource.id == example["id"]
    stored = fhir.get(example["resourceType"], example["id"])
    assert _without_meta(stored) == example
    assert stored["meta"]["versionId"] == "1"


def test_spec_examples_as_one_transaction_and_searchable(fhir: SyncFHIRClient) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": e, "request": {"method": "PUT", "url": f"{e['resourceType']}/{e['id']}"}}
        for e in SPEC_EXAMPLES]}
    out = fhir.execute("", method="post", data=bundle)
    assert [e["response"]["status"] for e in out["entry"]] == ["201"] * len(SPEC_EXAMPLES)

    assert fhir.resources("Patient").search(family="chalmers").get().id == "example"
    assert fhir.resources("Patient").search(
        identifier="urn:oid:1.2.36.146.595.217.0.1|12345").get().id == "example"
    assert fhir.resources("Patient").search(birthdate="1974-12-25", gender="male").count() == 1
    assert fhir.resources("Practitioner").search(name="careful").get().id == "example"
    assert fhir.resources("Organization").search(name="health level").get().id == "hl7"
    assert fhir.resources("Encounter").search(subject="Patient/example", status="in-progress"
                                              ).count() == 1
    weight = fhir.resources("Observation").search(code="http://loinc.org|29463-7",
                                                  subject="Patient/example").get()
    assert weight["valueQuantity"]["value"] == 185
    assert fhir.resources("Observation").search(date="2016-03-28").count() == 1
    assert fhir.resources("Condition").search(code="http://snomed.info/sct|39065001",
                                              patient="Patient/example").count() == 1
    assert fhir.resources("Condition").search(patient="Patient/other").count() == 0
