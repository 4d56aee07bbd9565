"""Training: checkpoints, logs, plot, resume, strategies, loading from other code, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TINY_IMAGE

from agegender.config import TrainParams
from agegender.errors import AgeGenderError, DatasetError, ParameterError
from agegender.checkpoints import export_saved_model
from agegender.training import balanced_class_weight, train

SRC = ROOT / "src"


def _images(n: int = 4) -> np.ndarray:
    return np.random.default_rng(5).uniform(0, 255, (n, TINY_IMAGE, TINY_IMAGE, 3)).astype(
        "float32")


def _python(code: str, *, cwd: Path, with_src: bool, extra_env: dict | None = None):
    """Runs ``code`` in a fresh interpreter; the project is importable only if ``with_src``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if with_src:
        env["PYTHONPATH"] = str(SRC)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_two_epochs_write_both_checkpoints_the_log_and_the_plot(trained_gender):
    for key in ("keras", "h5", "csv", "plot"):
        assert Path(trained_gender[key]).is_file(), key
    log = pd.read_csv(trained_gender["csv"])
    assert list(log["epoch"]) == [0, 1]
    assert {"accuracy", "loss", "val_accuracy", "val_loss", "val_uar"} <= set(log.columns)
    assert trained_gender["monitor"] == "val_uar"
    assert trained_gender["best_score"] == pytest.approx(log["val_uar"].max())
    assert Path(trained_gender["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = json.loads(Path(trained_gender["state"]).read_text())
    assert state["task"] == "gender" and state["class_names"] == ["male", "female"]
    assert not (trained_gender["out"] / "models" / "gender" / "backup").exists()


def test_saved_model_loads_and_predicts_the_same_in_a_separate_process(trained_gender,
                                                                        tmp_path):
    x = _images()
    np.save(tmp_path / "x.npy", x)
    expected = keras.models.load_model(trained_gender["keras"], safe_mode=True).predict(
        x, verbose=0)
    code = f"""
        import numpy as np, keras
        import agegender
        x = np.load("x.npy")
        for path, name in (({trained_gender['keras']!r}, "keras"), ({trained_gender['h5']!r}, "h5")):
            np.save(name + ".npy", keras.models.load_model(path).predict(x, verbose=0))
    """
    done = _python(code, cwd=tmp_path, with_src=True)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "keras.npy"), expected, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "h5.npy"), expected, atol=1e-6)


def test_saved_model_export_serves_without_project_code(trained_gender, tmp_path):
    export = export_saved_model(trained_gender["keras"], tmp_path / "export")
    meta = json.loads((export / "agegender.json").read_text())
    assert meta["task"] == "gender" and meta["class_names"] == ["male", "female"]
    x = _images()
    np.save(tmp_path / "x.npy", x)
    expected = keras.models.load_model(trained_gender["keras"]).predict(x, verbose=0)
    # The project is installed (scripts/install.sh: pip install -e .), so the child blocks
    # its import: a None entry in sys.modules makes `import agegender` raise ImportError.
    code = f"""
        import sys
        sys.modules["agegender"] = None
        import numpy as np, tensorflow as tf
        served = tf.saved_model.load({str(export)!r})
        np.save("served.npy",
                served.serve({{"spectrogram": tf.constant(np.load("x.npy"))}}).numpy())
        try:
            import agegender
            sys.exit("agegender should not be importable here")
        except ImportError:
            pass
    """
    done = _python(code, cwd=tmp_path, with_src=False)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), expected, atol=1e-5)
    # A second export to the same folder replaces ours; a foreign folder is refused.
    export_saved_model(trained_gender["keras"], tmp_path / "export")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(AgeGenderError, match="not an agegender export"):
        export_saved_model(trained_gender["keras"], tmp_path / "foreign")
    assert (tmp_path / "foreign" / "notes.txt").read_text() == "mine"


class _Interrupt(keras.callbacks.Callback):
    """Raises in the middle of an epoch, like a kill."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch
        self.current = None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 1:
            raise RuntimeError("simulated crash")


@pytest.mark.slow
def test_resume_after_interruption_keeps_finished_epochs(tiny_dataset, tmp_path):
    params = TrainParams(batch_size=8, num_epochs=3, learning_rate=1e-3, seed=2)
    kwargs = {"image_size": TINY_IMAGE, "models_dir": tmp_path / "m",
              "results_dir": tmp_path / "r", "verbose": 0}
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tiny_dataset, "gender", train_params=params, extra_callbacks=[_Interrupt(1)],
              **kwargs)
    log = pd.read_csv(tmp_path / "r" / "gender" / "best_model_gender" /
                      "train_logs_gender.csv")
    assert list(log["epoch"]) == [0]
    assert any((tmp_path / "m" / "gender" / "backup").iterdir())
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    train(tiny_dataset, "gender", train_params=params, extra_callbacks=[Record()], **kwargs)
    assert seen == [1, 2]  # epoch 0 was not redone
    log = pd.read_csv(tmp_path / "r" / "gender" / "best_model_gender" /
                      "train_logs_gender.csv")
    assert list(log["epoch"]) == [0, 1, 2]
    state = json.loads((tmp_path / "m" / "gender" / "best_model_gender.json").read_text())
    assert state["val_accuracy"] == pytest.approx(log["val_accuracy"].max())


@pytest.mark.slow
def test_mirrored_strategy_runs_on_two_logical_cpus(tiny_dataset, tmp_path):
    code = f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from agegender.config import TrainParams
        from agegender.training import train
        result = train({str(tiny_dataset)!r}, "gender", image_size={TINY_IMAGE},
                       train_params=TrainParams(batch_size=8, num_epochs=1, strategy="mirrored"),
                       models_dir="m", results_dir="r", verbose=0)
        print("replicas", result["replicas"])
    """
    done = _python(code, cwd=tmp_path, with_src=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replicas 2" in done.stdout
    assert (tmp_path / "m" / "gender" / "best_model_gender.keras").is_file()


def test_balanced_class_weight():
    weights = balanced_class_weight(np.array([0, 0, 0, 1]), 3)
    assert weights == {0: pytest.approx(4 / 9), 1: pytest.approx(4 / 3), 2: 1.0}


def test_known_bad_inputs_raise_clear_errors(tiny_dataset, tmp_path):
    params = TrainParams(batch_size=8, num_epochs=1)
    with pytest.raises(DatasetError, match="no TFRecord shards"):
        train(tmp_path, "gender", train_params=params, image_size=TINY_IMAGE,
              models_dir=tmp_path / "m", results_dir=tmp_path / "r")
    with pytest.raises(ParameterError, match="--image_size=64 does not match"):
        train(tiny_dataset, "gender", train_params=params, image_size=64,
              models_dir=tmp_path / "m", results_dir=tmp_path / "r")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(AgeGenderError, match="--models_dir=.*cannot write there"):
        train(tiny_dataset, "gender", train_params=params, image_size=TINY_IMAGE,
              models_dir=blocker / "sub", results_dir=tmp_path / "r")
    with pytest.raises(ParameterError, match="cls_task='height'"):
        train(tiny_dataset, "height", train_params=params, image_size=TINY_IMAGE)


def test_training_batches_drop_the_remainder_and_dev_keeps_every_example(tiny_dataset):
    from agegender.pipeline import make_dataset

    train_data, _ = make_dataset(tiny_dataset, "train", "gender", batch_size=10, training=True)
    dev_data, _ = make_dataset(tiny_dataset, "dev", "gender", batch_size=10, training=False)
    assert [len(y) for _, y in train_data] == [10, 10]  # 24 examples: the 4 left are dropped
    assert int(train_data.cardinality()) == 2
    assert [len(y) for _, y in dev_data] == [10, 2]


def _weights(path) -> list[np.ndarray]:
    return keras.models.load_model(path).get_weights()


@pytest.mark.slow
def test_deterministic_runs_are_bit_identical_and_tensorboard_writes_events(tiny_dataset,
                                                                            tmp_path):
    params = TrainParams(batch_size=8, num_epochs=1, learning_rate=1e-3, seed=4,
                         deterministic=True)
    results = [train(tiny_dataset, "gender", train_params=params, image_size=TINY_IMAGE,
                     models_dir=tmp_path / f"m{i}", results_dir=tmp_path / f"r{i}", verbose=0,
                     tensorboard=i == 0) for i in range(2)]
    first, second = (_weights(result["keras"]) for result in results)
    assert len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second))
    assert pd.read_csv(results[0]["csv"]).equals(pd.read_csv(results[1]["csv"]))
    events = list(Path(results[0]["tensorboard"]).rglob("events.out.tfevents.*"))
    assert {path.parent.name for path in events} >= {"train", "validation"}
    import tensorflow as tf

    scalars = {(path.parent.name, value.tag, value.metadata.plugin_data.plugin_name)
               for path in events for event in tf.compat.v1.train.summary_iterator(str(path))
               for value in event.summary.value}
    assert {("train", "epoch_loss", "scalars"), ("validation", "epoch_loss", "scalars")} <= scalars
    assert "tensorboard" not in results[1]
    assert not (tmp_path / "r1" / "gender" / "best_model_gender" / "tensorboard").exists()


@pytest.mark.slow
def test_mixed_precision_on_cpu_is_bfloat16_and_saves_a_float32_model(tiny_dataset, tmp_path):
    before = keras.mixed_precision.global_policy().name
    result = train(tiny_dataset, "gender", image_size=TINY_IMAGE, verbose=0,
                   train_params=TrainParams(batch_size=8, num_epochs=1, mixed_precision=True),
                   models_dir=tmp_path / "m", results_dir=tmp_path / "r")
    assert keras.mixed_precision.global_policy().name == before  # not leaked
    model = keras.models.load_model(result["keras"])
    assert model.get_layer("dense").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("probabilities").dtype_policy.name == "float32"
    probabilities = model.predict(_images(), verbose=0)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def _free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow
def test_multiworker_two_processes_only_the_chief_writes(tiny_dataset, tmp_path):
    """Two workers on 127.0.0.1 (MultiWorkerMirroredStrategy, as on two machines)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    code = f"""
        import logging
        import keras
        from agegender.config import TrainParams
        logging.basicConfig(level=logging.INFO)
        from agegender.training import train

        steps = []

        class Count(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                steps.append(batch)

        result = train({str(tiny_dataset)!r}, "gender", image_size={TINY_IMAGE},
                       train_params=TrainParams(batch_size=8, num_epochs=2, seed=1,
                                                strategy="multiworker"),
                       models_dir="m", results_dir="r", verbose=0,
                       extra_callbacks=[Count()])
        print("replicas", result["replicas"], "steps", len(steps))
    """
    workers = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(PYTHONPATH=str(SRC), TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(scratch),
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                                        cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=600)
            outputs.append((worker.returncode, out, err))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for returncode, out, err in outputs:
        assert returncode == 0, err[-3000:]
        # 24 examples, global batch 8 over 2 workers: 3 steps an epoch on each, 4 examples a
        # worker a step (AutoShardPolicy.DATA), so each worker reads half of every batch.
        assert "replicas 2 steps 6" in out, out
        assert "4 examples a replica a step" in err, err[-2000:]
    assert "not the chief" in outputs[1][2] and "not the chief" not in outputs[0][2]
    model_dir = tmp_path / "m" / "gender"
    assert (model_dir / "best_model_gender.keras").is_file()
    assert len(list((model_dir / "best").iterdir())) == 2  # current + one folder: one writer
    reports = tmp_path / "r" / "gender" / "best_model_gender"
    assert list(pd.read_csv(reports / "train_logs_gender.csv")["epoch"]) == [0, 1]
    assert (reports / "training_metrics_gender.png").is_file()
    assert not (model_dir / "backup").exists()
    for index in range(2):  # the non-chief's scratch folders are gone
        assert not list((tmp_path / f"tmp{index}").glob("agegender-worker-*"))
    done = _python(f"""
        import keras, agegender
        model = keras.models.load_model({str(model_dir / "best_model_gender.keras")!r})
        print(model.name)
    """, cwd=tmp_path, with_src=True)
    assert done.returncode == 0 and "mam_cnn_gender" in done.stdout, done.stderr[-2000:]


def test_save_optimizer_flag_reaches_train(monkeypatch, capsys):
    import train as train_cli

    from agegender import training

    seen = {}

    def fake_train(*args, **kwargs):
        seen.update(kwargs)
        return {"monitor": "val_uar", "best_score": 1.0, "best_epoch": 1, "keras": "k",
                "h5": "h",
                "csv": "c", "plot": "p"}

    monkeypatch.setattr(training, "train", fake_train)
    assert train_cli.main(["--dataset_dir=d"]) == 0
    assert seen["save_optimizer"] is False
    assert train_cli.main(["--dataset_dir=d", "--save_optimizer"]) == 0
    assert seen["save_optimizer"] is True


def test_live_plot_marks_the_best_checkpoints_epoch(tmp_path, monkeypatch):
    from agegender import figures
    from agegender.callbacks import BestCheckpoint, LivePlot, RunRecord

    # The real drawing path; only the save is intercepted, to look at what was drawn.
    saved = []
    monkeypatch.setattr(figures, "save_png", lambda figure, path: saved.append(figure))
    pd.DataFrame({"epoch": [0, 1, 2], "accuracy": [.5, .6, .7], "loss": [3, 2, 1],
                  "val_uar": [.5, .8, .6]}).to_csv(tmp_path / "log.csv", index=False)
    record = RunRecord(run_id="r", settings={})
    best = BestCheckpoint(tmp_path / "m", "gender", record)
    plot = LivePlot(tmp_path / "log.csv", tmp_path / "c.png", show=False, best=best)

    def marks(figure) -> list[list[float]]:
        return [list(line.get_xdata()) for line in figure.axes[0].get_lines()
                if line.get_label().startswith("saved best")]

    plot.on_epoch_end(0)
    record.best_epoch = 2  # what BestCheckpoint.on_epoch_end sets when it publishes
    plot.on_epoch_end(2)
    assert marks(saved[0]) == [] and marks(saved[1]) == [[2, 2]]
    star = [line for line in saved[1].axes[0].get_lines() if line.get_marker() == "*"]
    assert list(star[0].get_ydata()) == [0.8]  # the saved epoch's dev UAR


def test_trained_model_files_carry_no_optimizer_state(trained_gender):
    import h5py

    with h5py.File(trained_gender["h5"], "r") as saved:
        assert "optimizer_weights" not in saved
    assert Path(trained_gender["keras"]).stat().st_size < 40e6  # 35 MB at 32 px, 106 with Adam


def test_training_learns_gender_on_the_pitch_fixture(tiny_dataset, tmp_path):
    """The tiny corpus's genders differ in pitch: a few epochs must reach a dev UAR well
    above chance (0.5), and the test split must agree: files alone prove nothing.

    Runs in a fresh interpreter on its own copy of the corpus, so no global Keras/TF state
    or shard change left by another test can decide the outcome, and deterministically: with
    3 steps an epoch, the order in which parallel reads deliver the examples (thread timing)
    decided whether 6 epochs learnt (it failed on a quiet machine and passed on a loaded one)."""
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_dataset, corpus, symlinks=True)
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(SRC)!r})
        from agegender.config import TrainParams
        from agegender.evaluation import evaluate
        from agegender.training import train
        import pandas as pd
        result = train({str(corpus)!r}, "gender", train_params=TrainParams(
            batch_size=8, num_epochs=10, learning_rate=1e-3, seed=3, deterministic=True),
            image_size={TINY_IMAGE},
            models_dir={str(tmp_path / "models")!r}, results_dir={str(tmp_path / "results")!r},
            verbose=0)
        log = pd.read_csv(result["csv"])
        tested = evaluate({str(corpus)!r}, result["keras"], "gender",
                          results_dir={str(tmp_path / "results")!r}, n_resamples=50)
        print(json.dumps({{"best": result["best_score"], "max_uar": float(log["val_uar"].max()),
                          "uar": log["val_uar"].tolist(), "test": tested["balanced_accuracy"]}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    numbers = json.loads(done.stdout.strip().splitlines()[-1])
    assert numbers["best"] == pytest.approx(numbers["max_uar"])
    assert numbers["best"] >= 0.8, numbers
    assert numbers["test"] >= 0.75, numbers


class _PoisonWeights(keras.callbacks.Callback):
    """Sets the first kernel to NaN after the first batch, as a diverging run would."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 0 and not getattr(self, "done", False):
            self.done = True
            kernel = self.model.weights[0]
            kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))


def test_non_finite_loss_stops_training_and_publishes_no_nan_model(tiny_dataset, tmp_path):
    from agegender.errors import TrainingError  # noqa: PLC0415

    params = TrainParams(batch_size=8, num_epochs=3, learning_rate=1e-3, seed=3)
    with pytest.raises(TrainingError) as raised:
        train(tiny_dataset, "gender", train_params=params, image_size=TINY_IMAGE,
              models_dir=tmp_path / "m", results_dir=tmp_path / "r", verbose=0,
              extra_callbacks=[_PoisonWeights()])
    message = str(raised.value)
    assert message.startswith("training stopped in epoch 1, batch 1: the loss became nan")
    assert "no model was published" in message and "\n" not in message
    assert not (tmp_path / "m" / "gender" / "best_model_gender.keras").exists()
    assert not (tmp_path / "m" / "gender" / "best_model_gender.json").exists()
    log = tmp_path / "r" / "gender" / "best_model_gender" / "train_logs_gender.csv"
    assert not log.exists() or log.read_text() == ""  # no row of the NaN epoch


@pytest.mark.parametrize("field, value", [("learning_rate", float("nan")),
                                          ("learning_rate", float("inf"))])
def test_train_params_refuse_non_finite_numbers(field, value):
    with pytest.raises(ParameterError, match=f"{field}="):
        TrainParams(**{field: value})
