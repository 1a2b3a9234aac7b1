"""The metric folders' Spaces (`app.py` in artifact_f1/ and artifact_iou/) launched as a Space runs them
(`python app.py` in a copy of the folder, gradio's server settings from the environment), and computed
once through headless Chromium: the page shows what the evaluate module computes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest

pytest.importorskip("gradio", reason="the metric Spaces need gradio: pip install 'synartifact-hf[app]'")

import evaluate  # noqa: E402

import synartifact_hf.metrics  # noqa: E402
from synartifact_hf.app.serving import free_port  # noqa: E402
from synartifact_hf.metrics.space_app import EXAMPLES  # noqa: E402


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/gradio_api/info", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


KEYS = {"artifact_f1": ("f1", "per_class"), "artifact_iou": ("mean_iou", "recall")}


@pytest.mark.parametrize("name", synartifact_hf.metrics.METRICS)
def test_metric_space_computes_in_the_browser(name, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    folder = tmp_path / name
    shutil.copytree(synartifact_hf.metrics.path(name), folder, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False", HF_MODULES_CACHE=str(tmp_path / "modules"))
    log = tmp_path / "space.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=folder, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180  # the server needs a few seconds to import evaluate and gradio
        while not _answers(url):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        browser.get(url)
        wait = WebDriverWait(browser, 180, poll_frequency=0.25)
        wait.until(lambda d: d.find_elements(By.ID, "compute"))
        assert name in browser.find_element(By.TAG_NAME, "h1").text
        browser.find_element(By.ID, "compute").click()
        key, other = KEYS[name]
        wait.until(lambda d: key in d.find_element(By.ID, "result").text)
        browser.save_screenshot(str(tmp_path / f"{name}.png"))
        shown = browser.find_element(By.ID, "result").text
        predictions, references = EXAMPLES[name]
        expected = evaluate.load(synartifact_hf.metrics.path(name)).compute(predictions=predictions, references=references)
        assert other in shown and str(expected[key]) in shown, shown[:2000]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
