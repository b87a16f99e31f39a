"""Fuzzing the FHIR API: it answers garbage with a 4xx OperationOutcome, never a 5xx, and a
rejected write leaves the database exactly as it was.

Two layers:

* schemathesis drives every operation of the app's own OpenAPI description in-process
  (ASGI) and checks ``not_a_server_error``;
* hypothesis builds FHIR-ish input (real resource types and element names with values of the
  wrong type, deep nesting, huge strings, odd unicode, bad references and ids, random JSON
  patches, search query strings, conditional/Prefer headers and result parameters) and checks
  the invariants on both backends, counting the rows of every table around each 4xx write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from sqlalchemy import Engine, create_engine, func, select

from kangqiao.app import create_app
from kangqiao.fhir import definitions
from kangqiao.fhir.search.params import search_params
from kangqiao.fhir.store import schema as db_schema
from kangqiao.fhir.store.store import FhirStore
from kangqiao.settings import Settings
from tests.conftest import AUDIT_KEY

FHIR = "application/fhir+json"


@schemathesis.serializer("application/fhir+ndjson")
def _ndjson(_ctx: schemathesis.SerializationContext, value: object) -> bytes:
    """$import takes NDJSON: generated values go on the wire as their text, one line."""
    return value.encode() if isinstance(value, str) else str(value).encode()

PATCH = "application/json-patch+json"
# KANGQIAO_FUZZ_EXAMPLES=2000 for a long hunt; the default keeps the file quick.
EXAMPLES = int(os.environ.get("KANGQIAO_FUZZ_EXAMPLES", "60"))
FUZZ = hsettings(max_examples=EXAMPLES, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow, HealthCheck.data_too_large])

# ---- strategies: FHIR-ish input ----------------------------------------------------------

KANGQIAO_TYPES = ("Patient", "Observation", "Encounter", "Condition", "Organization",
                  "Practitioner", "PractitionerRole", "Claim", "DocumentReference",
                  "Provenance", "MedicationRequest", "AllergyIntolerance", "Bundle")
ALL_TYPES = sorted(definitions.resource_types())


def _element_names() -> list[str]:
    names: set[str] = set()
    for resource_type in KANGQIAO_TYPES:
        for element in definitions.snapshot_elements(resource_type):
            last = element["path"].split(".")[-1]
            if last.endswith("[x]"):
                for t in element.get("type", ()):
                    code = t["code"].split(".")[-1]
                    names.add(last[:-3] + code[:1].upper() + code[1:])
            else:
                names.add(last)
    return sorted(names)


ELEMENT_NAMES = _element_names()
SEARCH_NAMES = sorted({name for t in KANGQIAO_TYPES for name in search_params(t)})

resource_types = st.one_of(st.sampled_from(KANGQIAO_TYPES), st.sampled_from(ALL_TYPES))
odd_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "\x00", "\u202e康桥\u200b", "\ufeff", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "é", "\r\n",
                     "<div>", "null", "1958-02-30", "2026-13-01T25:61:00Z", "9" * 40,
                     "urn:uuid:", "Patient/", "Patient/../../x", "%00", "' OR 1=1 --"]),
    st.integers(1, 40).map(lambda n: "字" * (n * 1000)),  # up to 120 kB of UTF-8
)
ids = st.one_of(st.sampled_from(["p1", "o1", "x" * 64, "x" * 65, "a_b", "..", ".", "-",
                                 "with space", "新", ""]),
                st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True), st.text(max_size=70))
references = st.one_of(
    st.builds(lambda t, i: f"{t}/{i}", resource_types, ids),
    st.sampled_from(["Patient/p1", "Patient/p1/_history/1", "Patient?identifier=x|1",
                     "urn:uuid:nope", "#contained", "http://example.org/fhir/Patient/1",
                     "Nonsense/1", "/Patient/1", "Patient", "Patient/", "?"]),
    odd_text)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), odd_text)


def _json_values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(ELEMENT_NAMES), st.text(max_size=8)),
                            children, max_size=5),
            st.fixed_dictionaries({"reference": references}),
        ),
        max_leaves=25)


json_values = _json_values(scalars)


def _nested(depth: int, key: str) -> Any:
    node: Any = "deep"
    for _ in range(depth):
        node = {key: [node]} if depth % 2 else {key: node}
    return node


# Nesting stays below ~150 levels here: hypothesis reprs every drawn argument and its pretty
# printer recurses; deeper documents (thousands of levels) travel as raw bytes below.
deep_values = st.builds(_nested, st.integers(10, 150), st.sampled_from(ELEMENT_NAMES))


@st.composite
def resources(draw: st.DrawFn, resource_type: str | None = None) -> Any:
    """A JSON object that looks like a resource; mostly wrong in some way."""
    kind = resource_type or draw(resource_types)
    body: dict[str, Any] = {}
    if draw(st.integers(0, 9)):  # sometimes no / another / a non-string resourceType
        body["resourceType"] = kind if draw(st.integers(0, 4)) else draw(
            st.one_of(resource_types, scalars))
    for name in draw(st.lists(st.sampled_from(ELEMENT_NAMES), max_size=6)):
        body[name] = draw(st.one_of(json_values, deep_values) if draw(st.integers(0, 15)) == 0
                          else json_values)
    if draw(st.booleans()):
        body["id"] = draw(st.one_of(ids, scalars))
    if draw(st.integers(0, 3)) == 0:
        body["meta"] = draw(st.one_of(
            json_values, st.fixed_dictionaries({"versionId": odd_text}),
            st.fixed_dictionaries({"tag": st.lists(st.fixed_dictionaries(
                {"system": odd_text, "code": odd_text}), max_size=3)})))
    if draw(st.integers(0, 3)) == 0:
        body["contained"] = draw(st.lists(st.one_of(json_values, st.fixed_dictionaries(
            {"resourceType": resource_types, "id": ids})), max_size=2))
    return body


def _valid_patient(pid: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "gender": "female",
                            "name": [{"family": "王", "given": ["秀英"]}],
                            "identifier": [{"system": "urn:oid:2.16.156.10011.1.1",
                                            "value": "110101195803021234"}]}
    if pid:
        body["id"] = pid
    return body


bodies = st.one_of(resources(), resources("Patient"), json_values, deep_values)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
etags = st.one_of(st.sampled_from(['W/"1"', 'W/"2"', '"1"', "1", "*", 'W/"99999999999999999"',
                                   'W/""', "W/", ""]), header_text)
query_values = st.one_of(
    st.sampled_from(["", "eq2020", "gt2026-01-01", "le2020-01-01T00:00:00Z", "2020-13",
                     "urn:oid:2.16.156.10011.1.1|110101195803021234", "|", "||", "a|b|c",
                     "Patient/p1", "p1", "1e999", "-1", "ap5.4|http://unitsofmeasure.org|mg",
                     "sa", "true", "http://x", ",", ",,", "$", "yesterday", "9" * 30,
                     "male,female", "Patient:name=王"]),
    st.text(max_size=20))
modifiers = st.sampled_from(["", ":exact", ":contains", ":missing", ":not", ":text", ":above",
                             ":below", ":in", ":of-type", ":identifier", ":Patient", ":bogus",
                             ".name", ":"])
search_pairs = st.lists(st.tuples(
    st.one_of(st.builds(lambda n, m: n + m, st.sampled_from(SEARCH_NAMES), modifiers),
              st.sampled_from(["_count", "_offset", "_sort", "_total", "_summary", "_elements",
                               "_include", "_revinclude", "_has:Observation:subject:code",
                               "subject:Patient.name", "_format", "_pretty", "_since",
                               "_at", "_list", "_until", "_id", "_lastUpdated"]),
              st.text(max_size=10)),
    query_values), max_size=5)
result_params = st.dictionaries(
    st.sampled_from(["_format", "_summary", "_elements", "_count", "_since", "_at", "_pretty",
                     "_offset", "_total"]),
    st.one_of(st.sampled_from(["json", "xml", "application/fhir+json", "text/html", "true",
                               "false", "text", "data", "count", "0", "-1", "1000000",
                               "2026-01-01", "2026-01-01T00:00:00Z", "id,name", "name.family",
                               "99999999999999999999", "9223372036854775808", "1_0", "１",
                               "Patient.gender", ",", "nan"]), st.text(max_size=8)),
    max_size=3)
prefers = st.one_of(st.sampled_from(["return=minimal", "return=representation",
                                     "return=OperationOutcome", "handling=strict",
                                     "handling=lenient", "return=", "respond-async",
                                     'return="minimal", handling=strict']), header_text)


@st.composite
def write_headers(draw: st.DrawFn) -> dict[str, str]:
    headers = {"Content-Type": FHIR}
    if draw(st.integers(0, 9)) == 0:
        headers["Content-Type"] = draw(st.sampled_from(
            ["application/json", f"{FHIR}; charset=utf-8", "application/fhir+xml",
             "text/plain", PATCH]))
    if draw(st.booleans()):
        headers["Prefer"] = draw(prefers)
    if draw(st.integers(0, 2)) == 0:
        headers["If-Match"] = draw(etags)
    if draw(st.integers(0, 2)) == 0:
        headers["If-None-Exist"] = draw(st.one_of(
            st.builds(urlencode, search_pairs), header_text))
    if draw(st.integers(0, 5)) == 0:
        headers["Accept"] = draw(st.sampled_from(["application/fhir+xml", "*/*", "text/html",
                                                  FHIR, "application/xml, text/xml"]))
    return headers


patch_ops = st.lists(st.fixed_dictionaries(
    {"op": st.one_of(st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]),
                     st.text(max_size=6), scalars)},
    optional={
        "path": st.one_of(st.sampled_from(["/gender", "/id", "/resourceType", "/meta",
                                           "/meta/versionId", "/name/0/family", "/name/-",
                                           "/name/99", "", "/", "/birthDate", "/active",
                                           "/identifier/0/value", "/text/div", "~1", "/a~2"]),
                          st.builds(lambda p: "/" + "/".join(p),
                                    st.lists(st.one_of(st.sampled_from(ELEMENT_NAMES),
                                                       st.integers(0, 3).map(str)),
                                             max_size=4)),
                          scalars),
        "from": st.sampled_from(["/gender", "/name/0", "/id", "/nope", ""]),
        "value": st.one_of(json_values, st.just(_valid_patient("p1")))}),
    max_size=5)
patch_bodies = st.one_of(patch_ops, json_values)


# ---- helpers -------------------------------------------------------------------------------


def _table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in db_schema.metadata.sorted_tables
                if not t.name.startswith("audit_")}  # rejected requests are audited


def _encode(body: Any) -> bytes:
    """JSON text; a lone surrogate stays an escape (which the server must reject cleanly)."""
    return json.dumps(body, ensure_ascii=True).encode()


def _check(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:2000])
    if 400 <= response.status_code < 500:
        body = response.json()
        assert body["resourceType"] == "OperationOutcome", body
        assert body["issue"] and all(i["severity"] in ("fatal", "error", "warning",
                                                       "information") for i in body["issue"])
    elif response.status_code not in (204, 304) and response.content:
        assert response.headers["content-type"].startswith(FHIR)
        assert isinstance(response.json().get("resourceType"), str)


def _write(engine: Engine, send: Callable[[], Any]) -> Any:
    before = _table_counts(engine)
    response = send()
    _check(response)
    if 400 <= response.status_code < 500:
        assert _table_counts(engine) == before, "a rejected write changed the database"
    return response


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    """Patient/p1 and an Observation o1 about it, so updates, patches and searches hit data."""
    assert client.put("/fhir/Patient/p1", content=_encode(_valid_patient("p1")),
                      headers={"Content-Type": FHIR}).status_code == 201
    obs = {"resourceType": "Observation", "id": "o1", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
           "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-11-01",
           "valueQuantity": {"value": 150, "unit": "mmHg", "system":
                             "http://unitsofmeasure.org", "code": "mm[Hg]"}}
    assert client.put("/fhir/Observation/o1", content=_encode(obs),
                      headers={"Content-Type": FHIR}).status_code == 201
    return client


def _url(path: str, params: dict[str, str] | list[tuple[str, str]]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


# ---- regressions found by the fuzzers -------------------------------------------------------


def test_ids_outside_the_fhir_id_pattern(client: TestClient, engine: Engine) -> None:
    before = _table_counts(engine)
    body = {**_valid_patient(), "id": "p2\n"}
    r = client.put("/fhir/Patient/p2%0A", content=_encode(body), headers={"Content-Type": FHIR})
    assert r.status_code == 400  # "$" in ID_RE used to accept a trailing newline
    for path in ("/fhir/Patient/%00", "/fhir/Patient/%00/_history",
                 "/fhir/Patient/%00/_history/1", "/fhir/Patient/a%20b"):
        r = client.get(path)  # NUL used to be a 500 on PostgreSQL
        assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    r = client.patch("/fhir/Patient/%00", content=b"[]", headers={"Content-Type": PATCH})
    assert r.status_code == 404
    assert client.get("/fhir/Patient", params={"family": "a\x00"}).status_code == 400
    assert _table_counts(engine) == before


def test_conditional_update_with_a_non_object_body(client: TestClient, engine: Engine) -> None:
    client.put("/fhir/Patient/p1", content=_encode(_valid_patient("p1")),
               headers={"Content-Type": FHIR})
    before = _table_counts(engine)
    r = client.put("/fhir/Patient?_id=p1", content=b"[1]", headers={"Content-Type": FHIR})
    assert r.status_code == 400  # was a 500 (TypeError) when the criteria matched
    r = client.put("/fhir/Patient?_id=none", content=_encode({"resourceType": "Patient",
                                                               "id": True}),
                   headers={"Content-Type": FHIR})
    assert r.status_code == 400  # was a 500: ID_RE.match(True) when nothing matched
    assert _table_counts(engine) == before


def test_search_post_form(client: TestClient) -> None:
    client.put("/fhir/Patient/p1", content=_encode(_valid_patient("p1")),
               headers={"Content-Type": FHIR})
    r = client.post("/fhir/Patient/_search", content="family=%E7%8E%8B&_count=5",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text  # was a 500: request.form() needs python-multipart
    assert r.json()["total"] == 1


def test_exact_day_date_search_on_bulk_inserted_index(client: TestClient) -> None:
    client.put("/fhir/Patient/p1", content=_encode({**_valid_patient("p1"),
                                                    "birthDate": "1958-03-02"}),
               headers={"Content-Type": FHIR})
    # SQLite's raw executemany wrote '1958-03-02 00:00:00' (no .ffffff), which compares
    # below '1958-03-02 00:00:00.000000' as text: the exact day found nothing.
    assert client.get("/fhir/Patient", params={"birthdate": "1958-03-02"}).json()["total"] == 1


def test_huge_offset_is_a_4xx(client: TestClient) -> None:
    for path in ("/fhir/Patient", "/fhir/_history", "/fhir/Patient/_history"):
        r = client.get(path, params={"_offset": "99999999999999999999"})
        assert r.status_code == 400, r.text  # was a 500: the int overflowed SQLite / PostgreSQL


def test_bundle_entry_fields_of_the_wrong_type(client: TestClient, engine: Engine) -> None:
    client.put("/fhir/Patient/p1", content=_encode(_valid_patient("p1")),
               headers={"Content-Type": FHIR})
    before = _table_counts(engine)
    cases = [
        {"resource": _valid_patient("p1"),
         "request": {"method": "PUT", "url": "Patient/p1", "ifMatch": 1}},
        {"request": {"method": "GET", "url": "Patient/p1", "ifNoneMatch": 1}},
        {"request": {"method": "GET", "url": "Patient/p1", "ifModifiedSince": ["x"]}},
        {"resource": {"resourceType": "Binary", "data": 5},
         "request": {"method": "PATCH", "url": "Patient/p1"}},
    ]
    for entry in cases:  # each was a 500
        tx = client.post("/fhir", content=_encode({"resourceType": "Bundle",
                                                   "type": "transaction", "entry": [entry]}),
                         headers={"Content-Type": FHIR})
        assert tx.status_code == 400, tx.text
        assert tx.json()["resourceType"] == "OperationOutcome"
        batch = client.post("/fhir", content=_encode({"resourceType": "Bundle",
                                                      "type": "batch", "entry": [entry]}),
                            headers={"Content-Type": FHIR})
        assert batch.status_code == 200
        assert batch.json()["entry"][0]["response"]["status"] == "400"
    assert _table_counts(engine) == before


def test_create_with_a_datetime_at_the_edge_of_the_calendar(client: TestClient) -> None:
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "effectiveDateTime": "0001-01-01T00:00:00+01:00"}  # a valid FHIR dateTime
    r = client.post("/fhir/Observation", content=_encode(obs), headers={"Content-Type": FHIR})
    assert r.status_code == 201, r.text


def test_search_with_a_date_at_the_edge_of_the_calendar(client: TestClient) -> None:
    r = client.get("/fhir/Patient", params={"_lastUpdated": "gt9999-12-31T23:59:59Z"})
    assert r.status_code < 500, r.text


def test_history_at_the_edge_of_the_calendar(client: TestClient) -> None:
    r = client.get("/fhir/_history", params={"_at": "9999-12-31T23:59:59Z"})
    assert r.status_code < 500, r.text


# ---- the properties ------------------------------------------------------------------------


@FUZZ
@given(resource_type=resource_types, body=bodies, headers=write_headers(),
       params=result_params)
@example(resource_type="Patient", body={"resourceType": "Patient", "name": "\ud800"},
         headers={"Content-Type": FHIR}, params={})
@example(resource_type="Patient", body=_valid_patient(), params={},
         headers={"Content-Type": FHIR, "If-None-Exist": "identifier=\x7f|\x00"})
def test_create_fuzz(seeded: TestClient, engine: Engine, resource_type: str, body: Any,
                     headers: dict[str, str], params: dict[str, str]) -> None:
    r = _write(engine, lambda: seeded.post(_url(f"/fhir/{resource_type}", params),
                                           content=_encode(body), headers=headers))
    if r.status_code == 201:
        assert r.headers["Location"].startswith("http://testserver/fhir/")


@FUZZ
@given(resource_type=resource_types, resource_id=ids, body=bodies, headers=write_headers(),
       same_id=st.booleans())
@example(resource_type="Patient", resource_id="p2\n", body=_valid_patient(),
         headers={"Content-Type": FHIR}, same_id=True)  # was stored: ID_RE.match let "\n" in
def test_update_fuzz(seeded: TestClient, engine: Engine, resource_type: str, resource_id: str,
                     body: Any, headers: dict[str, str], same_id: bool) -> None:
    if same_id and isinstance(body, dict):
        body = {**body, "id": resource_id}
    path = f"/fhir/{resource_type}/{quote(resource_id, safe='')}"
    _write(engine, lambda: seeded.put(path, content=_encode(body), headers=headers))


@FUZZ
@given(resource_type=resource_types, criteria=search_pairs, body=bodies,
       headers=write_headers(), verb=st.sampled_from(["PUT", "PATCH", "DELETE"]))
def test_conditional_write_fuzz(seeded: TestClient, engine: Engine, resource_type: str,
                                criteria: list[tuple[str, str]], body: Any,
                                headers: dict[str, str], verb: str) -> None:
    if verb == "PATCH":
        headers = {**headers, "Content-Type": PATCH}
    url = _url(f"/fhir/{resource_type}", criteria)
    _write(engine, lambda: seeded.request(verb, url, headers=headers,
                                          content=None if verb == "DELETE" else _encode(body)))


@FUZZ
@given(target=st.sampled_from(["Patient/p1", "Observation/o1", "Patient/nope", "Nonsense/p1"]),
       operations=patch_bodies, if_match=st.one_of(st.none(), etags))
@example(target="Patient/p1", operations=[{"op": "add", "path": "/gender", "value": "male"}],
         if_match=None)
@example(target="Patient/%00", operations=[], if_match=None)
@example(target="Patient/p1", operations=[{"op": "move", "from": "/id", "path": "/x"}],
         if_match=None)
@example(target="Patient/p1", operations=[{"op": "replace", "path": "/meta",
                                           "value": "x"}], if_match=None)
def test_patch_fuzz(seeded: TestClient, engine: Engine, target: str, operations: Any,
                    if_match: str | None) -> None:
    headers = {"Content-Type": PATCH}
    if if_match is not None:
        headers["If-Match"] = if_match
    _write(engine, lambda: seeded.patch(f"/fhir/{target}", content=_encode(operations),
                                        headers=headers))


@FUZZ
@given(resource_type=st.one_of(resource_types, st.none()), criteria=search_pairs,
       extra=result_params, prefer=st.one_of(st.none(), prefers),
       how=st.sampled_from(["GET", "POST", "history"]))
@example(resource_type="Patient", criteria=[("family", "字" * 5000)], extra={}, prefer=None,
         how="GET")
def test_search_and_history_fuzz(seeded: TestClient, engine: Engine, resource_type: str | None,
                                 criteria: list[tuple[str, str]], extra: dict[str, str],
                                 prefer: str | None, how: str) -> None:
    headers = {"Prefer": prefer} if prefer else {}
    base = f"/fhir/{resource_type}" if resource_type else "/fhir"
    before = _table_counts(engine)
    if how == "history":
        r = seeded.get(_url(f"{base}/_history", [*criteria, *extra.items()]), headers=headers)
    elif how == "POST" and resource_type:
        r = seeded.post(_url(f"{base}/_search", list(extra.items())), content=urlencode(
            criteria), headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
    else:
        r = seeded.get(_url(base, [*criteria, *extra.items()]), headers=headers)
    _check(r)
    assert _table_counts(engine) == before
    if r.status_code == 200:
        bundle = r.json()
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] in ("searchset", "history")
        for entry in bundle.get("entry", []):
            assert "resource" in entry or bundle["type"] == "history"


@FUZZ
@given(resource_type=resource_types, resource_id=ids, version=st.one_of(
    st.sampled_from(["1", "0", "2", "-1", "999999999", "9999999999", "1.0", "١", "²"]),
    st.text(max_size=5)), params=result_params,
    headers=st.dictionaries(st.sampled_from(["If-None-Match", "If-Modified-Since", "Accept"]),
                            st.one_of(etags, header_text), max_size=2))
@example(resource_type="Patient", resource_id="\x00", version="1", params={},
         headers={})  # was a 500 on PostgreSQL (NUL in a text parameter)
@example(resource_type="Patient", resource_id="p1", version="²", params={},
         headers={})  # was a 500: "²".isdigit() but int("²") fails
def test_read_vread_fuzz(seeded: TestClient, resource_type: str, resource_id: str, version: str,
                         params: dict[str, str], headers: dict[str, str]) -> None:
    rid = quote(resource_id, safe="")
    for path in (f"/fhir/{resource_type}/{rid}", f"/fhir/{resource_type}/{rid}/_history",
                 f"/fhir/{resource_type}/{rid}/_history/{quote(version, safe='')}",
                 "/fhir/Patient/p1", "/fhir/Patient/p1/_history/1"):
        _check(seeded.get(_url(path, params), headers=headers))


entry_requests = st.fixed_dictionaries(
    {"method": st.one_of(st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
                         scalars),
     "url": st.one_of(st.builds(lambda t, i: f"{t}/{i}", resource_types, ids),
                      resource_types, st.builds(lambda t, q: f"{t}?{urlencode(q)}",
                                                resource_types, search_pairs),
                      st.sampled_from(["Patient/p1", "Patient/p1", "Patient", "Patient?_id=p1",
                                       "Patient/p1/_history/1", "_history", "http://x/Patient",
                                       "Patient/p1/_history", "/", "Patient/p1/a/b/c"]),
                      scalars)},
    optional={"ifNoneExist": st.one_of(st.builds(urlencode, search_pairs), scalars),
              "ifMatch": st.one_of(etags, scalars), "ifNoneMatch": etags,
              "ifModifiedSince": header_text})
entries = st.fixed_dictionaries(
    {"request": st.one_of(entry_requests, entry_requests, scalars)},
    optional={"fullUrl": st.one_of(st.sampled_from(["urn:uuid:a", "urn:uuid:b", "Patient/p1"]),
                                   scalars),
              "resource": st.one_of(resources(), resources("Patient"), json_values,
                                    st.fixed_dictionaries({"resourceType": st.just("Binary"),
                                                           "data": odd_text}))})
bundles = st.fixed_dictionaries(
    {"resourceType": st.one_of(st.just("Bundle"), resource_types),
     "type": st.one_of(st.sampled_from(["transaction", "batch"]), scalars),
     "entry": st.one_of(st.lists(entries, max_size=5), scalars)})


@FUZZ
@given(bundle=bundles, prefer=st.one_of(st.none(), prefers))
@example(bundle={"resourceType": "Bundle", "type": "transaction", "entry": [
    {"fullUrl": "urn:uuid:a", "resource": _valid_patient(),
     "request": {"method": "POST", "url": "Patient"}},
    {"resource": {"resourceType": "Patient", "id": "x", "link": [
        {"other": {"reference": "urn:uuid:a"}, "type": "seealso"}]},
     "request": {"method": "PUT", "url": "Patient/x"}},
    {"resource": {"resourceType": "Patient", "gender": "nope"},
     "request": {"method": "POST", "url": "Patient"}}]}, prefer=None)
def test_bundle_fuzz(seeded: TestClient, engine: Engine, bundle: dict[str, Any],
                     prefer: str | None) -> None:
    headers = {"Content-Type": FHIR, **({"Prefer": prefer} if prefer else {})}
    r = _write(engine, lambda: seeded.post("/fhir", content=_encode(bundle), headers=headers))
    if r.status_code == 200:
        out = r.json()
        assert out["type"] in ("transaction-response", "batch-response")
        assert len(out["entry"]) == len(bundle["entry"])
        for entry in out["entry"]:
            status = int(entry["response"]["status"].split()[0])
            assert status < 500, entry
            if status >= 400:
                assert entry["response"]["outcome"]["resourceType"] == "OperationOutcome"


@FUZZ
@given(raw=st.one_of(
    st.binary(max_size=200),
    st.builds(lambda d: b"[" * d + b"]" * d, st.integers(1, 5000)),
    st.builds(lambda d: b'{"resourceType":"Patient","extension":' + b"[" * d + b"]" * d + b"}",
              st.integers(1, 2000)),
    st.builds(lambda d: b'{"resourceType":"Patient","extension":[' + b'{"extension":[' * d
              + b"]}" * d + b"]}", st.integers(100, 1100)),
    st.sampled_from([b"", b" ", b"null", b"[]", b"{}", b'"Patient"', b"1e400", b"NaN",
                     b'{"resourceType":"Patient","resourceType":"Observation"}',
                     b'{"resourceType":"Patient","gender":"\\ud800"}',
                     b'{"resourceType":"Patient"}\x00', b"\xef\xbb\xbf{}",
                     b'{"resourceType":"Patient","birthDate":1e999}'])),
    path=st.sampled_from(["/fhir/Patient", "/fhir/Patient/p1", "/fhir", "/fhir/Patient?_id=p1"]),
    verb=st.sampled_from(["POST", "PUT", "PATCH"]),
    content_type=st.sampled_from([FHIR, PATCH, "application/json; charset=latin-1"]))
@example(raw=b'{"resourceType":"Patient","extension":[' + b'{"extension":[' * 500 + b"]}" * 500
         + b"]}", path="/fhir/Patient", verb="POST", content_type=FHIR)
@example(raw=b'{"resourceType":"Patient","contained":[' + b'{"resourceType":"Patient",'
         b'"contained":[' * 500 + b"]}" * 500 + b"]}", path="/fhir/Patient", verb="POST",
         content_type=FHIR)
@example(raw=b'[{"op":"add","path":"/extension","value":' + b"[" * 1000 + b"]" * 1000 + b"}]",
         path="/fhir/Patient/p1", verb="PATCH", content_type=PATCH)
def test_raw_body_fuzz(seeded: TestClient, engine: Engine, raw: bytes, path: str, verb: str,
                       content_type: str) -> None:
    _write(engine, lambda: seeded.request(verb, path, content=raw,
                                          headers={"Content-Type": content_type}))


# ---- schemathesis over /openapi.json ------------------------------------------------------

# One app for the module (schemathesis parametrizes at import time); each test points it at
# the store of its backend. (``schemathesis.pytest.from_fixture`` would be the natural fit, but
# its lazy loader sets ``Function._nodeid``, which pytest 9 no longer has.)
APP = create_app(Settings(database_url="sqlite://", audit_hmac_key=AUDIT_KEY),
                 FhirStore(create_engine("sqlite://")))
openapi = schemathesis.openapi.from_asgi("/openapi.json", APP)


@openapi.hook
def flatmap_case(_context: schemathesis.HookContext, case: schemathesis.Case
                 ) -> st.SearchStrategy[schemathesis.Case]:
    """The description types ``resource_type`` as any string, so left alone nearly every case
    would be a 404. Most cases are steered onto real types, the seeded ids and matching
    bodies, with FHIR result parameters and headers added; the rest stay as generated."""
    return st.tuples(st.integers(0, 3), st.sampled_from(KANGQIAO_TYPES), ids, result_params,
                     write_headers()).map(lambda choice: _steer(case, *choice))


def _steer(case: schemathesis.Case, dice: int, resource_type: str, resource_id: str,
           params: dict[str, str], headers: dict[str, str]) -> schemathesis.Case:
    if dice == 0:
        return case
    path = case.path_parameters
    if path is not None and "resource_type" in path:
        path["resource_type"] = "Patient" if dice == 1 else resource_type
        if "resource_id" in path:
            path["resource_id"] = "p1" if dice == 1 else resource_id
        if "version_id" in path and dice == 1:
            path["version_id"] = "1"
        if isinstance(case.body, dict) and dice < 3:
            case.body["resourceType"] = path["resource_type"]
            if "resource_id" in path:
                case.body["id"] = path["resource_id"]
    case.query = {**(case.query or {}), **params}
    headers.pop("Content-Type", None)
    # requests (which schemathesis validates headers with) refuses leading whitespace
    case.headers = {**(case.headers or {}), **{k: v.strip() for k, v in headers.items()}}
    return case


@pytest.fixture
def app_on_backend(store: FhirStore, system_token: str) -> Iterator[dict[str, str]]:
    """The module's app on the test's backend, and the system client's credentials."""
    APP.state.store = store
    auth = {"Authorization": f"Bearer {system_token}"}
    with TestClient(APP) as c:
        assert c.put("/fhir/Patient/p1", content=_encode(_valid_patient("p1")),
                     headers={"Content-Type": FHIR, **auth}).status_code == 201
    yield auth
    APP.state.store = None


@openapi.parametrize()
@hsettings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_operations_never_answer_5xx(case: schemathesis.Case,
                                             app_on_backend: dict[str, str]) -> None:
    case.call_and_validate(headers=app_on_backend, checks=[not_a_server_error])
