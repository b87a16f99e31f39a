"""User accounts: who a person is in the county (role, organisation, Practitioner /
PractitionerRole, or Patient for a resident), their password, and login back-off.

After ``login_max_failures`` failed logins in a row the account is locked for
``lockout_minutes``, doubling with each further failure (capped at a day); a successful login
resets the count. Initial passwords must be changed at first login.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update

from kangqiao.fhir.store.records import utcnow
from kangqiao.security import passwords, rules
from kangqiao.security.gate import Access
from kangqiao.security.schema import user_account
from kangqiao.settings import Settings

U = user_account


class AccountError(ValueError):
    """Bad account data (unknown role, duplicate username, weak password, ...)."""


class LoginRefused(Exception):
    def __init__(self, key: str, locked_until: datetime | None = None) -> None:
        super().__init__(key)
        self.key = key  # message key in web/i18n
        self.locked_until = locked_until


@dataclass(frozen=True)
class Account:
    id: str
    username: str
    display_name: str
    role: str
    organization: str | None
    practitioner: str | None
    practitioner_role: str | None
    patient: str | None
    must_change_password: bool
    active: bool

    @property
    def actor(self) -> str:
        """The FHIR reference the account acts as (its Practitioner or Patient)."""
        return self.practitioner or self.patient or f"user/{self.username}"

    def access(self, *, scopes: frozenset[str], purpose: str, remote_addr: str | None,
               client_id: str | None = None, patient: str | None = None) -> Access:
        return Access(actor=self.actor, scopes=scopes, purpose=purpose,
                      remote_addr=remote_addr, role=self.role, organization=self.organization,
                      user=self.username, patient=patient or self.patient,
                      practitioner_role=self.practitioner_role, client_id=client_id)


def _account(row: Any) -> Account:
    return Account(row.id, row.username, row.display_name, row.role, row.organization,
                   row.practitioner, row.practitioner_role, row.patient,
                   row.must_change_password, row.active)


def create(engine: Engine, settings: Settings, *, username: str, password: str, role: str,
           display_name: str | None = None, organization: str | None = None,
           practitioner: str | None = None, practitioner_role: str | None = None,
           patient: str | None = None, must_change: bool = True) -> Account:
    if role not in rules.USER_ROLES:
        raise AccountError(f"unknown role {role!r}; one of {', '.join(sorted(rules.USER_ROLES))}")
    if role == rules.RESIDENT and not patient:
        raise AccountError("a resident's account needs --patient Patient/<id>")
    if role in rules.CLINICAL and not organization:
        raise AccountError(f"a {role} account needs an organization")
    weak = passwords.problems(password, username, settings.password_min_length)
    if weak:
        raise AccountError(f"the password breaks the rules: {', '.join(weak)}")
    now = utcnow()
    values = {"id": uuid.uuid4().hex, "username": username,
              "display_name": display_name or username, "role": role,
              "organization": organization, "practitioner": practitioner,
              "practitioner_role": practitioner_role, "patient": patient,
              "password_hash": passwords.hash_password(password),
              "must_change_password": must_change, "failed_logins": 0, "locked_until": None,
              "password_changed": now, "last_login": None, "active": True, "created": now}
    with engine.begin() as conn:
        if conn.execute(select(U.c.id).where(U.c.username == username)).first():
            raise AccountError(f"the username {username!r} is taken")
        conn.execute(insert(U).values(**values))
    account = find(engine, username=username)
    assert account is not None
    return account


def find(engine: Engine, *, user_id: str | None = None, username: str | None = None
         ) -> Account | None:
    cond = U.c.id == user_id if user_id is not None else U.c.username == username
    with engine.connect() as conn:
        row = conn.execute(select(U).where(cond)).first()
    return None if row is None else _account(row)


def first_with_role(engine: Engine, role: str) -> Account | None:
    """An active account of ``role`` (the first by username), or None."""
    with engine.connect() as conn:
        row = conn.execute(select(U).where(U.c.role == role, U.c.active.is_(True))
                           .order_by(U.c.username).limit(1)).first()
    return None if row is None else _account(row)


def authenticate(engine: Engine, settings: Settings, username: str, password: str,
                 now: datetime | None = None) -> Account:
    """The account when the password is right; ``LoginRefused`` otherwise."""
    now = now or utcnow()
    with engine.connect() as conn:
        row = conn.execute(select(U).where(U.c.username == username)).first()
    if row is None or not row.active:
        passwords.verify_password(None, password)  # same time as a wrong password
        raise LoginRefused("login_failed")
    if row.locked_until is not None and row.locked_until > now:
        raise LoginRefused("login_locked", row.locked_until)
    if not passwords.verify_password(row.password_hash, password):
        failures = row.failed_logins + 1
        locked = None
        over = failures - settings.login_max_failures
        if over >= 0:
            locked = now + min(timedelta(minutes=settings.lockout_minutes) * (2 ** over),
                               timedelta(days=1))
        with engine.begin() as conn:
            conn.execute(update(U).where(U.c.id == row.id).values(
                failed_logins=failures, locked_until=locked))
        raise LoginRefused("login_locked" if locked else "login_failed", locked)
    values: dict[str, Any] = {"failed_logins": 0, "locked_until": None, "last_login": now}
    if passwords.needs_rehash(row.password_hash):
        values["password_hash"] = passwords.hash_password(password)
    with engine.begin() as conn:
        conn.execute(update(U).where(U.c.id == row.id).values(**values))
    return _account(row)


def change_password(engine: Engine, settings: Settings, account: Account, old: str, new: str
                    ) -> list[str]:
    """Message keys of what is wrong (nothing changed then); empty on success."""
    with engine.connect() as conn:
        stored = conn.execute(select(U.c.password_hash).where(U.c.id == account.id)).scalar()
    if not passwords.verify_password(stored, old):
        return ["pw_old_wrong"]
    issues = passwords.problems(new, account.username, settings.password_min_length)
    if new == old:
        issues.append("pw_same")
    if issues:
        return issues
    set_password(engine, account.username, new, must_change=False)
    return []


def set_password(engine: Engine, username: str, password: str, *, must_change: bool) -> None:
    with engine.begin() as conn:
        conn.execute(update(U).where(U.c.username == username).values(
            password_hash=passwords.hash_password(password), must_change_password=must_change,
            password_changed=utcnow(), failed_logins=0, locked_until=None))
