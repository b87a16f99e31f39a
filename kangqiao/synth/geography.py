"""The county, its townships and villages, with GB/T 2260-format codes and coordinates.

The county code is six digits in the GB/T 2260 format (province 43 = Hunan, prefecture
12, county 99); the county itself is fictional. Township and village codes extend it to
the 12-digit statistical division code (统计用区划代码): 3 digits for the township
(1xx 镇, 2xx 乡) and 3 for the village committee (2xx 村).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from kangqiao.synth.common import ADMIN_DIVISION_EXT
from kangqiao.synth.names import PINYIN

COUNTY_CODE = "431299"
COUNTY_NAME = "康桥县"
COUNTY_PINYIN = "Kangqiao"
CITY_NAME = "怀山市"
PROVINCE_NAME = "湖南省"
SEAT_LAT = 27.55
SEAT_LON = 109.95
# Birth-place address codes for residents born outside the county (same prefecture).
OTHER_BIRTH_CODES = ("431202", "431221", "431222", "431223", "431224", "431225")

_PLACE = (
    "青qing 石shi 白bai 沙sha 桥qiao 河he 山shan 塘tang 坪ping 溪xi 湾wan 岭ling 田tian 冲chong "
    "坝ba 湖hu 江jiang 龙long 凤feng 马ma 牛niu 花hua 竹zhu 松song 柏bai 枫feng 桃tao 杨yang "
    "柳liu 新xin 东dong 西xi 南nan 北bei 上shang 下xia 大da 小xiao 长chang 高gao 安an 太tai "
    "和he 兴xing 隆long 福fu 寿shou 源yuan 金jin 银yin 云yun 岩yan 峰feng 泉quan 黄huang 水shui"
)
PLACE_CHARS = [(tok[0], tok[1:]) for tok in _PLACE.split()]
for _c, _p in PLACE_CHARS:
    PINYIN.setdefault(_c, _p)


@dataclass
class Village:
    code: str  # 12 digits
    name: str
    lat: float
    lon: float
    quota: int = 0  # residents to generate here
    index: int = 0  # position within the township


@dataclass
class Township:
    code: str  # 9 digits (county + 3)
    name: str
    lat: float
    lon: float
    is_seat: bool
    quota: int = 0
    villages: list[Village] = field(default_factory=list)
    index: int = 0

    @property
    def full_code(self) -> str:
        return self.code + "000"


@dataclass
class County:
    code: str
    name: str
    lat: float
    lon: float
    townships: list[Township]

    @property
    def address_prefix(self) -> str:
        return f"{PROVINCE_NAME}{CITY_NAME}{self.name}"


def offset(lat: float, lon: float, km: float, bearing: float) -> tuple[float, float]:
    dlat = km * math.cos(bearing) / 111.0
    dlon = km * math.sin(bearing) / (111.0 * math.cos(math.radians(lat)))
    return round(lat + dlat, 6), round(lon + dlon, 6)


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def _place_name(rng: random.Random, used: set[str], suffix: str) -> str:
    while True:
        a, b = rng.sample(PLACE_CHARS, 2)
        name = a[0] + b[0] + suffix
        if name not in used:
            used.add(name)
            return name


def split_quota(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder, exact sum)."""
    s = sum(weights)
    raw = [total * w / s for w in weights]
    out = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (out[i] - raw[i], i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def build_county(rng: random.Random, residents: int) -> County:
    """Townships (8-15, more for bigger counties) and villages (5-20 each) with quotas."""
    n_town = max(8, min(15, 8 + residents // 100_000 + rng.randint(0, 1)))
    used: set[str] = set()
    townships: list[Township] = []
    weights: list[float] = []
    n_zhen = 0
    n_xiang = 0
    for i in range(n_town):
        seat = i == 0
        is_zhen = seat or rng.random() < 0.6
        if seat:
            name = "城关镇"
            used.add(name)
        else:
            name = _place_name(rng, used, "镇" if is_zhen else "乡")
        if is_zhen:
            n_zhen += 1
            code = f"{COUNTY_CODE}{99 + n_zhen:03d}"
        else:
            n_xiang += 1
            code = f"{COUNTY_CODE}{200 + n_xiang:03d}"
        if seat:
            lat, lon = SEAT_LAT, SEAT_LON
        else:
            bearing = 2 * math.pi * i / n_town + rng.uniform(-0.3, 0.3)
            lat, lon = offset(SEAT_LAT, SEAT_LON, rng.uniform(8, 35), bearing)
        townships.append(Township(code, name, lat, lon, seat, index=i))
        weights.append(2.0 if seat else rng.uniform(0.6, 1.4))
    for town, quota in zip(townships, split_quota(residents, weights), strict=True):
        town.quota = quota
        n_vil = max(5, min(20, round(quota / 1800) + rng.randint(-1, 1)))
        vweights = [rng.uniform(0.5, 1.5) for _ in range(n_vil)]
        for j, vq in enumerate(split_quota(quota, vweights)):
            lat, lon = offset(
                town.lat, town.lon, rng.uniform(1.5, 6.0), rng.uniform(0, 2 * math.pi)
            )
            name = _place_name(rng, used, "村")
            town.villages.append(Village(f"{town.code}{201 + j:03d}", name, lat, lon, vq, j))
    return County(COUNTY_CODE, COUNTY_NAME, SEAT_LAT, SEAT_LON, townships)


def address(
    county: County, town: Township, village: Village | None, line: str, use: str = "home"
) -> dict:
    """FHIR Address for a place in the county, with the division code as an extension."""
    parts = [town.name] + ([village.name] if village else []) + [line]
    out: dict = {
        "extension": [
            {"url": ADMIN_DIVISION_EXT, "valueCode": village.code if village else town.full_code}
        ],
        "use": use,
        "type": "physical",
        "text": county.address_prefix + "".join(parts),
        "line": ["".join(parts)],
        "city": CITY_NAME,
        "district": county.name,
        "state": PROVINCE_NAME,
        "country": "CN",
    }
    return out
