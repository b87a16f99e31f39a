"""Keys of field encryption (AES-256-GCM) and of the blind index (HMAC-SHA256).

They come from the settings (``field_keys``, ``blind_index_key``) or from
``<secrets_dir>/field-keys.json``, generated (mode 600) on first start like the audit key:
outside the database, so that a copy of the database alone reveals nothing. Every key has an
id that goes into each ciphertext; new writes use the newest key, older keys stay to decrypt
until ``kangqiao keys rotate`` has re-encrypted every row with the newest one.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import orjson

from kangqiao.settings import Settings

KEY_FILE = "field-keys.json"
_KID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


class FieldKeyError(ValueError):
    """The key configuration is unusable (a readable message for the operator)."""


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes]  # key id -> 32-byte AES key, oldest first
    current: str  # key id of new writes
    blind_key: bytes  # HMAC key of the blind index
    source: str  # "settings" or the key file's path

    def key(self, kid: str) -> bytes:
        try:
            return self.keys[kid]
        except KeyError:
            raise FieldKeyError(f"field encryption key {kid!r} is not configured (a value was "
                            "encrypted with it: restore the key)") from None


def _aes_key(kid: str, hex_key: str) -> bytes:
    if not _KID.match(kid):
        raise FieldKeyError(f"invalid field key id {kid!r} (letters, digits, - and _, at most 16)")
    try:
        key = bytes.fromhex(hex_key)
    except ValueError:
        raise FieldKeyError(f"field key {kid!r} is not hexadecimal") from None
    if len(key) != 32:
        raise FieldKeyError(f"field key {kid!r} must be 32 bytes (64 hex digits), not {len(key)}")
    return key


def _from_settings(settings: Settings) -> Keyring:
    keys: dict[str, bytes] = {}
    for part in (settings.field_keys or "").split(","):
        kid, sep, hex_key = part.strip().partition(":")
        if not sep:
            raise FieldKeyError("KANGQIAO_FIELD_KEYS must be id:hexkey pairs separated by commas")
        keys[kid] = _aes_key(kid, hex_key)
    if not settings.blind_index_key:
        raise FieldKeyError("KANGQIAO_FIELD_KEYS needs KANGQIAO_BLIND_INDEX_KEY as well")
    return Keyring(keys, next(reversed(keys)), bytes.fromhex(settings.blind_index_key),
                   "settings")


def key_file(settings: Settings) -> Path:
    return Path(settings.secrets_dir) / KEY_FILE


def _write_new(path: Path, data: dict[str, object], *, exclusive: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path if exclusive else path.with_suffix(".tmp")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(target, flags, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        f.flush()
        os.fsync(f.fileno())
    if not exclusive:
        os.replace(target, path)  # atomic: a worker never reads half a key file


def _from_file(path: Path) -> Keyring:
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another worker created it first
            _write_new(path, {"current": "k1", "keys": {"k1": secrets.token_hex(32)},
                              "blind_index_key": secrets.token_hex(32)}, exclusive=True)
    try:
        data = orjson.loads(path.read_bytes())
        keys = {kid: _aes_key(kid, hex_key) for kid, hex_key in data["keys"].items()}
        current = str(data["current"])
        blind = bytes.fromhex(data["blind_index_key"])
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise FieldKeyError(f"{path} is not a valid field key file: {exc}") from None
    if current not in keys:
        raise FieldKeyError(f"{path}: the current key {current!r} is not among its keys")
    return Keyring(keys, current, blind, str(path))


def load(settings: Settings) -> Keyring:
    """The keyring the settings describe (generating the key file on first use)."""
    if settings.field_keys:
        return _from_settings(settings)
    return _from_file(key_file(settings))


def add_key(settings: Settings) -> str:
    """Generate a new newest key in the key file; returns its id. Keys given in the settings
    are rotated by the operator (append the new key to KANGQIAO_FIELD_KEYS)."""
    if settings.field_keys:
        raise FieldKeyError("the keys come from KANGQIAO_FIELD_KEYS: append a new id:key pair "
                        "there (newest last), restart, then run `kangqiao keys rotate "
                        "--no-new-key`")
    ring = load(settings)
    n = len(ring.keys) + 1
    while f"k{n}" in ring.keys:
        n += 1
    kid = f"k{n}"
    data = orjson.loads(key_file(settings).read_bytes())
    data["keys"][kid] = secrets.token_hex(32)
    data["current"] = kid
    _write_new(key_file(settings), data, exclusive=False)
    return kid
