"""The web app end to end: `synartifact-hf app` (tiny random LLaVA as classifier and detector) on
127.0.0.1, driven by headless Chromium through selenium, and through gradio's API: the client gets what
the pipeline returns, URLs and paths are refused, a burst of 50 requests is answered or refused cleanly.

One app server for the whole module. Screenshots go to the test's temp folder (docs/app.png is taken with
the demo's fine-tuned classifier by docs/app_screenshot.py).
"""

from __future__ import annotations

import http.server
import io
import threading
from pathlib import Path

import pytest

gr = pytest.importorskip("gradio", reason="the web app needs gradio: pip install 'synartifact-hf[app]'")

from synartifact_hf.app.serving import burst, call_analyze, running_app, upload  # noqa: E402
from synartifact_hf.data.embedded_sample import SAMPLE_DIR  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = SAMPLE_DIR / "sub_data_0/images/000000037.png"  # test split, first sample: two reference boxes
TOKENS = ["--max-new-tokens", "12", "--detection-max-new-tokens", "24"]
QUEUE = 8


@pytest.fixture(scope="module")
def app(tiny_llava_path, tmp_path_factory):
    log = tmp_path_factory.mktemp("app") / "server.log"
    with running_app(["--model", str(tiny_llava_path), "--detection-model", str(tiny_llava_path), *TOKENS,
                      "--queue-size", str(QUEUE)], log) as (url, proc):
        yield url, proc, log


@pytest.fixture(scope="module")
def page(browser, app):
    from selenium.webdriver.common.by import By

    browser.get(app[0])
    _wait(browser, lambda d: d.find_elements(By.ID, "clear"))
    return browser


def _wait(driver, condition, timeout=120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(condition)


def _text(driver, elem_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, elem_id).text


def _upload(driver, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "clear").click()
    _wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "#images img"))
    driver.find_element(By.CSS_SELECTOR, "#images input[type=file]").send_keys(str(path))
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#images img"))


def _analyze(driver, expect: str) -> str:
    from selenium.webdriver.common.by import By

    before = _text(driver, "status")
    driver.find_element(By.ID, "analyze").click()
    _wait(driver, lambda d: _text(d, "status") != before and expect in _text(d, "status"))
    return _text(driver, "status")


def _tab(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == name).click()


def test_upload_analyze_shows_labels_and_chart(page, tmp_path):
    from selenium.webdriver.common.by import By

    _upload(page, SAMPLE)
    _analyze(page, "Analysed 1 of 1 image(s)")
    _wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#chart img, #chart svg, #chart canvas"))
    verdict = _text(page, "verdict")
    assert "000000037.png" in verdict and "Labels:" in verdict and "Other artifacts caption:" in verdict
    assert any(v in verdict for v in ("answer not understood", "no artifacts", "artifacts"))
    # the bundled sample's annotation is recognised from the file's bytes
    assert "Reference labels (bundled sample annotation): Awkward facial expression, Distorted and deformed components, Other artifacts" in verdict
    body = page.find_element(By.TAG_NAME, "body").text
    assert "not calibrated" in body and "Raw answer of the model" in body
    _tab(page, "Reward (Eq. 4)")
    _wait(page, lambda d: "Reward r = " in _text(d, "reward"))
    assert "Illegible letters" in _text(page, "reward-terms")
    page.save_screenshot(str(tmp_path / "reward.png"))
    _tab(page, "Classification")
    page.save_screenshot(str(tmp_path / "classification.png"))


def test_non_image_gives_a_message_and_the_next_image_works(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("these are notes, not pixels")
    _upload(page, bad)
    status = _analyze(page, "notes.png is not an image this app can read")
    assert "Analysed 0 of 1 image(s)" in status
    page.save_screenshot(str(tmp_path / "bad-file.png"))
    _upload(page, SAMPLE)
    assert "Analysed 1 of 1 image(s)" in _analyze(page, "Analysed 1 of 1")


def test_sample_click_and_detection_view_draws_the_boxes(page, app, tmp_path):
    """A click on the first bundled sample, then the detection view. With random weights the detector's answer rarely holds a parsable box, so what this checks for
    sure is the reference boxes of the sample (green): the returned image differs from the input on the
    box outline and nowhere far from any box. Predicted boxes are drawn by the same code
    (test_app_analysis.py draws a parsed detection answer)."""
    import httpx
    import numpy as np
    from PIL import Image
    from selenium.webdriver.common.by import By

    page.find_element(By.ID, "clear").click()
    _wait(page, lambda d: not d.find_elements(By.CSS_SELECTOR, "#images img"))
    page.find_element(By.CSS_SELECTOR, "#samples .gallery-item").click()  # the first bundled sample: SAMPLE
    _wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#images img"))
    _analyze(page, "Analysed 1 of 1")
    _tab(page, "Detection")
    img = _wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#detections img"))[0]
    page.save_screenshot(str(tmp_path / "detection.png"))
    overlay = Image.open(io.BytesIO(httpx.get(img.get_attribute("src"), timeout=30).content)).convert("RGB")
    source = Image.open(SAMPLE).convert("RGB")
    assert overlay.width == source.width and overlay.height > source.height  # legend band below
    drawn = np.asarray(overlay)[: source.height].astype(int)
    original = np.asarray(source).astype(int)
    x1, y1, x2, y2 = 331, 102, 398, 170  # first reference box of 000000037 (its annotation JSON)
    for x in (x1, x2):  # left and right edges of the box, below its label
        edge = drawn[y1 + 10 : y2 - 10, x]
        assert (np.abs(edge - original[y1 + 10 : y2 - 10, x]).sum(axis=1) > 60).all()
        assert (edge == (0, 200, 0)).all(axis=1).mean() > 0.9  # green: the reference colour
    assert (drawn[5:60, 5:60] == original[5:60, 5:60]).all()  # the corner, far from any box, is unchanged
    _tab(page, "Classification")


def test_client_gets_what_the_pipeline_returns(app, tiny_llava_path):
    from gradio_client import Client, handle_file

    from synartifact_hf.pipeline import load_image, load_pipeline

    outputs = Client(app[0], verbose=False).predict([{"image": handle_file(str(SAMPLE))}], api_name="/analyze")
    (report,) = outputs[3]["images"]
    # visitors see the model's name, never the server's path
    assert outputs[3]["model"] == tiny_llava_path.name and f"`{tiny_llava_path.name}`" in outputs[0]
    assert str(tiny_llava_path) not in str(outputs)
    direct = load_pipeline(str(tiny_llava_path))(load_image(SAMPLE), max_new_tokens=12, return_scores=True)
    got = report["classification"]
    assert {k: v for k, v in got.items() if k != "scores"} == {k: v for k, v in direct.items() if k != "scores"}
    assert got["scores"] == pytest.approx(direct["scores"], abs=1e-6)
    assert report["reference"]["labels"] == ["Awkward facial expression", "Distorted and deformed components", "Other artifacts"]
    assert set(report["reward"]["artifact_terms"]) == set(direct["scores"]) - {"No artifacts"}


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(SAMPLE.read_bytes())

    def log_message(self, *args):
        pass


def test_api_refuses_urls_and_paths_and_fetches_nothing(app):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    meta = {"_type": "gradio.FileData"}
    url = f"http://127.0.0.1:{server.server_address[1]}/image.png"
    try:
        cases = {
            "url as path": [{"image": {"path": url, "meta": meta}}],
            "url field": [{"image": {"path": "image.png", "url": url, "meta": meta}}],
            "server path": [{"image": {"path": str(SAMPLE), "meta": meta}}],
            "system file": [{"image": {"path": "/etc/hostname", "meta": meta}}],
            "plain string": [url],
            "string, not a list": str(SAMPLE),
        }
        for name, images in cases.items():
            kind, message = call_analyze(app[0], images)
            assert kind == "error", (name, kind, message)
            if name == "url as path":
                assert "never fetches a URL" in message["error"]
            elif name in ("server path", "system file"):
                assert message["error"] == "Only images uploaded to this app are accepted (a path on the server is not)."
    finally:
        server.shutdown()
    assert _Recorder.hits == []
    # each refused path or URL is one line in the server's log, not a traceback
    log = app[2].read_text()
    # three of the cases carry a path: the server path, the system file and "url field"'s image.png
    assert log.count("refused a path sent to the API") == 3 and "/etc/hostname" in log
    assert log.count("refused a URL sent to the API") >= 1
    assert "InvalidPathError" not in log and "gradio.exceptions.Error" not in log
    kind, outputs = call_analyze(app[0], [])  # an empty submit: a message, not an error
    assert kind == "complete" and outputs[0].startswith("**No image was given")


def test_burst_of_50_requests_is_answered_or_refused_with_bounded_memory(app):
    url, proc, _ = app
    item = upload(url, SAMPLE)

    def check(outputs):
        assert outputs[0].startswith("Analysed 1 of 1") and outputs[3]["images"][0]["classification"]["scores"]

    result = burst(url, proc.pid, [item], n=50, check=check)
    print(f"\nburst of 50 on 127.0.0.1 (queue {QUEUE}): answered {result.answered}, refused {result.refused}, "
          f"{result.seconds:.1f}s; RSS {result.rss_before / 2**20:.0f} MiB before, peak "
          f"{result.rss_peak / 2**20:.0f} MiB, {result.rss_after / 2**20:.0f} MiB after")
    assert result.other == []
    assert result.answered + result.refused == 50 and result.answered >= 1
    assert result.rss_peak - result.rss_before < 600 * 2**20
    kind, outputs = call_analyze(url, [item])  # and the app keeps serving
    assert kind == "complete" and outputs[0].startswith("Analysed 1 of 1")
