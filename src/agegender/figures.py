"""PNG figures: class distribution, training curves, confusion matrix.

Drawn with matplotlib's object API on an Agg canvas: no pyplot state, no window, works on
servers and in CI, never blocks.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from agegender import atomic


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def save_png(figure, path: str | os.PathLike) -> None:
    """Saves a figure as PNG atomically (a reader never sees half a picture)."""
    with atomic.replacing(path) as tmp:
        figure.savefig(tmp, format="png", bbox_inches="tight")


def group_label(group: str) -> str:
    """Bar label of a ``commonvoice.group_counts`` group: a "?" part is named as missing.

    ``male-?`` → ``male-? (age missing)``, ``?-twenties`` → ``?-twenties (gender
    missing)``, ``?-?`` → ``?-? (gender and age missing)``; other groups unchanged.
    """
    gender, _, age = group.partition("-")
    missing = [what for what, part in (("gender", gender), ("age", age)) if part == "?"]
    return f"{group} ({' and '.join(missing)} missing)" if missing else group


def class_distribution(counts: pd.DataFrame, path: str | os.PathLike) -> None:
    """Bar chart of clips per gender-age group and split, before and after cleaning.

    Args:
        counts: columns split, group, before, after (``commonvoice.group_counts``).
        path: PNG to write.
    """
    splits = list(dict.fromkeys(counts["split"]))
    figure = _figure(12, 3.2 * len(splits) + 0.6)
    for row, split in enumerate(splits, start=1):
        axes = figure.add_subplot(len(splits), 1, row)
        part = counts[counts["split"] == split]
        x = np.arange(len(part))
        axes.bar(x - 0.2, part["before"], width=0.4, label="before cleaning", color="#9ecae1")
        axes.bar(x + 0.2, part["after"], width=0.4, label="after cleaning", color="#08519c")
        axes.set_xticks(x, [group_label(g) for g in part["group"]], rotation=45, ha="right",
                        fontsize=8)
        axes.set_ylabel("clips")
        axes.set_title(f"cv-valid-{split}: {int(part['after'].sum())} of "
                       f"{int(part['before'].sum())} clips kept", fontsize=10)
        axes.legend(fontsize=8)
    axes.set_xlabel("gender-age group (label in the CSV; groups outside the 12 are dropped)")
    figure.suptitle("Clips per gender-age group and split, before and after cleaning")
    figure.tight_layout()
    save_png(figure, path)


def training_curves(log: pd.DataFrame, path: str | os.PathLike, title: str = "", *,
                    best_epoch: int | None = None) -> None:
    """Accuracy and loss per epoch, train vs validation (see ``draw_training_curves``).

    Args:
        log: Keras CSVLogger table (columns epoch, accuracy, loss, val_accuracy, val_loss,
            and when logged uar, val_uar, crossentropy, val_crossentropy).
        path: PNG to write.
        title: figure title.
        best_epoch: the saved best epoch (1-based), marked on every panel; None: no mark.
    """
    figure = _figure(16 if _has_crossentropy(log) else 11, 4)
    draw_training_curves(figure, log, title, best_epoch=best_epoch)
    save_png(figure, path)


def _has_crossentropy(log: pd.DataFrame) -> bool:
    return "crossentropy" in log or "val_crossentropy" in log


TOTAL_LOSS_LABEL = "total loss = cross-entropy + L2 penalty"


def draw_training_curves(figure, log: pd.DataFrame, title: str = "", *,
                         best_epoch: int | None = None) -> None:
    """Draws the training-curve panels onto ``figure`` (also used by the live window).

    Panels: accuracy and, when logged, UAR (``uar``/``val_uar``; the star marks the saved
    epoch's dev UAR); the cross-entropy when the log has ``crossentropy``/
    ``val_crossentropy`` (what the model gets wrong); the total loss Keras minimises, which
    adds the L2 penalty of the weights and is mostly that penalty early on. Without
    cross-entropy columns the total loss is the second panel. A dotted vertical line marks
    ``best_epoch`` (1-based), the epoch whose weights were saved.
    """
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    figure.clear()
    epochs = log["epoch"].to_numpy() + 1
    panels = [("accuracy", "accuracy")]
    if _has_crossentropy(log):
        panels.append(("crossentropy", "cross-entropy"))
    panels.append(("loss", TOTAL_LOSS_LABEL))
    for column, (metric, label) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), column)
        style = "--" if metric == "loss" else "-"
        if metric in log:
            axes.plot(epochs, log[metric], "o" + style, label=f"train {label.split(' =')[0]}")
        if f"val_{metric}" in log:
            axes.plot(epochs, log[f"val_{metric}"], "s" + style,
                      label=f"validation {label.split(' =')[0]}")
        marked = f"val_{metric}"
        if metric == "accuracy" and "val_uar" in log:
            # UAR shares the accuracy panel: it is what picks the best epoch by default.
            if "uar" in log:
                axes.plot(epochs, log["uar"], "^:", label="train UAR")
            axes.plot(epochs, log["val_uar"], "v-", label="validation UAR")
            marked = "val_uar"
        if best_epoch is not None:
            axes.axvline(best_epoch, color="#2ca02c", linestyle=":", linewidth=1.5,
                         label=f"saved best (epoch {best_epoch})")
            shown = log.loc[log["epoch"] + 1 == best_epoch, marked] if marked in log else []
            if len(shown):
                axes.plot([best_epoch], [float(shown.iloc[-1])], "*", color="#2ca02c",
                          markersize=14)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel("accuracy / UAR" if marked == "val_uar" else label,
                        fontsize=9 if metric == "loss" else 10)
        if metric == "loss":
            axes.set_title("total loss (what is minimised)", fontsize=10)
        elif metric == "crossentropy":
            axes.set_title("cross-entropy (the classification loss)", fontsize=10)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()


def confusion_matrix(matrix: np.ndarray, class_names: list[str], path: str | os.PathLike,
                     title: str = "") -> None:
    """Row-normalised confusion matrix in percent, with counts, class names on both axes.

    Args:
        matrix: [classes, classes] counts, rows = true class.
        class_names: one per class.
        path: PNG to write.
        title: figure title.
    """
    matrix = np.asarray(matrix, dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    percent = np.divide(matrix * 100.0, totals, out=np.zeros_like(matrix), where=totals > 0)
    size = max(5.0, 0.75 * len(class_names) + 2.5)
    figure = _figure(size + 1.5, size)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(percent, cmap="Blues", vmin=0, vmax=100)
    figure.colorbar(image, ax=axes, label="% of true class")
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            axes.text(j, i, f"{percent[i, j]:.0f}%\n({int(matrix[i, j])})", ha="center",
                      va="center", fontsize=7 if len(class_names) > 6 else 9,
                      color="white" if percent[i, j] > 55 else "black")
    if title:
        axes.set_title(title)
    figure.tight_layout()
    save_png(figure, path)


CLASS_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939")


SHOWN_SPEAKERS = 30  # bars of the per-speaker figure: wider than that, no bar can be read


def per_speaker(table: pd.DataFrame, class_names: list[str], path: str | os.PathLike,
                title: str = "") -> float:
    """One bar per (speaker, true class): the model's accuracy on that speaker's clips, for
    the ``SHOWN_SPEAKERS`` worst (183 test speakers drew 183 hair-thin bars; the CSV beside
    the figure lists every speaker).

    Bars are coloured by true class, in the table's order (worst first), with the speaker's
    clip count above; a hatched grey bar beside each shows the pitch baseline's accuracy
    when the table has ``pitch_accuracy`` (gender). A dashed line, labelled in the legend,
    marks chance: 1 / number of classes (0.5 for gender, 1/6 for age).

    Args:
        table: ``analysis.speaker_table`` rows.
        class_names: one per class (fixes the colours).
        path: PNG to write.
        title: figure title.

    Returns:
        The chance level drawn, 1 / ``len(class_names)``.
    """
    # Long because: an 18-line docstring explaining what the bars show; the code is 44 lines.
    from matplotlib.lines import Line2D  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    chance = 1.0 / len(class_names)
    total = len(table)
    table = table.iloc[:SHOWN_SPEAKERS]  # the table comes worst first
    count = len(table)
    pitch = "pitch_accuracy" in table.columns
    figure = _figure(min(24.0, max(6.0, 0.35 * count + 2.0)), 4.5)
    axes = figure.add_subplot(1, 1, 1)
    x = np.arange(count)
    width = 0.42 if pitch else 0.8
    colours = [CLASS_COLOURS[class_names.index(name) % len(CLASS_COLOURS)]
               for name in table["true"]]
    offset = -width / 2 if pitch else 0.0
    axes.bar(x + offset, table["accuracy"], width=width, color=colours)
    if pitch:
        axes.bar(x + width / 2, table["pitch_accuracy"], width=width, color="#bbbbbb",
                 hatch="//", edgecolor="#666666", linewidth=0.5)
    axes.set_xticks(x, [str(s)[:12] for s in table["speaker_id"]], rotation=60,
                    ha="right", fontsize=7)
    for i, clips in enumerate(table["clips"]):
        axes.text(i, 1.01, str(clips), ha="center", va="bottom", fontsize=6)
    axes.set_ylim(0, 1.08)
    axes.set_xlim(-0.6, count - 0.4)
    axes.set_ylabel("accuracy on the speaker's clips")
    shown = "" if count == total else f"the {count} worst of {total} speakers; "
    axes.set_xlabel(f"speaker ({shown}worst first; number above = clips)")
    axes.axhline(chance, color="#999999", linewidth=0.6, linestyle="--")
    present = [name for name in class_names if name in set(table["true"])]
    handles = [Patch(color=CLASS_COLOURS[class_names.index(n) % len(CLASS_COLOURS)],
                     label=f"model, true {n}") for n in present]
    if pitch:
        handles.append(Patch(facecolor="#bbbbbb", hatch="//", edgecolor="#666666",
                             label="pitch baseline"))
    handles.append(Line2D([], [], color="#999999", linewidth=0.6, linestyle="--",
                          label=f"chance (1/{len(class_names)} = {chance:.2f})"))
    # Outside the axes: inside, it would hide the bars of the best speakers.
    axes.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        axes.set_title(title, fontsize=10)
    figure.tight_layout()
    save_png(figure, path)
    return chance
