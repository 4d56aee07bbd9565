"""Tiny label tables and clips for the dataset-reading tests (layouts, path checks, speaker
split, cleaning)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import synth


def touch_clip(path: Path) -> Path:
    """A tiny valid WAV (the parser only checks that files exist)."""
    return synth.write_audio(path, synth.tone(300.0, seconds=0.05))


def empty_raw_corpus(root: Path) -> Path:
    """A raw layout whose three CSVs have a header and no rows."""
    for split in ("train", "dev", "test"):
        (root / f"cv-valid-{split}" / f"cv-valid-{split}").mkdir(parents=True)
        synth.write_csv(root / f"cv-valid-{split}.csv", [])
    return root


def write_manifest(root: Path, rows: list[dict], *, name: str = "manifest.csv",
                   clips: bool = True) -> Path:
    """Writes ``root/name`` from dicts (columns = union of keys, in order) and, when
    ``clips``, a tiny WAV for every row's path inside ``root``."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = pd.DataFrame(rows, columns=columns).fillna("")
    root.mkdir(parents=True, exist_ok=True)
    table.to_csv(root / name, sep="\t" if name.endswith(".tsv") else ",", index=False)
    if clips:
        for row in rows:
            cell = row.get("path", row.get("filename", ""))
            target = Path(os.path.normpath(root / cell))
            if cell and str(target).startswith(str(root)) and not target.exists():
                touch_clip(target)
    return root / name


def make_symlinked_manifest(tmp_path: Path) -> Path:
    """A manifest whose clips are symlinks into another folder, plus a ``..`` escape."""
    outside = tmp_path / "store"
    root = tmp_path / "dataset"
    (root / "links").mkdir(parents=True)
    for name in ("a", "b"):
        os.symlink(touch_clip(outside / f"{name}.wav"), root / "links" / f"{name}.wav")
    os.symlink(outside, root / "store_link")  # a symlinked folder too
    touch_clip(root / "inside.wav")
    write_manifest(root, [
        {"path": "links/a.wav", "gender": "male", "split": "test"},
        {"path": "store_link/b.wav", "gender": "female", "split": "test"},
        {"path": "../store/a.wav", "gender": "male", "split": "test"},
        {"path": "links/../../store/b.wav", "gender": "male", "split": "test"},
        {"path": str(outside / "a.wav"), "gender": "male", "split": "test"},
        {"path": "inside.wav", "gender": "female", "split": "test"},
    ], clips=False)
    return root
