"""figures: what the training curves and the dataset summary show."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agegender import figures


def _log(with_crossentropy: bool) -> pd.DataFrame:
    epochs = np.arange(5)
    log = {"epoch": epochs, "accuracy": 0.5 + 0.1 * epochs, "loss": 15.0 - epochs,
           "val_accuracy": [0.5, 0.7, 0.9, 0.9, 0.8], "val_loss": 15.5 - epochs}
    if with_crossentropy:
        log.update(crossentropy=0.7 - 0.1 * epochs, val_crossentropy=[0.7, 0.6, 0.5, 0.45, 0.5])
    return pd.DataFrame(log)


def _drawn(log: pd.DataFrame, best_epoch: int | None):
    figure = figures._figure(16, 4)
    figures.draw_training_curves(figure, log, "t", best_epoch=best_epoch)
    return figure.axes


def test_cross_entropy_is_its_own_panel_and_total_loss_is_labelled():
    axes = _drawn(_log(True), best_epoch=3)
    assert [a.get_ylabel() for a in axes] == ["accuracy", "cross-entropy",
                                             "total loss = cross-entropy + L2 penalty"]
    total = axes[2].get_lines()
    assert {line.get_linestyle() for line in total if line.get_label().startswith(
        ("train", "validation"))} == {"--"}
    np.testing.assert_allclose(axes[1].get_lines()[1].get_ydata(),
                               [0.7, 0.6, 0.5, 0.45, 0.5])


def test_without_crossentropy_columns_the_total_loss_is_the_second_panel():
    axes = _drawn(_log(False), best_epoch=None)
    assert [a.get_ylabel() for a in axes] == ["accuracy",
                                             "total loss = cross-entropy + L2 penalty"]
    assert not any("saved best" in line.get_label() for a in axes for line in a.get_lines())


def test_the_saved_best_epoch_is_marked_on_every_panel():
    for axes in _drawn(_log(True), best_epoch=3):
        marks = [line for line in axes.get_lines() if "saved best (epoch 3)" in line.get_label()]
        assert len(marks) == 1 and list(marks[0].get_xdata()) == [3, 3]


def test_training_curves_writes_the_png(tmp_path):
    figures.training_curves(_log(True), tmp_path / "c.png", "t", best_epoch=2)
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("group", "label"), [("male-?", "male-? (age missing)"),
                                              ("?-twenties", "?-twenties (gender missing)"),
                                              ("?-?", "?-? (gender and age missing)"),
                                              ("female-teens", "female-teens"),
                                              ("other-twenties", "other-twenties")])
def test_group_label_names_what_is_missing(group, label):
    assert figures.group_label(group) == label


def test_class_distribution_has_titles_axis_labels_and_named_missing_bars(tmp_path,
                                                                          monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "save_png", lambda figure, path: drawn.append(figure))
    counts = pd.DataFrame({"split": ["train"] * 3 + ["dev"] * 3,
                           "group": ["female-teens", "male-?", "?-?"] * 2,
                           "before": [5, 3, 2, 4, 1, 1], "after": [5, 0, 0, 4, 0, 0]})
    figures.class_distribution(counts, tmp_path / "d.png")
    (figure,) = drawn
    assert "before and after cleaning" in figure.get_suptitle()
    train, dev = figure.axes
    assert train.get_title() == "cv-valid-train: 5 of 10 clips kept"
    assert dev.get_xlabel().startswith("gender-age group")
    ticks = [t.get_text() for t in train.get_xticklabels()]
    assert ticks == ["female-teens", "male-? (age missing)", "?-? (gender and age missing)"]


@pytest.mark.parametrize("class_names", [["male", "female"],
                                         ["teens", "twenties", "thirties", "fourties",
                                          "fifties", "sixties"]])
def test_per_speaker_draws_and_labels_chance_as_one_over_the_classes(tmp_path, monkeypatch,
                                                                     class_names):
    """Was: a 0.5 line for every task (age's chance is 1/6), with no label."""
    saved = []
    monkeypatch.setattr(figures, "save_png", lambda figure, path: saved.append(figure))
    table = pd.DataFrame({"speaker_id": ["a", "b"], "true": class_names[:2],
                          "accuracy": [0.25, 1.0], "clips": [4, 3]})
    chance = figures.per_speaker(table, class_names, tmp_path / "s.png")
    assert chance == pytest.approx(1 / len(class_names))
    axes = saved[0].axes[0]
    dashed = [line for line in axes.get_lines() if line.get_linestyle() == "--"]
    assert [tuple(line.get_ydata()) for line in dashed] == [(chance, chance)]
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert f"chance (1/{len(class_names)} = {chance:.2f})" in labels


def test_the_per_speaker_figure_draws_the_worst_speakers_only(tmp_path, monkeypatch):
    """Was: 183 hair-thin bars for 183 speakers (issue 33, first hour)."""
    table = pd.DataFrame({"speaker_id": [f"s{i}" for i in range(183)],
                          "true": ["male", "female"] * 91 + ["male"],
                          "clips": 1, "accuracy": np.linspace(0, 1, 183)})
    drawn = []
    save = figures.save_png
    monkeypatch.setattr(figures, "save_png", lambda figure, path: (
        drawn.append(len(figure.axes[0].patches)), save(figure, path)))
    figures.per_speaker(table, ["male", "female"], tmp_path / "s.png")
    assert drawn == [figures.SHOWN_SPEAKERS]
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
