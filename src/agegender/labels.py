"""Label vocabularies and integer codes, kept in one place.

The codes are those of the original project so its checkpoints stay comparable:

* gender: male 0, female 1
* age: teens 0, twenties 1, thirties 2, fourties 3, fifties 4, sixties 5
* gender_age: female-teens 0 ... female-sixties 5, male-teens 6 ... male-sixties 11

So ``gender`` puts male first and ``gender_age`` female first: ``code // 6`` is *not* the
gender code. ``gender_age_parts`` and ``gender_age_code`` are the one place that converts.
"""

from __future__ import annotations

from agegender.errors import ParameterError

GENDERS: tuple[str, ...] = ("male", "female")
# Common Voice spells "fourties" this way; we keep its spelling.
AGES: tuple[str, ...] = ("teens", "twenties", "thirties", "fourties", "fifties", "sixties")
GENDER_AGES: tuple[str, ...] = tuple(
    f"{gender}-{age}" for gender in ("female", "male") for age in AGES
)
TASKS: tuple[str, ...] = ("gender", "age", "gender_age")

# Spellings found in modern Common Voice releases, mapped to the v1 vocabulary.
GENDER_ALIASES: dict[str, str] = {
    "male": "male",
    "female": "female",
    "male_masculine": "male",
    "female_feminine": "female",
}


def class_names(task: str) -> tuple[str, ...]:
    """Returns the class names of a task, index = label code.

    Args:
        task: one of ``TASKS``.

    Raises:
        ParameterError: for an unknown task.
    """
    if task == "gender":
        return GENDERS
    if task == "age":
        return AGES
    if task == "gender_age":
        return GENDER_AGES
    raise ParameterError(f"cls_task={task!r} is not one of {', '.join(TASKS)}")


def normalise_gender(value: object) -> str | None:
    """Maps a raw gender cell to ``male``/``female``, or None when it is neither."""
    if not isinstance(value, str):
        return None
    return GENDER_ALIASES.get(value.strip().lower())


# Ages in years, whole decades of the 6 groups: 13-19 teens, 20-29 twenties, ... 60-69 sixties.
AGE_YEARS: tuple[int, int] = (13, 69)


def normalise_age(value: object) -> str | None:
    """Maps a raw age cell to one of ``AGES``, or None when it is outside the 6 groups.

    A cell is a group name (``teens`` ... ``sixties``) or an age in years (``34`` or
    ``34.0``): 13-19 is teens, 20-29 twenties, ..., 60-69 sixties; other years are None.

    Example:
        >>> normalise_age("34"), normalise_age("Sixties"), normalise_age("72")
        ('thirties', 'sixties', None)
    """
    if not isinstance(value, str):
        return None
    age = value.strip().lower()
    if age in AGES:
        return age
    try:
        years = float(age)
    except ValueError:
        return None
    if not AGE_YEARS[0] <= years < AGE_YEARS[1] + 1:  # also refuses nan and inf
        return None
    return AGES[max(0, int(years) // 10 - 1)]


def gender_age_code(gender_code: int, age_code: int) -> int:
    """The ``gender_age`` code of a (``gender`` code, ``age`` code) pair.

    Example:
        >>> gender_age_code(0, 1)  # male, twenties
        7
    """
    if gender_code not in range(len(GENDERS)) or age_code not in range(len(AGES)):
        raise ParameterError(f"gender_code={gender_code!r}, age_code={age_code!r}: need "
                             f"0..{len(GENDERS) - 1} and 0..{len(AGES) - 1}")
    return GENDER_AGES.index(f"{GENDERS[gender_code]}-{AGES[age_code]}")


def gender_age_parts(code: int) -> tuple[int, int]:
    """The (``gender`` code, ``age`` code) of a ``gender_age`` code.

    Example:
        >>> gender_age_parts(0)  # female-teens: female is gender code 1
        (1, 0)
    """
    if code not in range(len(GENDER_AGES)):
        raise ParameterError(f"gender_age code {code!r} is outside 0..{len(GENDER_AGES) - 1}")
    gender, age = GENDER_AGES[code].split("-")
    return GENDERS.index(gender), AGES.index(age)


def encode(gender: str, age: str) -> dict[str, int]:
    """Returns the three label codes of a clean (gender, age) pair.

    Example:
        >>> encode("male", "twenties")
        {'gender': 0, 'age': 1, 'gender_age': 7}
    """
    return {
        "gender": GENDERS.index(gender),
        "age": AGES.index(age),
        "gender_age": gender_age_code(GENDERS.index(gender), AGES.index(age)),
    }
