"""Password hashing (Argon2id, argon2-cffi's RFC 9106 low-memory profile) and password rules."""

from __future__ import annotations

import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # Argon2id, t=3, m=64 MiB, p=4
# Verified against when the username is unknown, so a wrong username costs as long as a wrong
# password and response times do not reveal which accounts exist.
_DUMMY = _HASHER.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


def problems(password: str, username: str, min_length: int) -> list[str]:
    """Message keys (web/i18n) of the rules ``password`` breaks; empty when it is fine."""
    out = []
    if len(password) < min_length:
        out.append("pw_too_short")
    classes = sum(any(c in group for c in password) for group in (
        string.ascii_lowercase, string.ascii_uppercase, string.digits))
    classes += any(not c.isalnum() for c in password)
    if classes < 3:
        out.append("pw_classes")
    if username and username.lower() in password.lower():
        out.append("pw_username")
    return out


def generate(username: str, length: int = 16) -> str:
    """A random initial password that satisfies the rules for ``username`` (a short username
    such as "gp" turns up inside a random string often enough to matter)."""
    alphabet = string.ascii_letters + string.digits + "-_.!"
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        if not problems(candidate, username, length):
            return candidate
