"""Who is who: per-window voice embeddings → speaker ids ``S1``, ``S2``, ...

Windows of one recording are grouped by agglomerative clustering on cosine distance
(average linkage): either cut at a distance threshold (the number of speakers is then
found, not given) or into a fixed number of clusters. Speaker ids follow the order in which
each speaker first speaks, so ``S1`` is always the first voice heard.

Pure functions over numpy arrays; no model is loaded here.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy.cluster import hierarchy
from scipy.spatial import distance

from agegender.errors import ParameterError

# Cosine distance at which two groups of windows stop being merged, for callers of
# cluster_speakers that give none. The timeline's own default is
# TimelineParams.speaker_threshold (0.41, chosen by DER on the dev recordings of
# bench/timeline_bench.py), passed explicitly.
DEFAULT_DISTANCE_THRESHOLD = 0.5

# Windows whose gender probabilities are averaged for each window before the gender penalty
# (``neighbour_mean``): the gender model hears some voices inconsistently (one dev speaker:
# 17-72 % of his windows p(male) > 0.9, 9-37 % < 0.1), and a penalty on single windows splits
# such a voice in two. 40 of ~230 partials per 3-min recording (bench/README.md).
GENDER_NEIGHBOURS = 40


def speaker_ids(count: int) -> list[str]:
    """Names of ``count`` speakers: ``["S1", "S2", ...]``."""
    return [f"S{i + 1}" for i in range(count)]


def _check_embeddings(embeddings: np.ndarray) -> np.ndarray:
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[1] == 0:
        raise ParameterError(
            f"embeddings has shape {embeddings.shape}; expected [windows, dims] with dims > 0")
    if not np.all(np.isfinite(embeddings)):
        raise ParameterError("embeddings contains NaN or infinite values")
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)  # [windows, 1]
    if np.any(norms == 0):
        row = int(np.flatnonzero(norms[:, 0] == 0)[0])
        raise ParameterError(f"embeddings row {row} is all zeros; cannot take its direction")
    return embeddings / norms


def _order_by_first_appearance(raw: np.ndarray) -> np.ndarray:
    """Relabels cluster numbers 0..k-1 so that cluster 0 holds window 0, and so on."""
    _, first = np.unique(raw, return_index=True)
    order = raw[np.sort(first)]  # cluster numbers in order of first window
    mapping = {int(c): i for i, c in enumerate(order)}
    return np.array([mapping[int(c)] for c in raw], dtype=np.int64)


def _check_parameters(distance_threshold, num_speakers, gender_weight, gender_neighbours):
    """``cluster_speakers``'s scalar arguments, each refused in one line."""
    if num_speakers is not None and (
            isinstance(num_speakers, bool) or not isinstance(num_speakers, numbers.Integral)
            or num_speakers < 1):
        raise ParameterError(f"num_speakers={num_speakers!r}; expected an integer >= 1")
    if not (isinstance(distance_threshold, numbers.Real)
            and math.isfinite(distance_threshold) and 0 <= distance_threshold <= 2):
        raise ParameterError(
            f"distance_threshold={distance_threshold!r}; expected a cosine distance in 0-2")
    if not (isinstance(gender_weight, numbers.Real) and math.isfinite(gender_weight)
            and gender_weight >= 0):
        raise ParameterError(f"gender_weight={gender_weight!r}; expected a number >= 0")
    if (isinstance(gender_neighbours, bool) or not isinstance(gender_neighbours, numbers.Integral)
            or gender_neighbours < 1):
        raise ParameterError(f"gender_neighbours={gender_neighbours!r}; expected an integer >= 1")


def cluster_speakers(
    embeddings: np.ndarray,
    *,
    distance_threshold: float = DEFAULT_DISTANCE_THRESHOLD,
    num_speakers: int | None = None,
    gender: np.ndarray | None = None,
    gender_weight: float = 0.0,
    gender_neighbours: int = GENDER_NEIGHBOURS,
) -> np.ndarray:
    """Groups windows by voice.

    Args:
        embeddings: [windows, dims] voice embeddings in time order (normalised here, so
            L2-normalised input is fine but not required).
        distance_threshold: cosine distance (0-2) above which clusters are not merged;
            ignored when ``num_speakers`` is given.
        num_speakers: exact number of speakers wanted (>= 1); ``None`` = found from
            ``distance_threshold``. More speakers than windows gives one per window.
        gender: [windows] probability (0-1) of one gender per window, from a gender
            model; NaN = unknown. ``None`` = clustering by voice alone.
        gender_weight: added to the distance of two windows per unit of difference of
            their ``gender`` (``gender_distance``), so voices heard as different genders
            stay apart (a soft cannot-link); 0 = voice alone.
        gender_neighbours: each window's ``gender`` is first the mean over this many
            windows nearest to it by voice, itself included (``neighbour_mean``), so one
            voice that the model hears inconsistently is not split; 1 = its own.

    Returns:
        [windows] int64 speaker index, 0 for the first speaker heard, 1 for the next new
        voice, and so on (index ``i`` is speaker ``speaker_ids(...)[i]``).

    Raises:
        ParameterError: on a bad shape, non-finite or all-zero rows, or bad parameters.
    """
    _check_parameters(distance_threshold, num_speakers, gender_weight, gender_neighbours)
    unit = _check_embeddings(embeddings)  # [windows, dims]
    windows = unit.shape[0]
    if windows == 0:
        return np.zeros(0, dtype=np.int64)
    if windows == 1:
        return np.zeros(1, dtype=np.int64)
    # Rounding can leave tiny negative distances between identical rows.
    condensed = np.clip(distance.pdist(unit, metric="cosine"), 0.0, 2.0)  # [w*(w-1)/2]
    if gender is not None and gender_weight > 0:
        heard = neighbour_mean(unit, gender_probabilities(gender, windows), gender_neighbours)
        condensed += gender_weight * gender_distance(heard, windows)  # [w*(w-1)/2]
    tree = hierarchy.linkage(condensed, method="average")
    if num_speakers is not None:
        raw = hierarchy.fcluster(tree, t=min(int(num_speakers), windows), criterion="maxclust")
    else:
        raw = hierarchy.fcluster(tree, t=float(distance_threshold), criterion="distance")
    return _order_by_first_appearance(np.asarray(raw))


def gender_distance(gender: np.ndarray, windows: int) -> np.ndarray:
    """How differently two windows are gendered: |p_i - p_j| for every pair.

    Args:
        gender: [windows] probability (0-1) of one gender per window; NaN = unknown (a
            window too short for the model), which is no evidence: distance 0.
        windows: the number of windows expected (the embeddings' rows).

    Returns:
        [windows * (windows - 1) / 2] float64 in 0-1, in ``scipy.spatial.distance.pdist``'s
        pair order (a condensed matrix).
    """
    gender = gender_probabilities(gender, windows)
    return np.nan_to_num(distance.pdist(gender[:, np.newaxis], metric="cityblock"), nan=0.0)


def gender_probabilities(gender: np.ndarray, windows: int) -> np.ndarray:
    """``gender`` checked: float64 [windows] in 0-1 or NaN (else one-line ParameterError)."""
    gender = np.asarray(gender, dtype=np.float64)
    if gender.shape != (windows,):
        raise ParameterError(f"gender has shape {gender.shape}; expected [{windows}] (one "
                             "probability per window)")
    if np.any((gender < 0) | (gender > 1)):
        raise ParameterError("gender holds values outside 0-1; expected probabilities")
    return gender


def neighbour_mean(unit: np.ndarray, values: np.ndarray, neighbours: int, *,
                   rows: int = 512) -> np.ndarray:
    """Each window's ``values`` averaged over the ``neighbours`` windows closest to it in
    cosine (itself included; all of them when there are fewer), NaN values skipped.

    Args:
        unit: [windows, dims] L2-normalised embeddings.
        values: [windows] float, NaN = unknown.
        neighbours: how many windows to average (>= 1).
        rows: windows compared at a time (memory: rows x windows float32).

    Returns:
        [windows] float64 means; NaN where every neighbour's value is unknown.
    """
    count = min(int(neighbours), unit.shape[0])
    known = np.isfinite(values)
    filled = np.where(known, values, 0.0)  # [windows]
    means = np.empty(unit.shape[0])
    single = unit.astype(np.float32)
    for start in range(0, unit.shape[0], rows):
        similarity = single[start:start + rows] @ single.T  # [rows, windows]
        near = np.argpartition(-similarity, count - 1, axis=1)[:, :count]  # [rows, count]
        hits = known[near].sum(axis=1)  # [rows]
        means[start:start + rows] = np.where(
            hits > 0, filled[near].sum(axis=1) / np.maximum(hits, 1), np.nan)
    return means


def speaker_log_odds(window_log_odds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean log-odds of each speaker's windows.

    Args:
        window_log_odds: [windows] log-odds of one class per window (e.g. log p/(1-p)).
        labels: [windows] speaker index from ``cluster_speakers``.

    Returns:
        [speakers] mean log-odds over all windows of each speaker.
    """
    window_log_odds = np.asarray(window_log_odds, dtype=np.float64)
    labels = np.asarray(labels)
    if window_log_odds.shape != labels.shape or labels.ndim != 1:
        raise ParameterError(
            f"window_log_odds has shape {window_log_odds.shape} and labels "
            f"{labels.shape}; expected two [windows] arrays")
    if labels.size == 0:
        return np.zeros(0)
    count = int(labels.max()) + 1
    sums = np.bincount(labels, weights=window_log_odds, minlength=count)  # [speakers]
    hits = np.bincount(labels, minlength=count)  # [speakers]
    return sums / np.maximum(hits, 1)


# A window keeps its own label against its speaker's only when the model is this sure of the
# other class (|log-odds| >= 4 nats, p >= 0.982): one speaker's voice is one gender, so a
# lone window's weak disagreement is noise, but a confident one hints at a clustering error
# (two voices merged) that the per-speaker vote would hide.
STRONG_DISAGREEMENT = 4.0


def speaker_labels(window_log_odds: np.ndarray, labels: np.ndarray, *,
                   strong: float = STRONG_DISAGREEMENT) -> tuple[np.ndarray, np.ndarray]:
    """Per-window binary labels decided per speaker, with strong dissent kept.

    Args:
        window_log_odds: [windows] log-odds of the positive class per window.
        labels: [windows] speaker index from ``cluster_speakers``.
        strong: |log-odds| (nats) from which a window that disagrees with its speaker keeps
            its own label.

    Returns:
        ``(speaker_positive, window_positive)``: [speakers] bool, the sign of each speaker's
        mean log-odds (> 0 = positive class); [windows] bool, the speaker's label except for
        windows of the other sign with |log-odds| >= ``strong``.
    """
    if not (isinstance(strong, numbers.Real) and math.isfinite(strong) and strong >= 0):
        raise ParameterError(f"strong={strong!r}; expected log-odds >= 0")
    window_log_odds = np.asarray(window_log_odds, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    speaker_positive = speaker_log_odds(window_log_odds, labels) > 0  # [speakers]
    window_positive = speaker_positive[labels]  # [windows]
    dissent = (window_positive != (window_log_odds > 0)) & (np.abs(window_log_odds) >= strong)
    return speaker_positive, np.where(dissent, window_log_odds > 0, window_positive)


def speaker_classes(window_log_probs: np.ndarray, labels: np.ndarray, *,
                    strong: float = STRONG_DISAGREEMENT
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``speaker_labels`` for any number of classes: each speaker's class from all its
    windows, a window's own class kept where it disagrees strongly.

    A speaker's log-probabilities are the mean of its windows' (``speaker_log_odds`` per
    class), renormalised; its class is their argmax. A window keeps its own top class when
    that class beats the speaker's class, in the window's own log-probabilities, by at least
    ``strong`` nats. With two classes this is exactly ``speaker_labels`` (the log-odds of a
    window are its log-probability difference).

    Args:
        window_log_probs: [windows, classes] log-probabilities per window.
        labels: [windows] speaker index from ``cluster_speakers``.
        strong: nats from which a dissenting window keeps its own class.

    Returns:
        ``(speaker_probabilities, window_class)``: float64 [speakers, classes], each
        speaker's probabilities (softmax of its mean log-probabilities); int64 [windows],
        each window's decided class.
    """
    if not (isinstance(strong, numbers.Real) and math.isfinite(strong) and strong >= 0):
        raise ParameterError(f"strong={strong!r}; expected log-odds >= 0")
    window_log_probs = np.asarray(window_log_probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if window_log_probs.ndim != 2 or window_log_probs.shape[0] != labels.shape[0]:
        raise ParameterError(f"window_log_probs has shape {window_log_probs.shape} and labels "
                             f"{labels.shape}; expected [windows, classes] and [windows]")
    means = np.stack([speaker_log_odds(column, labels) for column in window_log_probs.T],
                     axis=1) if labels.size else np.zeros((0, window_log_probs.shape[1]))
    shifted = np.exp(means - means.max(axis=1, keepdims=True)) if labels.size else means
    speaker_probabilities = shifted / shifted.sum(axis=1, keepdims=True)  # [speakers, classes]
    speaker_class = np.argmax(means, axis=1) if labels.size else np.zeros(0, np.int64)
    own = np.argmax(window_log_probs, axis=1)  # [windows]
    theirs = speaker_class[labels]  # [windows]
    margin = (window_log_probs[np.arange(labels.size), own]
              - window_log_probs[np.arange(labels.size), theirs])  # [windows] nats >= 0
    return speaker_probabilities, np.where(margin >= strong, own, theirs).astype(np.int64)


def nearest_centroid(embeddings: np.ndarray, labels: np.ndarray, *,
                     rounds: int = 2) -> np.ndarray:
    """Each window moved to the speaker whose mean direction is closest (cosine), ``rounds``
    times: agglomerative clustering never moves a window once merged, so one that straddles
    two voices can stay with the group it joined early; this puts it with the voice it
    sounds most like. Speakers left without windows vanish; the rest keep their order of
    first appearance.

    Args:
        embeddings: [windows, dims] (normalised here).
        labels: [windows] speaker index from ``cluster_speakers``.
        rounds: reassignment passes.

    Returns:
        [windows] int64 speaker index, renumbered by first appearance.
    """
    unit = _check_embeddings(embeddings)  # [windows, dims]
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size < 2:
        return labels
    for _ in range(rounds):
        count = int(labels.max()) + 1
        centres = np.zeros((count, unit.shape[1]))
        np.add.at(centres, labels, unit)  # [speakers, dims]
        norms = np.linalg.norm(centres, axis=1, keepdims=True)
        centres = centres / np.where(norms > 0, norms, 1.0)
        labels = _order_by_first_appearance(np.argmax(unit @ centres.T, axis=1))
    return labels
