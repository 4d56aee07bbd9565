"""The page of agegender serve in a real browser: Debian's chromium, headless, through
chromedriver (selenium), against the app under uvicorn on a free loopback port.

Set AGEGENDER_SCREENSHOT_DIR to keep a screenshot of the page with a timeline
(``serve.png`` there; docs/images/serve.png was taken this way).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Debian's chromium and chromium-driver are not installed (scripts/install.sh "
           "installs them; CI has them)")

CLIPS = ROOT / "models" / "pretrained" / "clips"
CLIP = CLIPS / "common_voice_lg_23784651.mp3"
WAIT_S = 120


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    """The app served by uvicorn in a thread, on a loopback socket bound to a free port."""
    import uvicorn

    from agegender.serve import ServeParams, create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(ServeParams(port=port, temp_dir=str(tmp_path_factory.mktemp("temp"))))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1100,1700", "--lang=en-US"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def _wait(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(condition, message=f"waited for {what}")


def _upload(driver, url: str, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    _wait(driver, lambda d: d.find_element(By.ID, "limits").text, "the limits line")
    driver.find_element(By.ID, "file-input").send_keys(str(path))


def _shown_result(driver):
    """(results shown, error shown) once one of them is."""
    from selenium.webdriver.common.by import By

    def done(d):
        results = d.find_element(By.ID, "results").is_displayed()
        error = d.find_element(By.ID, "error").is_displayed()
        return (results, error) if results or error else False

    return _wait(driver, done, "a result or an error")


def test_page_loads(browser, server_url):
    from selenium.webdriver.common.by import By

    browser.get(server_url)
    assert browser.title.startswith("agegender")
    assert browser.find_element(By.ID, "drop").is_displayed()
    assert browser.find_element(By.ID, "record").is_displayed()
    limits = _wait(browser, lambda d: d.find_element(By.ID, "limits").text, "limits")
    assert "100" in limits and "gender" in limits  # read from /healthz


def test_uploaded_clip_shows_label_and_timeline(browser, server_url):
    from selenium.webdriver.common.by import By

    _upload(browser, server_url, CLIP)
    results, error = _shown_result(browser)
    assert results and not error, browser.find_element(By.ID, "error").text
    label = browser.find_element(By.CSS_SELECTOR, "#labels .task[data-task=gender] .label")
    assert label.text == "female"  # the shipped model's reference label for this clip
    image = browser.find_element(By.ID, "timeline-img")
    width = browser.execute_script(
        "const i = arguments[0]; return i.complete ? i.naturalWidth : 0;", image)
    assert width >= 600  # a decoded PNG, not a broken image
    rows = browser.find_elements(By.CSS_SELECTOR, "#segments tbody tr")
    assert any("S1" in row.text and "female" in row.text for row in rows)
    # One lane per speaker in the picture; each turn says its label and p= on hover.
    lanes = browser.find_elements(By.CSS_SELECTOR, "#lanes g.lane")
    assert [lane.get_attribute("data-speaker") for lane in lanes] == ["S1"]
    titles = browser.execute_script(
        "return [...document.querySelectorAll('#lanes rect.turn title')]"
        ".map((t) => t.textContent);")
    assert titles and all(t.startswith("S1 female p=") for t in titles), titles
    speakers = [row.text.split() for row in
                browser.find_elements(By.CSS_SELECTOR, "#speakers tbody tr")]
    assert [(row[0], row[2]) for row in speakers] == [("S1", "female")]
    names = [a.get_attribute("download") for a in
             browser.find_elements(By.CSS_SELECTOR, "#downloads a")]
    assert names == [f"{CLIP.stem}{suffix}" for suffix in (
        ".csv", "_speakers.csv", ".json", ".rttm", ".TextGrid", ".png")]


def test_non_audio_file_shows_the_error(browser, server_url, tmp_path):
    from selenium.webdriver.common.by import By

    text = tmp_path / "notes.txt"
    text.write_text("these are notes, not a recording\n" * 10)
    _upload(browser, server_url, text)
    results, error = _shown_result(browser)
    assert error and not results
    assert "notes.txt: not an audio file" in browser.find_element(By.ID, "error").text


def test_screenshot_of_a_conversation(browser, server_url, tmp_path):
    """Four shipped clips (two women, two men) joined with pauses: a timeline with both
    labels. The screenshot is kept when AGEGENDER_SCREENSHOT_DIR names a folder."""
    import soundfile as sf
    import soxr

    from selenium.webdriver.common.by import By

    rate, pieces = 16_000, []
    for name in ("common_voice_lg_23784651", "common_voice_pl_21385213",
                 "common_voice_rm-vallader_21746765", "common_voice_it_17420783"):
        audio, native = sf.read(CLIPS / f"{name}.mp3", dtype="float32", always_2d=True)
        pieces += [soxr.resample(audio.mean(axis=1), native, rate), np.zeros(rate // 2, "float32")]
    recording = tmp_path / "conversation.wav"
    sf.write(recording, np.concatenate(pieces), rate)
    _upload(browser, server_url, recording)
    results, _ = _shown_result(browser)
    assert results, browser.find_element(By.ID, "error").text
    labels = {row.find_elements(By.TAG_NAME, "td")[0].text
              for row in browser.find_elements(By.CSS_SELECTOR, "#totals tbody tr")}
    assert labels == {"female", "male"}
    lanes = browser.find_elements(By.CSS_SELECTOR, "#lanes g.lane")
    assert len(lanes) >= 2  # four voices: at least a woman and a man told apart
    assert len(browser.find_elements(By.CSS_SELECTOR, "#speakers tbody tr")) == len(lanes)
    folder = os.environ.get("AGEGENDER_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1100, max(900, min(height + 40, 3000)))
        browser.find_element(By.TAG_NAME, "body").screenshot(str(Path(folder) / "serve.png"))
