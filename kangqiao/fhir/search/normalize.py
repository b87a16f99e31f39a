"""Value normalisation shared by the indexer and the query compiler."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

STRING_LEN = 512
TOKEN_LEN = 512
URI_LEN = 1024


@lru_cache(maxsize=65536)
def norm_string(text: str) -> str:
    """Lower-case, accents removed, full-width forms folded (NFKD), whitespace collapsed."""
    if text.isascii():
        out = text.lower()
    else:
        decomposed = unicodedata.normalize("NFKD", text)
        out = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    if "  " in out or out[:1].isspace() or out[-1:].isspace():
        out = " ".join(out.split())
    return out[:STRING_LEN]


def is_cjk(text: str) -> bool:
    return any("\u3400" <= c <= "\u9fff" for c in text)
