"""agegender serve: the REST API through FastAPI's TestClient, on the shipped model and clips."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from agegender.serve import ServeParams, create_app, shipped_detectors  # noqa: E402
from agegender.uploads import UploadLimits  # noqa: E402

CLIPS = sorted((ROOT / "models" / "pretrained" / "clips").glob("*.mp3"))
CLIP = CLIPS[0]


@pytest.fixture(scope="module")
def detectors():
    return shipped_detectors()


@pytest.fixture(scope="module")
def temp_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve-temp")


@pytest.fixture(scope="module")
def client(detectors, temp_root):
    app = create_app(ServeParams(temp_dir=str(temp_root)), detectors=detectors)
    with TestClient(app) as test_client:
        yield test_client


def _upload(client, url, data: bytes, name: str = "clip.mp3"):
    return client.post(url, files={"file": (name, data, "application/octet-stream")})


def _wav(path: Path, rate: int = 16_000, channels: int = 1, seconds: float = 1.0,
         silent: bool = False) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    tone = np.zeros_like(t) if silent else 0.3 * np.sin(2 * np.pi * 220 * t)
    sf.write(path, np.repeat(tone[:, None], channels, axis=1), rate)
    return path.read_bytes()


def test_predict_answers_what_the_detector_says(client, detectors):
    response = _upload(client, "/v1/predict", CLIP.read_bytes(), "my interview.mp3")
    assert response.status_code == 200, response.text
    body = response.json()
    (expected,) = detectors["gender"].predict([CLIP])
    gender = body["tasks"]["gender"]
    assert body["file"] == "my_interview.mp3"  # the user's name made safe, never a temp path
    assert gender["label"] == expected["label"]
    assert set(gender["probabilities"]) == set(detectors["gender"].class_names)
    for name, value in expected["probabilities"].items():
        assert gender["probabilities"][name] == pytest.approx(value, abs=1e-6)
    assert body["duration"] == pytest.approx(sf.info(CLIP).duration, abs=0.01)
    assert set(body["tasks"]) == set(detectors)


def test_predict_on_silence_says_no_speech(client, tmp_path):
    response = _upload(client, "/v1/predict", _wav(tmp_path / "quiet.wav", silent=True),
                       "quiet.wav")
    assert response.status_code == 200, response.text
    gender = response.json()["tasks"]["gender"]
    assert gender["label"] is None and gender["speech"] is False
    assert str(tmp_path) not in response.text and "agegender-serve-" not in response.text


def test_timeline_json_and_files(client, detectors):
    response = client.post("/v1/timeline?files=true",
                           files={"file": ("talk.mp3", CLIP.read_bytes())})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = detectors["gender"].timeline(CLIP)
    assert body["file"] == "talk.mp3" and body["task"] == "gender"
    assert [(s["speaker"], s["gender"]) for s in body["segments"]] == [
        (s.speaker, s.label if s.speaker else None) for s in expected["segments"]]
    assert any(s["speaker"] == "S1" for s in body["segments"])
    assert [row["speaker"] for row in body["speakers"]] == [
        row["speaker"] for row in expected["speakers"]]
    assert body["segments"][0]["start"] == 0
    assert body["segments"][-1]["end"] == pytest.approx(body["duration"])
    for before, after in zip(body["segments"], body["segments"][1:], strict=False):
        assert before["end"] == pytest.approx(after["start"])
    files = body["files"]
    assert files["csv"].splitlines()[0] == \
        "start,end,speaker,gender,gender_probability,age,age_probability"
    assert files["speakers"].splitlines()[0] == \
        "speaker,speech_s,gender,gender_probability,age,age_probability"
    speech = [s for s in body["segments"] if s["speaker"]]
    assert len(files["rttm"].splitlines()) == len(speech)
    assert all(line.split()[1] == "talk" and line.split()[7] == segment["speaker"]
               for line, segment in zip(files["rttm"].splitlines(), speech, strict=True))
    assert 'name = "gender"' in files["TextGrid"] and 'name = "speaker"' in files["TextGrid"]
    assert base64.b64decode(files["png"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "agegender-serve-" not in response.text


def test_timeline_without_files_is_the_json_alone(client):
    body = _upload(client, "/v1/timeline", CLIP.read_bytes()).json()
    assert "files" not in body and body["segments"]


def test_healthz_page_and_docs(client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["tasks"] == ["gender"]
    assert health["limits"]["max_mb"] == 100.0
    page = client.get("/")
    assert page.status_code == 200 and 'id="file-input"' in page.text
    # Everything the page loads is served by the app: no http(s):// source anywhere.
    for asset in ("/static/app.js", "/static/style.css"):
        text = client.get(asset).text
        assert text and "http://" not in text and "https://" not in text
    assert "https://" not in page.text and "http://" not in page.text
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/timeline", "/healthz"} <= set(schema["paths"])


@pytest.fixture(scope="module")
def strict(detectors, temp_root):
    """An app with small limits: 20 KiB, 1 second."""
    limits = UploadLimits(max_mb=20 / 1024, max_minutes=1 / 60)
    app = create_app(ServeParams(temp_dir=str(temp_root), limits=limits), detectors=detectors)
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize("case, status, words", [
    ("not audio", 415, "x.mp3: not an audio file"),
    ("empty", 400, "x.mp3: empty file"),
    ("too large", 413, "clip.mp3: larger than --max_mb=0.0195312"),
    ("too long", 413, "over --max_minutes=0.0166667"),
    ("rate", 422, "unsupported sample rate 2000 Hz"),
    ("channels", 422, "unsupported channel count 3"),
    ("no file field", 400, "no file in form field 'file'"),
    ("not multipart", 415, "expected a multipart/form-data upload"),
])
def test_bad_input_gets_a_4xx_json_error_and_leaves_nothing(strict, temp_root, tmp_path, case,
                                                            status, words):
    small = _wav(tmp_path / "short.wav", rate=8_000, seconds=0.5)  # 8 KB, 0.5 s: within limits
    if case == "not audio":
        response = _upload(strict, "/v1/predict", b"this is no audio\n" * 20, "x.mp3")
    elif case == "empty":
        response = _upload(strict, "/v1/predict", b"", "x.mp3")
    elif case == "too large":
        response = _upload(strict, "/v1/predict", CLIP.read_bytes())  # 26 KB
    elif case == "too long":
        response = _upload(strict, "/v1/timeline", _wav(tmp_path / "long.wav", rate=4_000,
                                                        seconds=2.0))
    elif case == "rate":
        response = _upload(strict, "/v1/predict", _wav(tmp_path / "low.wav", rate=2_000))
    elif case == "channels":
        response = _upload(strict, "/v1/predict", _wav(tmp_path / "three.wav", rate=4_000,
                                                       channels=3, seconds=0.5))
    elif case == "no file field":
        response = strict.post("/v1/predict", files={"other": ("a.wav", small)})
    else:
        response = strict.post("/v1/predict", content=small,
                               headers={"content-type": "audio/wav"})
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    assert list(temp_root.iterdir()) == []
    assert _upload(strict, "/v1/predict", small, "ok.wav").status_code == 200  # still serving


def test_temp_folder_is_removed_after_success(client, temp_root):
    assert _upload(client, "/v1/timeline?files=true", CLIP.read_bytes()).status_code == 200
    assert list(temp_root.iterdir()) == []


class _Held:
    """A detector whose predict waits until released: a slow request the test controls."""

    task = "gender"
    class_names = ("male", "female")

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()
        self.seen: list[Path] = []

    def predict(self, paths):
        self.seen = [Path(p) for p in paths]
        self.started.set()
        assert self.release.wait(60)
        return [{"label": "male", "probability": 1.0, "probabilities": {"male": 1.0,
                 "female": 0.0}, "error": None, "speech": True}]


def test_slow_request_blocks_neither_healthz_nor_leaves_files(tmp_path):
    held = _Held()
    app = create_app(ServeParams(temp_dir=str(tmp_path), workers=1, queue=0),
                     detectors={"gender": held})
    with TestClient(app) as test_client:
        answers = {}
        slow = threading.Thread(target=lambda: answers.setdefault(
            "slow", _upload(test_client, "/v1/predict", CLIP.read_bytes(), "a.mp3")))
        slow.start()
        try:
            assert held.started.wait(30)
            # The upload lies inside this request's own temporary folder, nowhere else.
            (folder,) = tmp_path.iterdir()
            assert held.seen == [folder / "a.mp3"] and held.seen[0].is_file()
            began = time.monotonic()
            health = test_client.get("/healthz")
            assert health.status_code == 200 and health.json()["pending"] == 1
            assert time.monotonic() - began < 10  # answered while the analysis still runs
            busy = _upload(test_client, "/v1/predict", CLIP.read_bytes())
            assert busy.status_code == 503 and "busy" in busy.json()["error"]
        finally:
            held.release.set()
            slow.join(60)
        assert answers["slow"].status_code == 200
    assert list(tmp_path.iterdir()) == []


def test_cli_flags(monkeypatch):
    from agegender import cli_main

    args = cli_main.parse_args(["serve"])
    assert (args.host, args.port, args.max_mb, args.max_minutes) == ("127.0.0.1", 8000, 100.0,
                                                                     120.0)
    assert cli_main.parse_args(["serve", "--port", "9000", "--workers", "3"]).workers == 3
    from agegender.errors import ParameterError

    with pytest.raises(ParameterError, match="--workers=0"):
        cli_main.parse_args(["serve", "--workers", "0"])
    with pytest.raises(ParameterError, match="--max_mb=-1"):
        cli_main.parse_args(["serve", "--max_mb", "-1"])


def test_importing_the_service_does_no_work(tmp_path):
    """``import agegender.serve`` (and the command's module) loads neither TensorFlow nor
    FastAPI: the app, and the models, come from ``create_app`` alone."""
    import subprocess
    import sys

    code = ("import sys; sys.path.insert(0, %r); import agegender.serve, agegender.cli_main; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'fastapi', 'uvicorn') "
            "if m in sys.modules))" % str(ROOT / "src"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
