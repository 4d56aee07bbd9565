"""Gender on real recorded voices from Debian packages, leave-speakers-out, CNN vs a pitch rule.

Only this bench downloads anything (the library never does). It fetches the voices with
``apt-get download`` + ``dpkg -x`` into a cache folder (default
``~/.cache/agegender/real_speech``, ``--cache_dir``)::

    CACHE/debs/*.deb               the packages, as downloaded
    CACHE/extracted/<package>/     each package unpacked (dpkg -x)
    CACHE/dataset/                 manifest.csv, speakers.csv, audio/<speaker>/<key>.<ext>
                                   (hard links into extracted/, no copies)
    CACHE/folds/<tag>/fold<i>/     one dataset folder per compared setting and fold (hard
                                   links again), with results/ and models/ written by the
                                   product's CLIs

Sources: Asterisk telephone prompts (8 kHz WAV, one professional voice per language) and
Fish Fillets NG's Czech and Dutch dialog recordings (wideband OGG, the small and big fish).
Each speaker's gender is read from the packages' own text (copyright/credits files, the
Asterisk voice-folder name, Czech first-person past-tense forms in the game's dialog
scripts), never from the voice; a speaker whose evidence is not found is dropped.

Stages (``--stage``): ``fetch`` (download + unpack), ``build`` (dataset folder, prints the
speaker table), ``folds`` (per fold: preprocess, train, test with the CLIs in ``src/``,
then, from each fold's ``predictions_gender.csv``, the per-speaker table of the CNN, the
product's pitch baseline (threshold fitted on the fold's train+dev) and the fixed 165 Hz rule,
with 95 % CIs from the product's bootstrap over speakers), ``all`` (these three); and
``channel``, not part of ``all``: how far a simulated telephone line moves each feature
preset's image of the wideband clips, beside the distance between a male and a female
synthetic voice (no training). Run by hand from the repo root::

    python bench/real_speech.py --stage build
    python bench/real_speech.py --stage folds --folds 3 --num_epochs 10
    python bench/real_speech.py --stage channel
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the product's own report pieces (pitch, bootstrap)
DEFAULT_CACHE = Path.home() / ".cache" / "agegender" / "real_speech"
LOG = logging.getLogger("real_speech")

MIN_SECONDS = 1.0
MAX_SECONDS = 15.0
PITCH_THRESHOLD_HZ = 165.0

MANIFEST_COLUMNS = ("path", "gender", "age", "speaker", "split", "source", "language",
                    "channel", "evidence")
SPEAKER_COLUMNS = ("speaker", "gender", "clips", "source", "language", "channel",
                   "sample_rate", "actor", "evidence")

PACKAGES = (
    "asterisk-core-sounds-en-wav", "asterisk-core-sounds-es-wav", "asterisk-core-sounds-fr-wav",
    "asterisk-core-sounds-it-wav", "asterisk-core-sounds-ru-wav",
    "asterisk-prompt-it-menardi-wav",
    "fillets-ng-data", "fillets-ng-data-cs", "fillets-ng-data-nl",
)
# Looked at and left out: asterisk-prompt-fr-armelle and asterisk-prompt-es-co hold only raw
# .gsm files (libsndfile cannot read headerless GSM), and their credits name the voice
# without saying the gender.

ASTERISK_SOUNDS = "usr/share/asterisk/sounds"
ASTERISK_COPYRIGHT = "usr/share/doc/{package}/copyright"
FILLETS = "usr/share/games/fillets-ng"
FILLETS_CREDITS = f"{FILLETS}/images/menu/credits.png"


class EvidenceError(ValueError):
    """A speaker's gender could not be read from the packages' own text."""


# ---------------------------------------------------------------------------------------------
# Gender evidence: pure functions over text, tested on fake credits in tests/.

_ASTERISK_VOICE = re.compile(r"^(?P<lang>[a-z]{2})_(?P<country>[A-Z]{2})_(?P<g>[fm])_(?P<name>\w+)$")


def asterisk_voice_gender(voice_dir: str) -> str:
    """Gender from an Asterisk voice folder name, ``<lang>_<COUNTRY>_<f|m>_<Name>``.

    Asterisk's sound packages name each voice folder this way (``en_US_f_Allison``,
    ``it_IT_m_Carlo``). Raises ``EvidenceError`` for a name that does not follow it.
    """
    match = _ASTERISK_VOICE.match(voice_dir)
    if match is None:
        raise EvidenceError(f"voice_dir={voice_dir!r} is not <lang>_<COUNTRY>_<f|m>_<Name>")
    return {"f": "female", "m": "male"}[match["g"]]


def find_quote(text: str, pattern: str) -> tuple[int, str]:
    """First line of ``text`` matching the regular expression ``pattern``: (1-based line, line).

    Raises ``EvidenceError`` when no line matches.
    """
    regex = re.compile(pattern)
    for number, line in enumerate(text.splitlines(), start=1):
        if regex.search(line):
            return number, line.strip()
    raise EvidenceError(f"no line matches pattern={pattern!r}")


# Czech first-person past tense and predicative adjectives agree with the speaker's gender:
# "řekla jsem" / "jsem říkala" / "jsem ráda" (she), "řekl jsem" / "jsem rád" (he). Only forms
# with "jsem" (I am) count: a bare "ráda" or "sama" may describe the listener.
_CZECH_FEMININE = re.compile(r"\b(\w+la jsem|jsem (\w+ )?\w+la|jsem ráda|ráda jsem|jsem sama)\b",
                             re.IGNORECASE)
_CZECH_MASCULINE = re.compile(r"\b(\w+l jsem|jsem (\w+ )?\w+l|jsem rád|rád jsem|jsem sám)\b",
                              re.IGNORECASE)
_DIALOG = re.compile(r'dialogId\("(?P<id>[^"]+)"[^\n]*\n\s*dialogStr\("(?P<text>[^"]*)"\)')


def czech_self_references(script: str, character: str) -> list[tuple[int, str, str]]:
    """Gendered first-person forms in the Czech lines of one character of a Fillets script.

    ``script`` is a ``dialogs_cs.lua`` text (``dialogId("lvl-m-foo", ...)`` followed by
    ``dialogStr("Czech text")``); ``character`` the code in the id's second field (``m`` small
    fish, ``v`` big fish). Returns (line of the Czech text, "female"|"male", text) for each
    line with a gendered form.
    """
    found = []
    for match in _DIALOG.finditer(script):
        fields = match["id"].split("-")
        if len(fields) < 3 or fields[1] != character:
            continue
        line = script.count("\n", 0, match.start("text")) + 1
        for gender, regex in (("female", _CZECH_FEMININE), ("male", _CZECH_MASCULINE)):
            if regex.search(match["text"]):
                found.append((line, gender, match["text"]))
    return found


def unanimous_gender(references: Sequence[tuple[int, str, str]]) -> str:
    """The one gender all references agree on; ``EvidenceError`` if none or they disagree."""
    genders = {gender for _, gender, _ in references}
    if len(genders) != 1:
        raise EvidenceError(f"references give genders {sorted(genders)}, need exactly one")
    return genders.pop()


# ---------------------------------------------------------------------------------------------
# Speakers: where their clips are and how their gender is proven.


@dataclasses.dataclass(frozen=True)
class Speaker:
    """One person (or, where the actor is unknown, one character) and their verified gender."""

    speaker: str
    gender: str
    source: str
    language: str
    channel: str
    actor: str
    evidence: str
    files: tuple[Path, ...]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def is_asterisk_silence(path: Path) -> bool:
    """Asterisk's ``silence/1.wav`` … ``silence/10.wav`` are N seconds of line noise, not
    speech (they padded 10 of the 550 clips before 2026-11-26, 2 per voice)."""
    return path.parent.name == "silence"


def _asterisk_speaker(extracted: Path, speaker: str, package_dirs: Sequence[tuple[str, str]],
                      language: str, credit_pattern: str, actor: str,
                      extra: Callable[[Path], str] | None = None) -> Speaker:
    """An Asterisk voice; gender from the voice folder name, name from the copyright file."""
    files: list[Path] = []
    evidence = []
    genders = set()
    for package, voice_dir in package_dirs:
        root = extracted / package
        genders.add(asterisk_voice_gender(voice_dir))
        files += sorted(path for path in (root / ASTERISK_SOUNDS / voice_dir).rglob("*.wav")
                        if not is_asterisk_silence(path))
        copyright_path = ASTERISK_COPYRIGHT.format(package=package)
        line, quote = find_quote(_read(root / copyright_path), credit_pattern)
        evidence.append(f"{package}: {ASTERISK_SOUNDS}/{voice_dir} (Asterisk voice folder "
                        f"<lang>_<COUNTRY>_<f|m>_<Name>); {copyright_path}:{line} {quote!r}")
        if extra is not None:
            evidence.append(extra(root))
    if len(genders) != 1:
        raise EvidenceError(f"{speaker}: voice folders disagree on gender {sorted(genders)}")
    return Speaker(speaker, genders.pop(), "+".join(p for p, _ in package_dirs), language,
                   "8k-telephone", actor, "; ".join(evidence), tuple(files))


def _menardi_evidence(root: Path) -> str:
    path = ASTERISK_COPYRIGHT.format(package="asterisk-prompt-it-menardi-wav")
    text = _read(root / path)
    line, wife = find_quote(text, r"fatti da me e mia moglie")
    wife = wife[wife.index("i file sonori"):][:70]
    return f"{path}:{line} {wife!r}… (Marco Menardi: 'the sound files were made by me and my wife')"


def _fillets_speaker(extracted: Path, speaker: str, package: str, character: str,
                     language: str, actor: str, credit: str) -> Speaker:
    """A Fillets NG character; gender from its Czech lines in the game's dialog scripts."""
    scripts = extracted / "fillets-ng-data" / FILLETS / "script"
    references = []
    for path in sorted(scripts.glob("*/dialogs_cs.lua")):
        for line, gender, text in czech_self_references(_read(path), character):
            where = path.relative_to(extracted / "fillets-ng-data")
            references.append((line, gender, f"{where}:{line} {text!r}"))
    gender = unanimous_gender(references)
    sounds = extracted / package / FILLETS / "sound"
    files = sorted(p for p in sounds.rglob("*.ogg")
                   if p.stem.split("-")[1:2] == [character])
    quotes = "; ".join(q for _, _, q in references[:2])
    evidence = (f"{len(references)} Czech self-references of character {character!r}, all "
                f"{gender}, e.g. {quotes}; {credit}")
    return Speaker(speaker, gender, package, language, "wideband-ogg", actor, evidence,
                   tuple(files))


_CS_CREDIT = (f"actor from {FILLETS_CREDITS} ('Voices & Animal sounds': Vít Musil beside the "
              f"big fish, Gabriela Pyšná beside the small fish)")
_NL_CREDIT = "Dutch actor not credited in the packages: one character = one speaker"


def speaker_table(extracted: Path) -> tuple[list[Speaker], list[str]]:
    """Every speaker whose gender evidence is found, and a note for each one dropped."""
    makers: list[tuple[str, Callable[[], Speaker]]] = [
        ("allison_smith", lambda: _asterisk_speaker(
            extracted, "allison_smith",
            [("asterisk-core-sounds-en-wav", "en_US_f_Allison"),
             ("asterisk-core-sounds-es-wav", "es_MX_f_Allison")],
            "en+es", r"^\s*Allison Smith \(", "Allison Smith")),
        ("june_wallack", lambda: _asterisk_speaker(
            extracted, "june_wallack", [("asterisk-core-sounds-fr-wav", "fr_CA_f_June")],
            "fr", r"^\s*June Wallack \(", "June Wallack")),
        ("carlo_flora", lambda: _asterisk_speaker(
            extracted, "carlo_flora", [("asterisk-core-sounds-it-wav", "it_IT_m_Carlo")],
            "it", r"^\s*Carlo Flora \(", "Carlo Flora")),
        ("ivrvoice_ru", lambda: _asterisk_speaker(
            extracted, "ivrvoice_ru", [("asterisk-core-sounds-ru-wav", "ru_RU_f_IvrvoiceRU")],
            "ru", r"Provided by: Maxim Topal", "unnamed (ivrvoice.ru; Maxim Topal provided)")),
        ("paola_dal_zot", lambda: _asterisk_speaker(
            extracted, "paola_dal_zot",
            [("asterisk-prompt-it-menardi-wav", "it_IT_f_Menardi")],
            "it", r"Paola Dal Zot \(.the voice.\)", "Paola Dal Zot",
            extra=_menardi_evidence)),
        ("gabriela_pysna", lambda: _fillets_speaker(
            extracted, "gabriela_pysna", "fillets-ng-data-cs", "m", "cs", "Gabriela Pyšná",
            _CS_CREDIT)),
        ("vit_musil", lambda: _fillets_speaker(
            extracted, "vit_musil", "fillets-ng-data-cs", "v", "cs", "Vít Musil", _CS_CREDIT)),
        ("cs_corridor_r", lambda: _fillets_speaker(
            extracted, "cs_corridor_r", "fillets-ng-data-cs", "r", "cs",
            "unknown (one of the credited secondary voices)",
            "character, actor unknown: one character = one speaker")),
        ("nl_small_fish", lambda: _fillets_speaker(
            extracted, "nl_small_fish", "fillets-ng-data-nl", "m", "nl", "unknown", _NL_CREDIT)),
        ("nl_big_fish", lambda: _fillets_speaker(
            extracted, "nl_big_fish", "fillets-ng-data-nl", "v", "nl", "unknown", _NL_CREDIT)),
    ]
    speakers, dropped = [], []
    for name, make in makers:
        try:
            speakers.append(make())
        except (EvidenceError, OSError) as error:
            dropped.append(f"{name}: {error}")
            LOG.warning("dropped speaker %s: %s", name, error)
    return speakers, dropped


# ---------------------------------------------------------------------------------------------
# Fetch and build.


def fetch(cache_dir: Path, packages: Sequence[str] = PACKAGES) -> float:
    """Downloads and unpacks the packages into ``cache_dir`` (skips what is there); seconds."""
    start = time.perf_counter()
    debs = cache_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        LOG.info("apt-get download %s", " ".join(missing))
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    for package in packages:
        target = cache_dir / "extracted" / package
        done = target / ".unpacked"
        if done.exists():
            continue
        (deb,) = debs.glob(f"{package}_*.deb")
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)
        done.touch()
    return time.perf_counter() - start


def clip_seconds(path: Path) -> tuple[float, int]:
    """(duration in seconds, native sample rate) from the file header."""
    import soundfile  # noqa: PLC0415

    info = soundfile.info(str(path))
    return info.frames / info.samplerate, info.samplerate


def choose_clips(files: Sequence[Path], *, cap: int, seed: int,
                 seconds: Callable[[Path], tuple[float, int]] = clip_seconds
                 ) -> tuple[list[Path], int]:
    """Clips of ``MIN_SECONDS``–``MAX_SECONDS``, a seeded sample of at most ``cap``; and the rate.

    Unreadable files are skipped (``soundfile.LibsndfileError`` / ``RuntimeError``).
    """
    usable, rates = [], []
    for path in sorted(files):
        try:
            duration, rate = seconds(path)
        except RuntimeError as error:  # soundfile.LibsndfileError is a RuntimeError
            LOG.warning("skipped unreadable %s: %s", path, error)
            continue
        if MIN_SECONDS <= duration <= MAX_SECONDS:
            usable.append(path)
            rates.append(rate)
    chosen = sorted(random.Random(seed).sample(usable, min(cap, len(usable))))
    rate = max(set(rates), key=rates.count) if rates else 0
    return chosen, rate


def link(source: Path, target: Path) -> None:
    """Hard link ``target`` → ``source`` (a symlink only where a hard link cannot be made)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        target.symlink_to(source)


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict]) -> None:
    """Writes ``rows`` to ``path`` (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def read_csv(path: Path) -> list[dict]:
    """Rows of a CSV file as dicts."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def build(cache_dir: Path, *, cap: int, seed: int) -> tuple[list[dict], list[dict], list[str]]:
    """Writes ``CACHE/dataset/{manifest,speakers}.csv`` and the audio links; returns the tables."""
    dataset = cache_dir / "dataset"
    speakers, dropped = speaker_table(cache_dir / "extracted")
    if not speakers:
        raise EvidenceError(f"no speaker verified under {cache_dir / 'extracted'} "
                            f"(run --stage fetch first?): {dropped}")
    manifest, table = [], []
    for index, speaker in enumerate(speakers):
        clips, rate = choose_clips(speaker.files, cap=cap, seed=seed + index)
        if not clips:
            dropped.append(f"{speaker.speaker}: no clip of {MIN_SECONDS}-{MAX_SECONDS} s")
            continue
        short = f"see speakers.csv; {speaker.actor}"
        for clip in clips:
            # Keys (file stems) are unique over the dataset: speaker + level folder + stem.
            level = clip.parent.parent.name if speaker.channel == "wideband-ogg" else ""
            key = "__".join(filter(None, (speaker.speaker, level, clip.stem)))
            relative = Path("audio") / speaker.speaker / f"{key}{clip.suffix}"
            link(clip, dataset / relative)
            manifest.append({"path": relative.as_posix(), "gender": speaker.gender, "age": "",
                             "speaker": speaker.speaker, "split": "", "source": speaker.source,
                             "language": speaker.language, "channel": speaker.channel,
                             "evidence": short})
        table.append({"speaker": speaker.speaker, "gender": speaker.gender, "clips": len(clips),
                      "source": speaker.source, "language": speaker.language,
                      "channel": speaker.channel, "sample_rate": rate, "actor": speaker.actor,
                      "evidence": speaker.evidence})
    write_csv(dataset / "manifest.csv", MANIFEST_COLUMNS, manifest)
    write_csv(dataset / "speakers.csv", SPEAKER_COLUMNS, table)
    return manifest, table, dropped


def format_speakers(table: Sequence[dict], *, evidence_width: int = 0) -> str:
    """Plain-text speaker table (evidence cut to ``evidence_width`` characters, 0 = whole)."""
    lines = [f"{'speaker':<16}{'gender':<8}{'clips':>6}  {'language':<8}{'channel':<14}"
             f"{'rate':>6}  actor / evidence"]
    for row in table:
        evidence = row["evidence"]
        if evidence_width and len(evidence) > evidence_width:
            evidence = evidence[:evidence_width - 1] + "…"
        lines.append(f"{row['speaker']:<16}{row['gender']:<8}{row['clips']:>6}  "
                     f"{row['language']:<8}{row['channel']:<14}{row['sample_rate']:>6}  "
                     f"{row['actor']}\n{'':<16}{evidence}")
    genders = [r["gender"] for r in table]
    lines.append(f"{len(table)} speakers ({genders.count('female')} female, "
                 f"{genders.count('male')} male), {sum(int(r['clips']) for r in table)} clips")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Folds over speakers.


def speaker_folds(speakers: Sequence[dict], k: int, *, seed: int) -> list[list[str]]:
    """``k`` disjoint test sets of speakers, stratified by gender and channel.

    Speakers are grouped by (gender, channel), shuffled (seeded) within each group, and dealt
    round-robin over the folds; the deal continues from group to group, so fold sizes differ
    by at most one and every gender with at least ``k`` speakers appears in every fold.
    """
    if k < 2:
        raise ValueError(f"k={k} must be at least 2")
    if k > len(speakers):
        raise ValueError(f"k={k} is larger than the number of speakers {len(speakers)}")
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list[str]] = {}
    for row in sorted(speakers, key=lambda r: r["speaker"]):
        groups.setdefault((row["gender"], row["channel"]), []).append(row["speaker"])
    folds: list[list[str]] = [[] for _ in range(k)]
    turn = 0
    for group in sorted(groups):
        members = groups[group]
        rng.shuffle(members)
        for name in members:
            folds[turn % k].append(name)
            turn += 1
    return [sorted(f) for f in folds]


def choose_dev(train: Sequence[dict], *, seed: int, per_gender: int = 1) -> list[str]:
    """Up to ``per_gender`` training speakers of each gender held out for dev.

    Dev takes the speakers with the fewest clips (ties broken by a seeded shuffle), so
    training keeps as many clips as it can: with 2 men left for training, one of them a
    12-clip character, dev takes the character rather than leave training 12 male clips.
    A gender with a single training speaker keeps it for training.
    """
    rng = random.Random(seed)
    dev = []
    for gender in ("female", "male"):
        rows = sorted((r for r in train if r["gender"] == gender), key=lambda r: r["speaker"])
        if len(rows) > per_gender:
            rng.shuffle(rows)
            rows.sort(key=lambda r: int(r.get("clips", 0)))  # stable: the shuffle breaks ties
            dev += [r["speaker"] for r in rows[:per_gender]]
    return sorted(dev)


def fold_composition(table: Sequence[dict], test: Sequence[str], dev: Sequence[str]) -> str:
    """One line: the training voices of a fold by gender and channel, and their clips; what
    a fold's model could learn from (a fold that trains on one man cannot learn "male")."""
    train = [r for r in table if r["speaker"] not in test and r["speaker"] not in dev]
    parts = []
    for gender in ("female", "male"):
        rows = [r for r in train if r["gender"] == gender]
        channels = sorted({r["channel"] for r in rows})
        per_channel = ", ".join(f"{sum(r['channel'] == c for r in rows)} {c}" for c in channels)
        parts.append(f"{len(rows)} {gender} voices ({per_channel or 'none'}; "
                     f"{sum(int(r['clips']) for r in rows)} clips)")
    return "trains on " + " and ".join(parts)


def fold_tag(args: argparse.Namespace) -> str:
    """A folder-safe name for one comparison, from the flags passed through to the CLIs."""
    flags = " ".join([args.preprocess_args, args.train_args]).split()
    text = "_".join(flag.lstrip("-").replace("=", "-") for flag in flags) or "default"
    return re.sub(r"[^A-Za-z0-9_.-]", "", text) + f"_e{args.num_epochs}"


def write_fold(cache_dir: Path, fold: int, test: Sequence[str], dev: Sequence[str], *,
               tag: str = "default") -> Path:
    """``CACHE/folds/<tag>/fold<i>/``: the dataset's audio (hard links) and a manifest with
    splits; one folder per compared setting, so features of different settings never mix."""
    dataset = cache_dir / "dataset"
    folder = cache_dir / "folds" / tag / f"fold{fold}"
    rows = []
    for row in read_csv(dataset / "manifest.csv"):
        split = "test" if row["speaker"] in test else "dev" if row["speaker"] in dev else "train"
        link(dataset / row["path"], folder / row["path"])
        rows.append({**row, "split": split})
    write_csv(folder / "manifest.csv", MANIFEST_COLUMNS, rows)
    return folder


# ---------------------------------------------------------------------------------------------
# Scoring.


# The report's predictors: the CNN, the product's pitch baseline (threshold fitted on the
# fold's train+dev clips by src/test.py) and the fixed rule of the issue (165 Hz, no training).
PREDICTORS = (("cnn", "CNN"), ("pitch_fitted", "pitch (fitted)"), ("pitch_165", "pitch 165 Hz"))
# What each pitch rule calls a clip without F0, as the code does it (evaluation's fitted
# threshold: the training majority; pitch.threshold_predictions' default: male).
UNVOICED_NOTE = ("Clips without F0 (unvoiced or unreadable): pitch (fitted) calls them the "
                 "fold's training majority class (src/test.py's log names it), pitch 165 Hz "
                 "calls them male.")


def fold_predictions(folder: Path, fold: int) -> pd.DataFrame:
    """One fold's test clips: true and predicted codes of each predictor, speaker, F0.

    Reads ``predictions_gender.csv`` written by ``src/test.py`` (model and fitted pitch
    baseline); the fixed 165 Hz rule is applied to its ``median_f0_hz`` (unvoiced → male).
    """
    from agegender.pitch import threshold_predictions  # noqa: PLC0415

    table = pd.read_csv(folder / "results" / "gender" / "predictions_gender.csv",
                        keep_default_na=False, na_values=[""])
    codes = {"male": 0, "female": 1}
    f0 = table["median_f0_hz"].astype(float).to_numpy()
    return pd.DataFrame({
        "fold": fold, "speaker": table["speaker_id"].astype(str), "f0": f0,
        "true": table["true"].map(codes), "cnn": table["predicted"].map(codes),
        "pitch_fitted": table["pitch_predicted"].map(codes),
        "pitch_165": threshold_predictions(f0, PITCH_THRESHOLD_HZ),
    })


def speaker_rows(clips: pd.DataFrame, speakers: dict[str, dict]) -> list[dict]:
    """Per (fold, speaker): clips, each predictor's accuracy, median F0 of the clips."""
    rows = []
    for (fold, name), part in clips.groupby(["fold", "speaker"], sort=True):
        row = {"fold": fold, "speaker": name, "gender": speakers[name]["gender"],
               "channel": speakers[name]["channel"], "clips": len(part),
               "median_f0_hz": float(np.nanmedian(part["f0"])) if part["f0"].notna().any()
               else float("nan")}
        for column, _ in PREDICTORS:
            row[column] = float((part[column] == part["true"]).mean())
        rows.append(row)
    return rows


def summarize(clips: pd.DataFrame, *, seed: int) -> list[dict]:
    """Per fold and overall, per predictor: accuracy and UAR with 95 % CIs from the
    product's bootstrap over speakers (``metrics.bootstrap_ci``)."""
    from agegender.metrics import bootstrap_ci, classification_metrics  # noqa: PLC0415

    out = []
    for fold in [*sorted(clips["fold"].unique()), "all"]:
        part = clips if fold == "all" else clips[clips["fold"] == fold]
        for column, name in PREDICTORS:
            metrics = classification_metrics(part["true"], part[column], ("male", "female"))
            ci = bootstrap_ci(part["true"], part[column], list(part["speaker"]), seed=seed)
            out.append({"fold": fold, "model": name, "speakers": part["speaker"].nunique(),
                        "clips": len(part), "accuracy": metrics["accuracy"],
                        "uar": metrics["balanced_accuracy"], "accuracy_ci": ci["accuracy"],
                        "uar_ci": ci["balanced_accuracy"]})
    return out


def report(rows: Sequence[dict], summary: Sequence[dict], out: Path, *,
           title: str = "") -> str:
    """Print-ready tables; also writes ``per_speaker.csv``, ``summary.csv``, ``report.md``."""
    head = ("fold", "speaker", "gender", "channel", "clips", "median F0",
            *(name for _, name in PREDICTORS))
    body = [(str(r["fold"]), r["speaker"], r["gender"], r["channel"], str(r["clips"]),
             f"{r['median_f0_hz']:.0f} Hz", *(f"{r[c]:.0%}" for c, _ in PREDICTORS))
            for r in rows]
    sum_head = ("fold", "model", "speakers", "clips", "accuracy [95% CI]", "UAR [95% CI]")
    sum_body = [(str(s["fold"]), s["model"], str(s["speakers"]), str(s["clips"]),
                 f"{s['accuracy']:.2f} [{s['accuracy_ci'][0]:.2f}, {s['accuracy_ci'][1]:.2f}]",
                 f"{s['uar']:.2f} [{s['uar_ci'][0]:.2f}, {s['uar_ci'][1]:.2f}]")
                for s in summary]

    def markdown(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
        return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                          *("| " + " | ".join(line) + " |" for line in lines)])

    def plain(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
        widths = [max(len(x) for x in col) for col in zip(header, *lines, strict=False)]
        return "\n".join("  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True))
                         for line in [header, *lines])

    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "per_speaker.csv", index=False)
    pd.DataFrame(summary).to_csv(out / "summary.csv", index=False)
    (out / "report.md").write_text(f"{title}\n\n{markdown(head, body)}\n\n"
                                   f"{markdown(sum_head, sum_body)}\n\n{UNVOICED_NOTE}\n",
                                   encoding="utf-8")
    return f"{title}\n{plain(head, body)}\n\n{plain(sum_head, sum_body)}\n{UNVOICED_NOTE}"


# ---------------------------------------------------------------------------------------------
# Fold stage: the product's CLIs, then the table.


def run_cli(args: Sequence[str]) -> None:
    """Runs one of the product's scripts from the repository root; raises on failure."""
    command = [sys.executable, *args]
    LOG.info("%s", " ".join(command))
    subprocess.run(command, cwd=REPO, check=True)


def run_fold(folder: Path, args: argparse.Namespace) -> Path:
    """preprocess → train → test for one fold folder; returns ``predictions_gender.csv``."""
    results, models = folder / "results", folder / "models"
    run_cli(["src/preprocess_dataset.py", f"--dataset_dir={folder}", "--dataset_type=manifest",
             f"--results_dir={results}", *args.preprocess_args.split()])
    run_cli(["src/train.py", f"--dataset_dir={folder}", "--cls_task=gender",
             f"--num_epochs={args.num_epochs}", f"--batch_size={args.batch_size}",
             f"--models_dir={models}", f"--results_dir={results}", *args.train_args.split()])
    run_cli(["src/test.py", f"--dataset_dir={folder}",
             f"--model_path={models / 'gender' / 'best_model_gender.keras'}",
             "--cls_task=gender", f"--results_dir={results}", *args.test_args.split()])
    return results / "gender" / "predictions_gender.csv"


# ---------------------------------------------------------------------------------------------
# Channel stage: how far a telephone line moves each preset's image, against a change of voice.

CHANNEL_VARIANTS = (("paper", "paper", {}), ("voice-none", "voice", {"freq_norm": "none"}),
                    ("voice-mean", "voice", {"freq_norm": "mean"}), ("voice", "voice", {}))


def channel_check(cache_dir: Path, *, clips_per_speaker: int = 2) -> None:
    """Prints, per feature variant, the mean |difference| of the 0-1 images of the dataset's
    wideband clips and of the same clips through a simulated telephone line (μ-law, GSM 06.10,
    a +6 dB/octave tilt then μ-law) or at a tenth of the gain, beside the distance between a
    male and a female synthetic voice: the yardstick a channel must stay under.
    """
    import scipy.signal  # noqa: PLC0415
    import soundfile as sf  # noqa: PLC0415
    import soxr  # noqa: PLC0415

    from agegender import features, synthetic  # noqa: PLC0415
    from agegender.channel import telephone  # noqa: PLC0415
    from agegender.config import FeatureParams  # noqa: PLC0415

    # The image is a viridis RGB picture: map each colour back to its 0-255 level.
    lut = features._viridis_lut().astype(np.int64)
    codes = lut[:, 0] << 16 | lut[:, 1] << 8 | lut[:, 2]
    order = np.argsort(codes)

    def scalar(wave, rate, params):
        if rate != params.sample_rate:
            wave = soxr.resample(wave, rate, params.sample_rate, quality="HQ")
        rgb = features.spectrogram_image(wave.astype(np.float32), params).astype(np.int64)
        pixel = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
        return order[np.searchsorted(codes[order], pixel)] / 255.0

    dataset = cache_dir / "dataset"
    table = pd.read_csv(dataset / "manifest.csv")
    wide = table[table["channel"] != "8k-telephone"].groupby("speaker").head(clips_per_speaker)
    voices = []
    for path in wide["path"]:
        wave, rate = sf.read(dataset / path, dtype="float32")
        voices.append((wave.mean(axis=1) if wave.ndim > 1 else wave, rate))
    male = synthetic.voice("male", "thirties", seed=1, seconds=3.0, rate=44_100)
    female = synthetic.voice("female", "thirties", seed=2, seconds=3.0, rate=44_100)
    print(f"{len(voices)} real wideband clips; mean |image difference| (0-1 images)")
    print(f"{'variant':12s} {'mu-law':>7s} {'GSM':>7s} {'tilt+mu':>8s} {'gain/20':>8s} "
          f"{'male-female':>12s}")
    for name, preset, overrides in CHANNEL_VARIANTS:
        params = FeatureParams.preset(preset, **overrides)
        diffs = {"mulaw": [], "gsm": [], "tilt": [], "gain": []}
        for wave, rate in voices:
            clean = scalar(wave, rate, params)
            for codec in ("mulaw", "gsm"):
                diffs[codec].append(np.abs(clean - scalar(telephone(wave, rate, codec=codec),
                                                          8000, params)).mean())
            tilted = scipy.signal.lfilter([1.0, -0.9], [1.0], wave).astype(np.float32)
            diffs["tilt"].append(np.abs(clean - scalar(telephone(tilted, rate), 8000,
                                                       params)).mean())
            diffs["gain"].append(np.abs(clean - scalar(0.1 * wave, rate, params)).mean())
        speaker = np.abs(scalar(male, 44_100, params) - scalar(female, 44_100, params)).mean()
        print(f"{name:12s} {np.mean(diffs['mulaw']):7.3f} {np.mean(diffs['gsm']):7.3f} "
              f"{np.mean(diffs['tilt']):8.3f} {np.mean(diffs['gain']):8.4f} {speaker:12.3f}")


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("fetch", "build", "folds", "channel", "all"),
                        default="all")
    parser.add_argument("--cache_dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--max_clips", type=int, default=60, help="clips per speaker at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--dev_per_gender", type=int, default=1)
    parser.add_argument("--num_epochs", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--preprocess_args", default="",
                        help="passed to preprocess_dataset.py, e.g. '--feature_type=mel'")
    parser.add_argument("--train_args", default="", help="passed to train.py")
    parser.add_argument("--test_args", default="", help="passed to test.py")
    parser.add_argument("--tag", default=None,
                        help="names this comparison's fold folders (CACHE/folds/TAG/) and "
                             "report (OUT/TAG/); default: made from the passed-through args")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "real_speech")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Runs the chosen stages."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    cache = args.cache_dir.expanduser()
    if args.stage in ("fetch", "all"):
        seconds = fetch(cache)
        size = sum(p.stat().st_size for p in (cache / "debs").glob("*.deb"))
        print(f"fetched {len(PACKAGES)} packages, {size / 1e6:.0f} MB of .deb, "
              f"into {cache} in {seconds:.1f} s")
    if args.stage in ("build", "all"):
        manifest, table, dropped = build(cache, cap=args.max_clips, seed=args.seed)
        print(format_speakers(table))
        for note in dropped:
            print(f"dropped {note}")
        print(f"wrote {cache / 'dataset' / 'manifest.csv'} ({len(manifest)} clips)")
    if args.stage in ("folds", "all"):
        tag = args.tag or fold_tag(args)
        table = read_csv(cache / "dataset" / "speakers.csv")
        speakers = {r["speaker"]: r for r in table}
        folds = speaker_folds(table, args.folds, seed=args.seed)
        clips, notes = [], []
        for fold, test in enumerate(folds):
            train = [r for r in table if r["speaker"] not in test]
            dev = choose_dev(train, seed=args.seed + fold, per_gender=args.dev_per_gender)
            notes.append(f"fold {fold}: test {', '.join(test)}; dev {', '.join(dev)}; "
                         f"{fold_composition(table, test, dev)}")
            print(notes[-1])
            folder = write_fold(cache, fold, test, dev, tag=tag)
            run_fold(folder, args)
            clips.append(fold_predictions(folder, fold))
        clips = pd.concat(clips, ignore_index=True)
        title = (f"real speech, gender, leave-speakers-out ({args.folds} folds, "
                 f"{args.num_epochs} epochs): {tag}\n" + "\n".join(notes))
        print(report(speaker_rows(clips, speakers), summarize(clips, seed=args.seed),
                     args.out / tag, title=title))
    if args.stage == "channel":
        channel_check(cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
