"""Key files the platform generates for itself on first use, outside the database."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def hex_key(configured: str | None, path: Path) -> bytes:
    """``configured`` (hex) when set; otherwise the key in ``path``, created (mode 600, 32
    random bytes) on first use. Several workers may start at once: the first creates it, the
    others read it."""
    if configured:
        return bytes.fromhex(configured)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())
