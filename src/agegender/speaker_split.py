"""The speaker-independent split: every speaker in one of train, dev and test.

``speaker_splits`` assigns speakers (about 80/10/10, stratified by gender and age group,
seeded); ``assign_splits`` gives every clip row without a split its speaker's, keeping
speakers that already have rows in a split there. Used by the layouts for
``--split_by_speaker`` and for manifest rows with an empty split cell.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pandas as pd

from agegender import labels
from agegender.config import SPLITS

log = logging.getLogger(__name__)


def _majority(values: pd.Series) -> str:
    """The most common non-empty value ("?" when none), ties to the first seen."""
    present = [value for value in values if value]
    return Counter(present).most_common(1)[0][0] if present else "?"


def speaker_splits(strata: dict[str, tuple[str, str]], seed: int) -> dict[str, str]:
    """Assigns speakers to train/dev/test: about 80/10/10 of speakers, stratified, seeded.

    Speakers are ordered so that any prefix holds every (gender, age group) stratum in
    proportion (a systematic sample: within a shuffled stratum of size m, speaker i gets the
    rank (i + u) / m, u a random offset); the first 10 % go to test, the next 10 % to dev.
    Then each gender with at least 2 speakers is made present in test and dev, taking a
    train speaker of it (swapped for a speaker of a gender the split holds twice, else added).

    Args:
        strata: speaker -> (gender, age group), "?" for unknown.
        seed: for the shuffles and offsets.

    Returns:
        speaker -> split.
    """
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, str], list[str]] = {}
    for speaker in sorted(strata):
        groups.setdefault(strata[speaker], []).append(speaker)
    ranked = []
    for stratum in sorted(groups):
        members = groups[stratum]
        rng.shuffle(members)
        offset = rng.random()
        ranked += [((i + offset) / len(members), rng.random(), speaker)
                   for i, speaker in enumerate(members)]
    order = [speaker for *_, speaker in sorted(ranked)]
    n = len(order)
    n_held = max(1, round(0.1 * n)) if n >= 3 else 0
    split_of = {speaker: ("test" if i < n_held else "dev" if i < 2 * n_held else "train")
                for i, speaker in enumerate(order)}
    gender_of = {speaker: strata[speaker][0] for speaker in order}
    totals = Counter(gender_of.values())
    for split in ("test", "dev") if n_held else ():
        for gender in labels.GENDERS:
            members = [s for s in order if split_of[s] == split]
            if totals[gender] < 2 or any(gender_of[s] == gender for s in members):
                continue
            donors = [s for s in order if split_of[s] == "train" and gender_of[s] == gender]
            if not donors:
                continue
            held = Counter(gender_of[s] for s in members)
            spare = [s for s in members if held[gender_of[s]] > 1]
            if spare:
                split_of[spare[-1]] = "train"
            split_of[donors[0]] = split
    return split_of


def assign_splits(clips: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """Gives every row with an empty split one, by speaker (see ``speaker_splits``).

    A speaker who already has rows in a split keeps their other rows there too. A row
    without a speaker id is its own unit (so it may share a speaker with another split:
    a warning says how many). Rows come back grouped by split (train, dev, test), each in
    its former order.
    """
    todo = (clips["split"] == "").to_numpy()
    if not todo.any():
        return clips
    speakers = clips["speaker_id"].astype(str)
    anonymous = speakers == ""
    if (anonymous & todo).any():
        log.warning("%s: %d rows without a speaker id are split clip by clip; their speakers "
                    "may be in two splits", clips["source_file"].iloc[0],
                    int((anonymous & todo).sum()))
    units = speakers.where(~anonymous, "\0row " + clips.index.astype(str))
    fixed = clips.loc[~todo & ~anonymous].groupby(units[~todo & ~anonymous])["split"].first()
    free = units[todo & ~units.isin(fixed.index)]
    genders = clips["gender_raw"].map(labels.normalise_gender).fillna("")
    ages = clips["age_raw"].map(labels.normalise_age).fillna("")
    table = pd.DataFrame({"unit": units, "gender": genders, "age": ages})[units.isin(free)]
    strata = {unit: (_majority(part["gender"]), _majority(part["age"]))
              for unit, part in table.groupby("unit", sort=True)}
    assignment = {**speaker_splits(strata, seed), **fixed.to_dict()}
    clips = clips.assign(split=np.where(todo, units.map(assignment), clips["split"]))
    order = clips["split"].map({split: i for i, split in enumerate(SPLITS)})
    return clips.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)
