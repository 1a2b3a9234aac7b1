"""Take ``docs/app.png``: the web app after analysing a bundled sample, with the demo's fine-tuned classifier.

Starts ``synartifact-hf app`` on 127.0.0.1 with the given checkpoint and a label for visitors, opens it in
Debian's headless Chromium (selenium), uploads the first test-split sample, runs Analyze and saves the
page. Use the classifier ``make demo`` fine-tunes, so the picture shows parsed labels and option scores
that differ (a random model's answer is noise)::

    make demo                                    # writes demo-output/finetuned-classifier
    .venv/bin/python docs/app_screenshot.py --model demo-output/finetuned-classifier
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _chrome(profile: Path):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1200",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="classifier checkpoint (the demo's finetuned-classifier)")
    parser.add_argument("--model-label", default="SynArtifact classifier (demo: tiny LLaVA fine-tuned on the sample)",
                        help="the model's name shown in the page")
    parser.add_argument("--out", default=str(ROOT / "docs" / "app.png"))
    args = parser.parse_args()

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from synartifact_hf.app.serving import running_app
    from synartifact_hf.data.embedded_sample import SAMPLE_DIR

    sample = SAMPLE_DIR / "sub_data_0/images/000000037.png"
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--model", args.model, "--model-label", args.model_label, "--max-new-tokens", "48"]
        with running_app(argv, Path(tmp) / "server.log", timeout=900) as (url, _):
            chrome = _chrome(Path(tmp) / "profile")
            try:
                wait = WebDriverWait(chrome, 300, poll_frequency=0.25)
                chrome.get(url)
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#images input[type=file]"))
                chrome.find_element(By.CSS_SELECTOR, "#images input[type=file]").send_keys(str(sample))
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#images img"))
                chrome.find_element(By.ID, "analyze").click()
                wait.until(lambda d: "Analysed 1 of 1" in d.find_element(By.ID, "status").text)
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart img, #chart svg, #chart canvas"))
                status = chrome.find_element(By.ID, "status").text
                verdict = chrome.find_element(By.ID, "verdict").text
                chrome.save_screenshot(args.out)
            finally:
                chrome.quit()
    print(status)
    print(verdict)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
