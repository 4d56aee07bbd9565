"""Labels audio files with a trained model: predicted class and probabilities.

Example:
    python src/inference.py --model_path='models/age/best_model_age.keras' \
        --audio_file='data/CommonVoice/Audio/cv-valid-test/sample-000001.mp3' --cls_task='age'
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from agegender import atomic, cli
from agegender.errors import OutputError, ParameterError
from agegender.labels import TASKS


def build_parser() -> argparse.ArgumentParser:
    """The script's flags; ``--help`` shows each default."""
    parser = cli.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--model_path", default=None,
                        help=".keras or .h5 file, or a SavedModel folder (default: the "
                             "shipped model for --cls_task, gender when none is given, "
                             "from models/pretrained/)")
    parser.add_argument("--audio_file", required=True, nargs="+",
                        help="audio files, globs (quoted) or folders")
    parser.add_argument("--cls_task", default=None, choices=TASKS,
                        help="expected task (default: read from the model)")
    parser.add_argument("--top_k", type=int, default=1, help="classes to print per file")
    parser.add_argument("--batch_size", type=int, default=64, help="clips per model call")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"),
                        help="bfloat16: ~2x faster model on CPUs with bf16 instructions, "
                             "labels may rarely differ (default: float32)")
    parser.add_argument("--max_crops", type=int, default=3,
                        help="for models with a constant time scale (voice preset): a long "
                             "clip is cut into up to this many 2.56-s crops whose "
                             "probabilities are averaged; 1 = the centre crop training stored; "
                             "paper models always use the whole clip (default: 3)")
    parser.add_argument("--output", default=None,
                        help="write every class probability per file to a .csv or .json "
                             "(missing folders on its path are created); with --timeline: "
                             "every file's segments")
    _add_timeline_flags(parser)
    parser.add_argument("--min_voiced", type=float, default=0.1,
                        help="speech gate: a file with fewer voiced frames than this share "
                             "gets 'no speech' instead of a label; 0: no gate (default: "
                             "%(default)s; README: Speech gate)")
    cli.add_bool_flag(parser, "no_verify", default=False,
                      help="load the model even when it does not match its .sha256 sidecar")
    cli.add_bool_flag(parser, "verbose", default=False, help="debug logging")
    return parser


def _add_timeline_flags(parser: argparse.ArgumentParser) -> None:
    """``--timeline`` and the flags that only it reads."""
    cli.add_bool_flag(parser, "timeline", default=False,
                      help="label who speaks when over each whole file: segments (start, end, "
                           "speaker, gender, gender_probability, age, age_probability) with "
                           "'no speech' marked, written as CSV, JSON, RTTM, TextGrid and PNG, "
                           "and a per-speaker CSV, to --timeline_dir (docs/timeline.md)")
    parser.add_argument("--timeline_dir", default=os.path.join("results", "timeline"),
                        help="--timeline: folder for <file stem>.{csv,json,rttm,TextGrid,png} and "
                             "<file stem>_speakers.csv; "
                             "a file there that this run did not write is never replaced "
                             "without --overwrite (default: %(default)s)")
    cli.add_bool_flag(parser, "overwrite", default=False,
                      help="--timeline: replace timeline files that exist already in "
                           "--timeline_dir")
    parser.add_argument("--hop_s", type=float, default=0.0,
                        help="--timeline: seconds between model windows; 0: the model's "
                             "window, side by side; half of it: twice the model calls "
                             "(default: %(default)s)")
    parser.add_argument("--num_speakers", type=int, default=None,
                        help="--timeline: the number of speakers, when known (>= 1); "
                             "omitted: found from --speaker_threshold")
    parser.add_argument("--speaker_threshold", type=float, default=None,
                        help="--timeline: cosine distance (between 0 and 2) at which two "
                             "groups of voice embeddings stop being merged into one speaker; "
                             "lower finds more speakers (default: TimelineParams' "
                             "speaker_threshold)")
    parser.add_argument("--gender_weight", type=float, default=None,
                        help="--timeline: gender-aware clustering, >= 0: cosine distance "
                             "added per unit of gender-probability difference between two "
                             "stretches of voice; 0.3 lowered test DER 0.279 -> 0.246 but was "
                             "not chosen on dev (default: TimelineParams' gender_weight, 0: "
                             "off; docs/timeline.md)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    return build_parser().parse_args(argv)


def write_output(path: str, results: list[dict], class_names: tuple[str, ...], *,
                 model: dict | None = None) -> None:
    """Writes predictions as CSV (one row per file) or JSON (a list of objects).

    ``model`` (``checkpoints.model_identity``) goes beside it, to ``PATH.model.json``, so the
    file says which model made it.
    """
    if not path.endswith((".csv", ".json")):
        raise ParameterError(f"--output={path}: expected a .csv or .json file name")
    if model is not None:
        from agegender.reports import model_sidecar  # noqa: PLC0415

        atomic.write_text(model_sidecar(path), json.dumps(model, indent=2))
    if path.endswith(".json"):
        atomic.write_text(path, json.dumps(results, indent=2))
        return
    import pandas as pd  # noqa: PLC0415

    rows = [{"file": r["file"], "label": r["label"], "probability": r["probability"],
             **{f"p_{name}": r["probabilities"].get(name) for name in class_names},
             "error": r["error"] or ""} for r in results]
    atomic.write_text(path, pd.DataFrame(rows).to_csv(index=False))


def predict_with_progress(detector, files: list[str], items: list[str],
                          batch_size: int) -> list[dict]:
    """``detector.predict(files)`` a batch at a time, saying first how many files the
    folders among ``items`` (searched recursively) gave, with a progress bar on a terminal."""
    from tqdm import tqdm  # noqa: PLC0415

    folders = [item for item in items if os.path.isdir(item)]
    if folders:
        print(f"{len(files)} file(s) to predict (folders searched recursively: "
              f"{', '.join(folders)})", file=sys.stderr, flush=True)
    results: list[dict] = []
    step = max(1, batch_size)
    # disable=None: a bar on a terminal only; in a redirected log every redraw would stay.
    with tqdm(total=len(files), desc="predicting", unit="file", disable=None) as bar:
        for start in range(0, len(files), step):
            chunk = files[start:start + step]
            results += detector.predict(chunk)
            bar.update(len(chunk))
    return results


def warn_if_synthetic(detector, files: list[str], shown_model: str) -> None:
    """One WARNING line on stderr, before the labels it is about, when the model was trained
    on the synthetic demo voices and labels audio from outside that corpus
    (``provenance.synthetic_warning``)."""
    from agegender.provenance import synthetic_warning  # noqa: PLC0415

    warning = synthetic_warning(detector.model.trained_on, files, model=shown_model)
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Predicts; exit status 0 if at least one file was predicted, 1 if none, 2 on errors."""
    # Long because: work() is the whole CLI run, a closure so that run_cli turns its errors into one
    # line.
    args = parse_args(argv)

    def work() -> int:
        from agegender.inference import MAX_BATCH_SIZE, MAX_CROPS  # noqa: PLC0415

        cli.check_numbers(args, {"top_k": cli.POSITIVE_INT,
                                 "batch_size": cli.Bounds(1, MAX_BATCH_SIZE),
                                 "max_crops": cli.Bounds(1, MAX_CROPS),
                                 "min_voiced": cli.Bounds(0, 1), "hop_s": cli.Bounds(0)})
        from agegender.checkpoints import describe_model, model_identity  # noqa: PLC0415
        from agegender.inference import AgeGenderDetector, expand_audio_paths  # noqa: PLC0415

        if args.timeline:  # its flags, judged before the model is loaded
            from agegender.timeline_cli import timeline_params  # noqa: PLC0415

            timeline_params(args)

        if args.top_k < 1:
            raise ParameterError(f"--top_k={args.top_k} must be >= 1")
        if args.output and not args.output.endswith((".csv", ".json")):
            raise ParameterError(f"--output={args.output}: expected a .csv or .json file name")
        detector = AgeGenderDetector(args.model_path, args.cls_task, batch_size=args.batch_size,
                                     precision=args.precision, verify=not args.no_verify,
                                     max_crops=args.max_crops, min_voiced=args.min_voiced)
        identity = {**model_identity(detector.model.path), "task": detector.task}
        files = expand_audio_paths(args.audio_file)
        warn_if_synthetic(detector, files, detector.model.path)  # the path as given
        if args.timeline:
            from agegender.timeline_cli import run_timelines, shipped_companions  # noqa: PLC0415

            more = shipped_companions(args, detector)
            return run_timelines(detector, files, args, identity, more=more)
        results = predict_with_progress(detector, files, args.audio_file, args.batch_size)
        for result in results:
            if not result.get("speech", True):  # an answer, not a failure: stdout
                print(f"{result['file']}: no speech ({result['voiced']:.0%} of frames voiced, "
                      f"--min_voiced {args.min_voiced:g})")
                continue
            if result["error"]:
                print(f"error: {result['error']}", file=sys.stderr)
                continue
            ranked = sorted(result["probabilities"].items(), key=lambda kv: -kv[1])
            shown = ", ".join(f"{name} {p:.3f}" for name, p in ranked[:args.top_k])
            print(f"{result['file']}: {result['label']} (p={result['probability']:.3f})"
                  + (f"  [{shown}]" if args.top_k > 1 else ""))
        if args.output:
            try:
                write_output(args.output, results, detector.class_names, model=identity)
            except OSError as err:
                raise OutputError(f"--output={args.output}: cannot be written "
                                  f"({err.strerror or err})") from err
            print(f"predictions written to {args.output} (model named in "
                  f"{args.output}.model.json)")
        predicted = sum(1 for r in results if not r["error"])
        silent = sum(1 for r in results if not r.get("speech", True))
        print(f"{predicted} of {len(results)} files predicted ({detector.task}"
              + (f"; {silent} without speech" if silent else "") + ") by "
              f"{describe_model(identity, short=True)}")
        return 0 if predicted else 1

    return cli.run_cli(work, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
