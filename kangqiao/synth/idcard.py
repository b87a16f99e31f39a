"""Resident identity card numbers (居民身份证号码), GB 11643-1999.

Layout of the 18 characters: 6-digit address code (GB/T 2260), 8-digit birth date
(YYYYMMDD), 3-digit sequence (odd = male, even = female), 1 check character computed
with ISO 7064 MOD 11-2 (0-9 or X).
"""

from __future__ import annotations

import re
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # 2^(17-i) mod 11
_CHECK = "10X98765432"
_ID_RE = re.compile(r"^\d{17}[\dX]$")


def check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("need 17 digits")
    s = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[s % 11]


def make_resident_id(address_code: str, birth: date, sequence: int) -> str:
    """Build an 18-character ID; ``sequence`` (1..999) carries the sex in its parity."""
    if not (len(address_code) == 6 and address_code.isdigit()):
        raise ValueError("address code must be 6 digits")
    if not 0 <= sequence <= 999:
        raise ValueError("sequence must be 0..999")
    body = f"{address_code}{birth:%Y%m%d}{sequence:03d}"
    return body + check_char(body)


def birth_date_of(resident_id: str) -> date | None:
    try:
        return date(int(resident_id[6:10]), int(resident_id[10:12]), int(resident_id[12:14]))
    except ValueError:
        return None


def sex_of(resident_id: str) -> str:
    """``male`` or ``female`` from the parity of the 17th digit."""
    return "male" if int(resident_id[16]) % 2 == 1 else "female"


def is_valid_resident_id(
    resident_id: str, *, birth_date: date | None = None, gender: str | None = None
) -> bool:
    """Format, real birth date (not in the future, not before 1880), check character,
    and, when given, agreement with ``birth_date`` and ``gender`` (male/female)."""
    if not isinstance(resident_id, str) or not _ID_RE.match(resident_id):
        return False
    born = birth_date_of(resident_id)
    if born is None or born.year < 1880 or born > date.today():
        return False
    if check_char(resident_id[:17]) != resident_id[17]:
        return False
    if birth_date is not None and born != birth_date:
        return False
    return not (gender in ("male", "female") and sex_of(resident_id) != gender)


def to_first_generation(resident_id: str) -> str:
    """The 15-digit first-generation form (2-digit year, no check character)."""
    return resident_id[:6] + resident_id[8:17]
