"""Access tokens: accepted only when signed by this server, for this audience, unexpired and
unrevoked; scopes (including search-parameter constraints) limit what they reach; SMART
Backend Services (client_credentials + private_key_jwt) end to end."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from kangqiao.security import clients
from kangqiao.security.keys import KeyRing
from kangqiao.security.tokens import Tokens, issuer
from tests.security.conftest import County


def _refused(r: Any, why: str) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert r.headers["WWW-Authenticate"].startswith('Bearer realm="kangqiao"')
    assert why in r.json()["issue"][0]["diagnostics"]


def test_no_or_bad_credentials_are_refused(app_client: TestClient, county: County) -> None:
    r = app_client.get("/fhir/Patient")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="kangqiao"'
    _refused(app_client.get("/fhir/Patient", headers={"Authorization": "Basic abc"}),
             "bearer")
    _refused(app_client.get("/fhir/Patient", headers={"Authorization": "Bearer x.y.z"}),
             "malformed")
    assert app_client.get("/fhir/metadata").status_code == 200  # public
    assert app_client.get("/fhir/.well-known/smart-configuration").status_code == 200


def test_wrong_audience_issuer_expiry_and_signature_are_refused(
        app_client: TestClient, county: County) -> None:
    good = county.token("gp1")
    assert app_client.get("/fhir/Patient", headers={"Authorization": f"Bearer {good}"}
                          ).status_code == 200
    other = county.settings.model_copy(update={"base_url": "https://elsewhere.example"})
    wrong_aud, _ = Tokens(other, county.tokens.keys).issue(
        county.engine, subject="x", scope="system/*.rs", client_id="c", minutes=5)
    _refused(app_client.get("/fhir/Patient", headers={"Authorization": f"Bearer {wrong_aud}"}),
             "not for this server")
    key = county.tokens.keys.current(county.engine)
    now = int(time.time())
    expired = jwt.encode({"alg": "ES256", "kid": key.kid},
                         {"iss": issuer(county.settings), "aud": f"{issuer(county.settings)}/fhir",
                          "sub": "x", "jti": "j", "exp": now - 60, "scope": "system/*.rs"}, key)
    _refused(app_client.get("/fhir/Patient", headers={"Authorization": f"Bearer {expired}"}),
             "expired")
    # a key of our own making, presented under the server's kid
    forged_key = ECKey.generate_key("P-256")
    forged = jwt.encode({"alg": "ES256", "kid": key.kid},
                        {"iss": issuer(county.settings), "aud": f"{issuer(county.settings)}/fhir",
                         "sub": "x", "jti": "j", "exp": now + 60, "scope": "system/*.cruds"},
                        forged_key)
    _refused(app_client.get("/fhir/Patient", headers={"Authorization": f"Bearer {forged}"}),
             "signature")
    # a key the server has never seen
    stranger, _ = Tokens(county.settings, KeyRing()).issue(
        county.engine, subject="x", scope="system/*.rs", client_id="c", minutes=5)
    assert app_client.get("/fhir/Patient", headers={"Authorization": f"Bearer {stranger}"}
                          ).status_code == 200  # same database, same key: legitimately ours
    tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    _refused(app_client.get("/fhir/Patient", headers={"Authorization": f"Bearer {tampered}"}),
             "signature")


def test_scopes_limit_types_and_interactions(app_client: TestClient, county: County) -> None:
    h = county.headers("gp1", "user/Observation.rs")
    r = app_client.get("/fhir/Patient", headers=h)
    assert r.status_code == 403
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert app_client.get("/fhir/Observation", headers=h).json()["total"] == 3
    r = app_client.put("/fhir/Observation/o1", json=app_client.get(
        "/fhir/Observation/o1", headers=h).json(), headers=h)
    assert r.status_code == 403  # no "u"
    h = county.headers("gp1", "user/Observation.s")  # search but not read
    assert app_client.get("/fhir/Observation", headers=h).status_code == 200
    assert app_client.get("/fhir/Observation/o1", headers=h).status_code == 403
    # v1 aliases
    h = county.headers("gp1", "user/Patient.read")
    assert app_client.get("/fhir/Patient/p1", headers=h).status_code == 200
    assert app_client.delete("/fhir/Patient/p1", headers=h).status_code == 403


def test_search_parameter_constraints(app_client: TestClient, county: County) -> None:
    h = county.headers("resident1", "patient/Observation.rs?category=vital-signs")
    r = app_client.get("/fhir/Observation", headers=h)
    assert {e["resource"]["id"] for e in r.json()["entry"]} == {"o1"}
    assert r.json()["total"] == 1
    assert app_client.get("/fhir/Observation/o1", headers=h).status_code == 200
    assert app_client.get("/fhir/Observation/o1lab", headers=h).status_code == 404
    body = app_client.get("/fhir/Observation/o1", headers=h).json()
    lab = {**body, "id": "n1", "category": [{"coding": [{"code": "laboratory"}]}]}
    h2 = county.headers("resident1", "patient/Observation.crus?category=vital-signs")
    assert app_client.put("/fhir/Observation/n1", json=lab, headers=h2).status_code == 403
    assert app_client.put("/fhir/Observation/n2", json={**body, "id": "n2"},
                          headers=h2).status_code == 201


def test_patient_scopes_stay_in_the_launch_patient(app_client: TestClient,
                                                   county: County) -> None:
    # a clinician's app launched for p3: p1 is in the clinician's care but not in context
    token = county.token("gp1", "patient/*.rs", patient="Patient/p3")
    h = {"Authorization": f"Bearer {token}"}
    r = app_client.get("/fhir/Patient", headers=h)
    assert {e["resource"]["id"] for e in r.json()["entry"]} == {"p3"}
    assert app_client.get("/fhir/Observation/o1", headers=h).status_code == 404
    assert app_client.get("/fhir/Organization/org-thc-01", headers=h).status_code == 200


# ---- SMART Backend Services ------------------------------------------------------------------


def _assertion(key: Any, alg: str, client_id: str, aud: str = "", **overrides: Any) -> str:
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "jti": uuid.uuid4().hex,
              "exp": int(time.time()) + 240, **overrides}
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_client_credentials_with_private_key_jwt(app_client: TestClient, county: County,
                                                 alg: str) -> None:
    key = ECKey.generate_key("P-384", auto_kid=True) if alg == "ES384" else \
        RSAKey.generate_key(2048, auto_kid=True)
    client, _ = clients.register(county.engine, name="lab system", kind="system",
                                 scopes="system/Observation.rs system/Patient.rs",
                                 jwks={"keys": [key.as_dict(private=False)]})
    config = app_client.get("/fhir/.well-known/smart-configuration").json()
    token_url = config["token_endpoint"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assertion = _assertion(key, alg, client.client_id, token_url)
    form = {"grant_type": "client_credentials", "scope": "system/Observation.rs "
            "system/Patient.cruds system/Condition.rs",
            "client_assertion_type": clients.ASSERTION_TYPE, "client_assertion": assertion}
    r = app_client.post("/oauth/token", data=form)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["scope"] == "system/Observation.rs"  # narrowed to what the client may have
    assert r.headers["cache-control"] == "no-store"
    h = {"Authorization": f"Bearer {body['access_token']}"}
    assert app_client.get("/fhir/Observation", headers=h).json()["total"] == 6
    assert app_client.get("/fhir/Patient", headers=h).status_code == 403
    # the same assertion again: replay
    r = app_client.post("/oauth/token", data=form)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    for bad in ({"aud": "https://elsewhere/token"}, {"exp": int(time.time()) + 3600},
                {"iss": "someone-else"}, {"exp": int(time.time()) - 10}):
        form["client_assertion"] = _assertion(key, alg, client.client_id,
                                              **{"aud": token_url, **bad})
        assert app_client.post("/oauth/token", data=form).status_code == 401, bad
    other = ECKey.generate_key("P-384", auto_kid=True)
    form["client_assertion"] = _assertion(other, "ES384", client.client_id, token_url)
    assert app_client.post("/oauth/token", data=form).status_code == 401
    # revocation
    r = app_client.post("/oauth/revoke", data={
        "token": body["access_token"], "client_assertion_type": clients.ASSERTION_TYPE,
        "client_assertion": _assertion(key, alg, client.client_id, token_url)})
    assert r.status_code == 200
    assert app_client.get("/fhir/Observation", headers=h).status_code == 401


def test_client_credentials_with_a_secret(app_client: TestClient, county: County) -> None:
    client, secret = clients.register(county.engine, name="reports", kind="system",
                                      scopes="system/*.rs", with_secret=True)
    assert secret is not None
    form = {"grant_type": "client_credentials", "scope": "system/*.rs"}
    r = app_client.post("/oauth/token", data=form, auth=(client.client_id, secret))
    assert r.status_code == 200
    r = app_client.post("/oauth/token", data=form, auth=(client.client_id, "wrong"))
    assert r.status_code == 401
    r = app_client.post("/oauth/token", data={**form, "grant_type": "password"},
                        auth=(client.client_id, secret))
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"


def test_registration_refuses_private_keys_and_weak_curves(county: County) -> None:
    private = ECKey.generate_key("P-384", auto_kid=True).as_dict(private=True)
    with pytest.raises(ValueError, match="private"):
        clients.register(county.engine, name="x", kind="system", scopes="system/*.rs",
                         jwks={"keys": [private]})
    p256 = ECKey.generate_key("P-256", auto_kid=True).as_dict(private=False)
    with pytest.raises(ValueError, match="P-384"):
        clients.register(county.engine, name="x", kind="system", scopes="system/*.rs",
                         jwks={"keys": [p256]})
    with pytest.raises(ValueError, match="system/"):
        clients.register(county.engine, name="x", kind="system", scopes="user/*.rs",
                         with_secret=True)
