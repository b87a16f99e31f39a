import random

from kangqiao.synth.names import (
    GIVEN,
    PINYIN,
    SURNAME_SHARE,
    homophones,
    make_name,
    pick_surname,
    with_homophone,
)


def test_surname_shares_match_the_mps_report() -> None:
    # MPS 2020 household-registration report: 王 7.1%, 李 7.0%, 张 6.8%, 刘 5.4%, 陈 4.5%
    assert abs(sum(SURNAME_SHARE.values()) - 1.0) < 1e-9
    rng = random.Random(3)
    n = 60_000
    counts: dict[str, int] = {}
    for _ in range(n):
        c, _ = pick_surname(rng)
        counts[c] = counts.get(c, 0) + 1
    for char, share in (("王", 0.071), ("李", 0.070), ("张", 0.068), ("刘", 0.054), ("陈", 0.045)):
        assert abs(counts[char] / n - share) < 0.005, char


def test_every_character_has_pinyin() -> None:
    for pool in GIVEN.values():
        for char, py in pool:
            assert PINYIN[char] == py and py.isascii() and py.isalpha()


def test_names_and_homophones() -> None:
    rng = random.Random(5)
    name = make_name(rng, "female", 1960, ("王", "wang"))
    assert name.text.startswith("王") and 2 <= len(name.text) <= 3
    assert name.pinyin.startswith("Wang ")
    assert "国" in homophones("郭") and "郭" in homophones("国")
    variants = [with_homophone(rng, make_name(rng, "male", 1950, ("李", "li"))) for _ in range(50)]
    changed = [v for v in variants if v is not None]
    assert changed
    for v in changed:
        assert v.given_pinyin  # same sound, different character
