"""What a model was trained on, and the one warning when that does not fit what it labels.

A trained model records ``trained_on`` in its file (``LabelledOutput``'s config, beside its
task, classes and parameters)::

    {"dataset": "DemoVoice", "kind": "synthetic", "speakers": 98, "clips": 348}

``dataset`` is the name of the folder preprocessing read (``DIR/Manifest/source.json``,
written by the clean stage, so a ``--output_dir`` elsewhere still names the source);
``kind`` is ``synthetic`` for the espeak-ng demo corpus (``demo.is_demo_corpus``) and
``real`` for anything else; ``speakers`` and ``clips`` are those of the train split that
fitted the weights. Files saved before the record existed carry none (None: unknown, no
warning).

A model trained on the synthetic demo voices says nothing about real speech, so labelling
audio outside its own demo corpus gets one warning line (``synthetic_warning``).

The demo corpus also causes some warnings on purpose (``DEMO_LABEL_VALUES``,
``DEMO_UNTRAINED_TASKS``, its thin dev split): on the demo corpus they are logged as
``note: expected in the demo: ...`` (``log_problem``), on any other dataset as WARNINGs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from agegender import atomic
from agegender.demo import is_demo_corpus

SOURCE_FILE = "source.json"  # in DIR/Manifest/: the dataset the clean stage read
KINDS = ("synthetic", "real")
DEMO_DEPTH = 4  # a demo clip sits 2 folders below its corpus (cv-valid-test/cv-valid-test/)
# What the demo does on purpose: demo.voices.extra_voices labels some extra clips "other" (as
# Common Voice does), so the cleaner has rows to drop; scripts/demo.sh trains gender and age,
# not gender_age, whose 12 classes get 4 dev/test clips each; and its 14 dev speakers leave
# 2 per age group, a dev split that split_checks calls thin.
DEMO_LABEL_VALUES = frozenset({"other"})
DEMO_UNTRAINED_TASKS = ("gender_age",)
NOTE = "note: expected in the demo: "


def is_demo_dataset(dataset_dir: str | os.PathLike) -> bool:
    """True for the demo corpus, or a dataset processed from it (``read_source``)."""
    return read_source(dataset_dir)["kind"] == "synthetic"


def log_problem(logger: logging.Logger, line: str, *, expected_in_demo: bool,
                prefix: str = "") -> str:
    """Logs ``prefix + line`` as a WARNING, or, when ``expected_in_demo``, as INFO
    ``prefix + "note: expected in the demo: " + line``; returns the line as logged, without
    ``prefix``."""
    shown = f"{NOTE}{line}" if expected_in_demo else line
    logger.log(logging.INFO if expected_in_demo else logging.WARNING, "%s%s", prefix, shown)
    return shown


def dataset_source(dataset_dir: str | os.PathLike) -> dict:
    """``{"dataset": folder name, "kind": "synthetic" | "real"}`` of a source folder."""
    folder = Path(os.path.abspath(dataset_dir))
    return {"dataset": folder.name, "kind": "synthetic" if is_demo_corpus(folder) else "real"}


def source_path(output_dir: str | os.PathLike) -> Path:
    """``DIR/Manifest/source.json``."""
    return Path(output_dir) / "Manifest" / SOURCE_FILE


def write_source(output_dir: str | os.PathLike, dataset_dir: str | os.PathLike) -> dict:
    """Records ``dataset_source(dataset_dir)`` beside the clean manifests in ``output_dir``."""
    record = dataset_source(dataset_dir)
    atomic.write_text(source_path(output_dir), json.dumps(record, indent=2) + "\n")
    return record


def read_source(dataset_dir: str | os.PathLike) -> dict:
    """The source record of a processed dataset; for one processed before the record
    existed (or damaged), ``dataset_source`` of the folder itself."""
    try:
        record = json.loads(source_path(dataset_dir).read_text(encoding="utf-8"))
        if isinstance(record, dict) and record.get("kind") in KINDS and record.get("dataset"):
            return {"dataset": str(record["dataset"]), "kind": record["kind"]}
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        pass
    return dataset_source(dataset_dir)


def trained_on(dataset_dir: str | os.PathLike, speaker_ids: Sequence[str]) -> dict:
    """The ``trained_on`` record of a model fitted on the train split of ``dataset_dir``.

    Args:
        speaker_ids: one per training example labelled for the task ("" where unknown:
            then ``speakers`` is None); ``clips`` is their count (waveform copies made by
            ``--augment_copies`` count as examples).
    """
    known = [s for s in speaker_ids if s]
    return {**read_source(dataset_dir),
            "speakers": len(set(known)) if known else None,
            "clips": len(speaker_ids)}


def demo_corpus_of(path: str | os.PathLike) -> Path | None:
    """The demo corpus folder an audio file lies in (up to ``DEMO_DEPTH`` levels up), or None."""
    folder = Path(os.path.abspath(path)).parent
    for candidate in [folder, *folder.parents][:DEMO_DEPTH]:
        if is_demo_corpus(candidate):
            return candidate
    return None


def describe(record: dict) -> str:
    """``DemoVoice: 98 speakers, 348 clips`` (the counts it has)."""
    counts = [f"{record[k]} {k}" for k in ("speakers", "clips") if record.get(k) is not None]
    return f"{record.get('dataset')}" + (f": {', '.join(counts)}" if counts else "")


def synthetic_warning(record: dict | None, files: Sequence[str | os.PathLike] | None, *,
                      model: str) -> str | None:
    """One line when a model trained on synthetic demo voices labels other audio, else None.

    Args:
        record: the model's ``trained_on`` (None: an older file, unknown: no warning).
        files: the audio it labels; None: an upload, never from the demo corpus.
        model: how the model is named in the line.
    """
    if not record or record.get("kind") != "synthetic":
        return None
    if files is None:
        outside = None
    else:
        outside = sum(1 for f in files if getattr(demo_corpus_of(f), "name", None)
                      != record.get("dataset"))
        if not outside:
            return None
    which = ("this audio is" if outside is None else
             f"{outside} of {len(files)} files {'are' if outside > 1 else 'is'}")
    return (f"{model} was trained on synthetic demo voices ({describe(record)}) and {which} "
            "not from that corpus: its labels say little about real speech (the shipped "
            "models in models/pretrained/ were trained on real voices)")
