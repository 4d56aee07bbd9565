"""The web service behind ``agegender serve``: one page and a small REST API.

``create_app(ServeParams(...))`` builds a FastAPI app; nothing happens at import time, and
the models load once, when the app starts (its lifespan), not per request.

Endpoints:
    ``GET /``: the page (``agegender/web/``: plain HTML/CSS/JS, nothing loaded from outside).
    ``POST /v1/predict``: multipart field ``file`` → a label and probabilities per task.
    ``POST /v1/timeline``: the same upload → the timeline JSON (as ``inference.py
    --timeline`` writes it: segments with a speaker, per-speaker rows); ``?files=true`` adds
    the CSV, the per-speaker CSV, RTTM, TextGrid text and the PNG
    (base64) that ``timeline_formats.write_timeline`` makes, for the page's downloads.
    Both answers carry ``warning``: null, or one line when a model was trained on the
    synthetic demo voices (``provenance.synthetic_warning``; an upload is never from them).
    ``GET /healthz``: ``{"status": "ok", ...}``, answered on the event loop, so a slow
    analysis (run in the worker pool) never delays it.
    ``GET /docs``: the OpenAPI page.

Each upload is written only into its own temporary folder, removed when the analysis ends
(also after an error or a refused upload). Bad input gets a 4xx JSON ``{"error": "..."}``
naming the problem (``uploads.UploadError``); a full queue gets 503.
"""

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agegender.errors import AgeGenderError
from agegender.uploads import AudioInfo, UploadError, UploadLimits, check_audio, receive_upload

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
# Returned as text by /v1/timeline?files=true ("speakers": the per-speaker CSV).
TEXT_FORMATS = ("csv", "speakers", "rttm", "TextGrid")
_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "an audio file (WAV, FLAC, MP3, OGG/Opus, AIFF, AU)"}}}}}}}


@dataclasses.dataclass(frozen=True)
class ServeParams:
    """How the service runs.

    Attributes:
        host: address to listen on (loopback by default: nothing outside this machine).
        port: TCP port.
        workers: analyses that run at once (threads of the worker pool).
        queue: analyses that may wait for a worker; past ``workers + queue`` a request gets
            503 at once rather than waiting without bound.
        limits: what one upload may be (size, length, channels).
        temp_dir: parent of each request's temporary folder; None = the system's.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    queue: int = 32
    limits: UploadLimits = dataclasses.field(default_factory=UploadLimits)
    temp_dir: str | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers={self.workers!r} must be >= 1")
        if self.queue < 0:
            raise ValueError(f"queue={self.queue!r} must be >= 0")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port={self.port!r} must be in 0-65535")


def shipped_detectors() -> dict:
    """{task: AgeGenderDetector} for every task that ``models/pretrained/`` has a model for
    (``pretrained.pretrained_path``), each loaded once and run once on a shipped clip, so
    that the first request pays no start-up and concurrent requests find a built model.

    Raises:
        ModelError: no shipped model at all.
    """
    from agegender import AgeGenderDetector, labels  # noqa: PLC0415
    from agegender.errors import ModelError  # noqa: PLC0415
    from agegender.shipped import pretrained_dir, pretrained_path  # noqa: PLC0415

    detectors = {}
    for task in labels.TASKS:
        try:
            pretrained_path(task)
        except ModelError:
            continue
        detectors[task] = AgeGenderDetector(task=task)
    if not detectors:
        pretrained_path(None)  # raises the one-line ModelError naming the missing file
    clips = sorted((pretrained_dir() / "clips").glob("*.mp3"))[:1]
    for detector in detectors.values():
        if clips:
            detector.predict(clips)
    return detectors


def _warning(detectors) -> str | None:
    """``provenance.synthetic_warning`` of each detector's model, joined; None for models
    trained on real voices or that record nothing (stub detectors included)."""
    from agegender.provenance import synthetic_warning  # noqa: PLC0415

    lines = []
    for detector in detectors:
        model = getattr(detector, "model", None)
        lines.append(synthetic_warning(getattr(model, "trained_on", None), None,
                                       model=Path(getattr(model, "path", "model")).name))
    return "; ".join(line for line in lines if line) or None


def _predict_payload(detectors: Mapping, info: AudioInfo) -> dict:
    """Every detector's label for one upload, keyed by task."""
    tasks = {}
    for task, detector in detectors.items():
        (result,) = detector.predict([info.path])
        error = result["error"]
        if error:
            error = error.replace(str(info.path), info.name)
            if result["speech"]:  # undecodable in spite of a good header
                raise UploadError(error, 422)
        tasks[task] = {"label": result["label"], "probability": result["probability"],
                       "probabilities": result["probabilities"], "speech": result["speech"],
                       "error": error}
    return {"file": info.name, "duration": round(info.duration, 3), "tasks": tasks,
            "warning": _warning(detectors.values())}


def _timeline_payload(detectors: Mapping, info: AudioInfo, files: bool) -> dict:
    """The timeline JSON of one upload (``write_timeline``'s: segments with their
    ``speaker``, and the per-speaker rows), with the other formats' text and the PNG
    (base64) when ``files``. The gender model cuts the windows; the other single-task
    models (an age model, when one ships) label the same windows. Written beside the
    upload, in its folder."""
    from agegender.timeline_formats import output_path, write_timeline  # noqa: PLC0415

    detector = detectors.get("gender") or next(iter(detectors.values()))
    more = [d for task, d in detectors.items() if d is not detector and task != "gender_age"]
    try:
        result = detector.timeline(info.path, more=more)
    except AgeGenderError as err:
        raise UploadError(str(err).replace(str(info.path), info.name), 422) from err
    prefix = info.path.parent / "timeline"
    model = {"name": Path(detector.model.path).name, "task": detector.task}
    more_tasks = tuple(d.task for d in more)
    # The text formats get the user's file name, never the temporary path; the PNG reads the
    # audio, so it gets the real path (its title is the file's name, the user's too).
    named = {**result, "file": info.name}
    formats = ("json", *TEXT_FORMATS) if files else ("json",)
    write_timeline(named, prefix, task=detector.task, formats=formats, model=model,
                   more_tasks=more_tasks)
    payload = json.loads(Path(output_path(prefix, "json")).read_text())
    payload["warning"] = _warning([detector, *more])
    if files:
        write_timeline(result, prefix, task=detector.task, formats=("png",))
        payload["files"] = {fmt: Path(output_path(prefix, fmt)).read_text()
                            for fmt in TEXT_FORMATS}
        payload["files"]["png"] = base64.b64encode(
            Path(output_path(prefix, "png")).read_bytes()).decode("ascii")
    return payload


def create_app(params: ServeParams | None = None, *, detectors: Mapping | None = None):
    """The FastAPI app.

    Args:
        params: ServeParams; None = defaults.
        detectors: {task: detector} (``predict``/``timeline``/``task``/``model`` as
            ``AgeGenderDetector``); None = ``shipped_detectors()``, loaded when the app starts.

    Returns:
        A ``fastapi.FastAPI``; serve it with uvicorn (``agegender serve``) or test it with
        ``fastapi.testclient.TestClient`` (inside ``with``, so that the models load).
    """
    # Long because: the routes are closures over the app's detectors, lock and pending count.
    from fastapi import FastAPI, Request  # noqa: PLC0415
    from fastapi.responses import FileResponse, JSONResponse  # noqa: PLC0415
    from fastapi.staticfiles import StaticFiles  # noqa: PLC0415

    params = params or ServeParams()
    state = {"detectors": dict(detectors) if detectors is not None else None, "pending": 0}
    lock = threading.Lock()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if state["detectors"] is None:
            state["detectors"] = await asyncio.to_thread(shipped_detectors)
        log.info("serving %s", ", ".join(state["detectors"]))
        state["pool"] = ThreadPoolExecutor(params.workers, thread_name_prefix="agegender-serve")
        try:
            yield
        finally:
            state["pool"].shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="agegender", lifespan=lifespan,
                  description="Speaker age and gender from speech: upload an audio file.")
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.exception_handler(UploadError)
    async def refused(request, err: UploadError):
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(AgeGenderError)
    async def unusable(request, err: AgeGenderError):
        return JSONResponse({"error": str(err)}, status_code=422)

    async def analyse(request: Request, work) -> dict:
        """Receives the upload into a fresh temporary folder, checks it and runs ``work(info)``
        in the pool; the folder is removed once the work is over, whatever happened."""
        with lock:
            if state["pending"] >= params.workers + params.queue:
                raise UploadError(f"busy: {state['pending']} analyses running or waiting; "
                                  "try again shortly", 503)
            state["pending"] += 1
        folder = Path(tempfile.mkdtemp(prefix="agegender-serve-", dir=params.temp_dir))
        submitted = None
        try:
            path, name, size = await receive_upload(request, folder, params.limits)
            info = await asyncio.to_thread(check_audio, path, name, size, params.limits)
            submitted = state["pool"].submit(work, info)
            # Removed when the work ends, even if this request is cancelled (client gone)
            # while a worker still reads the folder.
            submitted.add_done_callback(lambda _: shutil.rmtree(folder, ignore_errors=True))
            return await asyncio.wrap_future(submitted)
        finally:
            if submitted is None:
                shutil.rmtree(folder, ignore_errors=True)
            with lock:
                state["pending"] -= 1

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(WEB_DIR / "index.html")

    @app.get("/healthz")
    async def healthz() -> dict:
        """Up, with the tasks served and the analyses running or waiting."""
        return {"status": "ok", "tasks": list(state["detectors"] or {}),
                "pending": state["pending"], "limits": dataclasses.asdict(params.limits)}

    @app.post("/v1/predict", openapi_extra=_UPLOAD_BODY)
    async def predict(request: Request) -> dict:
        """Label and probabilities per task (every shipped model) for one audio file."""
        return await analyse(request, lambda info: _predict_payload(state["detectors"], info))

    @app.post("/v1/timeline", openapi_extra=_UPLOAD_BODY)
    async def timeline(request: Request, files: bool = False) -> dict:
        """Who speaks when: segments with a speaker (``S1``, ...), gender and age and their
        probabilities, ``no speech`` between, and one row per speaker. ``files=true`` adds
        ``files``: csv, speakers (the per-speaker CSV), rttm, TextGrid (text) and png
        (base64)."""
        return await analyse(request, lambda info: _timeline_payload(state["detectors"], info,
                                                                     files))

    return app
