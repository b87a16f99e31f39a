"""Workbench login (CSRF, lockout, forced password change, cookie flags, logout), the session
on the API, and the SMART authorisation code flow with PKCE end to end."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from kangqiao.fhir.store.records import utcnow
from kangqiao.security import accounts, clients, passwords
from kangqiao.security.schema import audit_log, user_account
from kangqiao.security.tokens import audience
from tests.conftest import csrf_of, form_login
from tests.security.conftest import PASSWORD, County

_csrf = csrf_of


def login(client: TestClient, username: str, password: str = PASSWORD, nxt: str = "/"
          ) -> object:
    return form_login(client, username, password, nxt)


def test_login_page_is_chinese_first_with_english(app_client: TestClient,
                                                  county: County) -> None:
    r = app_client.get("/login")
    assert r.status_code == 200 and "登录" in r.text and 'lang="zh-CN"' in r.text
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "Sign in" in app_client.get("/login?lang=en").text


def test_login_sets_a_safe_session_cookie_and_logout_ends_it(app_client: TestClient,
                                                            county: County) -> None:
    r = login(app_client, "gp1", nxt="/fhir/Patient")
    assert r.status_code == 303 and r.headers["location"] == "/fhir/Patient"
    cookie = r.headers["set-cookie"]
    assert "kq_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http in tests; https sets it (cookie_options)
    r = app_client.get("/fhir/Patient")  # the session works on the API
    assert r.status_code == 200 and r.json()["total"] == 2
    # a change through the session needs the CSRF token
    body = app_client.get("/fhir/Patient/p1").json()
    assert app_client.put("/fhir/Patient/p1", json=body).status_code == 403
    token = _csrf(app_client.get("/password").text)
    assert app_client.put("/fhir/Patient/p1", json=body,
                          headers={"X-CSRF-Token": token}).status_code == 200
    assert app_client.post("/logout", data={"csrf": "wrong"},
                           follow_redirects=False).status_code == 403
    r = app_client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    assert app_client.get("/fhir/Patient").status_code == 401
    with county.engine.connect() as conn:
        kinds = [row.category for row in conn.execute(
            select(audit_log).where(audit_log.c.username == "gp1").order_by(audit_log.c.seq))]
    assert kinds[0] == "login" and kinds[-1] == "logout"


def test_login_form_needs_its_csrf_token_and_never_redirects_off_site(
        app_client: TestClient, county: County) -> None:
    r = app_client.post("/login", data={"username": "gp1", "password": PASSWORD,
                                        "csrf": "forged"})
    assert r.status_code == 403
    r = login(app_client, "gp1", nxt="//evil.example/steal")
    assert r.headers["location"] == "/"


def test_repeated_failures_lock_the_account(app_client: TestClient, county: County) -> None:
    for _ in range(county.settings.login_max_failures - 1):
        assert login(app_client, "gp2", "wrong-Passw0rd!").status_code == 401
    r = login(app_client, "gp2", "wrong-Passw0rd!")
    assert r.status_code == 401 and "锁定" in r.text
    r = login(app_client, "gp2")  # even the right password, while locked
    assert r.status_code == 401 and "锁定" in r.text
    with county.engine.begin() as conn:  # the lock runs out
        conn.execute(update(user_account).where(user_account.c.username == "gp2")
                     .values(locked_until=utcnow() - timedelta(seconds=1)))
    assert login(app_client, "gp2").status_code == 303
    row = accounts.find(county.engine, username="gp2")
    assert row is not None
    with county.engine.connect() as conn:
        failures = conn.execute(select(audit_log.c.outcome).where(
            audit_log.c.category == "login", audit_log.c.username == "gp2")).scalars().all()
    assert failures.count("4") == county.settings.login_max_failures + 1


def test_unknown_users_get_the_same_answer(app_client: TestClient, county: County) -> None:
    a = login(app_client, "nobody", "wrong-Passw0rd!")
    b = login(app_client, "gp1", "wrong-Passw0rd!")
    assert a.status_code == b.status_code == 401  # type: ignore[attr-defined]
    assert "用户名或密码错误" in a.text and "用户名或密码错误" in b.text  # type: ignore[attr-defined]


def test_initial_password_must_be_changed(app_client: TestClient, county: County) -> None:
    accounts.set_password(county.engine, "nurse1", "Initial-Pass-1", must_change=True)
    r = login(app_client, "nurse1", "Initial-Pass-1", nxt="/fhir/Patient")
    assert r.status_code == 303 and r.headers["location"].startswith("/password")
    assert app_client.get("/fhir/Patient").status_code == 403  # not before the change
    page = app_client.get("/password")
    token = _csrf(page.text)
    form = {"csrf": token, "old_password": "Initial-Pass-1", "next": "/fhir/Patient"}
    for new, error in (("short1A!", "太短"), ("alllowercaseletters", "至少三类"),
                       ("Nurse1-nurse1-Pw", "用户名")):
        r = app_client.post("/password", data={**form, "new_password": new,
                                               "new_password2": new})
        assert r.status_code == 400 and error in r.text, new
    r = app_client.post("/password", data={**form, "new_password": "Brand-New-Pw-9",
                                           "new_password2": "Brand-New-Pw-9"},
                        follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/fhir/Patient"
    assert app_client.get("/fhir/Patient").status_code == 200
    assert passwords.verify_password(
        _hash_of(county, "nurse1"), "Brand-New-Pw-9")


def _hash_of(county: County, username: str) -> str:
    with county.engine.connect() as conn:
        return str(conn.execute(select(user_account.c.password_hash).where(
            user_account.c.username == username)).scalar())


def test_password_rules() -> None:
    assert passwords.problems("Short1!", "u", 10) == ["pw_too_short"]
    assert passwords.problems("abcdefghijkl", "u", 10) == ["pw_classes"]
    assert passwords.problems("gp1-Secret-99", "gp1", 10) == ["pw_username"]
    assert passwords.problems("Another-Secret-99", "gp1", 10) == []
    assert passwords.problems(passwords.generate(""), "", 16) == []
    # a two-letter username would otherwise appear in about one random password in sixteen
    assert all(passwords.problems(passwords.generate("gp"), "gp", 16) == []
               for _ in range(500))


# ---- SMART authorisation code with PKCE ----------------------------------------------------


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()
                                         ).rstrip(b"=").decode()
    return verifier, challenge


@pytest.fixture
def app_client_id(county: County) -> str:
    client, _ = clients.register(county.engine, name="随访助手", kind="app",
                                 scopes="user/*.rs patient/*.rs offline_access openid fhirUser",
                                 redirect_uris=("https://app.example/cb",))
    return client.client_id


def _authorize(client: TestClient, county: County, client_id: str, challenge: str,
               scope: str = "user/Patient.rs user/Observation.rs offline_access") -> str:
    params = {"response_type": "code", "client_id": client_id,
              "redirect_uri": "https://app.example/cb", "scope": scope, "state": "s1",
              "aud": audience(county.settings), "code_challenge": challenge,
              "code_challenge_method": "S256"}
    url = f"/oauth/authorize?{urlencode(params)}"
    r = client.get(url, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    login(client, "gp1", nxt=url)
    page = client.get(url)
    assert page.status_code == 200 and "随访助手" in page.text
    assert "user/Patient.rs" in page.text
    form = {**params, "csrf": _csrf(page.text), "decision": "approve"}
    r = client.post("/oauth/authorize", data=form, follow_redirects=False)
    assert r.status_code == 303
    target = urlparse(r.headers["location"])
    query = parse_qs(target.query)
    assert target.netloc == "app.example" and query["state"] == ["s1"]
    return query["code"][0]


def test_authorization_code_with_pkce(app_client: TestClient, county: County,
                                      app_client_id: str) -> None:
    verifier, challenge = _pkce()
    code = _authorize(app_client, county, app_client_id, challenge)
    token_form = {"grant_type": "authorization_code", "code": code, "client_id": app_client_id,
                  "redirect_uri": "https://app.example/cb", "code_verifier": verifier}
    wrong = app_client.post("/oauth/token", data={**token_form,
                                                  "code_verifier": _pkce()[0]})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    # a failed attempt did not use the code up; the right verifier gets the token
    r = app_client.post("/oauth/token", data=token_form)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scope"] == "user/Patient.rs user/Observation.rs offline_access"
    fresh = TestClient(app_client.app)
    h = {"Authorization": f"Bearer {body['access_token']}"}
    r = fresh.get("/fhir/Patient", headers=h)
    assert r.status_code == 200 and {e["resource"]["id"] for e in r.json()["entry"]} == {
        "p1", "p3"}  # gp1's view
    assert fresh.get("/fhir/Condition", headers=h).status_code == 403  # not granted
    # the code is single-use
    assert app_client.post("/oauth/token", data=token_form).status_code == 400
    # refresh rotates: the old refresh token is spent
    refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
               "client_id": app_client_id}
    r = app_client.post("/oauth/token", data=refresh)
    assert r.status_code == 200 and r.json()["refresh_token"] != body["refresh_token"]
    assert app_client.post("/oauth/token", data=refresh).status_code == 400
    # revoking the new refresh token
    newer = r.json()["refresh_token"]
    assert app_client.post("/oauth/revoke", data={"token": newer, "client_id": app_client_id}
                           ).status_code == 200
    assert app_client.post("/oauth/token", data={**refresh, "refresh_token": newer}
                           ).status_code == 400


def test_authorize_refuses_unregistered_redirects_and_plain_pkce(
        app_client: TestClient, county: County, app_client_id: str) -> None:
    base = {"response_type": "code", "client_id": app_client_id, "scope": "user/*.rs",
            "aud": audience(county.settings), "code_challenge": "x" * 43,
            "code_challenge_method": "S256", "redirect_uri": "https://evil.example/cb"}
    r = app_client.get(f"/oauth/authorize?{urlencode(base)}", follow_redirects=False)
    assert r.status_code == 400  # shown, never redirected to an unregistered URI
    plain = {**base, "redirect_uri": "https://app.example/cb", "code_challenge_method": "plain"}
    r = app_client.get(f"/oauth/authorize?{urlencode(plain)}", follow_redirects=False)
    assert r.status_code == 303 and "error=invalid_request" in r.headers["location"]


def test_resident_app_gets_the_patient_context(app_client: TestClient, county: County,
                                               app_client_id: str) -> None:
    verifier, challenge = _pkce()
    params = {"response_type": "code", "client_id": app_client_id,
              "redirect_uri": "https://app.example/cb", "scope": "patient/*.rs user/*.rs",
              "state": "z", "aud": audience(county.settings), "code_challenge": challenge,
              "code_challenge_method": "S256"}
    url = f"/oauth/authorize?{urlencode(params)}"
    login(app_client, "resident1", nxt=url)
    page = app_client.get(url)
    assert "<code>patient/*.rs</code>" in page.text
    assert "<code>user/*.rs</code>" not in page.text  # a resident has no user/ context
    r = app_client.post("/oauth/authorize", data={**params, "csrf": _csrf(page.text),
                                                  "decision": "approve"},
                        follow_redirects=False)
    code = parse_qs(urlparse(r.headers["location"]).query)["code"][0]
    body = app_client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": app_client_id,
        "redirect_uri": "https://app.example/cb", "code_verifier": verifier}).json()
    assert body["patient"] == "p1" and body["scope"] == "patient/*.rs"
    assert "refresh_token" not in body
