"""``kangqiao auth ...`` on the server, and the demo county's accounts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from typer.testing import CliRunner

from kangqiao.cli import app as cli
from kangqiao.security import accounts, rules
from kangqiao.security.demo_accounts import ensure_demo_accounts
from kangqiao.settings import get_settings
from tests.security.conftest import County


@pytest.fixture
def env(county: County, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KANGQIAO_DATABASE_URL", county.settings.database_url)
    monkeypatch.setenv("KANGQIAO_AUDIT_HMAC_KEY", county.settings.audit_hmac_key or "")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_user_create_links_the_practitioner_role(county: County, env: None) -> None:
    result = CliRunner().invoke(cli, ["auth", "user", "create", "zhou", "--role", "gp",
                                      "--practitioner-role", "PractitionerRole/role-gp1"])
    assert result.exit_code == 0, result.output
    password = result.output.split("login): ")[1].strip()
    account = accounts.find(county.engine, username="zhou")
    assert account is not None and account.must_change_password
    assert account.organization == "Organization/org-thc-01"
    assert account.actor == "Practitioner/prac-gp1"
    assert accounts.authenticate(county.engine, county.settings, "zhou", password).id == \
        account.id
    bad = CliRunner().invoke(cli, ["auth", "user", "create", "x", "--role", "wizard"])
    assert bad.exit_code == 2 and "unknown role" in bad.output


def test_client_create_and_token(app_client: TestClient, county: County, env: None,
                                 tmp_path: Path) -> None:
    key = ECKey.generate_key("P-384", auto_kid=True)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    result = CliRunner().invoke(cli, ["auth", "client", "create", "--name", "load test",
                                      "--scope", "system/Patient.rs", "--jwks", str(jwks),
                                      "--id", "loadtest"])
    assert result.exit_code == 0 and "private_key_jwt" in result.output, result.output
    result = CliRunner().invoke(cli, ["auth", "token", "--client", "loadtest",
                                      "--scope", "system/Patient.rs system/Observation.rs"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    h = {"Authorization": f"Bearer {token}"}
    assert app_client.get("/fhir/Patient", headers=h).json()["total"] == 5
    assert app_client.get("/fhir/Observation", headers=h).status_code == 403
    result = CliRunner().invoke(cli, ["auth", "token", "--client", "nobody", "--scope", "x"])
    assert result.exit_code == 2


def test_demo_accounts_cover_every_role_and_only_show_initial_passwords(
        county: County) -> None:
    made = ensure_demo_accounts(county.engine, county.settings)
    by_name = {a.username: a for a in made}
    assert set(by_name) == {"village", "gp", "specialist", "nurse", "publichealth",
                            "countyadmin", "admin", "resident"}
    assert by_name["gp"].linked == "Practitioner/prac-gp1"
    assert by_name["publichealth"].linked == "Practitioner/prac-ph"
    assert by_name["resident"].linked == "Patient/p1"
    # "countyadmin" and "admin" already exist in the test county, with their own passwords
    assert by_name["admin"].password is None and by_name["countyadmin"].password is None
    for demo in made:
        if demo.username in ("admin", "countyadmin"):
            continue
        assert demo.password is not None
        account = accounts.authenticate(county.engine, county.settings, demo.username,
                                        demo.password)
        assert account.must_change_password and account.role in rules.USER_ROLES
    accounts.set_password(county.engine, "gp", "Changed-By-Me-1", must_change=False)
    again = {a.username: a for a in ensure_demo_accounts(county.engine, county.settings)}
    assert again["gp"].password is None  # left alone once changed
    assert again["nurse"].password not in (None, by_name["nurse"].password)
