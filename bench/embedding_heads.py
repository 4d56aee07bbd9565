#!/usr/bin/env python3
"""Heads on the GE2E voice-encoder embedding on the share's fixed splits (issue 31, items 3-4).

Trains the product's ``embedding`` heads (``model.build_model`` → ``compile_model``: Adam, the
``uar`` metric, the first best dev-UAR epoch kept, as ``training.train``) on arrays in memory,
picks L2 and learning rate on dev UAR, and prints per head: dev UAR, test UAR with the
speaker bootstrap (stratified by class), paired differences against the shipped
``gender.keras`` and the pitch rule, per-class recall; for age also the 3-group view, MAE in
years and the confusion matrix. With ``--ocean`` every gender head is checked on
speechocean762 (adults, teens, children apart; never trained on it).

Inputs, cached in --cache (computed once, then reused), all through the product's path
(``model_inputs.file_inputs``, speech gate on, as inference does): ``cv_embeddings.npz``
(embedding at 16 kHz), ``cv_inputs.npz`` (the 45 voice statistics at the shipped model's
features), ``cv_test_emb8k.npz`` (test embeddings at the shipped 8 kHz preset: the skew such a
model would meet), ``cv_f0.csv`` (median F0 for the pitch rule), ``ocean_*``.

    python3 bench/embedding_heads.py --share /work/shared/cv-sample --cache /work/cache \
        --task gender --seeds 2 [--ocean DIR] [--save /work/cache/heads]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import sys
from pathlib import Path

import common
import numpy as np
import pandas as pd

from agegender import checkpoints, labels, metrics, pitch
from agegender.config import ModelParams

SHIPPED = common.REPO / "models" / "pretrained" / "gender.keras"
GRID = [(l2, lr) for l2 in (1e-4, 1e-2) for lr in (1e-4, 1e-3)]
GENDER_HEADS = {"emb logistic": ("emb", False, 0), "emb+stats logistic": ("emb", True, 0),
                "emb MLP32": ("emb", False, 32), "emb MLP64": ("emb", False, 64),
                "emb+stats MLP32": ("emb", True, 32), "emb+stats MLP64": ("emb", True, 64)}
AGE_HEADS = {"stats logistic": (None, True, 0), "emb+stats logistic": ("emb", True, 0),
             "emb+stats MLP32": ("emb", True, 32), "emb+stats MLP64": ("emb", True, 64)}
MIDPOINT_YEARS = np.array([16.0, 25.0, 35.0, 45.0, 55.0, 65.0])  # teens (13-19) ... sixties
GROUP3 = np.array([0, 0, 1, 1, 2, 2])  # young < 30, middle 30-49, senior >= 50


def _clip(job):
    from agegender.errors import AudioError
    from agegender.model_inputs import file_inputs

    path, features, kinds = job
    try:
        return {k: v[0] for k, v in file_inputs(path, features, kinds, min_voiced=0.1).items()}
    except AudioError:  # undecodable or no speech by the gate: a row of nan
        return None


def clip_inputs(paths: list[Path], features, kinds: tuple[str, ...], jobs: int) -> dict:
    """{kind: float32 [clips, ...]} through the product path; nan rows where it refuses."""
    from agegender.model_inputs import input_shape

    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        rows = []
        for row in pool.imap(_clip, [(str(p), features, kinds) for p in paths], chunksize=8):
            rows.append(row)
            if len(rows) % 500 == 0:
                print(f"  {kinds}: {len(rows)} of {len(paths)} clips", file=sys.stderr, flush=True)
    return {k: np.stack([r[k] if r else np.full(input_shape(k, features), np.nan)
                         for r in rows]).astype(np.float32) for k in kinds}


def cached(path: Path, make) -> dict:
    if not path.is_file():
        np.savez(path, **make())
    return dict(np.load(path))


def load_share(share: Path, cache: Path, features, jobs: int) -> pd.DataFrame:
    """The manifest with codes and, per clip, ``emb`` (16 kHz), ``stats`` and ``f0``."""
    table = pd.read_csv(share / "manifest.csv")
    paths = [share / p for p in table["path"]]
    emb = cached(cache / "cv_embeddings.npz", lambda: {
        "path": table["path"].to_numpy(str), **clip_inputs(
            paths, dataclasses.replace(features, sample_rate=16000), ("embedding",), jobs)})
    order = {p: i for i, p in enumerate(emb["path"])}
    made = cached(cache / "cv_inputs.npz", lambda: {
        "path": table["path"].to_numpy(str),
        **clip_inputs(paths, features, ("pitch",), jobs)})
    if list(made["path"]) != list(table["path"]):
        raise SystemExit(f"{cache / 'cv_inputs.npz'} is of another manifest: remove it")
    table["emb"] = list(emb.get("embedding")[[order[p] for p in table["path"]]])
    table["stats"] = list(made["pitch"])
    table["f0"] = pitch.cached_median_f0(list(table["path"]), root=share,
                                         cache=cache / "cv_f0.csv")
    table["gender_code"] = [labels.GENDERS.index(g) for g in table["gender"]]
    table["age_code"] = [labels.AGES.index(a) if labels.normalise_age(a) else -1
                         for a in table["age"]]
    return table


def arrays(table: pd.DataFrame, emb: str | None, stats: bool) -> dict:
    inputs = {"embedding": np.stack(table[emb])} if emb else {}
    if stats:
        inputs["pitch"] = np.stack(table["stats"])
    return inputs


def fit_head(task, data, emb, stats, units, l2, lr, seed):
    """One head trained as ``training.train`` does; returns (model, best dev UAR, epoch)."""
    import keras

    from agegender.model import build_model, compile_model
    from agegender.training import balanced_class_weight

    names = labels.class_names(task)
    params = ModelParams(task=task, class_names=names, num_classes=len(names), l2=l2,
                         architecture="embedding" if emb else "voice_stats",
                         pitch_input=stats, head_units=units)
    keras.utils.set_random_seed(seed)
    model = compile_model(build_model(params, features=data["features"]), lr)
    (train, y), (dev, y_dev) = data["train"], data["dev"]
    best = {"uar": -1.0, "epoch": 0, "weights": None}

    class KeepBest(keras.callbacks.Callback):  # strict >: the first best epoch is kept
        def on_epoch_end(self, epoch, logs=None):
            if logs["val_uar"] > best["uar"]:
                best.update(uar=logs["val_uar"], epoch=epoch + 1, weights=model.get_weights())

    weight = balanced_class_weight(y, len(names)) if task == "age" else None
    model.fit(arrays(train, emb, stats), y, batch_size=data["batch"], epochs=data["epochs"],
              verbose=0,
              validation_data=(arrays(dev, emb, stats), y_dev), class_weight=weight,
              callbacks=[KeepBest()], shuffle=True)
    model.set_weights(best["weights"])
    return model, best["uar"], best["epoch"]


def probabilities(model, table, emb, stats) -> np.ndarray:
    return np.asarray(model.predict(arrays(table, emb, stats), batch_size=512, verbose=0))


def log_odds(prob: np.ndarray) -> np.ndarray:
    """log(p_female / p_male) [clips] of gender probabilities [clips, 2]."""
    return np.log(prob[:, 1] + 1e-7) - np.log(prob[:, 0] + 1e-7)


def scores(y, pred, speakers, others: dict, k: int) -> dict:
    """UAR, its interval, per-class recall, paired differences against ``others``."""
    ci = metrics.bootstrap_ci(y, pred, speakers)["balanced_accuracy"]
    row = {"uar": metrics.uar(y, pred), "ci": ci,
           "recall": [float(np.mean(pred[y == c] == c)) for c in range(k)]}
    for name, other in others.items():
        diff = metrics.paired_bootstrap_difference(y, pred, other, speakers)
        row[f"vs {name}"] = (diff["difference"], *diff["interval"])
    return row


def fmt(row: dict) -> str:
    lo, hi = row["ci"]
    text = f"{row['uar']:.3f} [{lo:.3f}, {hi:.3f}]  recall " + "/".join(
        f"{r:.2f}" for r in row["recall"])
    for key, (d, a, b) in ((k, v) for k, v in row.items() if k.startswith("vs ")):
        text += f"  {key}: {d:+.3f} [{a:+.3f}, {b:+.3f}]"
    return text


def search(task, heads, data, seeds: int) -> dict:
    """Per head: the (l2, lr) of best dev UAR at seed 0, then every seed of that recipe."""
    found = {}
    for name, (emb, stats, units) in heads.items():
        trials = [(fit_head(task, data, emb, stats, units, l2, lr, 0), l2, lr) for l2, lr in GRID]
        (model, dev, epoch), l2, lr = max(trials, key=lambda t: t[0][1])
        runs = [(model, dev, epoch)] + [fit_head(task, data, emb, stats, units, l2, lr, seed)
                                        for seed in range(1, seeds)]
        found[name] = {"recipe": (emb, stats, units, l2, lr), "runs": runs}
        print(f"  {name}: l2={l2:g} lr={lr:g}; dev UAR by (l2, lr): "
              + " ".join(f"{t[0][1]:.3f}" for t in trials), file=sys.stderr, flush=True)
    return found


def report(task, found, data, others, k, save: Path | None):
    test, y = data["test"], data["test"][0][f"{task}_code"].to_numpy()
    speakers, best = test[0]["speaker_id"].tolist(), None
    print(f"\n{task}: test {test[0]['speaker_id'].nunique()} speakers, {len(y)} clips; "
          f"UAR [95% speaker bootstrap], recall per class, paired difference [95%]")
    for name, head in found.items():
        emb, stats, units, l2, lr = head["recipe"]
        for seed, (model, dev, epoch) in enumerate(head["runs"]):
            prob = probabilities(model, test[0], emb, stats)
            row = scores(y, prob.argmax(1), speakers, others, k)
            head.setdefault("prob", prob)
            print(f"{name:22s} l2={l2:<6g} lr={lr:<6g} seed {seed} ep {epoch:2d} "
                  f"dev {dev:.3f}  test {fmt(row)}")
            if task == "age":
                age_extras(y, prob, speakers)
            if seed == 0 and (best is None or dev > best[1]["dev"]):
                best = (name, {"dev": dev, "test": row, "model": model, "epoch": epoch})
    name, info = best
    print(f"best by dev UAR: {name}")
    if save:
        save.mkdir(parents=True, exist_ok=True)
        checkpoints.save_keras(info["model"], save / f"{task}.keras")
        emb, stats, units, l2, lr = found[name]["recipe"]
        figures = {"head": name, "dev_uar": info["dev"], "best_epoch": info["epoch"],
                   "test": info["test"], "recipe": {
                       "architecture": "embedding" if emb else "voice_stats", "pitch_input": stats,
                       "head_units": units, "l2": l2, "learning_rate": lr, "epochs": data["epochs"],
                       "batch_size": data["batch"],
                       "class_weight": "balanced" if task == "age" else "none"}}
        (save / f"{task}.json").write_text(json.dumps(figures, indent=1, default=list))
    return name


def age_extras(y, prob, speakers):
    """3-group view (probabilities summed per group), MAE in years, confusion matrix."""
    pred = prob.argmax(1)
    group = np.stack([prob[:, GROUP3 == g].sum(1) for g in range(3)], 1).argmax(1)
    ci = metrics.bootstrap_ci(GROUP3[y], group, speakers)["balanced_accuracy"]
    mae = np.abs(MIDPOINT_YEARS[pred] - MIDPOINT_YEARS[y]).mean()
    print(f"{'':24s}3 groups UAR {metrics.uar(GROUP3[y], group):.3f} [{ci[0]:.3f}, "
          f"{ci[1]:.3f}]  MAE {mae:.1f} years  confusion (rows true teens..sixties): "
          + " | ".join(" ".join(str(int(np.sum((y == t) & (pred == p)))) for p in range(6))
                       for t in range(6)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--share", type=Path, required=True, help="cv-sample folder")
    parser.add_argument("--cache", type=Path, required=True, help="inputs cache folder")
    parser.add_argument("--task", choices=("gender", "age", "both"), default="both")
    parser.add_argument("--seeds", type=int, default=2, help="seeds of each chosen recipe")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--jobs", type=int, default=2, help="processes computing inputs")
    parser.add_argument("--ocean", type=Path, help="speechocean762 checkout (WAVE/, train/, test/)")
    parser.add_argument("--save", type=Path, help="write the best models and figures here")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    shipped = checkpoints.open_model(SHIPPED)
    table = load_share(args.share, args.cache, shipped.features, args.jobs)
    refused = table["stats"].map(lambda s: bool(np.isnan(s).any()))
    print(f"{int(refused.sum())} of {len(table)} clips refused by the speech gate: left out")
    table = table[~refused]
    speech = {s: table[table["split"] == s] for s in ("train", "dev", "test")}
    features = dataclasses.asdict(dataclasses.replace(shipped.features, sample_rate=16000))
    base = {"features": features, "epochs": args.epochs, "batch": args.batch}
    fit = pd.concat([speech["train"], speech["dev"]])
    rule = pitch.pitch_threshold_from_clips(list(fit["path"]), fit["gender_code"].to_numpy(),
                                            root=args.share, cache=args.cache / "cv_f0.csv")
    rule_pred = pitch.threshold_predictions(speech["test"]["f0"].to_numpy(), rule["hz"],
                                            unvoiced_code=rule["unvoiced_code"])
    if args.task in ("gender", "both"):
        data = {**base, **{s: (t, t["gender_code"].to_numpy()) for s, t in speech.items()}}
        shipped_prob = shipped.predict({"pitch": np.stack(speech["test"]["stats"])})
        others = {"shipped": shipped_prob.argmax(1), "pitch rule": rule_pred}
        found = search("gender", GENDER_HEADS, data, args.seeds)
        report("gender", found, data, others, 2, args.save)
        y, spk = speech["test"]["gender_code"].to_numpy(), speech["test"]["speaker_id"].tolist()
        dev = speech["dev"]
        shipped_dev = metrics.uar(dev["gender_code"].to_numpy(), shipped.predict(
            {"pitch": np.stack(dev["stats"])}).argmax(1))
        print(f"{'shipped voice_stats':22s} dev {shipped_dev:.3f}  test "
              f"{fmt(scores(y, others['shipped'], spk, {'pitch rule': rule_pred}, 2))}")
        print(f"{'pitch rule':22s} {rule['hz']:.0f} Hz test {fmt(scores(y, rule_pred, spk, {}, 2))}")
        test = speech["test"]  # the skew a model storing the 8 kHz voice preset would meet
        at_8k = cached(args.cache / "cv_test_emb8k.npz", lambda: clip_inputs(
            [args.share / p for p in test["path"]], shipped.features, ("embedding",), args.jobs))
        skewed = found["emb logistic"]["runs"][0][0].predict(at_8k, verbose=0).argmax(1)
        print(f"{'emb logistic, 8k in':22s} test {fmt(scores(y, skewed, spk, others, 2))}")
        fused = (log_odds(found["emb logistic"]["prob"]) + log_odds(shipped_prob)) / 2 > 0
        print(f"{'late fusion':22s} test {fmt(scores(y, fused.astype(int), spk, others, 2))}")
        if args.ocean:
            ocean(args, found, shipped, rule)
    if args.task in ("age", "both"):
        aged = {s: t[t["age_code"] >= 0] for s, t in speech.items()}
        data = {**base, **{s: (t, t["age_code"].to_numpy()) for s, t in aged.items()}}
        print("test speakers per age group:", aged["test"].groupby("age_code")["speaker_id"]
              .nunique().to_dict())
        report("age", search("age", AGE_HEADS, data, args.seeds), data, {}, 6, args.save)
    return 0


def ocean_table(args, shipped, per_speaker: int = 4) -> pd.DataFrame:
    """speechocean762's first ``per_speaker`` clips of each speaker with their inputs."""
    root, rows = args.ocean, []
    for part in ("train", "test"):
        gender, age = ({k: v for k, v in (line.split() for line in
                                          (root / part / name).read_text().splitlines() if line)}
                       for name in ("spk2gender", "spk2age"))
        for line in (root / part / "spk2utt").read_text().splitlines():
            spk, *utts = line.split()
            wavs = [root / "WAVE" / f"SPEAKER{spk}" / f"{u}.WAV" for u in utts]
            rows += [(str(w), spk, gender[spk], int(age[spk]))
                     for w in [w for w in wavs if w.is_file()][:per_speaker]]
    table = pd.DataFrame(rows, columns=["path", "speaker", "gender", "age"])
    paths = [Path(p) for p in table["path"]]
    made = cached(args.cache / "ocean_inputs.npz", lambda: {
        "path": table["path"].to_numpy(str),
        **clip_inputs(paths, shipped.features, ("pitch",), args.jobs),
        **clip_inputs(paths, dataclasses.replace(shipped.features, sample_rate=16000),
                      ("embedding",), args.jobs)})
    table["emb"], table["stats"] = list(made["embedding"]), list(made["pitch"])
    table["f0"] = pitch.cached_median_f0(list(table["path"]), cache=args.cache / "ocean_f0.csv")
    return table[~table["stats"].map(lambda s: bool(np.isnan(s).any()))]


def ocean(args, found, shipped, rule):
    """Gender on speechocean762's adults (>= 18), teens (13-15) and children (<= 12; the
    corpus' 104) apart: every head's seed 0, the shipped model, late fusion, the pitch rule
    (nothing is trained there)."""
    table = ocean_table(args, shipped)
    y = (table["gender"] == "f").to_numpy().astype(int)
    prob = {name: probabilities(head["runs"][0][0], table, *head["recipe"][:2])
            for name, head in found.items()}
    shipped_prob = shipped.predict({"pitch": np.stack(table["stats"])})
    preds = {**{name: p.argmax(1) for name, p in prob.items()}, "shipped": shipped_prob.argmax(1),
             "late fusion": ((log_odds(prob["emb logistic"]) + log_odds(shipped_prob)) > 0)
             .astype(int),
             "pitch rule": pitch.threshold_predictions(table["f0"].to_numpy(), rule["hz"],
                                                       unvoiced_code=rule["unvoiced_code"])}
    for who, keep in (("adults", table["age"] >= 18), ("teens 13-15", table["age"].between(13, 17)),
                      ("children", table["age"] <= 12)):
        keep = keep.to_numpy()
        spk = table["speaker"][keep].tolist()
        print(f"\nspeechocean762 {who}: {len(set(spk))} speakers, {int(keep.sum())} clips "
              f"({int(y[keep].sum())} female clips)")
        for name, pred in preds.items():
            print(f"{name:22s} {fmt(scores(y[keep], pred[keep], spk, {}, 2))}")


if __name__ == "__main__":
    sys.exit(main())
