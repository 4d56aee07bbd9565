"""Age and gender on real Common Voice speakers: the product's CLIs against simple baselines.

Works on any ``manifest`` dataset folder with a ``split`` column (first target:
``../shared/cv-sample``, 184 test speakers). For each recipe and task it runs
``src/preprocess_dataset.py --dataset_type=manifest``, ``src/train.py`` and ``src/test.py`` as
subprocesses, then scores the test step's ``predictions_<task>.csv`` with the product's own
metrics (``agegender.metrics``: UAR, accuracy, stratified speaker bootstrap) beside baselines on
the same clips:

* **majority**: the most frequent class of the train split;
* **pitch** (gender): the product's pitch rule, median F0 above a threshold fitted on the
  train+dev clips → female (``pitch.pitch_threshold_from_splits``; for gender the test
  report's ``pitch_predicted`` column is reused);
* **pitch+majority** (age, gender_age): the pitch rule's gender, then the most frequent age
  group of the train clips *of that gender* (for gender_age: that gender with that age group);
* **ina** (gender, optional): inaSpeechSegmenter's gender CNN run by ``--ina_python`` (a
  python of a virtual environment holding it, e.g. the one ``bench/timeline_bench.py
  --setup_ina`` makes) on the test clips, the mean of its female/male patch probabilities
  per clip; a clip where it finds no speech is called the train majority. Without
  ``--ina_python`` the column says "not run".

Folders under ``--work_dir`` (default ``~/.cache/agegender/common_voice``)::

    WORK/data/<preset+prep flags>/   the work copy: audio hard-linked to the source (symlinks
                                     where a hard link is impossible), manifest.csv copied, and
                                     what preprocessing writes (Manifest/, TFRecord/, Pitch/ ...)
    WORK/runs/<recipe>/<task>/       models/, results/ and each CLI's log
    WORK/report/                     summary.{md,csv}, languages.csv, groups.csv

The source folder is only read: links are made from it, never into it, and the product
replaces files by rename (``agegender.atomic``), so a hard-linked clip is never written
through. Run by hand from the repository root::

    python bench/common_voice.py --dataset_dir ../shared/cv-sample --tasks gender,age \\
        --recipe 'voice:preset=voice,epochs=8,flags="--augment --class_weight=balanced"'
    python bench/common_voice.py --dataset_dir ../shared/cv-sample --tasks gender \\
        --model gender=models/cvs/gender/best_model_gender.keras \\
        --ina_python /tmp/ina-venv/bin/python

Recipe syntax: ``NAME`` or ``NAME:key=value,key=value``; keys ``preset`` (paper|voice,
default voice), ``epochs`` (default 8), ``flags`` (more ``train.py`` flags), ``prep`` (more
``preprocess_dataset.py`` flags), ``test`` (more ``test.py`` flags); a value with commas or
spaces is quoted ("..." or '...').
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, format_table, measured  # noqa: E402  (puts src/ on the path)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from agegender import labels  # noqa: E402
from agegender.metrics import bootstrap_ci, classification_metrics  # noqa: E402

LOG = logging.getLogger("common_voice")
DEFAULT_WORK = Path.home() / ".cache" / "agegender" / "common_voice"
TOP_LANGUAGES = 10
PRESETS = ("paper", "voice")
RECIPE_KEYS = ("preset", "epochs", "flags", "prep", "test")
NOT_RUN = "not run"


# --------------------------------------------------------------------------- arguments


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One way to build a model: feature preset, epochs and the flags passed to the CLIs."""

    name: str
    preset: str = "voice"
    epochs: int = 8
    train_flags: tuple[str, ...] = ()
    prep_flags: tuple[str, ...] = ()
    test_flags: tuple[str, ...] = ()

    @property
    def data_tag(self) -> str:
        """Folder name of the work copy: recipes with the same features share one."""
        flags = "_".join(f.lstrip("-").replace("=", "-") for f in self.prep_flags)
        return re.sub(r"[^A-Za-z0-9_.-]", "", "_".join(filter(None, (self.preset, flags))))


_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_PAIR = re.compile(r"\s*(?P<key>\w+)=(?P<value>\"[^\"]*\"|'[^']*'|[^,]*)\s*(,|$)")


def parse_recipe(text: str) -> Recipe:
    """``NAME`` or ``NAME:key=value,...`` → ``Recipe`` (see the module docstring).

    Raises:
        ValueError: naming the part of ``text`` that is not understood.
    """
    name, _, rest = text.partition(":")
    if not _NAME.fullmatch(name):
        raise ValueError(f"--recipe {text!r}: name {name!r} must be letters, digits, _ . -")
    values: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _PAIR.match(rest, position)
        if match is None or match.end() == position:
            raise ValueError(f"--recipe {text!r}: expected key=value at {rest[position:]!r}")
        key, value = match["key"], match["value"].strip()
        if key not in RECIPE_KEYS:
            raise ValueError(f"--recipe {text!r}: unknown key {key!r} (keys: "
                             f"{', '.join(RECIPE_KEYS)})")
        if key in values:
            raise ValueError(f"--recipe {text!r}: key {key!r} given twice")
        if value[:1] in "\"'" and value[:1] == value[-1:] and len(value) >= 2:
            value = value[1:-1]
        values[key] = value
        position = match.end()
    preset = values.get("preset", "voice")
    if preset not in PRESETS:
        raise ValueError(f"--recipe {text!r}: preset={preset!r} is not one of "
                         f"{', '.join(PRESETS)}")
    try:
        epochs = int(values.get("epochs", "8"))
    except ValueError:
        raise ValueError(f"--recipe {text!r}: epochs={values['epochs']!r} is not a whole "
                         "number") from None
    if epochs < 1:
        raise ValueError(f"--recipe {text!r}: epochs={epochs} must be at least 1")
    return Recipe(name, preset, epochs, tuple(shlex.split(values.get("flags", ""))),
                  tuple(shlex.split(values.get("prep", ""))),
                  tuple(shlex.split(values.get("test", ""))))


def parse_models(items: Sequence[str]) -> dict[str, Path]:
    """``["gender=PATH", ...]`` → ``{task: Path}``; ``ValueError`` names a bad item."""
    models: dict[str, Path] = {}
    for item in items:
        task, sep, path = item.partition("=")
        if not sep or task not in labels.TASKS or not path:
            raise ValueError(f"--model {item!r}: expected TASK=PATH with TASK one of "
                             f"{', '.join(labels.TASKS)}")
        models[task] = Path(path).expanduser()
    return models


def parse_tasks(text: str) -> list[str]:
    """``"gender,age"`` → ``["gender", "age"]``; ``ValueError`` names an unknown task."""
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in labels.TASKS]
    if unknown or not tasks:
        raise ValueError(f"--tasks {text!r}: use some of {', '.join(labels.TASKS)}")
    return tasks


# --------------------------------------------------------------------------- the work copy


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def make_work_copy(source: Path, target: Path) -> bool:
    """Links every clip of ``source/manifest.csv`` into ``target`` and copies the manifest.

    Hard links where the file system allows (no space, no copy), else absolute symlinks.
    Paths of the manifest are untrusted: one that leaves ``source`` is refused.

    Returns:
        True when any clip is a symlink (preprocessing then needs ``--follow_symlinks``).

    Raises:
        SystemExit: naming the row or folder that is wrong.
    """
    source, target = source.resolve(), target.resolve()
    if _inside(target, source) or _inside(source, target):
        raise SystemExit(f"--work_dir: the work copy {target} must lie outside the dataset "
                         f"{source} (and not around it)")
    manifest = source / "manifest.csv"
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    if "split" not in table.columns or "path" not in table.columns:
        raise SystemExit(f"{manifest}: needs the columns path and split")
    symlinks = False
    for row, relative in enumerate(table["path"], start=2):
        clip = (source / relative).resolve()
        if not _inside(clip, source) or not clip.is_file():
            raise SystemExit(f"{manifest}:{row}: path {relative!r} is not a file inside "
                             f"{source}")
        link = target / clip.relative_to(source)
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(clip, link)
        except OSError:
            link.symlink_to(clip)
            symlinks = True
    shutil.copyfile(manifest, target / "manifest.csv")
    return symlinks or any(p.is_symlink() for p in target.rglob("*") if p.suffix != ".csv")


# --------------------------------------------------------------------------- the CLIs


def run_cli(script: str, args: Sequence[str], log_path: Path) -> float:
    """Runs ``src/<script>`` from the repository root, output to ``log_path``; CPU seconds.

    Raises:
        SystemExit: one line naming the script and its log when it fails.
    """
    command = [sys.executable, f"src/{script}", *args]
    LOG.info("%s", shlex.join(command))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, (str(REPO / "src"), os.environ.get("PYTHONPATH"))))}
    with log_path.open("w") as log:
        _, cpu, done = measured(lambda: subprocess.run(command, cwd=REPO, env=env,
                                                       stdout=log, stderr=subprocess.STDOUT))
    if done.returncode:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        raise SystemExit(f"{script} failed (exit {done.returncode}): {tail[0]} — see {log_path}")
    return cpu


def prepare(data: Path, recipe: Recipe, *, symlinks: bool) -> float | None:
    """Preprocesses the work copy (every time: preprocessing resumes, so finished PNGs and
    shards are kept, and outputs of an older product version are brought up to date);
    CPU seconds."""
    args = [f"--dataset_dir={data}", "--dataset_type=manifest",
            f"--feature_preset={recipe.preset}", f"--results_dir={data / 'results'}",
            *(["--follow_symlinks"] if symlinks else []), *recipe.prep_flags]
    return run_cli("preprocess_dataset.py", args, data / "preprocess.log")


def train(data: Path, recipe: Recipe, task: str, run: Path) -> tuple[Path, float]:
    """Trains a fresh model in ``run/models``; (its best checkpoint, CPU seconds)."""
    shutil.rmtree(run / "models", ignore_errors=True)  # the bench's own folder: a fresh run
    args = [f"--dataset_dir={data}", f"--cls_task={task}", f"--num_epochs={recipe.epochs}",
            f"--models_dir={run / 'models'}", f"--results_dir={run / 'results'}",
            *recipe.train_flags]
    cpu = run_cli("train.py", args, run / "train.log")
    return run / "models" / task / f"best_model_{task}.keras", cpu


def test(data: Path, recipe: Recipe, task: str, model: Path, run: Path) -> tuple[Path, float]:
    """Scores ``model`` on the work copy's test split; (predictions CSV, CPU seconds)."""
    args = [f"--dataset_dir={data}", f"--model_path={model}", f"--cls_task={task}",
            f"--results_dir={run / 'results'}", *recipe.test_flags]
    cpu = run_cli("test.py", args, run / "test.log")
    return run / "results" / task / f"predictions_{task}.csv", cpu


# --------------------------------------------------------------------------- the peer


INA_SCRIPT = r"""
import json, sys
import numpy as np
from inaSpeechSegmenter import Segmenter
files = json.load(sys.stdin)
segmenter = Segmenter(detect_gender=True)
network = segmenter.gender.nn
patches = []
class Recorder:  # keeps the gender CNN's raw patch outputs (female, male) of each call
    def predict(self, batch, **kwargs):
        out = network.predict(batch, **kwargs)
        patches.append(np.array(out, copy=True))
        return out
segmenter.gender.nn = Recorder()
for path in files:  # one line per clip, flushed: a stopped run keeps what it did
    patches.clear()
    segmenter(path)
    value = float(np.nanmean(np.concatenate(patches)[:, 0])) if patches else None
    print("CLIP " + json.dumps([path, value]), flush=True)
"""


def ina_female_probability(python: Path, files: Sequence[str], cache: Path, *,
                           timeout: float | None = None
                           ) -> tuple[dict[str, float | None], float]:
    """inaSpeechSegmenter's mean p(female) per clip (None: it found no speech); CPU seconds.

    Results are kept in ``cache`` (CSV path, p_female), also those of a run stopped by
    ``timeout`` (seconds), so a later call resumes and a second recipe costs nothing.

    Returns:
        ({file: p_female or None} for the files with a result, CPU seconds of this call).

    Raises:
        SystemExit: one line when ``python`` fails (not on a timeout).
    """
    known: dict[str, float | None] = {}
    if cache.is_file():
        for row in pd.read_csv(cache, keep_default_na=False, dtype=str).itertuples(index=False):
            known[row.path] = float(row.p_female) if row.p_female != "" else None
    missing = [f for f in files if f not in known]
    cpu = 0.0
    if missing:
        def call() -> tuple[int | None, str, str]:
            try:
                done = subprocess.run([str(python), "-c", INA_SCRIPT], input=json.dumps(missing),
                                      text=True, capture_output=True, timeout=timeout)
            except subprocess.TimeoutExpired as stopped:
                out = stopped.stdout or ""
                return None, out if isinstance(out, str) else out.decode(), ""
            except OSError as error:
                return 1, "", str(error)
            return done.returncode, done.stdout, done.stderr

        _, cpu, (code, stdout, stderr) = measured(call)
        for line in stdout.splitlines():
            if line.startswith("CLIP "):
                path, value = json.loads(line[len("CLIP "):])
                known[path] = value
        cache.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"path": list(known), "p_female": [
            "" if v is None else v for v in known.values()]}).to_csv(cache, index=False)
        if code:
            tail = (stderr.strip().splitlines() or [""])[-1]
            raise SystemExit(f"--ina_python {python}: failed (exit {code}): {tail}")
        if code is None:
            LOG.warning("ina: stopped after %s s with %d of %d clips done; the next run resumes",
                        timeout, sum(f in known for f in files), len(files))
    return {f: known[f] for f in files if f in known}, cpu


# --------------------------------------------------------------------------- clips and baselines


def clip_table(predictions: Path, source_manifest: Path, task: str) -> pd.DataFrame:
    """The test clips of one predictions CSV with their language and true gender and age.

    Returns:
        columns key, speaker_id, audio_path (if the CSV has it), true, pred (codes of the
        task), p [clips, classes] as ``p_<class>`` columns, median_f0_hz and pitch_gender
        (codes) when the CSV has them, language, gender, age (names, "" when unknown).
    """
    names = labels.class_names(task)
    table = pd.read_csv(predictions, dtype={"key": str, "speaker_id": str},
                        keep_default_na=False, na_values={"median_f0_hz": [""]})
    table["true_code"] = table["true"].map(names.index)
    table["pred_code"] = table["predicted"].map(names.index)
    if "pitch_predicted" in table.columns:
        table["pitch_gender"] = table["pitch_predicted"].map(labels.GENDERS.index)
    source = pd.read_csv(source_manifest, dtype=str, keep_default_na=False)
    source["key"] = [Path(p).stem for p in source["path"]]
    source = source.drop_duplicates("key").set_index("key")
    for column, normalise in (("gender", labels.normalise_gender),
                              ("age", labels.normalise_age)):
        values = source[column] if column in source.columns else pd.Series("", source.index)
        table[column] = [normalise(v) or "" for v in values.reindex(table["key"]).fillna("")]
    language = source["language"] if "language" in source.columns else pd.Series(
        "", source.index)
    table["language"] = language.reindex(table["key"]).fillna("").to_numpy()
    return table


def majority_code(train_codes: np.ndarray) -> int:
    """Most frequent code among the labelled (>= 0) train clips (ties: the lower code)."""
    codes = np.asarray(train_codes, dtype=int)
    return int(np.bincount(codes[codes >= 0]).argmax())


def age_by_gender(train: pd.DataFrame) -> dict[int, int]:
    """Most frequent age code of the train clips of each gender code (both labelled).

    ``train`` has the product's manifest columns ``gender_code`` and ``age_code`` (-1:
    unknown). A gender without any aged clip gets the overall most frequent age.
    """
    aged = train[(train["age_code"] >= 0) & (train["gender_code"] >= 0)]
    overall = majority_code(aged["age_code"].to_numpy())
    return {g: majority_code(aged.loc[aged["gender_code"] == g, "age_code"].to_numpy())
            if (aged["gender_code"] == g).any() else overall
            for g in range(len(labels.GENDERS))}


def pitch_majority_predictions(pitch_gender: np.ndarray, task: str,
                               ages: dict[int, int]) -> np.ndarray:
    """The pitch+majority baseline: the pitch rule's gender, then the train's most frequent
    age group of that gender (``age``: the group; ``gender_age``: the pair)."""
    genders = np.asarray(pitch_gender, dtype=int)
    if task == "age":
        return np.array([ages[g] for g in genders], dtype=int)
    if task == "gender_age":
        return np.array([labels.gender_age_code(g, ages[g]) for g in genders], dtype=int)
    raise ValueError(f"task={task!r}: the pitch+majority baseline is for age and gender_age")


def age_codes(codes: np.ndarray, task: str) -> np.ndarray | None:
    """Age codes of a task's codes (age: themselves; gender_age: the age part; else None)."""
    codes = np.asarray(codes, dtype=int)
    if task == "age":
        return codes
    if task == "gender_age":
        return np.array([labels.gender_age_parts(int(c))[1] for c in codes], dtype=int)
    return None


def within_one(y_true: np.ndarray, y_pred: np.ndarray, task: str) -> float:
    """±1-group accuracy: share of clips whose predicted age group is the true one or a
    neighbour (nan for tasks without age)."""
    true, pred = age_codes(y_true, task), age_codes(y_pred, task)
    if true is None or not len(true):
        return float("nan")
    return float(np.mean(np.abs(true - pred) <= 1))


# --------------------------------------------------------------------------- scoring


def score(y_true: np.ndarray, y_pred: np.ndarray, speakers: Sequence[str], task: str, *,
          probabilities: np.ndarray | None = None, seed: int = 0,
          n_resamples: int = 1000) -> dict:
    """Clip UAR and accuracy with the stratified speaker bootstrap, speaker-level UAR
    (majority vote per speaker, ``analysis.speaker_level_metrics``) and ±1 accuracy.

    Args:
        y_true, y_pred: codes [clips].
        speakers: speaker id per clip [clips].
        probabilities: [clips, classes]; None for a hard baseline (one-hot votes).
    """
    from agegender.analysis import speaker_level_metrics, speaker_table  # noqa: PLC0415

    names = labels.class_names(task)
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    metrics = classification_metrics(y_true, y_pred, names)
    ci = bootstrap_ci(y_true, y_pred, list(speakers), seed=seed, n_resamples=n_resamples)
    if probabilities is None:
        probabilities = np.eye(len(names))[y_pred]
    speaker = speaker_level_metrics(speaker_table(y_true, probabilities, list(speakers), names))
    return {"uar": metrics["balanced_accuracy"], "uar_ci": ci["balanced_accuracy"],
            "accuracy": metrics["accuracy"], "accuracy_ci": ci["accuracy"],
            "speaker_uar": speaker["majority_uar"], "within_one": within_one(y_true, y_pred, task)}


def predictors(clips: pd.DataFrame, task: str, *, majority: int,
               ages: dict[int, int] | None, ina: np.ndarray | None) -> dict[str, np.ndarray]:
    """Predicted codes [clips] of the model and each baseline that applies to ``task``."""
    out = {"model": clips["pred_code"].to_numpy(dtype=int),
           "majority": np.full(len(clips), majority, dtype=int)}
    if "pitch_gender" in clips.columns:
        if task == "gender":
            out["pitch"] = clips["pitch_gender"].to_numpy(dtype=int)
        elif ages is not None:
            out["pitch+majority"] = pitch_majority_predictions(clips["pitch_gender"], task, ages)
    if task == "gender" and ina is not None:
        out["ina"] = np.asarray(ina, dtype=int)
    return out


def _fmt(value: float, interval: tuple[float, float] | None = None) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.3f}" if interval is None else \
        f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def summary_row(clips: pd.DataFrame, task: str, recipe: str, predicted: dict[str, np.ndarray],
                cpu: dict[str, float | None], *, seed: int = 0) -> dict:
    """One row of the main table: every predictor's numbers on the same clips."""
    names = labels.class_names(task)
    p = clips[[f"p_{n}" for n in names]].to_numpy(dtype=float)
    speakers = clips["speaker_id"].tolist()
    row = {"recipe": recipe, "task": task, "clips": len(clips),
           "speakers": clips["speaker_id"].nunique(), **{f"cpu_{k}": v for k, v in cpu.items()}}
    for name, codes in predicted.items():
        result = score(clips["true_code"], codes, speakers, task, seed=seed,
                       probabilities=p if name == "model" else None)
        row.update({f"{name}_{k}": v for k, v in result.items()})
    return row


def breakdown(clips: pd.DataFrame, task: str, recipe: str, predicted: dict[str, np.ndarray],
              by: str, groups: Sequence[str]) -> list[dict]:
    """Per value of column ``by`` (language, gender or age) in ``groups``: clips, speakers,
    and each predictor's UAR, accuracy and (age tasks) ±1 accuracy on that slice."""
    rows = []
    true = clips["true_code"].to_numpy(dtype=int)
    for group in groups:
        mask = (clips[by] == group).to_numpy()
        if not mask.any():
            continue
        row = {"recipe": recipe, "task": task, "by": by, "group": group,
               "clips": int(mask.sum()), "speakers": clips.loc[mask, "speaker_id"].nunique()}
        for name, codes in predicted.items():
            codes = np.asarray(codes, dtype=int)
            metrics = classification_metrics(true[mask], codes[mask], labels.class_names(task))
            row[f"{name}_uar"] = metrics["balanced_accuracy"]
            row[f"{name}_accuracy"] = metrics["accuracy"]
            row[f"{name}_within_one"] = within_one(true[mask], codes[mask], task)
        rows.append(row)
    return rows


def largest_languages(clips: pd.DataFrame, count: int = TOP_LANGUAGES) -> list[str]:
    """The ``count`` languages with most clips (ties: alphabetical)."""
    sizes = clips.loc[clips["language"] != "", "language"].value_counts()
    return sorted(sizes.index, key=lambda lang: (-sizes[lang], lang))[:count]


# --------------------------------------------------------------------------- tables


SUMMARY_COLUMNS = ("recipe", "task", "clips", "speakers", "clip UAR [95% CI]",
                   "accuracy [95% CI]", "speaker UAR", "majority UAR", "pitch UAR [95% CI]",
                   "ina UAR [95% CI]", "pitch+majority UAR", "±1 acc (pitch+maj.)",
                   "CPU s prep/train/test")


def _cpu(value: float | str | None) -> str:
    if isinstance(value, str):
        return value
    return "reused" if value is None or not np.isfinite(value) else f"{value:.0f}"


def summary_cells(row: dict) -> list[str]:
    """The printed cells of one ``summary_row``."""
    def pair(name: str, *, ci: bool = True) -> str:
        if f"{name}_uar" not in row:
            return "–"
        return _fmt(row[f"{name}_uar"], row[f"{name}_uar_ci"] if ci else None)

    partial = row.get("ina_done")
    ina = pair("ina") if row["task"] == "gender" and "ina_uar" in row else (
        (f"{NOT_RUN} ({partial})" if isinstance(partial, str) else NOT_RUN)
        if row["task"] == "gender" else "–")
    age = row["task"] != "gender"
    return [row["recipe"], row["task"], str(row["clips"]), str(row["speakers"]),
            _fmt(row["model_uar"], row["model_uar_ci"]),
            _fmt(row["model_accuracy"], row["model_accuracy_ci"]),
            _fmt(row["model_speaker_uar"]), _fmt(row["majority_uar"]),
            pair("pitch") if row["task"] == "gender" else "–", ina,
            pair("pitch+majority", ci=False) if age else "–",
            (f"{_fmt(row['model_within_one'])} ({_fmt(row.get('pitch+majority_within_one'))})"
             if age else "–"),
            "/".join(_cpu(row.get(f"cpu_{k}")) for k in ("prep", "train", "test"))]


def breakdown_cells(row: dict, predictors_: Sequence[str]) -> list[str]:
    """Printed cells of one ``breakdown`` row: UAR / accuracy (±1 for age) per predictor."""
    cells = [row["recipe"], row["task"], row["by"], row["group"], str(row["clips"]),
             str(row["speakers"])]
    for name in predictors_:
        if f"{name}_uar" not in row:
            cells.append("–")
            continue
        text = f"{row[f'{name}_uar']:.2f} / {row[f'{name}_accuracy']:.2f}"
        if np.isfinite(row[f"{name}_within_one"]):
            text += f" / {row[f'{name}_within_one']:.2f}"
        cells.append(text)
    return cells


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                      *("| " + " | ".join(r) + " |" for r in rows)])


BREAKDOWN_PREDICTORS = ("model", "pitch", "ina", "pitch+majority", "majority")


def write_report(out: Path, summary: Sequence[dict], groups: Sequence[dict], *,
                 title: str) -> str:
    """Writes ``summary.{md,csv}``, ``languages.csv``, ``groups.csv``; the printable text."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [summary_cells(r) for r in summary]
    group_header = ("recipe", "task", "by", "group", "clips", "speakers",
                    *(f"{n} UAR / acc (/ ±1)" for n in BREAKDOWN_PREDICTORS))
    languages = [r for r in groups if r["by"] == "language"]
    others = [r for r in groups if r["by"] != "language"]
    pd.DataFrame(summary).to_csv(out / "summary.csv", index=False)
    pd.DataFrame(languages).to_csv(out / "languages.csv", index=False)
    pd.DataFrame(others).to_csv(out / "groups.csv", index=False)
    parts = [(SUMMARY_COLUMNS, rows, ""),
             (group_header, [breakdown_cells(r, BREAKDOWN_PREDICTORS) for r in languages],
              f"per language (the {TOP_LANGUAGES} largest of the split)"),
             (group_header, [breakdown_cells(r, BREAKDOWN_PREDICTORS) for r in others],
              "per true gender and age group")]
    text = "\n\n".join(f"{title}\n" * (not caption) + (f"{caption}\n" if caption else "")
                       + markdown(h, r) for h, r, caption in parts)
    (out / "summary.md").write_text(text + "\n", encoding="utf-8")
    return "\n\n".join(format_table(h, r, title=caption or title) for h, r, caption in parts)


# --------------------------------------------------------------------------- one task


def evaluate_task(data: Path, source: Path, predictions: Path, task: str, recipe: str, *,
                  cpu: dict, ina_python: Path | None, work: Path,
                  ina_timeout: float | None = None, seed: int = 0) -> tuple[dict, list[dict]]:
    """Scores one predictions CSV against every baseline: (summary row, breakdown rows)."""
    from agegender import pitch  # noqa: PLC0415
    from agegender.pitch import pitch_threshold_from_splits  # noqa: PLC0415
    from agegender.preprocess import read_clean_manifest  # noqa: PLC0415

    clips = clip_table(predictions, source / "manifest.csv", task)
    train = read_clean_manifest(data, "train")
    majority = majority_code(train[f"{task}_code"].to_numpy())
    if "pitch_gender" not in clips.columns and "audio_path" in clips.columns:
        # Not in the age reports: the same rule the gender report applies, same cache.
        threshold = pitch_threshold_from_splits(data)
        f0 = pitch.cached_median_f0(clips["audio_path"].tolist(), root=data,
                                    cache=pitch.cache_path(data))
        clips["median_f0_hz"] = f0
        clips["pitch_gender"] = pitch.threshold_predictions(
            f0, threshold["hz"], unvoiced_code=threshold["unvoiced_code"])
    ina, partial = None, None
    if task == "gender" and ina_python is not None:
        files = [str((data / p).resolve()) for p in clips["audio_path"]]
        female, cpu["ina"] = ina_female_probability(ina_python, files,
                                                    work / f"ina_{data.name}.csv",
                                                    timeout=ina_timeout)
        gender_majority = majority_code(train["gender_code"].to_numpy())
        if len(female) < len(files):  # a column on part of the clips would not compare
            partial = f"{len(female)} of {len(files)} clips"
        else:
            ina = np.array([gender_majority if female[f] is None else int(female[f] > 0.5)
                            for f in files])
            LOG.info("ina: no speech found in %d of %d clips (called the train majority)",
                     sum(v is None for v in female.values()), len(files))
    predicted = predictors(clips, task, majority=majority,
                           ages=age_by_gender(train) if task != "gender" else None, ina=ina)
    row = summary_row(clips, task, recipe, predicted, cpu, seed=seed)
    if partial:
        row["ina_done"] = partial
    groups = breakdown(clips, task, recipe, predicted, "language", largest_languages(clips))
    groups += breakdown(clips, task, recipe, predicted, "gender", labels.GENDERS)
    groups += breakdown(clips, task, recipe, predicted, "age", labels.AGES)
    return row, groups


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line; recipes, tasks and models are checked here."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", type=Path, required=True,
                        help="a manifest dataset folder (manifest.csv with a split column); "
                             "only read")
    parser.add_argument("--recipe", action="append", default=[],
                        help="NAME:preset=voice,epochs=8,flags=\"--augment\" (repeatable; "
                             "default: voice:preset=voice)")
    parser.add_argument("--tasks", default="gender", help="comma-separated: gender,age,gender_age")
    parser.add_argument("--model", action="append", default=[],
                        help="TASK=PATH: score this model instead of training (repeatable)")
    parser.add_argument("--ina_python", type=Path, default=None,
                        help="python of a venv with inaSpeechSegmenter: adds the ina column")
    parser.add_argument("--ina_timeout", type=float, default=None,
                        help="stop ina after this many seconds (what it did is kept and the "
                             "next run resumes; the column then says how far it got)")
    parser.add_argument("--work_dir", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    try:
        args.recipe = [parse_recipe(r) for r in args.recipe or ["voice:preset=voice"]]
        args.tasks = parse_tasks(args.tasks)
        args.model = parse_models(args.model)
    except ValueError as error:
        parser.error(str(error))
    if len({r.name for r in args.recipe}) < len(args.recipe):
        parser.error("--recipe: two recipes share a name")
    return args


def main(argv: list[str] | None = None) -> int:
    """Runs every recipe on every task and prints the tables."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    source, work = args.dataset_dir.resolve(), args.work_dir.expanduser().resolve()
    if not (source / "manifest.csv").is_file():
        raise SystemExit(f"--dataset_dir {source}: no manifest.csv")
    summary, groups = [], []
    for recipe in args.recipe:
        data = work / "data" / recipe.data_tag
        symlinks = make_work_copy(source, data)
        prep_cpu = prepare(data, recipe, symlinks=symlinks)
        for task in args.tasks:
            run = work / "runs" / recipe.name / task
            cpu = {"prep": prep_cpu, "train": None, "test": None}
            prep_cpu = None  # the next task reuses the features
            if task in args.model:
                model, cpu["train"] = args.model[task].resolve(), "given"
            else:
                model, cpu["train"] = train(data, recipe, task, run)
            predictions, cpu["test"] = test(data, recipe, task, model, run)
            name = recipe.name if task not in args.model else f"{recipe.name} ({model.name})"
            row, rows = evaluate_task(data, source, predictions, task, name, cpu=cpu,
                                      ina_python=args.ina_python, work=work,
                                      ina_timeout=args.ina_timeout, seed=args.seed)
            summary.append(row)
            groups += rows
    title = f"{source.name}, test split: {', '.join(args.tasks)}"
    print(write_report(work / "report", summary, groups, title=title))
    print(f"\nwrote {work / 'report'}/summary.md, summary.csv, languages.csv, groups.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
