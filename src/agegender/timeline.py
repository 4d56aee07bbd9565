"""Who speaks when: a long recording → segments ``(start, end, label, probability,
speaker)`` and one row per speaker.

Two streaming passes over the file (``timeline_audio``), each decoding ``block_s`` seconds at
a time and resampling block by block (``soxr.ResampleStream``), so memory does not grow with
the length of the recording (the speaker clustering's distances excepted):

1. the speech gate (``agegender.speech``) on every 20-ms frame → speech regions (pauses
   shorter than ``min_pause_s`` bridged, regions shorter than ``min_speech_s`` dropped);
2. the model's crop (``window_s``: a ``voice`` model's 2.56-s image, 3 s for ``paper``
   models, a typical clip's length) slid with ``hop_s`` over each speech region; each window
   embedded once by the voice encoder and turned into the model's inputs exactly as a clip
   is (``predict_windows``), probabilities per window and per model.

The windows' partial embeddings are clustered into speakers, and a Viterbi pass over speaker
ids gives the turns; each speaker's class comes from all its speech, a stretch keeping its
own only where it disagrees strongly (``speaker_segments``). Runs of one speaker and label
become segments. Everything outside the speech regions is one ``NO_SPEECH`` segment per
stretch and never gets a class or a speaker. ``label_segments`` is the per-window labelling
without speakers, kept for a run with no windows to embed.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os

import numpy as np

from agegender import speech
from agegender.errors import AudioError, ParameterError
from agegender.timeline_audio import (  # noqa: F401  (audio_blocks: re-exported)
    audio_blocks,
    gate_pass,
    window_audio,
)


NO_SPEECH = "no speech"
STEP_FRAMES = 5  # gate frames per decision step: 0.1 s


# Bounds of the flags that size allocations (TimelineParams refuses values outside them).
MIN_HOP_S = 0.05      # hops below the 0.1-s decision step add model calls, not resolution
MIN_WINDOW_S = 0.1
MAX_WINDOW_S = 60.0
MAX_BLOCK_S = 600.0


@dataclasses.dataclass(frozen=True)
class TimelineParams:
    """How a recording is cut into segments.

    Attributes:
        window_s: model window, seconds; 0 = the model's crop (fixed-time presets: the
            image width; ``paper``: ``PAPER_WINDOW_S``); else 0.1-60 s.
        hop_s: window hop, seconds; 0 = the window (windows side by side: half the model
            calls of a half-window hop, for 2x the speed; the Viterbi pass smooths the
            seams); else 0.05-60 s.
        min_pause_s: voiceless gaps shorter than this stay inside a speech region.
        min_speech_s: speech regions shorter than this are dropped.
        pad_s: each region widened by this much either side (onsets, unvoiced consonants).
        switch_penalty: Viterbi cost of a label change, nats; higher = fewer, longer
            segments.
        block_s: seconds decoded at a time, 1-600.
        min_voiced: the gate's share of voiced frames a file needs to be called speech at all
            (as for a clip); 0 = any voiced region counts.
        speaker_threshold: cosine distance (0 < t < 2) at which two groups of the voice
            encoder's partial embeddings stop being merged into one speaker
            (``speakers.cluster_speakers``); used when ``num_speakers`` is None.
        num_speakers: the number of speakers, when known (>= 1); None = found from
            ``speaker_threshold``.
        gender_weight: cosine distance added between two partials per unit of difference
            in a gender model's probability for their windows (0-1; each averaged over its
            ``speakers.GENDER_NEIGHBOURS`` nearest partials by voice first), so voices heard
            as different genders are not merged into one speaker; 0 = voice alone (the
            default: on dev, 0.3 cut DER but not gender error, bench/README.md); ignored
            without a gender model.
    """

    window_s: float = 0.0
    hop_s: float = 0.0
    min_pause_s: float = 0.5
    min_speech_s: float = 0.3
    pad_s: float = 0.1
    switch_penalty: float = 8.0
    block_s: float = 60.0
    min_voiced: float = 0.0
    # Chosen by DER on 16 dev recordings (bench/timeline_bench.py --split dev --recordings 8
    # --min_minutes 3 --max_minutes 3, seeds 0 and 1): pooled DER 0.227 at 0.41; fragile,
    # +-0.01 moves it (bench/README.md). The one place the timeline's default lives.
    speaker_threshold: float = 0.41
    num_speakers: int | None = None
    gender_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in ("window_s", "hop_s", "min_pause_s", "min_speech_s", "pad_s",
                     "switch_penalty", "gender_weight"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
                raise ParameterError(f"{name}={value!r} must be a finite number >= 0")
        # The flags that size allocations, bounded before anything is decoded: a window's
        # audio and a decoded block are held in memory, and every hop adds a model window.
        for name, low, high, why in (
                ("window_s", MIN_WINDOW_S, MAX_WINDOW_S, "the audio of each window is held"),
                ("hop_s", MIN_HOP_S, MAX_WINDOW_S,
                 f"at most {1 / MIN_HOP_S:.0f} model windows per second of speech")):
            value = getattr(self, name)
            if value and not low <= value <= high:
                raise ParameterError(f"{name}={value!r} must be 0 (the default) or from {low} "
                                     f"to {high} s ({why})")
        if not (isinstance(self.block_s, numbers.Real) and math.isfinite(self.block_s)
                and 1 <= self.block_s <= MAX_BLOCK_S):
            raise ParameterError(f"block_s={self.block_s!r} must be from 1 to {MAX_BLOCK_S} s "
                                 f"(a block is decoded whole: {MAX_BLOCK_S} s of 384-kHz "
                                 "audio is 0.9 GB)")
        speech.check_min_voiced(self.min_voiced)
        if not (isinstance(self.speaker_threshold, numbers.Real)
                and not isinstance(self.speaker_threshold, bool)
                and math.isfinite(self.speaker_threshold) and 0 < self.speaker_threshold < 2):
            raise ParameterError(f"speaker_threshold={self.speaker_threshold!r} must be a "
                                 "cosine distance between 0 and 2 (exclusive)")
        if self.num_speakers is not None and (
                isinstance(self.num_speakers, bool)
                or not isinstance(self.num_speakers, numbers.Integral) or self.num_speakers < 1):
            raise ParameterError(f"num_speakers={self.num_speakers!r} must be an integer >= 1 "
                                 "(or None: found from speaker_threshold)")


PAPER_WINDOW_S = 3.0  # paper models squeeze a whole clip; Common Voice clips are ~3-6 s


def model_window_s(features) -> float:
    """The span one model input covers, seconds: a fixed-time image's width, else 3 s."""
    if features.fixed_time:
        return features.image_shape[1] * features.hop_length / features.sample_rate
    return PAPER_WINDOW_S


@dataclasses.dataclass(frozen=True)
class Segment:
    """One stretch of a recording: ``label`` is a class name of the model's task or
    ``NO_SPEECH`` (then ``probability`` is None and so is ``speaker``).

    Attributes:
        start, end: seconds.
        label, probability: the (first) model's class and its probability.
        speaker: ``S1``, ``S2``, ... (first voice heard first); None for no speech.
        more: (label, probability) of further models (an age model beside the gender one).
    """

    start: float
    end: float
    label: str
    probability: float | None
    speaker: str | None = None
    more: tuple[tuple[str, float], ...] = ()

    def as_dict(self) -> dict:
        """A row of the CSV and JSON: ``COLUMNS``. Times rounded to the millisecond (what
        the analysis resolves; float noise like 12.300000000000001 s helps no reader),
        probabilities to 4 places; None (an empty cell) for no speech and for a task no
        model labels."""
        return {"start": round(self.start, 3), "end": round(self.end, 3),
                "speaker": self.speaker,
                **label_columns([(self.label, self.probability), *self.more])}


# The columns of a timeline's CSV and JSON rows, and of its per-speaker table.
COLUMNS = ("start", "end", "speaker", "gender", "gender_probability", "age", "age_probability")
SPEAKER_COLUMNS = ("speaker", "speech_s", "gender", "gender_probability", "age",
                   "age_probability")


def label_columns(labels) -> dict:
    """(label, probability) pairs of any tasks → the gender and age columns.

    A label names its task by its vocabulary (``labels.GENDERS``, ``AGES``,
    ``GENDER_AGES``); a ``gender_age`` class fills both columns with the joint class's
    probability. ``NO_SPEECH`` fills nothing.
    """
    from agegender.labels import AGES, GENDER_AGES, GENDERS  # noqa: PLC0415

    row = {"gender": None, "gender_probability": None, "age": None, "age_probability": None}
    for label, probability in labels:
        rounded = None if probability is None else round(float(probability), 4)
        if label in GENDERS:
            row.update(gender=label, gender_probability=rounded)
        elif label in AGES:
            row.update(age=label, age_probability=rounded)
        elif label in GENDER_AGES:
            gender, age = label.split("-", 1)
            row.update(gender=gender, gender_probability=rounded, age=age,
                       age_probability=rounded)
    return row


def local_reference_db(rms_db: np.ndarray, span_s: float = 30.0) -> np.ndarray:
    """Each frame's loud level: the 95th-percentile RMS of its ``span_s`` stretch, so a
    quiet speaker an hour after a loud one is still measured against her own level."""
    span = max(1, int(span_s * speech.GATE_RATE / speech.HOP))
    reference = np.empty_like(rms_db)
    for start in range(0, rms_db.shape[0], span):
        reference[start:start + span] = speech.percentile_95(rms_db[start:start + span])
    return reference


def speech_regions(voiced: np.ndarray, params: TimelineParams, duration_s: float,
                   ) -> list[tuple[float, float]]:
    """Voiced frames [frames] → sorted, disjoint (start, end) seconds of speech."""
    frame_s = speech.HOP / speech.GATE_RATE
    runs = _runs(voiced)
    merged: list[list[float]] = []
    for start, stop in runs:
        begin, end = start * frame_s, stop * frame_s + speech.FRAME / speech.GATE_RATE
        if merged and begin - merged[-1][1] < params.min_pause_s:
            merged[-1][1] = end
        else:
            merged.append([begin, end])
    regions = []
    for begin, end in merged:
        if end - begin < params.min_speech_s:
            continue
        begin, end = max(0.0, begin - params.pad_s), min(duration_s, end + params.pad_s)
        if regions and begin <= regions[-1][1]:
            regions[-1] = (regions[-1][0], end)
        else:
            regions.append((begin, end))
    return regions


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs of the True runs of a bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def windows_in(regions: list[tuple[float, float]], window_s: float, hop_s: float,
               duration_s: float) -> list[tuple[float, float]]:
    """Model windows (start, end) seconds covering every region; a region shorter than a
    window gets one window centred on it (within the recording)."""
    windows = []
    for begin, end in regions:
        if end - begin <= window_s:
            centre = 0.5 * (begin + end)
            start = min(max(0.0, centre - 0.5 * window_s), max(0.0, duration_s - window_s))
            windows.append((start, min(duration_s, start + window_s)))
            continue
        count = int(math.ceil((end - begin - window_s) / hop_s)) + 1
        for start in np.linspace(begin, end - window_s, count):
            windows.append((float(start), float(start) + window_s))
    return windows


def viterbi(log_probs: np.ndarray, switch_penalty: float) -> np.ndarray:
    """Most likely label path [steps] of per-step log probabilities [steps, classes] when
    each change of label costs ``switch_penalty``."""
    steps, classes = log_probs.shape
    back = np.zeros((steps, classes), np.int32)
    score = log_probs[0].copy()
    for t in range(1, steps):
        best = int(np.argmax(score))
        switch = score[best] - switch_penalty
        stay = score >= switch
        back[t] = np.where(stay, np.arange(classes), best)
        score = np.where(stay, score, switch) + log_probs[t]
    path = np.empty(steps, np.int32)
    path[-1] = int(np.argmax(score))
    for t in range(steps - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


@dataclasses.dataclass(frozen=True)
class WindowEvidence:
    """What the models and the voice encoder make of a recording's windows.

    Attributes:
        probabilities: one float32 [windows, classes] per model (NaN rows: a window too
            short to analyse).
        embeddings: ``voice_encoder.Embeddings`` of the analysed windows, ``owner`` being
            the window's index and ``spans`` seconds in the recording.
    """

    probabilities: tuple[np.ndarray, ...]
    embeddings: object


def predict_windows(models, windows, path, features, block_s: float,
                    batch_size: int = 64) -> WindowEvidence:
    """Each window's probabilities under every model, and its voice embedding, made once.

    Each window is embedded by the voice encoder once, ``batch_size`` windows per call
    (``voice_encoder.embed_with_partials``: the LSTM is the cost); the embedding is fed to
    each model that reads one (the shipped gender model) and kept, partial by partial, for
    the speakers, also when no model reads it (a MAM-CNN). Other inputs are made from the
    window's audio as a clip's are (``model_inputs.waveforms_inputs``), at each model's rate.

    Args:
        models: loaded models (``features``, ``inputs``, ``class_names``, ``predict``); the
            windows are cut at ``features.sample_rate``, the first model's.
        windows: (start, end) seconds, sorted.
        path: the recording.
        features: the first model's feature settings.
        block_s: seconds decoded at a time.
        batch_size: windows per encoder and model call.
    """
    from agegender.model_inputs import waveforms_inputs  # noqa: PLC0415
    from agegender.voice_encoder import GE2E, Embeddings, embed_with_partials  # noqa: PLC0415

    probabilities = tuple(np.full((len(windows), len(m.class_names)), np.nan, np.float32)
                          for m in models)
    parts = []
    # The encoder hears each window at its own 16 kHz, from the file, not from a model's
    # 8-kHz copy (an embedding of band-limited audio is another voice to it).
    encoder_rate = () if features.sample_rate == GE2E.sample_rate else (GE2E.sample_rate,)

    def flush(indexes, pairs):
        pieces = [pair[0] if encoder_rate else pair for pair in pairs]
        made = embed_with_partials([pair[1] for pair in pairs] if encoder_rate else pieces,
                                   GE2E.sample_rate)
        for model, out in zip(models, probabilities, strict=True):
            own = pieces if model.features.sample_rate == features.sample_rate else [
                _resampled(p, features.sample_rate, model.features.sample_rate)
                for p in pieces]
            out[indexes] = model.predict(waveforms_inputs(own, model.features, model.inputs,
                                                          embeddings=made.utterances))
        owner = np.asarray(indexes)[made.owner]  # [partials] window index
        starts = np.array([windows[i][0] for i in owner]).reshape(-1, 1)
        parts.append(Embeddings(made.utterances, made.partials, owner, made.spans + starts))

    indexes, pending = [], []
    for index, piece in window_audio(path, windows, features, block_s,
                                     also_rates=encoder_rate):
        indexes.append(index)
        pending.append(piece)
        if len(pending) == batch_size:
            flush(indexes, pending)
            indexes, pending = [], []
    if pending:
        flush(indexes, pending)
    if not parts:
        return WindowEvidence(probabilities, Embeddings.empty())
    return WindowEvidence(probabilities, Embeddings(
        *(np.concatenate([getattr(p, name) for p in parts])
          for name in ("utterances", "partials", "owner", "spans"))))


def _resampled(wave: np.ndarray, rate: int, want: int) -> np.ndarray:
    import soxr  # noqa: PLC0415

    return soxr.resample(wave, rate, want, quality="HQ").astype(np.float32)


def timeline(model, path: str | os.PathLike, params: TimelineParams | None = None, *,
             batch_size: int = 64, more_models=()) -> dict:
    """Segments of a recording, with who speaks when (see the module docstring).

    Args:
        model: a loaded model (``checkpoints.open_model``): ``features``, ``class_names``,
            ``inputs``, ``predict``; its window cuts the recording.
        path: audio file of any length and format libsndfile reads.
        params: TimelineParams; None = defaults.
        batch_size: windows per encoder and model call.
        more_models: further loaded models of other tasks (an age model beside a gender
            one), run on the same windows; their labels go to ``Segment.more``.

    Returns:
        ``file``, ``duration`` (s), ``segments`` (list of Segment, covering 0..duration in
        order), ``speakers`` (one dict per speaker heard: ``SPEAKER_COLUMNS``), ``voiced``
        (the share of voiced frames), ``windows`` (model calls' inputs).

    Raises:
        AudioError: the file cannot be decoded (one line naming it).
    """
    params = params or TimelineParams()
    features = model.features
    window_s = params.window_s or model_window_s(features)
    hop_s = params.hop_s or window_s
    voicing, duration = gate_pass(path, params.block_s)
    if not voicing.frames:
        raise AudioError(f"{os.fspath(path)}: too short: {duration * 1000:.0f} ms of audio, "
                         "under one 40-ms frame of the speech gate")
    voiced = speech.voiced_frames(voicing, reference_db=local_reference_db(voicing.rms_db))
    share = float(voiced.mean())
    regions = speech_regions(voiced, params, duration)
    if share < params.min_voiced:
        regions = []
    windows = windows_in(regions, window_s, hop_s, duration)
    models = (model, *more_models)
    evidence = predict_windows(models, windows, path, features, params.block_s,
                               batch_size) if windows else None
    segments, speakers = speaker_segments(
        regions, windows, evidence, [m.class_names for m in models], duration, params)
    return {"file": os.fspath(path), "duration": duration, "segments": segments,
            "speakers": speakers, "voiced": share, "windows": len(windows)}


def label_segments(regions, windows, probabilities, class_names, duration: float,
                   switch_penalty: float) -> list[Segment]:
    """Speech regions + window probabilities → segments covering [0, duration]."""
    step = STEP_FRAMES * speech.HOP / speech.GATE_RATE
    segments: list[Segment] = []
    cursor = 0.0
    window_starts = np.array([w[0] for w in windows]) if windows else np.zeros(0)
    longest = max((w[1] - w[0] for w in windows), default=0.0)
    for begin, end in regions:
        if begin > cursor:
            segments.append(Segment(cursor, begin, NO_SPEECH, None))
        segments += _region_segments(begin, end, windows, window_starts, longest,
                                     probabilities, class_names, step, switch_penalty)
        cursor = end
    if duration > cursor:
        segments.append(Segment(cursor, duration, NO_SPEECH, None))
    return segments


def _region_segments(begin, end, windows, window_starts, longest, probabilities, class_names,
                     step, switch_penalty) -> list[Segment]:
    """Labels of one speech region: windows' mean probabilities per step, Viterbi, runs."""
    mean = _step_means(begin, end, windows, window_starts, longest, probabilities, step)
    if mean is None:  # every window was too short: the region has no class
        return [Segment(begin, end, NO_SPEECH, None)]
    path = viterbi(np.log(np.maximum(mean, 1e-6)), switch_penalty)
    segments = []
    for label in np.unique(path):
        for first, stop in _runs(path == label):
            segments.append(Segment(
                begin + first * step, min(end, begin + stop * step), class_names[label],
                float(mean[first:stop, label].mean())))
    return sorted(segments, key=lambda s: s.start)


def _step_count(begin: float, end: float, step: float) -> int:
    return max(1, int(math.ceil((end - begin) / step)))


def _step_means(begin, end, windows, window_starts, longest, probabilities, step
                ) -> np.ndarray | None:
    """Mean probabilities [steps, classes] of the windows covering each 0.1-s step of one
    region (steps no window reaches take the nearest covered step's); None when no
    analysed window covers the region."""
    steps = _step_count(begin, end, step)
    centres = begin + (np.arange(steps) + 0.5) * step  # [steps] seconds
    sums = np.zeros((steps, probabilities.shape[1]))
    counts = np.zeros(steps)
    # Windows are sorted by start and no longer than the longest: only those starting
    # within [begin - longest, end) can cover this region.
    first = int(np.searchsorted(window_starts, begin - longest))
    last = int(np.searchsorted(window_starts, end))
    for index in range(first, last):
        start, stop = windows[index]
        if stop <= begin or not np.isfinite(probabilities[index]).all():
            continue
        covered = (centres >= start) & (centres < stop)
        sums[covered] += probabilities[index]
        counts[covered] += 1
    if not counts.any():
        return None
    filled = counts > 0
    if not filled.all():
        nearest = _nearest(filled)
        sums, counts = sums[nearest], counts[nearest]
    return sums / counts[:, np.newaxis]  # [steps, classes]


def _nearest(filled: np.ndarray) -> np.ndarray:
    """For each step [steps], the index of the nearest (first at or after, else last)
    step where ``filled`` is True."""
    covered = np.flatnonzero(filled)
    return covered[np.clip(np.searchsorted(covered, np.arange(filled.shape[0])), 0,
                           len(covered) - 1)]


# ----------------------------------------------------------------------- speakers


def speaker_segments(regions, windows, evidence: WindowEvidence | None, class_names,
                     duration: float, params: TimelineParams
                     ) -> tuple[list[Segment], list[dict]]:
    """Speech regions + every model's window probabilities + the windows' partial
    embeddings → segments with a speaker and labels, and one row per speaker.

    1. The partials' embeddings (1.6 s every 0.77 s) are clustered into speakers
       (``speakers.cluster_speakers``: ``params.speaker_threshold`` or
       ``params.num_speakers``; with ``params.gender_weight`` > 0 the gender model's
       disagreement between two partials' windows adds to their distance,
       ``partial_gender``); each 0.1-s step counts the partials of each speaker
       covering it, and a Viterbi pass over *speaker ids* (a change costs
       ``params.switch_penalty``) turns those counts into turns. Speaker ids, not labels, are
       smoothed because a speaker's turn is the unit that changes in a conversation, while
       a label is decided per speaker from all of its speech (next step): smoothing the labels
       first would let one misheard window flip a whole turn, and smoothing the speakers
       removes a partial's flicker between voices at a turn's edge.
    2. Per model, each step's probabilities are the mean of its windows' (as in
       ``label_segments``); each speaker's class comes from all its steps
       (``speakers.speaker_classes``), a step keeping its own class only where it disagrees
       strongly (``speakers.STRONG_DISAGREEMENT`` nats). A step then carries its speaker's
       probabilities, or its own where it dissents, and a Viterbi pass over the classes
       keeps a dissent only where it outweighs the switching cost (a dissenting window, not
       a step).
    3. Runs of one (speaker, labels) become segments.

    Args:
        regions: sorted (start, end) seconds of speech.
        windows: the model windows (start, end) seconds, sorted.
        evidence: ``predict_windows``'s; None when there are no windows.
        class_names: one sequence of class names per model.
        duration: the recording's length, s.
        params: TimelineParams.

    Returns:
        ``(segments, speakers)``: segments covering [0, duration]; per speaker heard, in
        order of first appearance, a dict of ``SPEAKER_COLUMNS``.
    """
    step = STEP_FRAMES * speech.HOP / speech.GATE_RATE
    if evidence is None or not len(evidence.embeddings.partials):
        return label_segments(regions, windows, np.full((len(windows), 1), np.nan),
                              class_names[0], duration, params.switch_penalty), []
    grid = _StepGrid(regions, step)
    partial_speaker = partial_speakers(evidence, class_names, params)  # [partials]
    window_starts = np.array([w[0] for w in windows])
    longest = max(w[1] - w[0] for w in windows)
    means = [[_step_means(begin, end, windows, window_starts, longest, probabilities, step)
              for begin, end in regions] for probabilities in evidence.probabilities]
    analysed = np.concatenate([np.full(grid.sizes[r], means[0][r] is not None)
                               for r in range(len(regions))])  # [steps]
    speaker = grid.speaker_path(evidence.embeddings.spans, partial_speaker, analysed,
                                params.switch_penalty)  # [steps], -1: no speaker
    decided = [_decided_classes(grid, per_model, speaker, params.switch_penalty)
               for per_model in means]  # per model: ([steps] class, [steps] probability, ...)
    return grid.segments(speaker, decided, class_names, duration)


def partial_speakers(evidence: WindowEvidence, class_names, params: TimelineParams
                     ) -> np.ndarray:
    """Speaker index [partials] of each partial embedding (``speaker_segments``, step 1):
    ``speakers.cluster_speakers`` (with ``partial_gender`` when ``params.gender_weight`` >
    0), then ``speakers.nearest_centroid``; renumbered by first appearance."""
    from agegender.speakers import cluster_speakers, nearest_centroid  # noqa: PLC0415

    partials = evidence.embeddings.partials  # [partials, dims]
    gender = partial_gender(evidence, class_names) if params.gender_weight > 0 else None
    found = cluster_speakers(partials, distance_threshold=params.speaker_threshold,
                             num_speakers=params.num_speakers, gender=gender,
                             gender_weight=params.gender_weight)  # [partials]
    return nearest_centroid(partials, found)


def partial_gender(evidence: WindowEvidence, class_names) -> np.ndarray | None:
    """The first gender-naming model's probability of ``male`` for each partial's window.

    Args:
        evidence: ``predict_windows``'s.
        class_names: one sequence of class names per model; a model of ``labels.GENDERS``
            counts, and so does one of ``GENDER_AGES`` (its ``male-*`` classes summed).

    Returns:
        [partials] float64 in 0-1 (NaN where the window was too short for the model), or
        None when no model names genders.
    """
    from agegender.labels import GENDER_AGES, GENDERS  # noqa: PLC0415

    for names, probabilities in zip(class_names, evidence.probabilities, strict=True):
        if tuple(names) in (GENDERS, GENDER_AGES):
            male = [i for i, name in enumerate(names) if name.split("-")[0] == GENDERS[0]]
            window_male = probabilities[:, male].astype(np.float64).sum(axis=1)  # [windows]
            return np.clip(window_male[evidence.embeddings.owner], 0.0, 1.0)  # [partials]
    return None


def _decided_classes(grid, region_means, speaker, switch_penalty):
    """One model's class per step: the speaker's from all its steps, a step's own where it
    dissents strongly, smoothed by Viterbi per region (``speaker_segments``, step 2).

    Returns:
        ``(classes, probabilities, speaker_probabilities)``: int [steps] (-1 where no
        speaker), float [steps], float [speakers, classes].
    """
    from agegender.speakers import speaker_classes  # noqa: PLC0415

    classes_count = next(m.shape[1] for m in region_means if m is not None)
    mean = np.concatenate([m if m is not None else np.full((n, classes_count), np.nan)
                           for m, n in zip(region_means, grid.sizes, strict=True)])
    spoken = speaker >= 0
    log_mean = np.log(np.maximum(mean[spoken], 1e-6))  # [spoken steps, classes]
    speaker_probabilities, own_class = speaker_classes(log_mean, speaker[spoken])
    step_evidence = speaker_probabilities[speaker[spoken]]  # [spoken steps, classes]
    dissent = own_class != np.argmax(step_evidence, axis=1)
    step_evidence[dissent] = mean[spoken][dissent]
    full = np.full_like(mean, np.nan)
    full[spoken] = step_evidence
    classes = np.full(speaker.shape[0], -1)
    # Per turn (a run of one speaker in one region): a label may change inside a turn only
    # where a dissent outweighs the switching cost; a turn's label never leaks to the next.
    for first, stop in grid.turns(speaker):
        if speaker[first] >= 0:
            classes[first:stop] = viterbi(np.log(np.maximum(full[first:stop], 1e-6)),
                                          switch_penalty)
    probability = np.where(classes >= 0, full[np.arange(len(classes)), np.maximum(classes, 0)],
                           np.nan)
    return classes, probability, speaker_probabilities


class _StepGrid:
    """The 0.1-s decision steps of all speech regions, one array over the recording."""

    def __init__(self, regions, step: float):
        self.regions, self.step = regions, step
        self.sizes = [_step_count(begin, end, step) for begin, end in regions]
        self.centres = np.concatenate(
            [begin + (np.arange(n) + 0.5) * step for (begin, _), n in
             zip(regions, self.sizes, strict=True)]) if regions else np.zeros(0)  # [steps]

    def bounds(self) -> list[tuple[int, int]]:
        """(first, stop) step index of each region."""
        edges = np.cumsum([0, *self.sizes])
        return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))

    def turns(self, speaker: np.ndarray) -> list[tuple[int, int]]:
        """(first, stop) step index of each run of one speaker within one region."""
        cuts = {0, int(speaker.shape[0])} | {first for first, _ in self.bounds()}
        cuts |= set((np.flatnonzero(np.diff(speaker)) + 1).tolist())
        edges = sorted(cuts)
        return list(zip(edges[:-1], edges[1:], strict=True))

    def speaker_path(self, spans, partial_speaker, analysed, switch_penalty) -> np.ndarray:
        """Speaker index per step [steps] (-1: not analysed), renumbered by first
        appearance: partial counts per step, nearest filled, Viterbi per region."""
        count = int(partial_speaker.max()) + 1
        first = np.searchsorted(self.centres, spans[:, 0])  # [partials] first step covered
        stop = np.searchsorted(self.centres, spans[:, 1])   # [partials] step after the last
        lengths = stop - first  # [partials]
        step = (np.repeat(first, lengths) + np.arange(lengths.sum())
                - np.repeat(np.cumsum(lengths) - lengths, lengths))  # [pairs] step index
        middle = np.repeat(spans.mean(axis=1), lengths)  # [pairs] s
        half = np.repeat(0.5 * (spans[:, 1] - spans[:, 0]), lengths)  # [pairs] s
        # A partial's vote falls off from its centre (a triangle): a partial astride a turn
        # is most likely the voice at its centre, so the turn lands between the centres of
        # the two voices' partials instead of a half-partial (0.8 s) late.
        weight = np.maximum(1.0 - np.abs(self.centres[step] - middle) / half, 1e-3)
        votes = np.zeros((self.centres.shape[0], count))  # [steps, speakers]
        np.add.at(votes, (step, np.repeat(partial_speaker, lengths)), weight)
        path = np.full(self.centres.shape[0], -1)
        for begin, end in self.bounds():
            filled = votes[begin:end].sum(axis=1) > 0
            if not analysed[begin] or not filled.any():
                continue
            local = votes[begin:end][_nearest(filled)]  # [region steps, speakers]
            share = local / local.sum(axis=1, keepdims=True)
            path[begin:end] = viterbi(np.log(np.maximum(share, 1e-6)), switch_penalty)
        order = list(dict.fromkeys(path[path >= 0].tolist()))  # first appearance
        renumber = np.full(count + 1, -1)
        renumber[order] = np.arange(len(order))
        return renumber[path]  # -1 stays -1 (renumber[-1] is the last entry: -1)

    def segments(self, speaker, decided, class_names, duration):
        """Runs of one (speaker, classes) → Segments covering [0, duration], and the
        per-speaker rows."""
        from agegender.speakers import speaker_ids  # noqa: PLC0415

        names = speaker_ids(int(speaker.max()) + 1 if speaker.size else 0)
        key = np.stack([speaker, *[d[0] for d in decided]], axis=1)  # [steps, 1 + models]
        change = np.ones(key.shape[0], bool)
        change[1:] = (key[1:] != key[:-1]).any(axis=1)
        segments, cursor = [], 0.0
        edges = set()
        for first, _ in self.bounds():
            edges.add(first)
        change[list(edges)] = True
        starts = np.flatnonzero(change)
        stops = np.r_[starts[1:], key.shape[0]]
        spoken = dict.fromkeys(names, 0.0)
        firsts = np.cumsum([0, *self.sizes])  # [regions + 1] first step of each region
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            region = int(np.searchsorted(firsts, a, side="right")) - 1
            begin, end = self.regions[region]
            offset = a - int(firsts[region])
            start = begin + offset * self.step
            stop = min(end, begin + (offset + b - a) * self.step)
            if start > cursor + 1e-9:
                segments.append(Segment(cursor, start, NO_SPEECH, None))
            if key[a, 0] < 0:
                segments.append(Segment(start, stop, NO_SPEECH, None))
            else:
                labels = [(class_names[m][key[a, 1 + m]], float(np.mean(d[1][a:b])))
                          for m, d in enumerate(decided)]
                segments.append(Segment(start, stop, *labels[0], speaker=names[key[a, 0]],
                                        more=tuple(labels[1:])))
                spoken[names[key[a, 0]]] += stop - start
            cursor = stop
        if duration > cursor + 1e-9:
            segments.append(Segment(cursor, duration, NO_SPEECH, None))
        rows = []
        for index, name in enumerate(names):
            labels = []
            for m, d in enumerate(decided):
                best = int(np.argmax(d[2][index]))
                labels.append((class_names[m][best], float(d[2][index][best])))
            rows.append({"speaker": name, "speech_s": round(spoken[name], 3),
                         **label_columns(labels)})
        return segments, rows
