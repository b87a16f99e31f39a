"""Identifiers encrypted at rest, still searchable by exact value.

Protected fields (``walk``): the resident ID number (an ``identifier`` with the resident-ID
system or of type v2-0203 ``NI``), phone numbers (``telecom`` with system ``phone`` or
``sms``) and the detailed address (``address.line``, ``address.text``) of Patient (also its
``contact``), RelatedPerson, Person, Practitioner and PractitionerRole, and of such resources
when ``contained``.

- In the database each protected string is ``kqenc:<key id>:<base64url(nonce | AES-GCM
  ciphertext)>``, with ``<type>/<id>`` of the resource as associated data (a ciphertext moved
  into another resource does not decrypt). The store's JSON serialiser and deserialiser
  (``dumps`` / ``loads``, installed on every engine by ``kangqiao.fhir.store.db``) are the one
  place resources enter and leave the database, so the current row, history, bulk import
  (COPY / executemany) and every reader above the store see the same thing: clear values in
  memory, ciphertext on disk.
- The search index keeps a keyed blind index instead of the clear value
  (``protect_index``): ``bi:<HMAC-SHA256(blind key, value)>``; every ``identifier``,
  ``phone`` and ``telecom`` row of these types is blind, so the query side looks up the blind
  index of the searched value (``token_mode``, ``search_codes``). Exact matches work;
  prefix, ``:text`` and partial searches on these values cannot (by design). Address line
  and text are left out of the ``address`` string index (city, district, state, postal code
  and country stay searchable).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kangqiao.fhir.search.normalize import TOKEN_LEN, norm_string
from kangqiao.security.fieldkeys import FieldKeyError, Keyring, load
from kangqiao.settings import Settings, get_settings

PREFIX = "kqenc:"
_PREFIX_B = PREFIX.encode()
BLIND_PREFIX = "bi:"
KID_RE = re.compile(r"kqenc:([A-Za-z0-9_-]{1,16}):")
RESIDENT_ID_SYSTEMS = frozenset({"https://kangqiao.example/fhir/sid/resident-id"})
PHONE_SYSTEMS = frozenset({"phone", "sms"})
PROTECTED_TYPES = frozenset({"Patient", "RelatedPerson", "Person", "Practitioner",
                             "PractitionerRole"})

Json = dict[str, Any]
# fn(kind, value) -> value; kind: "id" (resident ID), "phone", "line" or "text" (address)
FieldFn = Callable[[str, str], str]

_ring: Keyring | None = None


class FieldCryptError(ValueError):
    """A stored value cannot be decrypted (wrong key, altered ciphertext)."""


def configure(settings: Settings) -> Keyring:
    """Load the keys ``settings`` name and use them from now on (every engine of the
    process shares them)."""
    global _ring
    _ring = load(settings)
    return _ring


def use(ring: Keyring | None) -> None:
    """Use ``ring`` (None: load from the environment's settings on next use)."""
    global _ring
    _ring = ring


def keyring() -> Keyring:
    return _ring if _ring is not None else configure(get_settings())


# ---- which fields --------------------------------------------------------------------------


def _is_resident_id(ident: Json) -> bool:
    if ident.get("system") in RESIDENT_ID_SYSTEMS:
        return True
    codings = (ident.get("type") or {}).get("coding") or ()
    return any(type(c) is dict and c.get("code") == "NI" for c in codings)


def _map_list(items: Any, fn: Callable[[Any], Any]) -> Any:
    if type(items) is not list:
        return items
    out = [fn(i) for i in items]
    return items if all(a is b for a, b in zip(out, items, strict=True)) else out


def _address(a: Any, fn: FieldFn) -> Any:
    if type(a) is not dict:
        return a
    new = a
    line = a.get("line")
    if type(line) is list:
        mapped = [fn("line", x) if type(x) is str else x for x in line]
        if any(m is not x for m, x in zip(mapped, line, strict=True)):
            new = {**new, "line": mapped}
    if type(a.get("text")) is str:
        text = fn("text", a["text"])
        if text is not a["text"]:
            new = {**new, "text": text}
    return new


def _telecom(t: Any, fn: FieldFn) -> Any:
    if type(t) is dict and t.get("system") in PHONE_SYSTEMS and type(t.get("value")) is str:
        value = fn("phone", t["value"])
        if value is not t["value"]:
            return {**t, "value": value}
    return t


def _identifier(i: Any, fn: FieldFn) -> Any:
    if type(i) is dict and type(i.get("value")) is str and _is_resident_id(i):
        value = fn("id", i["value"])
        if value is not i["value"]:
            return {**i, "value": value}
    return i


def _person_fields(r: Json, fn: FieldFn) -> Json:
    out = r
    changes: dict[str, Any] = {}
    if "identifier" in r:
        v = _map_list(r["identifier"], lambda x: _identifier(x, fn))
        if v is not r["identifier"]:
            changes["identifier"] = v
    if "telecom" in r:
        v = _map_list(r["telecom"], lambda x: _telecom(x, fn))
        if v is not r["telecom"]:
            changes["telecom"] = v
    if "address" in r:
        a = r["address"]
        v = _map_list(a, lambda x: _address(x, fn)) if type(a) is list else _address(a, fn)
        if v is not a:
            changes["address"] = v
    if "contact" in r:  # Patient.contact: telecom and address of next of kin
        v = _map_list(r["contact"], lambda c: _person_fields(c, fn) if type(c) is dict else c)
        if v is not r["contact"]:
            changes["contact"] = v
    if changes:
        out = {**r, **changes}
    return out


def walk(resource: Json, fn: FieldFn) -> Json:
    """``resource`` with ``fn`` applied to each protected string; the same object when
    nothing changed (copies are made only along changed paths: the input is never
    modified)."""
    return _with_aad(resource, lambda kind, value, _aad: fn(kind, value))


def values_of(resource: Json) -> dict[str, set[str]]:
    """The protected values of a resource by kind."""
    found: dict[str, set[str]] = {}

    def collect(kind: str, value: str) -> str:
        found.setdefault(kind, set()).add(value)
        return value

    walk(resource, collect)
    return found


# ---- encryption ----------------------------------------------------------------------------


def _aad(resource: Json) -> bytes:
    return f"{resource.get('resourceType')}/{resource.get('id') or ''}".encode()


_CIPHERS: dict[bytes, AESGCM] = {}


def _cipher(ring: Keyring, kid: str) -> AESGCM:
    # an AESGCM object schedules its key once: building one per value cost 4/5 of the time
    key = ring.key(kid)
    cipher = _CIPHERS.get(key)
    if cipher is None:
        cipher = _CIPHERS[key] = AESGCM(key)
    return cipher


def encrypt(value: str, aad: bytes, ring: Keyring | None = None) -> str:
    ring = ring or keyring()
    nonce = os.urandom(12)
    sealed = _cipher(ring, ring.current).encrypt(nonce, value.encode(), aad)
    return f"{PREFIX}{ring.current}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def decrypt(value: str, aad: bytes, ring: Keyring | None = None) -> str:
    ring = ring or keyring()
    kid, _, body = value[len(PREFIX):].partition(":")
    try:
        raw = base64.urlsafe_b64decode(body)
        return _cipher(ring, kid).decrypt(raw[:12], raw[12:], aad).decode()
    except (InvalidTag, ValueError) as exc:
        if isinstance(exc, FieldKeyError):
            raise
        raise FieldCryptError(f"a protected value of {aad.decode()} does not decrypt "
                              f"with key {kid!r}") from None


def seal(value: Any) -> Any:
    """What the database stores for ``value``: protected fields of a resource encrypted."""
    if type(value) is not dict or (value.get("resourceType") not in PROTECTED_TYPES
                                   and "contained" not in value):
        return value
    ring = keyring()

    def enc(_kind: str, v: str, aad: bytes) -> str:
        # always: a client's value that merely looks like a ciphertext is encrypted too
        return encrypt(v, aad, ring)

    return _with_aad(value, enc)


def unseal(value: Any) -> Any:
    """The inverse of ``seal``."""
    if type(value) is not dict:
        return value
    ring = keyring()

    def dec(_kind: str, v: str, aad: bytes) -> str:
        return decrypt(v, aad, ring) if v.startswith(PREFIX) else v

    return _with_aad(value, dec)


def _with_aad(resource: Json, fn: Callable[[str, str, bytes], str]) -> Json:
    # contained resources use their own type/id: walk them one by one
    aad = _aad(resource)
    out = resource
    if resource.get("resourceType") in PROTECTED_TYPES:
        out = _person_fields(resource, lambda k, v: fn(k, v, aad))
    contained = resource.get("contained")
    if type(contained) is list:
        new = _map_list(contained, lambda c: _with_aad(c, fn) if type(c) is dict else c)
        if new is not contained:
            out = {**out, "contained": new}
    return out


def dumps(value: Any) -> str:
    """The engines' JSON serialiser."""
    return orjson.dumps(seal(value)).decode()


def loads(data: str | bytes) -> Any:
    """The engines' JSON deserialiser (parsing is the cost; the marker test is a memchr)."""
    value = orjson.loads(data)
    marker = _PREFIX_B if isinstance(data, bytes | bytearray | memoryview) else PREFIX
    if marker in data:  # type: ignore[operator]
        return unseal(value)
    return value


def key_ids(raw: str) -> set[str]:
    """Ids of the keys that encrypted the values in a stored JSON text."""
    return set(KID_RE.findall(raw))


# ---- blind index ---------------------------------------------------------------------------


def blind(value: str, ring: Keyring | None = None) -> str:
    ring = ring or keyring()
    digest = hmac.new(ring.blind_key, value.strip().encode(), hashlib.sha256).hexdigest()
    return BLIND_PREFIX + digest[:40]


# Token parameters of the protected types whose index holds only blind values (all of them,
# protected or not, so that a search is one equality on the index: PostgreSQL answers
# ``code IN (value, blind)`` by filtering the whole parameter, measured 200x slower).
BLIND_PARAMS = frozenset({"identifier", "phone", "telecom"})
SPEC_PARAMS = "http://hl7.org/fhir/SearchParameter/"


def token_mode(resource_type: str | None, param: str, url: str) -> str | None:
    """How a token search on ``resource_type.param`` matches codes: ``blind`` (the blind
    index only), ``both`` (the value or its blind index: custom parameters, whose rows are
    blind only where they hold a protected value) or None (the value)."""
    if resource_type not in PROTECTED_TYPES:
        return None
    if param in BLIND_PARAMS:
        return "blind"
    return None if url.startswith(SPEC_PARAMS) else "both"


def search_codes(code: str, mode: str | None = "both") -> tuple[str, ...]:
    """Codes a token search for ``code`` must match (see ``token_mode``)."""
    if not code or mode is None:
        return (code,)
    return (blind(code),) if mode == "blind" else (code, blind(code))


_SEARCHED = frozenset({"identifier", "phone", "telecom"})


def redact_query(query: str) -> str:
    """A search's query string with the values of ``identifier``, ``phone`` and ``telecom``
    (also chained, ``:of-type``, in ``_has``) replaced by their blind index (for the audit
    trail)."""
    if not any(name in query for name in _SEARCHED):
        return query
    out = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        base = name.split(".")[-1].split(":")[0]  # chains: the last link; no modifier
        if base in _SEARCHED or name.rsplit(":", 1)[-1] in _SEARCHED:
            value = ",".join(_blind_token(v) for v in value.split(","))
        out.append((name, value))
    return urlencode(out, safe="|:,*/")


def _blind_token(value: str) -> str:
    head, sep, code = value.rpartition("|")
    return f"{head}{sep}{blind(code)}" if code else value


def of_type_code(code: str) -> str:
    """``:of-type`` values are ``system|code|value``: the value part is blind."""
    head, sep, value = code.rpartition("|")
    return f"{head}|{blind(value)}" if sep and value else code


def protect_index(resource: Json, rows: dict[str, list[Json]]) -> dict[str, list[Json]]:
    """Search-index rows with protected values replaced by their blind index (tokens) or
    left out (address line and text in string rows)."""
    if resource.get("resourceType") not in PROTECTED_TYPES:
        return rows
    found = values_of(resource)
    secret = found.get("id", set()) | found.get("phone", set())
    cut = {v[:TOKEN_LEN]: v for v in secret}
    for row in rows.get("token", ()):
        code, param = row.get("code"), row["param"]
        if code is None:
            continue
        if param in BLIND_PARAMS:
            row["code"] = blind(cut[code] if code in cut else str(code))
        elif param.endswith(":of-type") and param[:-8] in BLIND_PARAMS:
            head, _, value = code.rpartition("|")
            row["code"] = f"{head}|{blind(value)}"
        elif code in cut:  # a custom parameter over a protected value
            row["code"] = blind(cut[code])
    lines = {norm_string(v) for v in found.get("line", set()) | found.get("text", set())}
    if lines and "string" in rows:
        public = _public_address_parts(resource)
        rows["string"] = [r for r in rows["string"]
                          if r["value"] not in lines or r["value"] in public]
    return rows


def _public_address_parts(resource: Json) -> set[str]:
    out: set[str] = set()
    addresses = resource.get("address")
    for a in addresses if type(addresses) is list else [addresses]:
        if type(a) is dict:
            for key in ("city", "district", "state", "postalCode", "country"):
                if type(a.get(key)) is str:
                    out.add(norm_string(a[key]))
    return out
