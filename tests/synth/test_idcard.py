from datetime import date

import pytest

from kangqiao.synth.idcard import (
    birth_date_of,
    check_char,
    is_valid_resident_id,
    make_resident_id,
    sex_of,
    to_first_generation,
)


def test_examples_from_the_standard() -> None:
    # GB 11643-1999 worked examples
    assert check_char("11010519491231002") == "X"
    assert check_char("44052418800101001") == "4"
    assert is_valid_resident_id("11010519491231002X")
    assert is_valid_resident_id("440524188001010014")


def test_round_trip_sex_and_birth_date() -> None:
    rid = make_resident_id("431299", date(1958, 3, 7), 37)
    assert len(rid) == 18
    assert birth_date_of(rid) == date(1958, 3, 7)
    assert sex_of(rid) == "male"
    assert is_valid_resident_id(rid, birth_date=date(1958, 3, 7), gender="male")
    assert not is_valid_resident_id(rid, gender="female")
    assert not is_valid_resident_id(rid, birth_date=date(1958, 3, 8))
    assert sex_of(make_resident_id("431299", date(1990, 1, 1), 38)) == "female"


@pytest.mark.parametrize(
    "bad",
    [
        "11010519491231002Y",  # bad check character
        "110105194912310021",  # wrong check digit
        "11010519490231002X",  # 31 Feb does not exist... (check digit also wrong)
        "1101051949123100",  # too short
        "11010519491231002x",  # lower-case x is not the standard form
        "431299299901010011",  # birth date in the future
    ],
)
def test_invalid(bad: str) -> None:
    assert not is_valid_resident_id(bad)


def test_impossible_date_with_a_correct_check_digit() -> None:
    body = "43129919490230001"
    assert not is_valid_resident_id(body + check_char(body))


def test_first_generation_form() -> None:
    assert to_first_generation("11010519491231002X") == "110105491231002"
