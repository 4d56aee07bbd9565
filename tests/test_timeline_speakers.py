"""Who speaks when: the timeline's speakers on two shipped CC0 voices joined, labels decided
per speaker (a stub model whose outputs are swapped), the files' columns, the CLI's flags."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import soxr

import inference as inference_cli
from agegender import AgeGenderDetector, voice_encoder
from agegender.config import FeatureParams
from agegender.labels import GENDERS
from agegender.shipped import pretrained_dir
from agegender.timeline import COLUMNS, NO_SPEECH, SPEAKER_COLUMNS, TimelineParams, timeline
from agegender.timeline_formats import read_rttm, write_timeline

RATE = 16_000
# Two shipped clips of different speakers (models/pretrained/clips, CC0): a man, then a woman.
MAN, WOMAN = "common_voice_pl_21385213.mp3", "common_voice_rm-vallader_21746765.mp3"
# A man whose last word runs into the woman's first (no pause long enough to split regions).
CLOSE_MAN = "common_voice_it_17420783.mp3"


def _clip(name: str) -> np.ndarray:
    audio, rate = sf.read(pretrained_dir() / "clips" / name, dtype="float32")
    audio = audio.mean(axis=1) if audio.ndim > 1 else audio
    return soxr.resample(audio, rate, RATE).astype(np.float32)


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    """(path, seconds of the join) of MAN then WOMAN, one 16-kHz WAV."""
    man, woman = _clip(MAN), _clip(WOMAN)
    path = tmp_path_factory.mktemp("joined") / "two_speakers.wav"
    sf.write(path, np.concatenate([man, woman]), RATE)
    return path, man.shape[0] / RATE


def _turns(result):
    return [(s.start, s.end, s.speaker, s.label) for s in result["segments"] if s.speaker]


@pytest.mark.parametrize("num_speakers", [None, 2])
def test_two_shipped_voices_give_two_speakers_switching_at_the_join(joined, num_speakers,
                                                                     tmp_path):
    path, join = joined
    result = AgeGenderDetector().timeline(path, TimelineParams(num_speakers=num_speakers))
    turns = _turns(result)
    assert {t[2] for t in turns} == {"S1", "S2"}, turns
    switch = next(start for start, _, speaker, _ in turns if speaker == "S2")
    assert abs(switch - join) < 1.0, (switch, join, turns)
    assert all(speaker == "S1" for start, _, speaker, _ in turns if start < switch)
    # The shipped gender model on each voice, decided per speaker.
    assert [(row["speaker"], row["gender"]) for row in result["speakers"]] == [
        ("S1", "male"), ("S2", "female")]
    write_timeline(result, tmp_path / "two", task="gender")
    assert sorted({row[3] for row in read_rttm(tmp_path / "two.rttm")}) == ["S1", "S2"]


def test_a_turn_without_a_pause_is_placed_within_a_second(tmp_path):
    man, woman = _clip(CLOSE_MAN), _clip(WOMAN)
    path = tmp_path / "close.wav"
    sf.write(path, np.concatenate([man, woman]), RATE)
    result = AgeGenderDetector().timeline(path, TimelineParams(num_speakers=2))
    turns = _turns(result)
    switch = next(start for start, _, speaker, _ in turns if speaker == "S2")
    assert abs(switch - man.shape[0] / RATE) < 1.0, turns


class StubGender:
    """A gender "model" that reads the voice embedding: female as the window sounds more like
    the woman's clip than the man's (cosine), male otherwise; ``swap`` swaps its outputs."""

    task = "gender"
    class_names = GENDERS

    def __init__(self, swap: bool = False, inputs: tuple[str, ...] = ("embedding",)):
        self.features = FeatureParams.preset("voice")
        self.inputs = inputs
        self.swap = swap
        man, woman = (voice_encoder.embed(_clip(name), RATE) for name in (MAN, WOMAN))
        self.direction = woman - man  # [256]
        self.middle = 0.5 * float((woman + man) @ self.direction)
        self.rows = 0

    def predict(self, inputs):
        first = next(iter(inputs.values()))
        self.rows += len(first)
        if "embedding" not in inputs:  # the statistics stub: undecided
            return np.full((len(first), 2), 0.5, np.float32)
        logit = 40.0 * (inputs["embedding"] @ self.direction - self.middle)  # [windows]
        female = 1.0 / (1.0 + np.exp(-logit))
        out = np.stack([1.0 - female, female], axis=1).astype(np.float32)  # [male, female]
        return out[:, ::-1] if self.swap else out


def test_swapping_the_model_outputs_swaps_each_speakers_label_and_nothing_else(joined,
                                                                                tmp_path):
    path, _ = joined
    plain = timeline(StubGender(), path)
    swapped = timeline(StubGender(swap=True), path)
    assert [(r["speaker"], r["gender"]) for r in plain["speakers"]] == [
        ("S1", "male"), ("S2", "female")]
    assert [(r["speaker"], r["gender"]) for r in swapped["speakers"]] == [
        ("S1", "female"), ("S2", "male")]
    flip = {"male": "female", "female": "male", NO_SPEECH: NO_SPEECH}
    assert [(s.start, s.end, s.speaker, flip[s.label]) for s in plain["segments"]] == \
        [(s.start, s.end, s.speaker, s.label) for s in swapped["segments"]]
    for row, other in zip(plain["speakers"], swapped["speakers"], strict=True):
        assert row["gender_probability"] == pytest.approx(other["gender_probability"])
        assert row["gender_probability"] > 0.9

    written = write_timeline(plain, tmp_path / "plain", task="gender")
    with open(tmp_path / "plain.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == COLUMNS
    speech = [r for r in rows[1:] if r[2]]
    assert speech and all(r[3] in GENDERS and r[5] == "" and r[6] == "" for r in speech)
    assert all(r[2:] == [""] * 5 for r in rows[1:] if not r[2])  # no speech: empty cells
    saved = json.loads((tmp_path / "plain.json").read_text())
    assert all(tuple(row) == COLUMNS for row in saved["segments"])
    assert all(tuple(row) == SPEAKER_COLUMNS for row in saved["speakers"])
    with open(tmp_path / "plain_speakers.csv", newline="") as handle:
        table = list(csv.reader(handle))
    assert tuple(table[0]) == SPEAKER_COLUMNS
    assert [r[0] for r in table[1:]] == ["S1", "S2"]
    assert str(tmp_path / "plain_speakers.csv") in written
    # Times rounded to the millisecond in the files.
    assert all(round(row["start"], 3) == row["start"] for row in saved["segments"])


def test_each_window_is_embedded_once(joined, monkeypatch):
    """A model that reads the embedding costs the encoder no more than one that does not:
    the embedding clustered is the one fed to the model."""
    path, _ = joined
    reads, ignores = StubGender(), StubGender(inputs=("pitch",))
    embedded = []
    original = voice_encoder.embed_partials

    def counting(frames, **kwargs):
        embedded.append(len(frames))
        return original(frames, **kwargs)

    monkeypatch.setattr(voice_encoder, "embed_partials", counting)
    timeline(reads, path)
    with_embedding = sum(embedded)
    embedded.clear()
    timeline(ignores, path)
    assert with_embedding == sum(embedded) > 0
    assert with_embedding == 2 * reads.rows  # two partials per 2.56-s window, once each


@pytest.mark.parametrize("flag, value", [("--num_speakers", "0"), ("--num_speakers", "-2"),
                                         ("--speaker_threshold", "0"),
                                         ("--speaker_threshold", "2.5"),
                                         ("--gender_weight", "-0.1"),
                                         ("--gender_weight", "nan")])
def test_bad_speaker_flags_are_refused_in_one_line(joined, tmp_path, capsys, flag, value):
    path, _ = joined
    status = inference_cli.main([f"--audio_file={path}", "--timeline",
                                 f"--timeline_dir={tmp_path}", flag, value])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {flag}="), err
    assert not list(tmp_path.iterdir())


def test_speaker_flags_reach_the_timeline_params():
    from agegender.timeline import TimelineParams
    from agegender.timeline_cli import timeline_params

    args = inference_cli.parse_args(["--audio_file=a.wav", "--timeline", "--gender_weight=0.3",
                                     "--speaker_threshold=0.45", "--num_speakers=3"])
    params = timeline_params(args)
    assert (params.gender_weight, params.speaker_threshold, params.num_speakers) == (0.3, 0.45, 3)
    defaults = timeline_params(inference_cli.parse_args(["--audio_file=a.wav", "--timeline"]))
    assert defaults == TimelineParams()


def test_cli_without_a_model_says_no_age_model_ships(joined, tmp_path, capsys):
    path, _ = joined
    status = inference_cli.main([f"--audio_file={path}", "--timeline", "--num_speakers=2",
                                 f"--timeline_dir={tmp_path}"])
    out = capsys.readouterr().out
    assert status == 0
    assert "no age model ships" in out
    assert "2 speaker(s): S1 male" in out
    rows = list(csv.DictReader(open(tmp_path / "two_speakers_speakers.csv", newline="")))
    assert [(r["speaker"], r["gender"], r["age"]) for r in rows] == [
        ("S1", "male", ""), ("S2", "female", "")]


class StubAge(StubGender):
    """An age "model" on the same embedding: "fifties" for the man's voice, "twenties" for
    the woman's (so a mix-up of the two models' columns would show)."""

    task = "age"

    def __init__(self):
        super().__init__()
        from agegender.labels import AGES

        self.class_names = AGES

    def predict(self, inputs):
        female = super().predict(inputs)[:, 1]  # [windows]
        out = np.full((len(female), len(self.class_names)), 0.02, np.float32)
        out[:, self.class_names.index("twenties")] += 0.88 * female
        out[:, self.class_names.index("fifties")] += 0.88 * (1.0 - female)
        return out


def test_an_age_model_beside_the_gender_one_fills_the_age_columns(joined):
    path, _ = joined
    result = timeline(StubGender(), path, more_models=[StubAge()])
    assert [(r["speaker"], r["gender"], r["age"]) for r in result["speakers"]] == [
        ("S1", "male", "fifties"), ("S2", "female", "twenties")]
    rows = [s.as_dict() for s in result["segments"] if s.speaker]
    assert rows and all(r["age"] == ("fifties" if r["gender"] == "male" else "twenties")
                        and 0 < r["age_probability"] <= 1 for r in rows)


def test_partial_gender_reads_the_gender_model_at_each_partials_window():
    from agegender.labels import AGES, GENDER_AGES
    from agegender.timeline import WindowEvidence, partial_gender

    owner = np.array([0, 0, 1, 2])  # [partials] window of each
    embeddings = voice_encoder.Embeddings(np.zeros((3, 4)), np.zeros((4, 4)), owner,
                                          np.zeros((4, 2)))
    gender = np.array([[0.9, 0.1], [0.2, 0.8], [np.nan, np.nan]], np.float32)
    age = np.full((3, len(AGES)), 1 / len(AGES), np.float32)
    # The age model comes first: the gender model is found by its class names.
    evidence = WindowEvidence((age, gender), embeddings)
    np.testing.assert_allclose(partial_gender(evidence, [AGES, GENDERS]),
                               [0.9, 0.9, 0.2, np.nan], rtol=1e-6)
    joint = np.zeros((3, len(GENDER_AGES)), np.float32)
    joint[:, GENDER_AGES.index("male-twenties")] = [0.3, 0.6, 0.0]
    joint[:, GENDER_AGES.index("male-sixties")] = [0.2, 0.0, 0.0]
    joint[:, GENDER_AGES.index("female-teens")] = [0.5, 0.4, 1.0]
    found = partial_gender(WindowEvidence((joint,), embeddings), [GENDER_AGES])
    np.testing.assert_allclose(found, [0.5, 0.5, 0.6, 0.0], rtol=1e-6)
    assert partial_gender(WindowEvidence((age,), embeddings), [AGES]) is None
