"""The research extract's key (pseudonyms, date shifts): a setting, or a key file generated
(mode 600) into the secrets folder on first use, like the audit key. The same key gives the
same pseudonyms in every extract, so that extracts can be linked by the holders of the key
only; rotate it (delete the file) to make a new extract unlinkable to earlier ones."""

from __future__ import annotations

from pathlib import Path

from kangqiao.security.secret_files import hex_key
from kangqiao.settings import Settings


def research_key(settings: Settings) -> bytes:
    return hex_key(settings.research_key, Path(settings.secrets_dir) / "research.key")
