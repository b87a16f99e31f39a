"""Tests of the R4 resource validator (kangqiao.fhir.validation).

No package installed here ships the HL7 R4 example resources, so the valid resources
below are hand-written to the R4 spec.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kangqiao.fhir import definitions as defs
from kangqiao.fhir.outcome import Issue
from kangqiao.fhir.validation import MAX_ISSUES, compile_type, validate_resource

UUID_1 = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def cc(code: str, system: str = "http://example.org/cs", text: str | None = None) -> dict:
    out: dict[str, Any] = {"coding": [{"system": system, "code": code}]}
    if text:
        out["text"] = text
    return out


def ref(reference: str) -> dict[str, str]:
    return {"reference": reference}


def ext(key: str, value: Any) -> dict[str, Any]:
    return {"url": "http://kangqiao.example/ext/x", key: value}


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p-1001",
    "meta": {"versionId": "1", "lastUpdated": "2024-05-01T08:30:00.123+08:00"},
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">张三</div>'},
    "extension": [
        {"url": "http://kangqiao.example/ext/ethnicity", "valueCoding": {"code": "01"}},
        {
            "url": "http://kangqiao.example/ext/household",
            "extension": [
                {"url": "head", "valueBoolean": True},
                {"url": "size", "valueInteger": 4},
            ],
        },
    ],
    "identifier": [{"system": "urn:oid:1.2.156.112604.1.2.1", "value": "330102197001011234"}],
    "active": True,
    "name": [
        {"use": "official", "text": "张三", "family": "张", "given": ["三"]},
        {
            "use": "usual",
            "given": [None, "三哥"],
            "_given": [{"extension": [{"url": "http://x.org/nick", "valueString": "三"}]}, None],
        },
    ],
    "telecom": [{"system": "phone", "value": "13800000000", "use": "mobile", "rank": 1}],
    "gender": "male",
    "birthDate": "1970-01-01",
    "_birthDate": {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1970-01-01T06:30:00+08:00",
            }
        ]
    },
    "deceasedBoolean": False,
    "address": [{"line": ["康桥村1号"], "city": "杭州市", "district": "桐庐县", "country": "CN"}],
    "maritalStatus": cc("M", "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"),
    "multipleBirthInteger": 1,
    "contact": [
        {
            "relationship": [cc("N", "http://terminology.hl7.org/CodeSystem/v2-0131")],
            "name": {"family": "李", "given": ["四"]},
            "gender": "female",
        }
    ],
    "communication": [{"language": cc("zh-CN", "urn:ietf:bcp:47"), "preferred": True}],
    "contained": [{"resourceType": "Organization", "id": "org1", "name": "康桥村卫生室"}],
    "managingOrganization": ref("#org1"),
    "generalPractitioner": [ref("Practitioner/dr-1/_history/2")],
}

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "bp-1",
    "status": "final",
    "category": [cc("vital-signs", "http://terminology.hl7.org/CodeSystem/observation-category")],
    "code": cc("85354-9", LOINC, "血压"),
    "subject": ref("Patient/p-1001"),
    "encounter": ref("Encounter/e-1"),
    "effectiveDateTime": "2024-05-01T09:00:00+08:00",
    "issued": "2024-05-01T09:05:00Z",
    "performer": [ref("Practitioner/dr-1")],
    "interpretation": [
        cc("H", "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation")
    ],
    "component": [
        {
            "code": cc("8480-6", LOINC),
            "valueQuantity": {"value": 142, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
        },
        {
            "code": cc("8462-4", LOINC),
            "valueQuantity": {"value": 91.5, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
        },
    ],
}

CONDITION: dict[str, Any] = {
    "resourceType": "Condition",
    "clinicalStatus": cc("active", "http://terminology.hl7.org/CodeSystem/condition-clinical"),
    "verificationStatus": cc(
        "confirmed", "http://terminology.hl7.org/CodeSystem/condition-ver-status"
    ),
    "category": [cc("problem-list-item")],
    "code": cc("I10", "http://hl7.org/fhir/sid/icd-10", "原发性高血压"),
    "subject": ref("Patient/p-1001"),
    "onsetDateTime": "2019-03",
    "recordedDate": "2019-03-15",
    "note": [{"authorString": "王医生", "text": "家族史阳性"}],
}

ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "status": "finished",
    "statusHistory": [{"status": "arrived", "period": {"start": "2024-05-01T08:00:00+08:00"}}],
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    "subject": ref("Patient/p-1001"),
    "participant": [{"individual": ref("Practitioner/dr-1")}],
    "period": {"start": "2024-05-01T08:00:00+08:00", "end": "2024-05-01T08:20:00+08:00"},
    "length": {"value": 20, "unit": "min", "system": UCUM, "code": "min"},
    "diagnosis": [{"condition": ref("Condition/c-1"), "rank": 1}],
    "serviceProvider": ref("Organization/th-01"),
}

QUESTIONNAIRE: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "url": "http://kangqiao.example/Questionnaire/htn-followup",
    "status": "active",
    "title": "高血压患者随访服务记录表",
    "item": [
        {
            "linkId": "1",
            "text": "症状",
            "type": "group",
            "item": [
                {
                    "linkId": "1.1",
                    "text": "头痛头晕",
                    "type": "boolean",
                    "enableWhen": [{"question": "0", "operator": "exists", "answerBoolean": True}],
                },
                {
                    "linkId": "1.2",
                    "type": "group",
                    "item": [
                        {
                            "linkId": "1.2.1",
                            "type": "choice",
                            "answerOption": [{"valueCoding": {"code": "a", "display": "甲"}}],
                        }
                    ],
                },
            ],
        },
        {"linkId": "2", "text": "收缩压", "type": "integer", "required": True},
    ],
}

CLAIM: dict[str, Any] = {
    "resourceType": "Claim",
    "status": "active",
    "type": cc("professional", "http://terminology.hl7.org/CodeSystem/claim-type"),
    "use": "claim",
    "patient": ref("Patient/p-1001"),
    "created": "2024-05-01",
    "provider": ref("Organization/th-01"),
    "priority": cc("normal", "http://terminology.hl7.org/CodeSystem/processpriority"),
    "insurance": [{"sequence": 1, "focal": True, "coverage": ref("Coverage/cov-1")}],
    "item": [
        {
            "sequence": 1,
            "productOrService": cc("99213"),
            "unitPrice": {"value": 25.0, "currency": "CNY"},
            "net": {"value": 25.0, "currency": "CNY"},
            "detail": [{"sequence": 1, "productOrService": cc("lab")}],
        }
    ],
    "total": {"value": 25.0, "currency": "CNY"},
}

PROVENANCE: dict[str, Any] = {
    "resourceType": "Provenance",
    "target": [ref("Observation/bp-1/_history/1")],
    "recorded": "2024-05-01T09:05:00.000+08:00",
    "activity": cc("CREATE", "http://terminology.hl7.org/CodeSystem/v3-DataOperation"),
    "agent": [{"who": ref("Practitioner/dr-1"), "onBehalfOf": ref("Organization/th-01")}],
    "entity": [{"role": "source", "what": ref("https://hospital.example.org/fhir/Observation/9")}],
}

DOCUMENT_REFERENCE: dict[str, Any] = {
    "resourceType": "DocumentReference",
    "status": "current",
    "docStatus": "final",
    "type": cc("34133-9", LOINC),
    "subject": ref("Patient/p-1001"),
    "date": "2024-05-01T09:00:00+08:00",
    "content": [
        {
            "attachment": {
                "contentType": "application/pdf",
                "data": "JVBERi0xLjQK",
                "size": 9,
                "title": "出院小结.pdf",
            }
        }
    ],
}

MEDICATION_REQUEST: dict[str, Any] = {
    "resourceType": "MedicationRequest",
    "status": "active",
    "intent": "order",
    "medicationCodeableConcept": cc("C09AA02", "http://www.whocc.no/atc", "依那普利"),
    "subject": ref("Patient/p-1001"),
    "authoredOn": "2024-05-01",
    "requester": ref("Practitioner/dr-1"),
    "dosageInstruction": [
        {
            "sequence": 1,
            "text": "每日一次，每次10mg，口服",
            "timing": {
                "repeat": {
                    "frequency": 1,
                    "period": 1,
                    "periodUnit": "d",
                    "timeOfDay": ["08:00:00"],
                }
            },
            "route": cc("26643006", "http://snomed.info/sct"),
            "doseAndRate": [{"doseQuantity": {"value": 10, "unit": "mg", "system": UCUM}}],
        }
    ],
    "dispenseRequest": {"numberOfRepeatsAllowed": 2, "quantity": {"value": 28}},
}

BUNDLE: dict[str, Any] = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "fullUrl": UUID_1,
            "resource": {"resourceType": "Patient", "name": [{"text": "王五"}]},
            "request": {"method": "POST", "url": "Patient"},
        },
        {
            "resource": {**OBSERVATION, "subject": ref(UUID_1)},
            "request": {"method": "PUT", "url": "Observation/bp-1"},
        },
        {
            "resource": {**CONDITION, "subject": ref("Patient?identifier=urn:oid:1.2|33")},
            "request": {"method": "POST", "url": "Condition"},
        },
        {"request": {"method": "DELETE", "url": "Observation/old-1"}},
    ],
}

VALID = [
    PATIENT,
    OBSERVATION,
    CONDITION,
    ENCOUNTER,
    QUESTIONNAIRE,
    CLAIM,
    PROVENANCE,
    DOCUMENT_REFERENCE,
    MEDICATION_REQUEST,
    BUNDLE,
]


@pytest.mark.parametrize("resource", VALID, ids=lambda r: r["resourceType"])
def test_valid_resources_pass(resource: dict[str, Any]) -> None:
    assert validate_resource(resource) == []
    assert validate_resource(resource, resource["resourceType"]) == []


def errors(resource: object, expected_type: str | None = None) -> list[tuple[str, str | None]]:
    issues = validate_resource(resource, expected_type)
    assert all(isinstance(i, Issue) and i.severity == "error" and i.diagnostics for i in issues)
    return [(i.code, i.expression) for i in issues]


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(changes)
    return out


# --- resourceType ---------------------------------------------------------------------


def test_resource_type_rules() -> None:
    assert errors({"id": "x"}) == [("required", None)]
    assert errors({"resourceType": "Patiënt"}) == [("invalid", None)]
    assert errors({"resourceType": "DomainResource"}) == [("invalid", None)]
    assert errors({"resourceType": 3}) == [("invalid", None)]
    assert errors({"resourceType": "Patient"}, "Observation") == [("invalid", None)]
    assert errors([PATIENT]) == [("structure", None)]
    assert errors(None) == [("structure", None)]


def test_resource_types_are_the_147_r4_types() -> None:
    types = defs.resource_types()
    assert len(types) == 147
    assert {"Patient", "Observation", "Bundle", "Parameters", "Binary"} <= types
    assert not {"Resource", "DomainResource", "MetadataResource", "Project"} & types


# --- unknown elements, choice types, primitive extensions -----------------------------


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (with_(PATIENT, foo=1), [("structure", "Patient.foo")]),
        (with_(OBSERVATION, value=3), [("structure", "Observation.value")]),
        (with_(OBSERVATION, valueFoo=3), [("structure", "Observation.valueFoo")]),
        (with_(PATIENT, _name=[{}]), [("structure", "Patient._name")]),
        (with_(PATIENT, _foo={"extension": []}), [("structure", "Patient._foo")]),
        (
            with_(PATIENT, name=[{"family": "张", "nickname": "三"}]),
            [("structure", "Patient.name[0].nickname")],
        ),
        (
            with_(OBSERVATION, valueString="高", valueQuantity={"value": 1}),
            [("structure", "Observation.valueQuantity")],
        ),
        (
            with_(PATIENT, deceasedDateTime="2020-01-01"),
            [("structure", "Patient.deceasedDateTime")],
        ),
    ],
)
def test_unknown_elements_and_choices(resource: dict, expected: list) -> None:
    assert errors(resource) == expected


def test_primitive_extension_siblings() -> None:
    data_absent = {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                "valueCode": "unknown",
            }
        ]
    }
    # `_status` alone satisfies status's min = 1
    obs = {k: v for k, v in OBSERVATION.items() if k != "status"}
    assert errors({**obs, "_status": data_absent}) == []
    assert errors({**OBSERVATION, "_valueString": data_absent}) == []
    assert errors(with_(PATIENT, _birthDate={})) == [("value", "Patient.birthDate")]
    assert errors(with_(PATIENT, _birthDate={"extension": [{"valueString": "x"}]})) == [
        ("required", "Patient.birthDate.extension[0].url")
    ]
    assert errors(with_(PATIENT, _active=[data_absent])) == [("structure", "Patient.active")]
    bad_nulls = with_(PATIENT, name=[{"given": [None, "三"]}])
    assert errors(bad_nulls) == [("value", "Patient.name[0].given[0]")]
    uneven = with_(PATIENT, name=[{"given": ["三"], "_given": [None, None]}])
    assert errors(uneven) == [("structure", "Patient.name[0].given")]


# --- primitive JSON types and formats -------------------------------------------------


def obs_component_value(value: Any) -> dict[str, Any]:
    component = {"code": cc("8480-6", LOINC), "valueQuantity": {"value": value}}
    return with_(OBSERVATION, component=[OBSERVATION["component"][0], component])


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        (with_(PATIENT, gender=1), "Patient.gender"),
        (with_(PATIENT, active="true"), "Patient.active"),
        (with_(PATIENT, active=1), "Patient.active"),
        (with_(PATIENT, multipleBirthInteger=True), "Patient.multipleBirthInteger"),
        (with_(PATIENT, multipleBirthInteger=1.5), "Patient.multipleBirthInteger"),
        (with_(PATIENT, multipleBirthInteger=2**31), "Patient.multipleBirthInteger"),
        (obs_component_value("142"), "Observation.component[1].valueQuantity.value"),
        (obs_component_value(True), "Observation.component[1].valueQuantity.value"),
        (obs_component_value(float("nan")), "Observation.component[1].valueQuantity.value"),
        (with_(PATIENT, birthDate="1970-13-01"), "Patient.birthDate"),
        (with_(PATIENT, birthDate="1970-02-30"), "Patient.birthDate"),
        (with_(PATIENT, birthDate="70-01-01"), "Patient.birthDate"),
        (with_(PATIENT, birthDate=""), "Patient.birthDate"),
        (with_(PATIENT, birthDate=None), "Patient.birthDate"),
        (with_(PATIENT, id="bad id"), "Patient.id"),
        (with_(PATIENT, id="a" * 65), "Patient.id"),
        (with_(PATIENT, id=""), "Patient.id"),
        (with_(OBSERVATION, issued="2024-05-01T09:05:00"), "Observation.issued"),
        (with_(OBSERVATION, issued="2024-05-01"), "Observation.issued"),
        (with_(OBSERVATION, effectiveDateTime="2024-05-01T09:00"), "Observation.effectiveDateTime"),
        (with_(OBSERVATION, valueTime="25:00:00"), "Observation.valueTime"),
        (with_(OBSERVATION, valueInteger=-(2**31) - 1), "Observation.valueInteger"),
        (
            with_(ENCOUNTER, diagnosis=[{"condition": ref("Condition/1"), "rank": 0}]),
            "Encounter.diagnosis[0].rank",
        ),
        (with_(QUESTIONNAIRE, url="http://x.org/a b"), "Questionnaire.url"),
        (with_(QUESTIONNAIRE, derivedFrom=["http://x.org/ q"]), "Questionnaire.derivedFrom[0]"),
        (
            with_(PATIENT, extension=[ext("valueOid", "urn:oid:1.02")]),
            "Patient.extension[0].valueOid",
        ),
        (
            with_(PATIENT, extension=[ext("valueUuid", UUID_1.upper())]),
            "Patient.extension[0].valueUuid",
        ),
        (with_(PATIENT, extension=[ext("valueUrl", "")]), "Patient.extension[0].valueUrl"),
        (
            with_(PATIENT, extension=[ext("valueCanonical", "a b")]),
            "Patient.extension[0].valueCanonical",
        ),
        (
            with_(PATIENT, extension=[ext("valueMarkdown", "")]),
            "Patient.extension[0].valueMarkdown",
        ),
        (
            with_(PATIENT, extension=[ext("valueUnsignedInt", -1)]),
            "Patient.extension[0].valueUnsignedInt",
        ),
        (
            with_(PATIENT, extension=[ext("valueBase64Binary", "a===")]),
            "Patient.extension[0].valueBase64Binary",
        ),
        (with_(PATIENT, language=" zh"), "Patient.language"),
        (with_(QUESTIONNAIRE, description=""), "Questionnaire.description"),
        (
            with_(DOCUMENT_REFERENCE, content=[{"attachment": {"data": "abc"}}]),
            "DocumentReference.content[0].attachment.data",
        ),
        (
            with_(DOCUMENT_REFERENCE, content=[{"attachment": {"size": -1}}]),
            "DocumentReference.content[0].attachment.size",
        ),
        (with_(PATIENT, text={"status": "generated", "div": ""}), "Patient.text.div"),
        (with_(PATIENT, name=[{"given": ["三", ""]}]), "Patient.name[0].given[1]"),
    ],
)
def test_primitive_values(resource: dict, expression: str) -> None:
    assert errors(resource) == [("value", expression)]


def test_primitive_values_that_are_valid() -> None:
    assert errors(with_(PATIENT, birthDate="1970")) == []
    assert errors(with_(PATIENT, birthDate="2000-02-29")) == []
    assert errors(with_(PATIENT, id="A-1.b" + "c" * 59)) == []
    assert errors(with_(OBSERVATION, valueInteger=-5)) == []
    assert errors(with_(PATIENT, extension=[ext("valueOid", "urn:oid:2.16.156.10011")])) == []
    assert errors(with_(PATIENT, extension=[ext("valueBase64Binary", "aGVs\nbG8=")])) == []
    assert errors(with_(OBSERVATION, issued="2024-05-01T09:05:60.5-03:30")) == []
    assert errors(obs_component_value(1.5e3)) == []
    assert errors(with_(MEDICATION_REQUEST, identifier=[{"system": UUID_1}])) == []


# --- empty content and cardinality ----------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (with_(PATIENT, name=[]), [("value", "Patient.name")]),
        (with_(PATIENT, name=[{}]), [("value", "Patient.name[0]")]),
        (with_(PATIENT, meta={}), [("value", "Patient.meta")]),
        (with_(PATIENT, maritalStatus={"id": "m"}), [("value", "Patient.maritalStatus")]),
        (with_(PATIENT, gender=["male"]), [("structure", "Patient.gender")]),
        (with_(PATIENT, name={"text": "张三"}), [("structure", "Patient.name")]),
        (with_(PATIENT, name=["张三"]), [("structure", "Patient.name[0]")]),
        (with_(PATIENT, maritalStatus="M"), [("structure", "Patient.maritalStatus")]),
        (
            {k: v for k, v in OBSERVATION.items() if k != "status"},
            [("required", "Observation.status")],
        ),
        (
            with_(OBSERVATION, component=[{"valueString": "x"}]),
            [("required", "Observation.component[0].code")],
        ),
        (
            with_(ENCOUNTER, statusHistory=[{"status": "arrived"}]),
            [("required", "Encounter.statusHistory[0].period")],
        ),
        (with_(PATIENT, text={"status": "generated"}), [("required", "Patient.text.div")]),
        (
            with_(PATIENT, link=[{"type": "seealso"}]),
            [("required", "Patient.link[0].other")],
        ),
    ],
)
def test_empty_content_and_cardinality(resource: dict, expected: list) -> None:
    assert errors(resource) == expected


def test_minimal_patient_is_valid() -> None:
    assert errors({"resourceType": "Patient"}) == []


# --- complex types, extensions, contained, contentReference ---------------------------


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            with_(PATIENT, extension=[{"valueString": "x"}]),
            [("required", "Patient.extension[0].url")],
        ),
        (
            with_(PATIENT, extension=[{"url": "http://x.org/e", "valueString": 1}]),
            [("value", "Patient.extension[0].valueString")],
        ),
        (
            with_(PATIENT, extension=[{"url": "http://x.org/e", "extension": [{"url": 1}]}]),
            [("value", "Patient.extension[0].extension[0].url")],
        ),
        (
            with_(PATIENT, modifierExtension=[{"url": "http://x.org/e", "valueFoo": 1}]),
            [("structure", "Patient.modifierExtension[0].valueFoo")],
        ),
        (
            with_(PATIENT, maritalStatus={"coding": {"code": "M"}}),
            [("structure", "Patient.maritalStatus.coding")],
        ),
        (
            with_(PATIENT, contained=[{"resourceType": "Organization", "name": ["x"]}]),
            [("structure", "Patient.contained[0].name")],
        ),
        (with_(PATIENT, contained=[{"name": "x"}]), [("required", "Patient.contained[0]")]),
        (
            with_(PATIENT, contained=[{"resourceType": "Nope"}]),
            [("invalid", "Patient.contained[0]")],
        ),
        (
            with_(MEDICATION_REQUEST, dosageInstruction=[{"timing": {"repeat": {"count": 0}}}]),
            [("value", "MedicationRequest.dosageInstruction[0].timing.repeat.count")],
        ),
    ],
)
def test_complex_types(resource: dict, expected: list) -> None:
    assert errors(resource) == expected


def test_bundle_entries_are_validated_as_resources() -> None:
    bundle = copy.deepcopy(BUNDLE)
    bundle["entry"][1]["resource"]["status"] = "done"
    bundle["entry"][2]["resource"]["onsetDateTime"] = "yesterday"
    del bundle["entry"][3]["request"]["method"]
    assert errors(bundle) == [
        ("code-invalid", "Bundle.entry[1].resource.status"),
        ("value", "Bundle.entry[2].resource.onsetDateTime"),
        ("required", "Bundle.entry[3].request.method"),
    ]


def test_questionnaire_items_follow_the_content_reference() -> None:
    q = copy.deepcopy(QUESTIONNAIRE)
    inner = q["item"][0]["item"][1]["item"][0]
    inner["type"] = "dropdown"
    inner["answerOption"][0]["valueFoo"] = 1
    inner["item"] = [{"text": "no linkId or type"}]
    assert errors(q) == [
        ("code-invalid", "Questionnaire.item[0].item[1].item[0].type"),
        ("structure", "Questionnaire.item[0].item[1].item[0].answerOption[0].valueFoo"),
        ("required", "Questionnaire.item[0].item[1].item[0].item[0].linkId"),
        ("required", "Questionnaire.item[0].item[1].item[0].item[0].type"),
    ]


# --- required bindings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        (with_(PATIENT, gender="M"), "Patient.gender"),
        (with_(PATIENT, contact=[{"gender": "男"}]), "Patient.contact[0].gender"),
        (with_(OBSERVATION, status="done"), "Observation.status"),
        (with_(ENCOUNTER, status="open"), "Encounter.status"),
        (with_(BUNDLE, type="batch-request"), "Bundle.type"),
        (with_(CLAIM, use="bill"), "Claim.use"),
        (with_(MEDICATION_REQUEST, intent="prescribe"), "MedicationRequest.intent"),
        (with_(QUESTIONNAIRE, status="published"), "Questionnaire.status"),
        (with_(CONDITION, clinicalStatus=cc("ACTIVE")), "Condition.clinicalStatus"),
        (with_(CONDITION, clinicalStatus={"text": "active"}), "Condition.clinicalStatus"),
        (
            with_(PATIENT, telecom=[{"system": "wechat", "value": "x"}]),
            "Patient.telecom[0].system",
        ),
    ],
)
def test_required_bindings(resource: dict, expression: str) -> None:
    assert errors(resource) == [("code-invalid", expression)]


def test_value_set_expansion() -> None:
    gender = "http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1"
    assert defs.value_set_codes(gender) == {"male", "female", "other", "unknown"}
    assert "final" in (
        defs.value_set_codes("http://hl7.org/fhir/ValueSet/observation-status") or ()
    )
    # external code systems (BCP-47, UCUM) and unknown value sets are not expandable here
    assert defs.value_set_codes("http://hl7.org/fhir/ValueSet/all-languages") is None
    assert defs.value_set_codes("http://hl7.org/fhir/ValueSet/ucum-units") is None
    assert defs.value_set_codes("http://example.org/nope") is None
    # unexpandable required bindings are skipped: any language code passes
    assert errors(with_(PATIENT, language="xx-YY")) == []


# --- references -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/1",
        "Patient/p-1.a",
        "Patient/1/_history/2",
        "https://fhir.example.org/r4/Patient/1",
        "http://example.org/fhir/Patient/1/_history/1",
        UUID_1,
        "urn:oid:1.2.156.112604",
        "#org1",
        "#",
        "Patient?identifier=urn:oid:1.2|330102",
    ],
)
def test_valid_references(reference: str) -> None:
    assert errors(with_(OBSERVATION, subject=ref(reference))) == []


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/",
        "patient/1",
        "Foo/1",
        "Patient/a b",
        "Patient/1/_history/",
        "Patient/1/extra",
        "1",
        "urn:uuid:61EBE359-BFDC-4613-8BF2-C5E300945F0A",
        "urn:oid:1.02",
        "#bad id",
        "http://",
        "https://a b/Patient/1",
    ],
)
def test_invalid_references(reference: str) -> None:
    assert errors(with_(OBSERVATION, subject=ref(reference))) == [
        ("value", "Observation.subject.reference")
    ]


def test_references_inside_extensions_and_arrays() -> None:
    ext = {"url": "http://x.org/e", "valueReference": ref("Bogus/1")}
    assert errors(with_(PATIENT, extension=[ext])) == [
        ("value", "Patient.extension[0].valueReference.reference")
    ]
    assert errors(with_(PATIENT, generalPractitioner=[ref("Practitioner/1"), ref("x y")])) == [
        ("value", "Patient.generalPractitioner[1].reference")
    ]


# --- robustness -----------------------------------------------------------------------


def test_reports_many_errors_but_caps_them() -> None:
    bad = with_(PATIENT, gender="M", birthDate="x", active="y")
    assert [e[1] for e in errors(bad)] == ["Patient.active", "Patient.gender", "Patient.birthDate"]
    flood = {"resourceType": "Patient", **{f"x{i}": i for i in range(500)}}
    assert len(validate_resource(flood)) == MAX_ISSUES


def test_deep_nesting_does_not_raise() -> None:
    ext: dict[str, Any] = {"url": "http://x.org/e", "valueString": "leaf"}
    for _ in range(5000):
        ext = {"url": "http://x.org/e", "extension": [ext]}
    issues = validate_resource({"resourceType": "Patient", "extension": [ext]})
    assert [i.code for i in issues] == ["too-costly"]
    item: dict[str, Any] = {"linkId": "x", "type": "display"}
    for _ in range(5000):
        item = {"linkId": "x", "type": "group", "item": [item]}
    issues = validate_resource({"resourceType": "Questionnaire", "status": "draft", "item": [item]})
    assert [i.code for i in issues] == ["too-costly"]
    nested: Any = {"resourceType": "Bundle", "type": "collection"}
    for _ in range(3000):
        nested = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": nested}]}
    assert [i.code for i in validate_resource(nested)] == ["too-costly"]


def test_odd_inputs_do_not_raise() -> None:
    for value in [None, 0, 1.5, True, "Patient", b"x", [], [None], {}, {1: 2}, {None: None}]:
        assert validate_resource(value)
    assert validate_resource({"resourceType": "Patient", 1: "x", (): None})
    assert validate_resource({"resourceType": "Patient", "name": [[[[]]]], "_": {}})


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
# Keys are drawn from real element names so that the walk reaches deep into definitions.
element_names = st.sampled_from(
    [
        "resourceType", "id", "name", "given", "_given", "family", "extension", "url",
        "valueString", "valueQuantity", "value", "code", "coding", "system", "status",
        "item", "linkId", "type", "entry", "resource", "reference", "contained", "text",
        "div", "component", "birthDate", "_birthDate", "gender", "meta", "Patient",
    ]
)  # fmt: skip
json_values = st.recursive(
    json_scalars | st.sampled_from(sorted(defs.resource_types())),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(element_names | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["Patient", "Observation", "Questionnaire", "Bundle", "Extension"]),
    st.dictionaries(element_names, json_values, max_size=8),
)
def test_never_raises_on_arbitrary_json(resource_type: str, body: dict[str, Any]) -> None:
    issues = validate_resource({**body, "resourceType": resource_type})
    assert all(i.severity == "error" for i in issues)
    assert len(issues) <= MAX_ISSUES
    validate_resource(body)
    validate_resource(list(body.values()), "Patient")


# --- every R4 resource type -----------------------------------------------------------

SAMPLES: dict[str, Any] = {
    "boolean": True,
    "integer": 1,
    "positiveInt": 1,
    "unsignedInt": 0,
    "decimal": 1.5,
    "date": "2024-01-01",
    "dateTime": "2024-01-01T08:00:00+08:00",
    "instant": "2024-01-01T08:00:00Z",
    "time": "08:00:00",
    "id": "a1",
    "oid": "urn:oid:1.2.3",
    "uuid": UUID_1,
    "uri": "http://example.org/x",
    "url": "http://example.org/x",
    "canonical": "http://example.org/x",
    "base64Binary": "aGVsbG8=",
    "xhtml": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
}
FIXED: dict[str, Any] = {
    "Reference": ref("Patient/1"),
    "Resource": {"resourceType": "Basic", "code": {"text": "x"}},
    "Extension": {"url": "http://example.org/e", "valueString": "x"},
}


def _children(elements: list[dict], parent: str) -> list[dict]:
    return [e for e in elements if e["path"].rpartition(".")[0] == parent]


def _first_code(element: dict) -> str:
    binding = element.get("binding") or {}
    codes = defs.value_set_codes(binding["valueSet"]) if "valueSet" in binding else None
    strength = binding.get("strength")
    return sorted(codes)[0] if codes and strength == "required" else "x"


def _sample(element: dict, type_code: str, elements: list[dict]) -> Any:
    if type_code in FIXED:
        return FIXED[type_code]
    if type_code in ("code", "string", "markdown"):
        return _first_code(element)
    if type_code in SAMPLES:
        return SAMPLES[type_code]
    if type_code == "CodeableConcept":
        return {"coding": [{"code": _first_code(element)}]}
    if "contentReference" in element:
        return _minimal(elements, element["contentReference"].lstrip("#"), False)
    if _children(elements, element["path"]):
        return _minimal(elements, element["path"], False)
    return _minimal(defs.snapshot_elements(type_code), type_code, False)


def _minimal(elements: list[dict], path: str, is_resource: bool) -> dict[str, Any]:
    """An instance with every required element filled, and at least one child."""
    skip = {"id", "extension", "modifierExtension"}
    children = [e for e in _children(elements, path) if e["path"].rpartition(".")[2] not in skip]
    required = [e for e in children if e["min"] > 0]
    if not required and not is_resource:
        required = [e for e in children if e["max"] != "0"][:1]
    out: dict[str, Any] = {}
    for element in required:
        name = element["path"].rpartition(".")[2]
        type_code = defs.fhir_type_of(element["type"][0]) if "type" in element else "Backbone"
        if name.endswith("[x]"):
            name = name[:-3] + type_code[0].upper() + type_code[1:]
        value = _sample(element, type_code, elements)
        out[name] = value if element["max"] == "1" else [value]
    return out


@pytest.mark.parametrize("resource_type", sorted(defs.resource_types()))
def test_every_resource_type_compiles_and_accepts_a_minimal_instance(resource_type: str) -> None:
    compile_type(resource_type)
    elements = defs.snapshot_elements(resource_type)
    minimal = {"resourceType": resource_type, **_minimal(elements, resource_type, True)}
    assert errors(minimal, resource_type) == []
    assert errors({"resourceType": resource_type, "unknownElement": 1}) != []
