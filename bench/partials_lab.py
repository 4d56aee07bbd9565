"""Lab (issue 31 item 3): gender LR trained per 1.6-s encoder partial, with and without
augmented partials, against the per-clip head and the shipped ``gender.keras``.

Stage ``extract`` decodes every clip preprocessing kept (``src/preprocess_dataset.py
--inputs=pitch,embedding --sample_rate=16000``: ``<stem>.embedding.f32`` [256] and
``<stem>.pitch.f32`` [45]) the way preprocessing does (``features.load_speech``, gate 0.1),
cuts it into the encoder's partials (``voice_encoder.utterance_partials``) and embeds each
(``embed_partials``); train clips also get augmented views (below). Everything goes into one
npz. Stage ``lab`` prints the markdown tables: C of a balanced LR chosen on dev UAR, test UAR
with the stratified speaker bootstrap and paired differences (``agegender.metrics``).
Temporary: recorded in docs/experiments.md, then deleted so bench/ stays small.

    python bench/partials_lab.py extract DATA_DIR SOURCE_DIR PARTIALS_NPZ [--seeds 2 --views 2]
    python bench/partials_lab.py lab PARTIALS_NPZ
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import common  # noqa: F401  (puts src/ on the path, quiets TensorFlow)
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from agegender import metrics
from agegender.config import FeatureParams
from agegender.features import load_speech
from agegender.voice_encoder import GE2E, embed_partials, utterance_partials

C_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
GAIN_DB = (-6.0, 6.0)  # only gains that leave the clip above -30 dBFS change the frames
NOISE_P, SNR_DB = 0.5, (20.0, 35.0)  # light white noise


def augmented(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One view of a 16-kHz clip [samples]: the start moved by 0-0.77 s (one partial step),
    so its partials fall elsewhere; a gain of GAIN_DB; with NOISE_P white noise at SNR_DB."""
    offset = int(rng.integers(0, GE2E.partial_step * GE2E.hop_length))
    x = wave[min(offset, max(0, len(wave) - GE2E.hop_length)):].astype(np.float64)
    x = x * 10.0 ** (rng.uniform(*GAIN_DB) / 20.0)
    if rng.random() < NOISE_P:
        power = np.mean(x * x) / 10.0 ** (rng.uniform(*SNR_DB) / 10.0)
        x = x + rng.normal(0.0, np.sqrt(power), x.shape)
    peak = np.abs(x).max()
    return (x / peak * 0.99 if peak > 0.99 else x).astype(np.float32)


def clip_table(data_dir: Path, source: Path) -> pd.DataFrame:
    """Manifest rows of the clips preprocessing kept, with their input-file folder."""
    table = pd.read_csv(source / "manifest.csv")
    folders = {p.name.split(".")[0]: p.parent for p in data_dir.rglob("*.embedding.f32")}
    table["key"] = [Path(p).stem for p in table.path]
    table = table[table.key.isin(folders)].reset_index(drop=True)
    table["folder"] = [folders[k] for k in table.key]
    return table


def extract(args: argparse.Namespace) -> None:
    """Writes the partials npz: per partial its clip, view (-1 = the clip itself, else
    seed * views + view) and embedding; per clip its stored inputs and labels."""
    data_dir, source = Path(args.data_dir), Path(args.source_dir)
    features = FeatureParams(**json.loads((data_dir / "Spectrograms/features.json").read_text()))
    table = clip_table(data_dir, source)
    if args.limit:  # a smoke run: every k-th clip
        table = table.iloc[:: max(1, len(table) // args.limit)].reset_index(drop=True)
    owner, view_of, frames, done, embeddings = [], [], [], 0, []
    start = time.time()

    def flush():
        if frames:
            embeddings.append(embed_partials(np.concatenate(frames)))
            frames.clear()

    for i, row in enumerate(table.itertuples()):
        wave = load_speech(source / row.path, features, min_voiced=0.1)  # [samples] 16 kHz
        views = [(-1, wave)]
        if row.split == "train":
            views += [(s * args.views + v, augmented(wave, np.random.default_rng(
                [s, zlib.crc32(row.key.encode()), v]))) for s in range(args.seeds)
                for v in range(args.views)]
        for view, x in views:
            partials = utterance_partials(x, features.sample_rate)  # [p, 160, 40]
            frames.append(partials)
            owner += [i] * len(partials)
            view_of += [view] * len(partials)
            done += len(partials)
        if sum(len(f) for f in frames) >= 512:
            flush()
        if i % 200 == 0:
            print(f"{i}/{len(table)} clips, {done} partials, {time.time() - start:.0f} s",
                  flush=True)
    flush()
    emb = np.concatenate(embeddings)  # [partials, 256]
    stored = np.stack([np.fromfile(f / f"{k}.embedding.f32", "<f4")
                       for f, k in zip(table.folder, table.key, strict=True)])
    stats = np.stack([np.fromfile(f / f"{k}.pitch.f32", "<f4")
                      for f, k in zip(table.folder, table.key, strict=True)])
    np.savez(args.out, partial=emb, owner=np.array(owner), view=np.array(view_of),
             clip_embedding=stored, stats=stats, key=table.key.to_numpy(str),
             gender=np.array([{"female": 0, "male": 1}.get(g, -1) for g in table.gender]),
             speaker=table.speaker_id.to_numpy(str), split=table.split.to_numpy(str))
    print(f"wrote {args.out}: {len(table)} clips, {len(emb)} partials, "
          f"{time.time() - start:.0f} s")


def clip_means(partial: np.ndarray, owner: np.ndarray, clips: int) -> np.ndarray:
    """Mean of each clip's partial embeddings, renormalised [clips, 256] (``embed``'s rule)."""
    sums = np.zeros((clips, partial.shape[1]))
    np.add.at(sums, owner, partial)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return sums / np.where(norms > 0, norms, 1.0)  # clips without partials of a view stay 0


class Arm:
    """A balanced LR on [embedding, 45 statistics] rows, standardised on its training rows.

    Rows carry weights so that each training clip weighs its class weight in total, whatever
    its number of rows (partials or views): every clip counts as in the per-clip arm.
    """

    def __init__(self, x, clip, y, c):
        counts = np.bincount(clip)
        class_w = len(y) / (2 * np.bincount(y))  # sklearn's "balanced", over clips
        w = class_w[y[clip]] / counts[clip]
        self.mean, self.std = x.mean(axis=0), x.std(axis=0) + 1e-8
        self.model = LogisticRegression(C=c, max_iter=5000).fit(
            (x - self.mean) / self.std, y[clip], sample_weight=w * len(y) / w.sum())

    def log_odds(self, x):
        """Log-odds of male [rows]."""
        return self.model.decision_function((x - self.mean) / self.std)


def per_clip_odds(arm: Arm, rows: np.ndarray, owner: np.ndarray, clips: int) -> np.ndarray:
    """Mean log-odds of each clip's rows [clips]."""
    sums = np.zeros(clips)
    np.add.at(sums, owner, arm.log_odds(rows))
    return sums / np.bincount(owner, minlength=clips)


def interval(y, pred, speakers):
    lo, hi = metrics.bootstrap_ci(y, pred, speakers)["balanced_accuracy"]
    return f"{metrics.uar(y, pred):.3f} [{lo:.3f}, {hi:.3f}]"


def paired(y, a, b, speakers):
    d = metrics.paired_bootstrap_difference(y, a, b, speakers)
    return f"{d['difference']:+.3f} [{d['interval'][0]:+.3f}, {d['interval'][1]:+.3f}]"


def shipped_predictions(data: dict) -> np.ndarray:
    """Male (1) / female (0) of ``models/pretrained/gender.keras`` on every clip's stored
    inputs (its class order is male, female)."""
    import keras

    import agegender  # noqa: F401  (registers the layers)

    model = keras.saving.load_model(common.REPO / "models/pretrained/gender.keras")
    out = model.predict({"embedding": data["clip_embedding"], "pitch": data["stats"]},
                        verbose=0)
    return (np.asarray(out)[:, 0] > 0.5).astype(int)


def lab(args: argparse.Namespace) -> None:  # Long because: one table, its arms in a row
    data = dict(np.load(args.npz, allow_pickle=False))
    n, y, split = len(data["key"]), data["gender"], data["split"]
    spk, owner, view, partial = data["speaker"], data["owner"], data["view"], data["partial"]
    tr, dv, te = (split == "train") & (y >= 0), split == "dev", split == "test"
    own = view < 0
    means = clip_means(partial[own], owner[own], n)
    cos = np.sum(means * data["clip_embedding"], axis=1)
    print(f"clips {n}, partials (clip's own) {own.sum()}, augmented {(~own).sum()}; "
          f"partials per clip median {np.median(np.bincount(owner[own])):.0f}; "
          f"cosine(own partials' mean, stored embedding) min {cos.min():.6f}")
    stats = data["stats"]
    clip_x = np.hstack([data["clip_embedding"], stats])  # [clips, 301]
    seeds = sorted({int(v) // args.views for v in view if v >= 0})

    def rows(mask_rows):
        return np.hstack([partial[mask_rows], stats[owner[mask_rows]]]), owner[mask_rows]

    def choose(fit, score):
        """(dev UAR, C, predictions [clips]) of the C with the best dev UAR."""
        best, curve = None, []
        for c in C_GRID:
            pred = (score(fit(c)) > 0).astype(int)
            u = metrics.uar(y[dv], pred[dv])
            curve.append(f"{u:.3f}")
            if best is None or u > best[0]:
                best = (u, c, pred)
        return (*best, " ".join(curve))

    train_clips = np.flatnonzero(tr)
    results = {}
    results["per-clip LR"] = choose(
        lambda c: Arm(clip_x[tr], np.arange(tr.sum()), y[train_clips], c),
        lambda arm: arm.log_odds(clip_x))
    eval_x, eval_owner = rows(own)
    for name, views in [("per-partial LR", [])] + [
            (f"per-partial + aug (seed {s})", list(range(s * args.views, (s + 1) * args.views)))
            for s in seeds]:
        keep = tr[owner] & (own | np.isin(view, views))
        x, clips = rows(keep)
        local = np.searchsorted(train_clips, clips)
        fits = {}

        def fit(c, x=x, local=local, fits=fits):
            if c not in fits:
                fits[c] = Arm(x, local, y[train_clips], c)
            return fits[c]

        results[f"{name}, mean partial log-odds"] = choose(
            fit, lambda arm: per_clip_odds(arm, eval_x, eval_owner, n))
        results[f"{name}, clip-averaged embedding"] = choose(
            fit, lambda arm: arm.log_odds(clip_x))
    for s in seeds:  # augmentation without per-partial training: each view one clip example
        views = list(range(s * args.views, (s + 1) * args.views))
        vx = [clip_x[tr]]
        vclip = [np.arange(tr.sum())]
        for v in views:
            m = view == v
            vx.append(np.hstack([clip_means(partial[m], owner[m], n)[train_clips],
                                 stats[train_clips]]))
            vclip.append(np.arange(tr.sum()))
        results[f"per-clip LR + aug views (seed {s})"] = choose(
            lambda c, vx=vx, vclip=vclip: Arm(np.vstack(vx), np.concatenate(vclip),
                                             y[train_clips], c),
            lambda arm: arm.log_odds(clip_x))
    shipped = shipped_predictions(data)
    base = results["per-clip LR"][2]
    print(f"\ngender clips train/dev/test {tr.sum()}/{dv.sum()}/{te.sum()}; test speakers "
          f"{len(set(spk[te]))}; augmentation views per train clip per seed: {args.views}")
    print("\n| gender head (C chosen on dev) | dev UAR | dev − shipped | test UAR [95 %] | "
          "recall m/f | test − shipped gender.keras | test − per-clip LR |\n"
          "|---|---|---|---|---|---|---|")
    print(f"| shipped gender.keras | {metrics.uar(y[dv], shipped[dv]):.3f} | | "
          f"{interval(y[te], shipped[te], spk[te])} | {recalls(y[te], shipped[te])} | | |")
    for name, (u, c, pred, _) in results.items():
        print(f"| {name} (C={c}) | {u:.3f} | {paired(y[dv], pred[dv], shipped[dv], spk[dv])} | "
              f"{interval(y[te], pred[te], spk[te])} | {recalls(y[te], pred[te])} | "
              f"{paired(y[te], pred[te], shipped[te], spk[te])} | "
              f"{paired(y[te], pred[te], base[te], spk[te])} |")
    print(f"\ndev UAR over C = {' '.join(map(str, C_GRID))}:")
    for name, (*_, curve) in results.items():
        print(f"- {name}: {curve}")


def recalls(y, pred):
    return f"{np.mean(pred[y == 1] == 1):.2f}/{np.mean(pred[y == 0] == 0):.2f}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    ex = sub.add_parser("extract")
    ex.add_argument("data_dir")
    ex.add_argument("source_dir")
    ex.add_argument("out")
    ex.add_argument("--seeds", type=int, default=2)
    ex.add_argument("--views", type=int, default=2)
    ex.add_argument("--limit", type=int, default=0, help="about this many clips (smoke run)")
    la = sub.add_parser("lab")
    la.add_argument("npz")
    la.add_argument("--views", type=int, default=2)
    args = parser.parse_args(argv)
    (extract if args.stage == "extract" else lab)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
