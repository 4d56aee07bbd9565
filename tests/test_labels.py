"""Label codes (``agegender.labels``)."""

from __future__ import annotations

import pytest


def test_gender_age_codes_map_to_the_gender_and_age_codes_of_their_names():
    from agegender import labels

    assert labels.gender_age_parts(0) == (1, 0)  # female-teens: female is gender 1
    assert labels.gender_age_parts(11) == (0, 5)  # male-sixties
    for code, name in enumerate(labels.GENDER_AGES):
        gender, age = labels.gender_age_parts(code)
        assert name == f"{labels.GENDERS[gender]}-{labels.AGES[age]}"
        assert labels.gender_age_code(gender, age) == code
    assert labels.encode("female", "thirties") == {"gender": 1, "age": 2, "gender_age": 2}
    from agegender.errors import ParameterError

    with pytest.raises(ParameterError, match="12"):
        labels.gender_age_parts(12)
