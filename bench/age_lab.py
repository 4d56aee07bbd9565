"""Lab (issue 31 items 3-4): age heads on embedding + statistics, and gender per-clip training.

Reads the per-clip files ``src/preprocess_dataset.py --inputs=pitch,embedding
--sample_rate=16000`` writes (``<stem>.embedding.f32`` [256], ``<stem>.pitch.f32`` [45]) beside
the source manifest's labels, caches them in one npz, and prints markdown tables: test UAR with
95 % stratified speaker-bootstrap intervals (agegender.metrics), heads chosen on dev by UAR.
Temporary: recorded in docs/experiments.md, then deleted so bench/ stays small.

    python bench/age_lab.py DATA_DIR MANIFEST_CSV CACHE_NPZ
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression, Ridge

from agegender import metrics
from agegender.labels import AGES, normalise_age

MIDPOINTS = np.array([15.0, 25.0, 35.0, 45.0, 55.0, 65.0])  # decade midpoints, years
C_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
THREE = np.array([0, 0, 1, 1, 2, 2])  # 6 groups -> young < 30, middle 30-49, senior >= 50


def load(data_dir: Path, manifest: Path, cache: Path) -> dict[str, np.ndarray]:
    """Per-clip embedding [clips, 256], statistics [clips, 45] and labels, cached in ``cache``."""
    if cache.exists():
        return dict(np.load(cache, allow_pickle=False))
    table = pd.read_csv(manifest)
    files = {p.name.split(".")[0]: p.parent for p in data_dir.rglob("*.embedding.f32")}
    rows = []
    for row in table.itertuples():
        stem = Path(row.path).stem
        if stem not in files:
            continue
        folder = files[stem]
        rows.append((np.fromfile(folder / f"{stem}.embedding.f32", "<f4"),
                     np.fromfile(folder / f"{stem}.pitch.f32", "<f4"), row))
    age = [normalise_age(r.age) for _, _, r in rows]
    out = {"embedding": np.stack([e for e, _, _ in rows]),
           "stats": np.stack([s for _, s, _ in rows]),
           "gender": np.array([{"female": 0, "male": 1}.get(r.gender, -1) for *_, r in rows]),
           "age": np.array([AGES.index(a) if a else -1 for a in age]),
           "speaker": np.array([str(r.speaker_id) for *_, r in rows]),
           "split": np.array([str(r.split) for *_, r in rows])}
    np.savez(cache, **out)
    return out


def standardised(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """``x`` [clips, features] scaled by the train rows' mean and deviation."""
    mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-8
    return (x - mean) / std


def best_lr(x, y, tr, dv, grid=C_GRID):
    """Balanced multinomial LR with C chosen on dev by UAR: (C, fitted model)."""
    fits = [(metrics.uar(y[dv], m.predict(x[dv])), c, m) for c in grid for m in [
        LogisticRegression(C=c, class_weight="balanced", max_iter=3000).fit(x[tr], y[tr])]]
    _, c, model = max(fits, key=lambda f: f[0])
    return c, model


def cut(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Group codes of continuous ages [clips] at ascending ``cuts`` [5]."""
    return np.searchsorted(cuts, values)


def dev_cuts(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Five cutpoints maximising dev UAR by coordinate ascent from the decade borders."""
    cuts = np.array([20.0, 30.0, 40.0, 50.0, 60.0])
    candidates = np.quantile(pred, np.linspace(0, 1, 201))
    for _ in range(5):
        for k in range(5):
            low = cuts[k - 1] if k else -np.inf
            high = cuts[k + 1] if k < 4 else np.inf
            best = (metrics.uar(y, cut(pred, cuts)), cuts[k])
            for value in candidates[(candidates > low) & (candidates < high)]:
                trial = cuts.copy()
                trial[k] = value
                best = max(best, (metrics.uar(y, cut(pred, trial)), value))
            cuts[k] = best[1]
    return cuts


def coral_fit(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """CORAL cumulative logits P(y > k) = sigmoid(x w + b_k), class-balanced, L2 1/c on w."""
    n, d = x.shape
    k = len(AGES) - 1
    weight = (len(y) / (len(AGES) * np.bincount(y, minlength=len(AGES)).clip(1)))[y]
    above = (y[:, None] > np.arange(k)[None, :]).astype(float)  # [n, k]

    def loss(theta):
        w, b = theta[:d], theta[d:]
        z = x @ w
        logits = z[:, None] + b[None, :]
        p = 1 / (1 + np.exp(-logits))
        nll = (np.logaddexp(0, logits) - above * logits).sum(axis=1)
        g = (p - above) * weight[:, None]
        return ((weight * nll).sum() / n + 0.5 / c * w @ w / n,
                np.concatenate([x.T @ g.sum(axis=1) / n + w / c / n, g.sum(axis=0) / n]))

    theta0 = np.concatenate([np.zeros(d), np.linspace(2, -2, k)])
    theta = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 2000}).x
    return theta[:d], theta[d:]


def coral_predict(x, w, b):
    """Group codes: the number of thresholds with P(y > k) > 0.5."""
    return ((x @ w)[:, None] + b[None, :] > 0).sum(axis=1)


def interval(y, pred, speakers):
    """``0.xxx [lo, hi]`` UAR with its speaker bootstrap interval."""
    lo, hi = metrics.bootstrap_ci(y, pred, speakers)["balanced_accuracy"]
    return f"{metrics.uar(y, pred):.3f} [{lo:.3f}, {hi:.3f}]"


def paired(y, a, b, speakers):
    """``+0.xxx [lo, hi]`` UAR of a minus b, paired bootstrap."""
    d = metrics.paired_bootstrap_difference(y, a, b, speakers)
    return f"{d['difference']:+.3f} [{d['interval'][0]:+.3f}, {d['interval'][1]:+.3f}]"


def age_section(data: dict) -> None:
    """Prints the age tables (6 groups, regression, ordinal, 3 groups)."""
    keep = data["age"] >= 0
    x = standardised(np.hstack([data["embedding"], data["stats"]])[keep],
                     (data["split"] == "train")[keep])
    y, spk, split = data["age"][keep], data["speaker"][keep], data["split"][keep]
    tr, dv, te = split == "train", split == "dev", split == "test"
    c6, lr6 = best_lr(x, y, tr, dv)
    p_lr = lr6.predict(x)
    ridge = max(((metrics.uar(y[dv], cut(m.predict(x[dv]), dev_cuts(m.predict(x[dv]), y[dv]))), a, m)
                 for a in (1, 10, 100, 1000, 10000)
                 for m in [Ridge(alpha=a).fit(x[tr], MIDPOINTS[y[tr]])]), key=lambda f: f[0])
    years = ridge[2].predict(x)
    cuts = dev_cuts(years[dv], y[dv])
    p_ridge = cut(years, cuts)
    coral = max(((metrics.uar(y[dv], coral_predict(x[dv], *f)), c, f)
                 for c in C_GRID for f in [coral_fit(x[tr], y[tr], c)]), key=lambda f: f[0])
    p_ord = coral_predict(x, *coral[2])
    c3, lr3 = best_lr(x, THREE[y], tr, dv)
    y3 = THREE[y]
    print(f"age clips train/dev/test {tr.sum()}/{dv.sum()}/{te.sum()}; chance 6 groups "
          f"{1 / 6:.3f}, 3 groups {1 / 3:.3f}")
    print("test speakers per group:", {AGES[k]: len(set(spk[te & (y == k)])) for k in range(6)})
    print("\n| age head (dev-chosen) | dev UAR | test UAR [95 %] | test MAE, years | minus LR |")
    print("|---|---|---|---|---|")
    for name, pred in ((f"6-group LR (C={c6})", p_lr),
                       (f"ridge to midpoints (alpha={ridge[1]}), cuts {np.round(cuts, 1)}", p_ridge),
                       (f"ordinal CORAL (C={coral[1]})", p_ord)):
        mae = np.abs(MIDPOINTS[pred[te]] - MIDPOINTS[y[te]]).mean()
        print(f"| {name} | {metrics.uar(y[dv], pred[dv]):.3f} | {interval(y[te], pred[te], spk[te])}"
              f" | {mae:.1f} | {paired(y[te], pred[te], p_lr[te], spk[te])} |")
    print(f"ridge raw MAE on test, years: {np.abs(years[te] - MIDPOINTS[y[te]]).mean():.1f}")
    p3 = lr3.predict(x)
    print("\n| 3-group view | dev UAR | test UAR [95 %] | minus 6-as-3 |\n|---|---|---|---|")
    print(f"| 3-group LR (C={c3}) | {metrics.uar(y3[dv], p3[dv]):.3f} | "
          f"{interval(y3[te], p3[te], spk[te])} | "
          f"{paired(y3[te], p3[te], THREE[p_lr[te]], spk[te])} |")
    print(f"| 6-group LR read as 3 | {metrics.uar(y3[dv], THREE[p_lr[dv]]):.3f} | "
          f"{interval(y3[te], THREE[p_lr[te]], spk[te])} | |")
    confusion = pd.crosstab(pd.Series([AGES[v] for v in y[te]], name="true"),
                            pd.Series([AGES[v] for v in p_lr[te]], name="predicted")
                            ).reindex(index=list(AGES), columns=list(AGES), fill_value=0)
    print("\nconfusion of the 6-group LR on test (clips):\n" + confusion.to_string())


def gender_section(data: dict) -> None:
    """Prints per-clip gender LR on embedding + statistics (C grid on dev)."""
    keep = data["gender"] >= 0
    x = standardised(np.hstack([data["embedding"], data["stats"]])[keep],
                     (data["split"] == "train")[keep])
    y, spk, split = data["gender"][keep], data["speaker"][keep], data["split"][keep]
    tr, dv, te = split == "train", split == "dev", split == "test"
    c, model = best_lr(x, y, tr, dv)
    pred = model.predict(x)
    print(f"\ngender per-clip LR (C={c}): dev {metrics.uar(y[dv], pred[dv]):.3f}, "
          f"test {interval(y[te], pred[te], spk[te])}")


def main(argv: list[str]) -> int:
    data = load(Path(argv[0]), Path(argv[1]), Path(argv[2]))
    age_section(data)
    gender_section(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
