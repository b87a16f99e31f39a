"""Identifiers encrypted at rest (raw database bytes and raw SQL hold no clear value), still
found by exact search, and re-encrypted by key rotation; on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, text

from kangqiao.fhir.bulk.importer import import_ndjson
from kangqiao.fhir.store import schema
from kangqiao.fhir.store.store import FhirStore
from kangqiao.security import fieldcrypt, rotate
from kangqiao.security.fieldkeys import FieldKeyError, Keyring, add_key, load
from kangqiao.security.gate import SYSTEM
from kangqiao.settings import Settings

RESIDENT_ID = "https://kangqiao.example/fhir/sid/resident-id"


def _id_number() -> str:
    return "4312991" + "".join(random.choice("0123456789") for _ in range(10)) + "X"


def _phone() -> str:
    return "13" + "".join(random.choice("0123456789") for _ in range(9))


def patient(pid: str, id_number: str, phone: str, line: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "male", "birthDate": "1970-02-03",
            "identifier": [{"system": RESIDENT_ID, "value": id_number, "type": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "NI"}], "text": "居民身份证"}},
                           {"system": "https://kangqiao.example/fhir/sid/household",
                            "value": "4312991002010001"}],
            "telecom": [{"system": "phone", "value": phone},
                        {"system": "email", "value": f"{pid}@example.cn"}],
            "address": [{"line": [line], "text": f"湖南省怀山市康桥县{line}",
                         "city": "怀山市", "district": "康桥县", "state": "湖南省"}],
            "contact": [{"telecom": [{"system": "phone", "value": phone[::-1]}]}]}


def raw_database(engine: Engine) -> bytes:
    """Everything the database holds, as an attacker with a copy would read it: the SQLite
    files' bytes, or every row of every store table as text over raw SQL (PostgreSQL)."""
    if engine.dialect.name == "sqlite":
        database = Path(str(engine.url.database))
        return b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    chunks: list[bytes] = []
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            for row in conn.execute(text(f'SELECT CAST(t AS TEXT) FROM "{table.name}" t')):
                chunks.append(str(row[0]).encode())
    return b"\n".join(chunks)


def secrets_of(*people: tuple[str, str, str]) -> list[bytes]:
    out: list[bytes] = []
    for id_number, phone, line in people:
        out += [id_number.encode(), phone.encode(), phone[::-1].encode(), line.encode()]
    return out


def ids(store: FhirStore, rtype: str, params: list[tuple[str, str]]) -> list[str]:
    with store.read(SYSTEM) as uow:
        return [s.id for s in uow.search(rtype, params, count=50).items]


@pytest.fixture
def fresh_keys(tmp_path: Path) -> Iterator[Settings]:
    """A key file of this test's own (rotation adds keys to it)."""
    settings = Settings(secrets_dir=tmp_path / "secrets")
    previous = fieldcrypt.keyring()
    fieldcrypt.configure(settings)
    yield settings
    fieldcrypt.use(previous)


def test_nothing_in_clear_after_create_update_and_bulk_import(
        store: FhirStore, engine: Engine, tmp_path: Path) -> None:
    people = [(_id_number(), _phone(), f"城关镇柳寿村{n}组{random.randint(1, 99)}号")
              for n in range(4)]
    with store.write(SYSTEM) as uow:
        uow.create("Patient", patient("x", *people[0]))  # server id
        uow.update("Patient", "fc1", patient("fc1", *people[1]))
    with store.write(SYSTEM) as uow:  # an update: the old version goes to history
        uow.update("Patient", "fc1", patient("fc1", *people[2]))
    src = tmp_path / "Patient.ndjson"
    src.write_bytes(orjson.dumps(patient("fc2", *people[3])) + b"\n")
    report = import_ndjson(store, SYSTEM, [src], workers=0)
    assert report.accepted == 1 and not report.rejected
    engine.dispose()  # SQLite: the WAL is checkpointed into the file too
    raw = raw_database(engine)
    leaked = [s.decode() for s in secrets_of(*people) if s in raw]
    assert leaked == []
    assert raw.count(fieldcrypt.PREFIX.encode()) >= 4 * 5  # 5 protected values a version
    assert b"fc1@example.cn" in raw  # e-mail addresses are not protected
    # readers above the store see the clear values
    with store.read(SYSTEM) as uow:
        current = uow.read("Patient", "fc1").content or {}
        first = uow.vread("Patient", "fc1", 1).content or {}
        imported = uow.read("Patient", "fc2").content or {}
    assert current["identifier"][0]["value"] == people[2][0]
    assert current["telecom"][0]["value"] == people[2][1]
    assert current["address"][0]["line"] == [people[2][2]]
    assert current["contact"][0]["telecom"][0]["value"] == people[2][1][::-1]
    assert first["identifier"][0]["value"] == people[1][0]
    assert imported["telecom"][0]["value"] == people[3][1]


def test_exact_search_by_identifier_and_phone(store: FhirStore) -> None:
    id_number, phone, line = _id_number(), _phone(), "城关镇柳寿村3组17号"
    with store.write(SYSTEM) as uow:
        uow.update("Patient", "s1", patient("s1", id_number, phone, line))
        uow.update("Patient", "s2", patient("s2", _id_number(), _phone(), line))
    assert ids(store, "Patient", [("identifier", id_number)]) == ["s1"]
    assert ids(store, "Patient", [("identifier", f"{RESIDENT_ID}|{id_number}")]) == ["s1"]
    assert ids(store, "Patient", [("identifier", f"http://other|{id_number}")]) == []
    assert ids(store, "Patient", [("identifier", "4312991002010001")]) == ["s1", "s2"]
    assert ids(store, "Patient", [("phone", phone)]) == ["s1"]
    assert ids(store, "Patient", [("telecom", phone)]) == ["s1"]
    assert ids(store, "Patient", [("telecom", "s2@example.cn")]) == ["s2"]  # clear e-mail
    assert ids(store, "Patient", [(
        "identifier:of-type", f"http://terminology.hl7.org/CodeSystem/v2-0203|NI|{id_number}")]
    ) == ["s1"]
    # only exact matches: a prefix of a protected value finds nothing, by design
    assert ids(store, "Patient", [("phone", phone[:7])]) == []
    # the address line is not indexed; the city and district are
    assert ids(store, "Patient", [("address", "城关镇")]) == []
    assert ids(store, "Patient", [("address", "康桥")]) == ["s1", "s2"]
    assert ids(store, "Patient", [("address-city", "怀山市")]) == ["s1", "s2"]
    # a chain from a patient-data resource reaches the blind index too
    with store.write(SYSTEM) as uow:
        uow.update("Observation", "o1", {
            "resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"text": "x"}, "subject": {"reference": "Patient/s1"}})
    assert ids(store, "Observation", [("subject:Patient.identifier", id_number)]) == ["o1"]


def test_key_rotation_reencrypts_and_everything_still_reads(
        store: FhirStore, engine: Engine, fresh_keys: Settings) -> None:
    people = [(_id_number(), _phone(), "城关镇柳寿村1组1号") for _ in range(7)]
    with store.write(SYSTEM) as uow:
        for n, person in enumerate(people):
            uow.update("Patient", f"r{n}", patient(f"r{n}", *person))
    with store.write(SYSTEM) as uow:
        uow.update("Patient", "r0", patient("r0", *people[0]) | {"gender": "female"})
    assert load(fresh_keys).current == "k1"
    assert add_key(fresh_keys) == "k2"
    ring = fieldcrypt.configure(fresh_keys)
    assert list(ring.keys) == ["k1", "k2"] and ring.current == "k2"
    # old values still decrypt before the rotation; new writes use k2
    with store.write(SYSTEM) as uow:
        uow.update("Patient", "new", patient("new", _id_number(), _phone(), "x路1号"))
    assert rotate.stale_rows(engine) == 7 + 8  # current rows + history (r0 has 2 versions)
    reports = rotate.reencrypt(engine, batch=3)
    assert reports["resource"].reencrypted == 7
    assert reports["resource_history"].reencrypted == 8
    assert rotate.stale_rows(engine) == 0
    # running it again finds nothing to do (an interrupted rotation resumes the same way)
    assert sum(r.reencrypted for r in rotate.reencrypt(engine).values()) == 0
    # k1 can go now: everything reads and searches with k2 alone
    fieldcrypt.use(Keyring({"k2": ring.keys["k2"]}, "k2", ring.blind_key, "test"))
    with store.read(SYSTEM) as uow:
        assert (uow.read("Patient", "r3").content or {})["identifier"][0]["value"] == \
            people[3][0]
        assert uow.vread("Patient", "r0", 1).content is not None
    assert ids(store, "Patient", [("phone", people[5][1])]) == ["r5"]
    # retired ciphertexts linger in free pages until a VACUUM (`kangqiao keys rotate` ends
    # with one on SQLite)
    rotate.vacuum(engine)
    raw = raw_database(engine)
    assert b"kqenc:k1:" not in raw and b"kqenc:k2:" in raw


def test_a_missing_key_or_a_tampered_value_is_a_clear_error(
        store: FhirStore, engine: Engine, fresh_keys: Settings) -> None:
    with store.write(SYSTEM) as uow:
        uow.update("Patient", "t1", patient("t1", _id_number(), _phone(), "a"))
    ring = fieldcrypt.keyring()
    fieldcrypt.use(Keyring({"k9": secrets.token_bytes(32)}, "k9", ring.blind_key, "test"))
    with pytest.raises(FieldKeyError, match="'k1' is not configured"), store.read(SYSTEM) as uow:
        uow.read("Patient", "t1")
    fieldcrypt.use(ring)
    body = fieldcrypt.seal(patient("t1", "431299197001010011", "13800000000", "a"))
    moved = {**body, "id": "t2"}  # a ciphertext copied into another resource
    with pytest.raises(fieldcrypt.FieldCryptError, match="Patient/t2"):
        fieldcrypt.unseal(moved)


def test_key_settings_are_checked() -> None:
    key = secrets.token_hex(32)
    ring = load(Settings(field_keys=f"a:{key}, b:{key}", blind_index_key=key))
    assert ring.current == "b" and list(ring.keys) == ["a", "b"]
    for bad, message in [("a:1234", "32 bytes"), ("nokey", "id:hexkey"),
                         ("a b:" + key, "invalid field key id")]:
        with pytest.raises(FieldKeyError, match=message):
            load(Settings(field_keys=bad, blind_index_key=key))
    with pytest.raises(FieldKeyError, match="BLIND_INDEX_KEY"):
        load(Settings(field_keys=f"a:{key}"))
    with pytest.raises(FieldKeyError, match="append a new id:key pair"):
        add_key(Settings(field_keys=f"a:{key}", blind_index_key=key))


def test_keys_rotate_command(store: FhirStore, engine: Engine, fresh_keys: Settings,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from kangqiao.cli import app
    from kangqiao.settings import get_settings

    person = (_id_number(), _phone(), "城关镇1号")
    with store.write(SYSTEM) as uow:
        uow.update("Patient", "cli1", patient("cli1", *person))
    monkeypatch.setenv("KANGQIAO_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("KANGQIAO_SECRETS_DIR", str(fresh_keys.secrets_dir))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        result = runner.invoke(app, ["keys", "rotate", "--batch", "2"])
        assert result.exit_code == 0, result.output
        assert "new current key k2" in result.output and "re-encrypted" in result.output
        status = runner.invoke(app, ["keys", "status"])
        assert status.exit_code == 0 and "current k2" in status.output
        assert "rows with an older key: 0" in status.output
        with store.read(SYSTEM) as uow:
            assert (uow.read("Patient", "cli1").content or {})["telecom"][0]["value"] == \
                person[1]
        monkeypatch.setenv("KANGQIAO_FIELD_KEYS", f"a:{secrets.token_hex(32)}")
        get_settings.cache_clear()
        bad = runner.invoke(app, ["keys", "rotate"])
        assert bad.exit_code == 2 and "append a new id:key pair" in bad.output
        bad = runner.invoke(app, ["keys", "rotate", "--no-new-key"])
        assert bad.exit_code == 2 and "BLIND_INDEX_KEY" in bad.output
    finally:
        get_settings.cache_clear()


def test_rotation_protects_a_database_written_before_field_protection(
        store: FhirStore, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from kangqiao.fhir.search import index

    person = (_id_number(), _phone(), "城关镇老街9号")
    with monkeypatch.context() as before:  # the store as it was: clear JSON, clear index
        before.setattr(fieldcrypt, "dumps", lambda v: orjson.dumps(v).decode())
        before.setattr(index, "protect_index", lambda _r, rows: rows)
        with store.write(SYSTEM) as uow:
            uow.update("Patient", "old1", patient("old1", *person))
            uow.update("Observation", "oo", {"resourceType": "Observation", "id": "oo",
                                             "status": "final", "code": {"text": "x"}})
    assert person[0].encode() in raw_database(engine)
    assert ids(store, "Patient", [("identifier", person[0])]) == []  # index holds clear
    reports = rotate.reencrypt(engine)
    assert reports["resource"].reencrypted == 1 and reports["resource_history"].reencrypted == 1
    rotate.vacuum(engine)
    raw = raw_database(engine)
    assert [s for s in secrets_of(person) if s in raw] == []
    assert ids(store, "Patient", [("identifier", person[0])]) == ["old1"]
    assert ids(store, "Patient", [("phone", person[1])]) == ["old1"]
    assert ids(store, "Patient", [("address", "康桥")]) == ["old1"]
