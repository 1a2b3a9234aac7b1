"""The user-study app end to end: `synartifact-hf study serve` on 127.0.0.1 over two tiny generation
folders, driven by headless Chromium (a rater rates 5 items, reloads, continues where they stopped; the
organiser's page) and by gradio_client (20 raters at once: every rating stored exactly once; every bad
input refused and stored nowhere), and a server SIGKILLed mid-study and restarted: nothing answered is
lost, nothing is half-stored, raters continue.

The rating page after a few items is copied to docs/study.png when SYNARTIFACT_UPDATE_SCREENSHOT=1.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

gr = pytest.importorskip("gradio", reason="the study app needs gradio: pip install 'synartifact-hf[app]'")

from synartifact_hf.app.serving import running_app  # noqa: E402
from synartifact_hf.app.study.store import StudyStore  # noqa: E402
from synartifact_hf.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ITEMS = 12
HTTPX = {"timeout": 120}  # gradio_client's default 5 s is too short on a loaded 2-core machine


def _links(path: Path) -> dict[str, str]:
    """rater-NNN / admin -> token, from a --links-file."""
    links = {}
    for line in path.read_text().splitlines():
        name, url = line.split(": ", 1)[0], line.rsplit(" ", 1)[-1]
        key, token = url.split("?", 1)[1].split("=", 1)
        links["admin" if key == "admin" else name] = token
    return links


@pytest.fixture(scope="module")
def study(study_folders, tmp_path_factory):
    """A running study with 3 raters made by `study serve` and 20 more by `study invite` (while it runs).
    The last test kills this server and starts a second one on the same database."""
    folder = tmp_path_factory.mktemp("study")
    db, links_file = folder / "study.sqlite", folder / "links.txt"
    argv = ["--a", str(study_folders[0]), "--b", str(study_folders[1]), "--db", str(db), "--raters", "3",
            "--links-file", str(links_file)]
    with running_app(argv, folder / "server.log", command=("study", "serve")) as (url, proc):
        assert main(["study", "invite", "--db", str(db), "--count", "20", "--links-file", str(links_file)]) == 0
        assert oct(links_file.stat().st_mode & 0o777) == "0o600"
        yield SimpleNamespace(url=url, proc=proc, db=db, links=_links(links_file), argv=argv, folder=folder)


def _wait(driver, condition, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def _text(driver, elem_id: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.ID, elem_id)
    return found[0].text if found else ""


def _choose(driver, elem_id: str, label: str) -> None:
    from selenium.webdriver.common.by import By

    next(e for e in driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} label") if e.text.strip() == label).click()


def _shown_images(driver) -> int:
    from selenium.webdriver.common.by import By

    return len(driver.find_elements(By.CSS_SELECTOR, "#left-image img, #right-image img"))


def test_rater_rates_five_items_reloads_and_continues(study, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, db, links = study.url, study.db, study.links
    token = links["rater-001"]
    store = StudyStore(db)
    browser.get(f"{url}/?token={token}")
    _wait(browser, lambda d: "Item 1 of 12" in _text(d, "status") and _shown_images(d) == 2)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Score each image from 1" in body and "fewer artifacts" in body
    for n in range(1, 6):
        expected = store.current(token)
        assert expected.item.prompt in _text(browser, "prompt")
        _choose(browser, "left-score", str(n))
        _choose(browser, "right-score", str(8 - n))
        if n % 2:
            _choose(browser, "fewer", "Right image")
        browser.find_element(By.ID, "submit").click()
        _wait(browser, lambda d, n=n: f"Item {n + 1} of 12" in _text(d, "status"))
        rows = [r for r in store.ratings() if r["item_id"] == expected.item.item_id]
        assert {(r["side"], r["score"]) for r in rows} == {("left", n), ("right", 8 - n)}
        assert {r["model"] for r in rows if r["side"] == "left"} == {expected.left_model}
        assert [r["fewer_artifacts"] for r in rows if r["side"] == "right"] == [1 if n % 2 else None]
    page = browser.page_source
    assert "tiny-sd" not in page and "LoRA" not in page and "model" not in _text(browser, "rating").lower()
    browser.get(f"{url}/?token={token}")  # the rater comes back
    _wait(browser, lambda d: "Item 6 of 12" in _text(d, "status") and _shown_images(d) == 2)
    assert store.current(token).item.prompt in _text(browser, "prompt")
    assert len(store.ratings()) == 10
    a_left = store.current(token).left_model == "A"  # A's pictures have a stray second head
    _choose(browser, "left-score", "3" if a_left else "6")
    _choose(browser, "right-score", "6" if a_left else "3")
    _choose(browser, "fewer", "Right image" if a_left else "Left image")
    browser.save_screenshot(str(tmp_path / "study.png"))
    if os.environ.get("SYNARTIFACT_UPDATE_SCREENSHOT"):
        shutil.copy(tmp_path / "study.png", ROOT / "docs" / "study.png")
    # submitting without scores: a message, nothing stored, the same item stays
    browser.get(f"{url}/?token={token}")
    _wait(browser, lambda d: "Item 6 of 12" in _text(d, "status") and _shown_images(d) == 2)
    browser.find_element(By.ID, "submit").click()
    _wait(browser, lambda d: "needs a score from 1 to 7" in d.find_element(By.TAG_NAME, "body").text)
    assert len(store.ratings()) == 10 and "Item 6 of 12" in _text(browser, "status")
    browser.get(f"{url}/?token=not-a-real-token")
    _wait(browser, lambda d: "This link is not valid" in _text(d, "status"))
    assert _shown_images(browser) == 0


def test_admin_page_needs_the_admin_token(study, browser):
    from selenium.webdriver.common.by import By

    url, links = study.url, study.links
    browser.get(f"{url}/?admin={links['rater-002']}")  # a rater's token is not the admin's
    _wait(browser, lambda d: "needs the study's admin link" in _text(d, "status"))
    assert not browser.find_elements(By.CSS_SELECTOR, "#per-rater table")
    browser.get(f"{url}/?admin={links['admin']}")
    _wait(browser, lambda d: "rater-023" in _text(d, "per-rater") and "Krippendorff" in _text(d, "summary"))
    assert not _shown_images(browser)


def _submit(client, token, item, left, right, fewer=None):
    return client.predict(token, item, left, right, fewer, api_name="/submit")


def test_twenty_concurrent_raters_every_rating_stored_exactly_once(study):
    from gradio_client import Client

    url, db, links = study.url, study.db, study.links
    tokens = [links[f"rater-{i:03d}"] for i in range(4, 24)]
    per_rater = 3

    def rater(token):
        client = Client(url, verbose=False, httpx_kwargs=HTTPX)
        item = client.predict(token, api_name="/next_item")[0]
        answered = []
        for k in range(per_rater):
            left, right = 1 + (hash((token, k)) % 7), 1 + (hash((k, token)) % 7)
            outputs = _submit(client, token, item, left, right, "left" if k == 0 else None)
            answered.append((item, left, right))
            assert outputs[3] and outputs[4]  # the next item's two images came back
            item = outputs[0]
        return token, answered

    start = time.monotonic()
    with ThreadPoolExecutor(len(tokens)) as pool:
        results = list(pool.map(rater, tokens))
    seconds = time.monotonic() - start
    print(f"\n20 raters x {per_rater} submissions through gradio_client: {seconds:.1f}s")
    store = StudyStore(db)
    rater_ids = {token: i for i, token in enumerate(tokens, start=4)}
    with sqlite3.connect(db) as con:
        sides = {(r, i): m for r, i, m in con.execute("SELECT rater_id, item_id, left_model FROM assignments")}
    stored = [r for r in store.ratings() if r["rater_id"] in rater_ids.values()]
    assert len(stored) == 20 * per_rater * 2
    assert len({(r["rater_id"], r["item_id"], r["side"]) for r in stored}) == len(stored)
    by_key = {(r["rater_id"], r["item_id"], r["side"]): r for r in stored}
    for token, answered in results:
        rater_id = rater_ids[token]
        for item, left, right in answered:
            assert by_key[(rater_id, item, "left")]["score"] == left
            assert by_key[(rater_id, item, "right")]["score"] == right
            assert by_key[(rater_id, item, "left")]["model"] == sides[(rater_id, item)]
    first_items = {answered[0][0] for _, answered in results}
    assert len(first_items) > 3  # raters see their own random orders


def test_every_bad_input_is_refused_and_stored_nowhere(study):
    import httpx
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url, db, links = study.url, study.db, study.links
    store = StudyStore(db)
    client = Client(url, verbose=False, httpx_kwargs=HTTPX)
    token, revoked = links["rater-002"], links["rater-003"]
    item = client.predict(token, api_name="/next_item")[0]
    _submit(client, token, item, 4, 4)  # one good submission, then its replay below
    current = client.predict(token, api_name="/next_item")[0]
    not_shown = next(i for i in store.items() if i not in (item, current))
    assert main(["study", "invite", "--db", str(db), "--revoke", "3"]) == 0
    before = len(store.ratings())
    cases = {
        "replay": ((token, item, 4, 4), "already rated"),
        "unknown item": ((token, "p99999-i000", 4, 4), "Unknown item"),
        "an item not shown": ((token, not_shown, 4, 4), "not the item you are being shown"),
        "score 0": ((token, current, 0, 4), "not in the list of choices"),
        "score 8": ((token, current, 4, 8), "not in the list of choices"),
        "score 4.5": ((token, current, 4.5, 4), "not in the list of choices"),
        "score true": ((token, current, True, 4), "needs a score from 1 to 7"),
        "no score": ((token, current, None, 4), "needs a score from 1 to 7"),
        "fewer: both": ((token, current, 4, 4, "both"), "not in the list of choices"),
        "unknown token": (("0" * 32, current, 4, 4), "This link is not valid"),
        "no token": (("", current, 4, 4), "This link is not valid"),
        "revoked token": ((revoked, current, 4, 4), "withdrawn"),
    }
    for name, (args, message) in cases.items():
        with pytest.raises(AppError, match=message):
            _submit(client, *args)
        assert len(store.ratings()) == before, name
    for token_given in ("", links["rater-002"], "0" * 32):
        with pytest.raises(AppError, match="needs the study's admin link"):
            client.predict(token_given, api_name="/admin")
    with pytest.raises(AppError, match="withdrawn"):
        client.predict(revoked, api_name="/next_item")
    summary, table, figure, export = client.predict(links["admin"], api_name="/admin")
    assert "Wilcoxon" in summary and Path(figure).stat().st_size > 1000
    assert Path(export[0]).read_text().count("\n") == before + 1
    # nothing can be uploaded to the server, and it still serves afterwards
    response = httpx.post(f"{url}/gradio_api/upload", files={"files": ("x.png", b"\x89PNG" + b"0" * 100)}, timeout=30)
    assert response.status_code == 413
    assert httpx.get(f"{url}/gradio_api/runs", timeout=30).status_code == 404  # no run history in the browser
    assert client.predict(token, api_name="/next_item")[0] == current


def test_server_killed_mid_study_loses_nothing(study):
    """Runs last: raters submit while the server gets SIGKILL; a second server on the same database."""
    import hashlib

    from gradio_client import Client

    assert main(["study", "invite", "--db", str(study.db), "--count", "4", "--links-file",
                 str(study.folder / "links.txt")]) == 0
    tokens = [t for name, t in _links(study.folder / "links.txt").items() if name in
              {f"rater-{i:03d}" for i in range(24, 28)}]
    acknowledged: list[tuple[str, str, int]] = []
    lock = threading.Lock()
    killed = threading.Event()

    def rater(token):
        try:
            client = Client(study.url, verbose=False, httpx_kwargs=HTTPX)
            item = client.predict(token, api_name="/next_item")[0]
            for k in range(ITEMS):
                outputs = _submit(client, token, item, 1 + k % 7, 7 - k % 7)
                with lock:
                    acknowledged.append((token, item, 1 + k % 7))
                item = outputs[0]
        except Exception:
            assert killed.is_set()  # only the kill may stop a rater

    threads = [threading.Thread(target=rater, args=(t,), daemon=True) for t in tokens]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.set()
    os.kill(study.proc.pid, signal.SIGKILL)
    study.proc.wait()
    for t in threads:
        t.join(timeout=60)
    assert 6 <= len(acknowledged) < 4 * ITEMS
    with sqlite3.connect(study.db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rater_of = {token: con.execute("SELECT rater_id FROM raters WHERE token_sha256 = ?",
                                       (hashlib.sha256(token.encode()).hexdigest(),)).fetchone()[0]
                    for token in tokens}
    stored = [r for r in StudyStore(study.db).ratings() if r["rater_id"] in rater_of.values()]
    scores = {(r["rater_id"], r["item_id"], r["side"]): r["score"] for r in stored}
    for token, item, left in acknowledged:  # every answered submission is there, with its score
        assert scores[(rater_of[token], item, "left")] == left
    keys = {(r["rater_id"], r["item_id"]) for r in stored}
    assert all(sum(1 for r in stored if (r["rater_id"], r["item_id"]) == key) == 2 for key in keys)  # none half
    with running_app(study.argv, study.folder / "server-2.log", command=("study", "serve")) as (url, _):
        assert "Resumed study" in (study.folder / "server-2.log").read_text()
        client = Client(url, verbose=False, httpx_kwargs=HTTPX)
        for token in tokens:
            done = sum(1 for key in keys if key[0] == rater_of[token])
            outputs = client.predict(token, api_name="/next_item")
            assert f"Item {done + 1} of {ITEMS}" in outputs[1]
            assert (rater_of[token], outputs[0]) not in keys
            _submit(client, token, outputs[0], 5, 5)
    after = [r for r in StudyStore(study.db).ratings() if r["rater_id"] in rater_of.values()]
    assert len(after) == len(stored) + 2 * len(tokens)
