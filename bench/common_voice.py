"""The shipped models' accuracy on real speakers: ``src/test.py`` on a manifest dataset's test
split, beside the majority class and the pitch rule (pitch+majority for age) on the same clips.

Preprocesses a work copy of ``--dataset_dir`` (clips hard-linked; the dataset is only read) in
``--work_dir`` with the product's CLI, runs ``src/test.py`` per ``--model`` (default: the
shipped models), scores each ``predictions_<task>.csv`` with ``agegender.metrics`` (speaker
bootstrap, paired difference from the baseline) and writes ``report/summary.{md,csv}``,
``languages.csv``, ``groups.csv``::

    python bench/common_voice.py --dataset_dir ../shared/cv-sample [--model gender=M.keras]
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from common import REPO, format_table, measured

from agegender import labels
from agegender.metrics import bootstrap_ci, classification_metrics, paired_bootstrap_difference

LOG = logging.getLogger("common_voice")
DEFAULT_WORK = Path.home() / ".cache" / "agegender" / "common_voice"
TOP_LANGUAGES = 10


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


def shipped_models() -> dict[str, Path]:
    """``{task: models/pretrained/<task>.keras}`` for every task with a shipped model."""
    shipped = REPO / "models" / "pretrained"
    return {t: shipped / f"{t}.keras" for t in labels.TASKS if (shipped / f"{t}.keras").is_file()}


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def make_work_copy(source: Path, target: Path) -> bool:
    """Links every clip of ``source/manifest.csv`` into ``target`` (hard links, else symlinks:
    the product replaces files by rename, so none is written through) and copies the manifest;
    True when any clip is a symlink (preprocessing then needs ``--follow_symlinks``). Raises
    ``SystemExit`` naming a row whose path leaves ``source``, or a ``target`` inside it."""
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


def run_cli(script: str, args: Sequence[str], log_path: Path) -> float:
    """Runs ``src/<script>`` from the repository root, output to ``log_path``; its CPU seconds
    (``SystemExit`` naming the script and its log when it fails)."""
    command = [sys.executable, f"src/{script}", *args]
    LOG.info("%s", shlex.join(command))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, (str(REPO / "src"), os.environ.get("PYTHONPATH"))))}
    with log_path.open("w") as log:
        _, cpu, done = measured(lambda: subprocess.run(command, cwd=REPO, env=env, check=False,
                                                       stdout=log, stderr=subprocess.STDOUT))
    if done.returncode:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        raise SystemExit(f"{script} failed (exit {done.returncode}): {tail[0]} — see {log_path}")
    return cpu


def clip_table(predictions: Path, source_manifest: Path, task: str) -> pd.DataFrame:
    """The test clips of one predictions CSV: its columns, plus true_code, pred_code,
    pitch_gender (codes, when the CSV has the pitch rule), language, gender, age (names from
    the source manifest, "" when unknown)."""
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
    """Most frequent age code of the labelled train clips of each gender code (a gender
    without any gets the overall most frequent age)."""
    aged = train[(train["age_code"] >= 0) & (train["gender_code"] >= 0)]
    overall = majority_code(aged["age_code"].to_numpy())
    return {g: majority_code(aged.loc[aged["gender_code"] == g, "age_code"].to_numpy())
            if (aged["gender_code"] == g).any() else overall
            for g in range(len(labels.GENDERS))}


def pitch_majority_predictions(pitch_gender: np.ndarray, task: str,
                               ages: dict[int, int]) -> np.ndarray:
    """The pitch+majority baseline's codes [clips] (``age``: the group; ``gender_age``: the
    pair)."""
    genders = np.asarray(pitch_gender, dtype=int)
    if task == "age":
        return np.array([ages[g] for g in genders], dtype=int)
    if task == "gender_age":
        return np.array([labels.gender_age_code(g, ages[g]) for g in genders], dtype=int)
    raise ValueError(f"task={task!r}: the pitch+majority baseline is for age and gender_age")


def within_one(y_true: np.ndarray, y_pred: np.ndarray, task: str) -> float:
    """±1-group accuracy: share of clips whose predicted age group is the true one or a
    neighbour (the age part of gender_age codes; nan for gender)."""
    if task == "gender" or not len(y_true):
        return float("nan")
    true, pred = (np.asarray(c, dtype=int) for c in (y_true, y_pred))
    if task == "gender_age":
        true, pred = (np.array([labels.gender_age_parts(int(c))[1] for c in codes])
                      for codes in (true, pred))
    return float(np.mean(np.abs(true - pred) <= 1))


def predictors(clips: pd.DataFrame, task: str, *, majority: int,
               ages: dict[int, int] | None) -> dict[str, np.ndarray]:
    """Predicted codes [clips] of the model and each baseline that applies to ``task``."""
    out = {"model": clips["pred_code"].to_numpy(dtype=int),
           "majority": np.full(len(clips), majority, dtype=int)}
    if "pitch_gender" in clips.columns:
        if task == "gender":
            out["pitch"] = clips["pitch_gender"].to_numpy(dtype=int)
        elif ages is not None:
            out["pitch+majority"] = pitch_majority_predictions(clips["pitch_gender"], task, ages)
    return out


def summary_row(clips: pd.DataFrame, task: str, model: str, predicted: dict[str, np.ndarray],
                cpu: dict[str, float | None], *, seed: int = 0) -> dict:
    """One row of the main table: every predictor's clip UAR and accuracy with the
    stratified speaker bootstrap, the model's speaker-level UAR (majority vote per speaker),
    ±1 accuracy (age), and the model's paired UAR difference from the signal baseline
    (pitch, or pitch+majority for age) on the same speaker resamples."""
    from agegender.analysis import speaker_level_metrics, speaker_table

    names = labels.class_names(task)
    true = clips["true_code"].to_numpy(dtype=int)
    speakers = clips["speaker_id"].tolist()
    row = {"model": model, "task": task, "clips": len(clips),
           "speakers": clips["speaker_id"].nunique(), **{f"cpu_{k}": v for k, v in cpu.items()}}
    for name, codes in predicted.items():
        metrics = classification_metrics(true, codes, names)
        ci = bootstrap_ci(true, codes, speakers, seed=seed)
        row.update({f"{name}_uar": metrics["balanced_accuracy"],
                    f"{name}_uar_ci": ci["balanced_accuracy"],
                    f"{name}_accuracy": metrics["accuracy"], f"{name}_accuracy_ci": ci["accuracy"],
                    f"{name}_within_one": within_one(true, codes, task)})
    p = clips[[f"p_{n}" for n in names]].to_numpy(dtype=float)
    row["model_speaker_uar"] = speaker_level_metrics(
        speaker_table(true, p, speakers, names))["majority_uar"]
    baseline = "pitch" if task == "gender" else "pitch+majority"
    if baseline in predicted:
        paired = paired_bootstrap_difference(true, predicted["model"], predicted[baseline],
                                             speakers, seed=seed)
        row["model_minus_baseline"] = paired["difference"]
        row["model_minus_baseline_ci"] = paired["interval"]
    return row


def breakdown(clips: pd.DataFrame, task: str, model: str, predicted: dict[str, np.ndarray],
              by: str, groups: Sequence[str]) -> list[dict]:
    """Per value of column ``by`` (language, gender or age) in ``groups``: clips, speakers,
    and each predictor's UAR, accuracy and (age tasks) ±1 accuracy on that slice."""
    rows = []
    true = clips["true_code"].to_numpy(dtype=int)
    for group in groups:
        mask = (clips[by] == group).to_numpy()
        if not mask.any():
            continue
        row = {"model": model, "task": task, "by": by, "group": group,
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


SUMMARY_COLUMNS = ("model", "task", "clips", "speakers", "clip UAR [95% CI]",
                   "accuracy [95% CI]", "speaker UAR", "majority UAR", "pitch UAR [95% CI]",
"pitch+majority UAR", "±1 acc (pitch+maj.)",
                   "model − pitch (or pitch+maj.) UAR [95% CI]", "CPU s prep/test")
BREAKDOWN_PREDICTORS = ("model", "pitch", "pitch+majority", "majority")


def _fmt(value: float | None, interval: tuple[float, float] | None = None,
         sign: str = "") -> str:
    if value is None or not np.isfinite(value):
        return "–"
    if interval is None:
        return f"{value:{sign}.3f}"
    return f"{value:{sign}.3f} [{interval[0]:{sign}.3f}, {interval[1]:{sign}.3f}]"


def _cpu(value: float | None) -> str:
    return "reused" if value is None or not np.isfinite(value) else f"{value:.0f}"


def summary_cells(row: dict) -> list[str]:
    """The printed cells of one ``summary_row``."""
    def uar(name: str, *, ci: bool = True) -> str:
        if f"{name}_uar" not in row:
            return "–"
        return _fmt(row[f"{name}_uar"], row[f"{name}_uar_ci"] if ci else None)

    gender = row["task"] == "gender"
    return [row["model"], row["task"], str(row["clips"]), str(row["speakers"]),
            _fmt(row["model_uar"], row["model_uar_ci"]),
            _fmt(row["model_accuracy"], row["model_accuracy_ci"]),
            _fmt(row["model_speaker_uar"]), _fmt(row["majority_uar"]),
            uar("pitch") if gender else "–",
            "–" if gender else uar("pitch+majority", ci=False),
            "–" if gender else (f"{_fmt(row['model_within_one'])} "
                                f"({_fmt(row.get('pitch+majority_within_one'))})"),
            _fmt(row.get("model_minus_baseline"), row.get("model_minus_baseline_ci"), "+"),
            "/".join(_cpu(row.get(f"cpu_{k}")) for k in ("prep", "test"))]


def breakdown_cells(row: dict) -> list[str]:
    """Printed cells of one ``breakdown`` row: UAR / accuracy (/ ±1 for age) per predictor."""
    cells = [row["model"], row["task"], row["by"], row["group"], str(row["clips"]),
             str(row["speakers"])]
    for name in BREAKDOWN_PREDICTORS:
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


def write_report(out: Path, summary: Sequence[dict], groups: Sequence[dict], *,
                 title: str) -> str:
    """Writes ``summary.{md,csv}``, ``languages.csv``, ``groups.csv``; the printable text."""
    out.mkdir(parents=True, exist_ok=True)
    group_header = ("model", "task", "by", "group", "clips", "speakers",
                    *(f"{n} UAR / acc (/ ±1)" for n in BREAKDOWN_PREDICTORS))
    languages = [r for r in groups if r["by"] == "language"]
    others = [r for r in groups if r["by"] != "language"]
    pd.DataFrame(summary).to_csv(out / "summary.csv", index=False)
    pd.DataFrame(languages).to_csv(out / "languages.csv", index=False)
    pd.DataFrame(others).to_csv(out / "groups.csv", index=False)
    parts = [(SUMMARY_COLUMNS, [summary_cells(r) for r in summary], title),
             (group_header, [breakdown_cells(r) for r in languages],
              f"per language (the {TOP_LANGUAGES} largest of the split)"),
             (group_header, [breakdown_cells(r) for r in others],
              "per true gender and age group")]
    (out / "summary.md").write_text("\n\n".join(f"{caption}\n" + markdown(h, r)
                                                for h, r, caption in parts) + "\n",
                                     encoding="utf-8")
    return "\n\n".join(format_table(h, r, title=caption) for h, r, caption in parts)


def evaluate_task(data: Path, source: Path, predictions: Path, task: str, model: str, *,
                  cpu: dict, seed: int = 0) -> tuple[dict, list[dict]]:
    """Scores one predictions CSV against every baseline: (summary row, breakdown rows)."""
    from agegender import pitch
    from agegender.commonvoice import read_clean_manifest

    clips = clip_table(predictions, source / "manifest.csv", task)
    train = read_clean_manifest(data, "train")
    if "pitch_gender" not in clips.columns and "audio_path" in clips.columns:
        # Not in the age reports: the same rule the gender report applies, same cache.
        threshold = pitch.pitch_threshold_from_splits(data)
        f0 = pitch.cached_median_f0(clips["audio_path"].tolist(), root=data,
                                    cache=pitch.cache_path(data))
        clips["pitch_gender"] = pitch.threshold_predictions(
            f0, threshold["hz"], unvoiced_code=threshold["unvoiced_code"])
    predicted = predictors(clips, task, majority=majority_code(train[f"{task}_code"]),
                           ages=age_by_gender(train) if task != "gender" else None)
    row = summary_row(clips, task, model, predicted, cpu, seed=seed)
    groups = breakdown(clips, task, model, predicted, "language", largest_languages(clips))
    groups += breakdown(clips, task, model, predicted, "gender", labels.GENDERS)
    groups += breakdown(clips, task, model, predicted, "age", labels.AGES)
    return row, groups


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line; ``--model`` items are checked here."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", type=Path, required=True,
                        help="a manifest dataset folder (manifest.csv with a split column); "
                             "only read")
    parser.add_argument("--model", action="append", default=[],
                        help="TASK=PATH, repeatable (default: every model of "
                             "models/pretrained/)")
    parser.add_argument("--preset", default="voice", choices=("paper", "voice"),
                        help="feature preset of the work copy: the models' (default voice)")
    parser.add_argument("--work_dir", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    try:
        args.model = parse_models(args.model) if args.model else shipped_models()
    except ValueError as error:
        parser.error(str(error))
    if not args.model:
        parser.error("no --model given and no shipped model in models/pretrained/")
    return args


def main(argv: list[str] | None = None) -> int:
    """Scores every model on the test split and prints the tables."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    source, work = args.dataset_dir.resolve(), args.work_dir.expanduser().resolve()
    if not (source / "manifest.csv").is_file():
        raise SystemExit(f"--dataset_dir {source}: no manifest.csv")
    from agegender.checkpoints import open_model  # the models' own rate and inputs
    from agegender.report_dirs import report_dir  # results/<task>/<model name>/

    opened = [open_model(path) for path in args.model.values()]
    rate = max(m.features.sample_rate for m in opened)
    kinds = ",".join(sorted({k for m in opened for k in m.inputs}))
    data = work / "data" / f"{args.preset}-{rate}-{kinds.replace(',', '-')}"
    symlinks = make_work_copy(source, data)
    # Every time: preprocessing resumes, keeps what is done and updates older outputs.
    prep_cpu = run_cli("preprocess_dataset.py", [
        f"--dataset_dir={data}", "--dataset_type=manifest", f"--feature_preset={args.preset}",
        f"--sample_rate={rate}", f"--inputs={kinds}", f"--results_dir={data / 'results'}",
        *(["--follow_symlinks"] if symlinks else [])], data / "preprocess.log")
    summary, groups = [], []
    for task, model in args.model.items():
        run = work / "runs" / task
        test_cpu = run_cli("test.py", [f"--dataset_dir={data}", f"--model_path={model.resolve()}",
                                       f"--cls_task={task}", f"--results_dir={run / 'results'}"],
                           run / "test.log")
        reports = report_dir(run / "results", task, model)
        row, rows = evaluate_task(data, source, reports / f"predictions_{task}.csv",
                                  task, model.name, cpu={"prep": prep_cpu, "test": test_cpu},
                                  seed=args.seed)
        prep_cpu = None  # the next task reuses the features
        summary.append(row)
        groups += rows
    title = f"{source.name}, test split: {', '.join(args.model)}"
    print(write_report(work / "report", summary, groups, title=title))
    print(f"\nwrote {work / 'report'}/summary.md, summary.csv, languages.csv, groups.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
