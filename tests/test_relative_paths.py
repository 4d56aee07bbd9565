"""Model identities written to JSON and logs carry no absolute machine path the user did not
type (issue 33, item 6)."""

from __future__ import annotations

from pathlib import Path

from agegender import shipped
from agegender.checkpoints import model_identity, shown_path


def test_model_under_the_working_folder_is_shown_relative(tmp_path, monkeypatch):
    model = tmp_path / "models" / "m.keras"
    model.parent.mkdir()
    model.write_bytes(b"not a real model, only hashed")
    monkeypatch.chdir(tmp_path)
    assert model_identity(model)["path"] == str(Path("models") / "m.keras")
    assert model_identity("models/m.keras")["path"] == str(Path("models") / "m.keras")


def test_model_elsewhere_is_shown_as_the_user_named_it(tmp_path, monkeypatch):
    model = tmp_path / "m.keras"
    model.write_bytes(b"x")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert model_identity("../m.keras")["path"] == "../m.keras"
    assert model_identity(model)["path"] == str(model)  # typed absolute: kept


def test_shipped_model_is_shown_from_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the repository
    shipped_model = Path(shipped.__file__).resolve().parents[2] / "models/pretrained/gender.keras"
    assert shown_path(shipped_model) == str(Path("models/pretrained/gender.keras"))
