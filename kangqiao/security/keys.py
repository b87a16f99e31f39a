"""The server's token-signing key (ES256), generated on first use and kept in the database so
that every API worker signs and verifies with the same key. Keys are looked up by ``kid``;
an unknown ``kid`` reloads the table once (another worker may have created a key)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from joserfc.jwk import ECKey
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from kangqiao.fhir.store.records import utcnow
from kangqiao.security.schema import signing_key

ALGORITHM = "ES256"


class KeyRing:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, ECKey] = {}
        self._current: ECKey | None = None

    def _load(self, engine: Engine) -> Sequence[Any]:
        with engine.connect() as conn:
            rows = conn.execute(select(signing_key).order_by(signing_key.c.created)).all()
        with self._lock:
            for row in rows:
                if row.kid not in self._keys:
                    self._keys[row.kid] = ECKey.import_key(row.private_jwk)
        return rows

    def current(self, engine: Engine) -> ECKey:
        """The key new tokens are signed with (the newest in the table)."""
        if self._current is not None:
            return self._current
        rows = self._load(engine)
        if not rows:
            key = ECKey.generate_key("P-256", auto_kid=True)
            try:
                with engine.begin() as conn:
                    conn.execute(insert(signing_key).values(
                        kid=key.kid, algorithm=ALGORITHM,
                        private_jwk=key.as_dict(private=True), created=utcnow()))
            except IntegrityError:
                pass
            rows = self._load(engine)
        with self._lock:
            self._current = self._keys[rows[-1].kid]
        return self._current

    def find(self, engine: Engine, kid: str) -> ECKey | None:
        with self._lock:
            key = self._keys.get(kid)
        if key is None:
            self._load(engine)
            with self._lock:
                key = self._keys.get(kid)
        return key

    def public_jwks(self, engine: Engine) -> dict[str, Any]:
        self.current(engine)
        with self._lock:
            keys = [dict(k.as_dict(private=False), alg=ALGORITHM, use="sig")
                    for k in self._keys.values()]
        return {"keys": keys}
