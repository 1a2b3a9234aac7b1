"""The classifier behind a real ``transformers serve`` (tiny random LLaVA, short answers: mechanics only)
vs the same checkpoint in-process, through the backend seam, classify, curate, evaluate and the reward;
failures injected by killing the server or by a loopback proxy in front of it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

pytest.importorskip("openai")
pytest.importorskip("fastapi")

from synartifact_hf.backends import (  # noqa: E402
    ClassificationFailed,
    ServedClassifierError,
    is_served_model,
    open_classifier,
)
from synartifact_hf.backends.local_server import LocalServer  # noqa: E402
from synartifact_hf.child_server import free_port  # noqa: E402

TOKENS = 6  # answer length: enough to differ between images, short enough to be quick on 2 shared cores


COLOURS = ["white", "black", "red", "blue", "green", "yellow", "purple", "orange", "grey", "cyan", "brown", "pink"]


def _images(n, offset=0):
    """Plain colours: the tiny random model's answers tell most of them apart (noise images all look alike
    to it)."""
    return [Image.new("RGB", (30 + i % 3, 28 + i % 4), COLOURS[(offset + i) % len(COLOURS)]) for i in range(n)]


@pytest.fixture(scope="module")
def server(tiny_llava_path, tmp_path_factory):
    """One ``transformers serve`` of the session's tiny LLaVA for the module (its 2048 positions hold the
    ~500-token instruction of the tiny tokenizer); stopped by process group at the end."""
    srv = LocalServer(tiny_llava_path, tmp_path_factory.mktemp("serve") / "serve.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def in_process(tiny_llava_path):
    with open_classifier(tiny_llava_path, max_new_tokens=TOKENS, batch_size=4) as classifier:
        yield classifier


# ----------------------------------------------------------------------------------------------------
# A loopback proxy in front of the real server that can fail requests


class FaultProxy:
    """``http://127.0.0.1:<port>/v1`` forwarding to ``upstream``. ``faults`` is consumed one per chat
    request: ``(status, headers)`` answers that status instead, ``("hang", seconds)`` answers nothing
    for that long; then requests pass. ``key`` set: requests without ``Bearer <key>`` get 401.
    ``models`` set: ``/v1/models`` lists them instead of asking upstream."""

    def __init__(self, upstream: str, faults=(), key: str | None = None, models=None):
        import httpx

        self.faults = list(faults)
        self.seen_auth: list[str] = []
        self.chat_requests = 0
        lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body: bytes, headers=()):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, method):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                auth = self.headers.get("Authorization", "")
                with lock:
                    proxy.seen_auth.append(auth)
                if key is not None and auth != f"Bearer {key}":
                    return self._reply(401, json.dumps({"error": {"message": "Invalid API key"}}).encode(),
                                       [("Content-Type", "application/json")])
                if models is not None and self.path.endswith("/models"):
                    data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in models]
                    return self._reply(200, json.dumps({"object": "list", "data": data}).encode(),
                                       [("Content-Type", "application/json")])
                if self.path.endswith("/chat/completions"):
                    with lock:
                        proxy.chat_requests += 1
                        fault = proxy.faults.pop(0) if proxy.faults else None
                    if fault is not None and fault[0] == "hang":
                        time.sleep(fault[1])
                        return self._reply(504, b"{}")
                    if fault is not None:
                        status, headers = fault
                        return self._reply(status, json.dumps({"error": {"message": f"injected {status}"}}).encode(),
                                           [("Content-Type", "application/json"), *headers.items()])
                response = httpx.request(method, upstream + self.path, content=body, timeout=300,
                                         headers={"Content-Type": self.headers.get("Content-Type", "application/json")})
                self._reply(response.status_code, response.content,
                            [("Content-Type", response.headers.get("content-type", "application/json"))])

            def do_GET(self):
                self._forward("GET")

            def do_POST(self):
                self._forward("POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ----------------------------------------------------------------------------------------------------
# The seam


def test_selection_and_url_errors(tiny_llava_path):
    assert is_served_model("https://example.org/v1/") and not is_served_model("https://example.org/v2")
    with pytest.raises(ServedClassifierError, match=r"does not end in /v1.*http://127.0.0.1:9/v1"):
        open_classifier("http://user:pw@127.0.0.1:9")
    with pytest.raises(ValueError, match="served_model"):
        open_classifier(tiny_llava_path, served_model="x")
    port = free_port()  # nothing listens there
    start = time.monotonic()
    with pytest.raises(ServedClassifierError, match=f"cannot reach the classifier server at http://127.0.0.1:{port}/v1"):
        open_classifier(f"http://127.0.0.1:{port}/v1")
    assert time.monotonic() - start < 10


def test_served_equals_in_process_image_by_image(server, in_process):
    images = _images(5)
    with open_classifier(server.url, max_new_tokens=TOKENS, concurrency=3) as served:
        assert served.identity == f"{in_process.identity} @ {server.url}"  # folder name, never the server's path
        assert str(server.model) not in served.identity and served.instruction == in_process.instruction
        assert not served.supports_scores and served.batch_size == 4 or served.batch_size >= 3
        got = served.classify(images)
        assert served.retries == 0
    want = in_process.classify(images)
    assert [r["generated_text"].strip() for r in got] == [r["generated_text"].strip() for r in want]
    assert [r["labels"] for r in got] == [r["labels"] for r in want]
    assert got == want  # same parser: every field
    assert len({r["generated_text"] for r in got}) > 1  # the images are told apart


def test_scores_refused_and_likelihood_reward_refuses(server):
    with pytest.raises(ValueError, match="per-option scores"):
        open_classifier(server.url, return_scores=True)


def test_503_then_429_then_pass_and_a_hanging_request_are_retried(server):
    proxy = FaultProxy(server.url.removesuffix("/v1"))
    try:
        with open_classifier(proxy.url, max_new_tokens=TOKENS, concurrency=1, max_retries=3) as served:
            proxy.faults = [(503, {"Retry-After": "1"}), (429, {"Retry-After": "0"})]
            start = time.monotonic()
            [record] = served.classify(_images(1))
            assert served.retries == 2 and time.monotonic() - start >= 1.0  # Retry-After honoured
            assert record["generated_text"]
            proxy.faults = [(503, {})] * 4  # the first image's 4 attempts fail, the second passes
            with pytest.raises(ClassificationFailed, match="HTTP 503") as failed:
                served.classify(_images(2))
            assert failed.value.results[0] is None and failed.value.results[1]["generated_text"]
            assert "after 4 attempts" in failed.value.errors[0] and failed.value.errors[1] is None
        with open_classifier(proxy.url, max_new_tokens=TOKENS, concurrency=1, timeout=4) as served:
            proxy.faults = [("hang", 6)]  # no answer within the timeout: abandoned, asked again
            [again] = served.classify(_images(1))
            assert served.retries >= 1 and again == record
    finally:
        proxy.close()


def test_refusals_are_shown_as_the_server_said_them(server, monkeypatch):
    secret = "sk-test-0123456789abcdef"
    proxy = FaultProxy(server.url.removesuffix("/v1"), key=secret)
    try:
        monkeypatch.setenv("SYNARTIFACT_API_KEY", "sk-wrong-key-987654")
        with pytest.raises(ServedClassifierError, match=r"refused the key from SYNARTIFACT_API_KEY \(HTTP 401: Invalid API key\)") as err:
            open_classifier(proxy.url)
        assert "sk-wrong" not in str(err.value)
        monkeypatch.setenv("SYNARTIFACT_API_KEY", secret)
        with open_classifier(proxy.url, max_new_tokens=2) as served:
            served.classify(_images(1))
        assert set(proxy.seen_auth) == {"Bearer sk-wrong-key-987654", f"Bearer {secret}"}
        monkeypatch.delenv("SYNARTIFACT_API_KEY")
        monkeypatch.setenv("OPENAI_API_KEY", secret)
        with open_classifier(proxy.url, max_new_tokens=2):
            pass
    finally:
        proxy.close()
    several = FaultProxy(server.url.removesuffix("/v1"), models=["org/a", str(server.model)])
    try:
        with pytest.raises(ServedClassifierError, match=f"serves 2 models; pick one with --served-model NAME .*: org/a, {server.model}"):
            open_classifier(several.url)
        with pytest.raises(ServedClassifierError, match="serves no model 'org/b'; it serves: org/a"):
            open_classifier(several.url, served_model="org/b")
        with open_classifier(several.url, served_model=str(server.model), max_new_tokens=2):
            pass
    finally:
        several.close()
    # A prompt longer than the model's context: the server's own words.
    with pytest.raises(ServedClassifierError, match=r"HTTP 400\): The prompt has \d+ tokens, but the model takes at most 2048"):
        open_classifier(server.url, instruction="word " * 3000)


# ----------------------------------------------------------------------------------------------------
# The consumers: reward and evaluate


def test_reward_and_evaluate_are_the_same_served(server, tiny_llava_path, tmp_path):
    from synartifact_hf.data import build_sample_dataset
    from synartifact_hf.evaluation import evaluate_checkpoint
    from synartifact_hf.reward import ArtifactReward

    images = _images(4, offset=3)
    kwargs = {"classifier_kwargs": {"max_new_tokens": TOKENS}, "batch_size": 4}
    served = ArtifactReward(server.url, **kwargs)
    local = ArtifactReward(tiny_llava_path, scorer=served.scorer, **kwargs)
    got, got_info = served(images, None, None)
    want, want_info = local(images, None, None)
    assert got.tolist() == want.tolist() and got_info["answers"] == want_info["answers"]
    with pytest.raises(ValueError, match=r"mode='likelihood' needs the classifier's per-option scores.*bertscore"):
        ArtifactReward(server.url, mode="likelihood")

    dataset = build_sample_dataset(tmp_path / "synartifact-1k", configs=["classification"])
    reports = {}
    for name, model in (("served", server.url), ("local", tiny_llava_path)):
        reports[name] = evaluate_checkpoint(model, dataset, output_dir=tmp_path / name, batch_size=4, max_samples=6,
                                            max_new_tokens=TOKENS, progress=False, concurrency=4)
    assert reports["served"].model == f"{tiny_llava_path.name} @ {server.url}"
    assert reports["served"].metrics == reports["local"].metrics
    assert reports["served"].predictions == reports["local"].predictions
    assert (tmp_path / "served" / "predictions.jsonl").read_text() == (tmp_path / "local" / "predictions.jsonl").read_text()


# ----------------------------------------------------------------------------------------------------
# The commands


def _folder(path, n, offset=0):
    path.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(_images(n, offset)):
        image.save(path / f"img{i:02d}.png")
    return path


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _cli(*args):
    """``synartifact-hf ARGS`` in this process: its exit code, or the SystemExit message."""
    from synartifact_hf.cli import main

    try:
        return main([str(a) for a in args])
    except SystemExit as err:
        return str(err.code)


def test_classify_and_curate_served_equal_in_process(server, tiny_llava_path, tmp_path):
    images = _folder(tmp_path / "images", 6)
    common = ["--max-new-tokens", TOKENS, "--batch-size", 4]
    assert _cli("classify", images, "--model", server.url, "--output", tmp_path / "served.jsonl", "--concurrency", 3,
                *common) == 0
    assert _cli("classify", images, "--model", tiny_llava_path, "--output", tmp_path / "local.jsonl", *common) == 0
    served, local = _lines(tmp_path / "served.jsonl"), _lines(tmp_path / "local.jsonl")
    assert [r["image"] for r in served] == [r["image"] for r in local] and len(served) == 6
    assert [r["generated_text"].strip() for r in served] == [r["generated_text"].strip() for r in local]
    assert served == local  # same records, field by field (no scores key without --scores)

    from datasets import load_dataset

    for name, model in (("served", server.url), ("local", str(tiny_llava_path))):
        assert _cli("curate", images, "--model", model, "--output-dir", tmp_path / f"curated-{name}", "--keep", "all",
                    "--cache-dir", tmp_path / f"cache-{name}", *common) == 0
    served_rows = load_dataset(str(tmp_path / "curated-served"), split="train").remove_columns("image")
    local_rows = load_dataset(str(tmp_path / "curated-local"), split="train").remove_columns("image")
    assert served_rows.to_list() == local_rows.to_list()
    card = (tmp_path / "curated-served" / "README.md").read_text()
    assert f"{tiny_llava_path.name} @ {server.url}" in card and str(tiny_llava_path) not in card


def test_two_client_processes(server, tiny_llava_path, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    images = _folder(tmp_path / "images", 6, offset=2)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "synartifact_hf.cli",
                           "classify", str(images), "--model", server.url, "--output", str(tmp_path / "two.jsonl"),
                           "--max-new-tokens", str(TOKENS), "--concurrency", "2"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = _lines(tmp_path / "two.jsonl")
    with open_classifier(tiny_llava_path, max_new_tokens=TOKENS) as local:
        want = local.classify([Image.open(images / f"img{i:02d}.png") for i in range(6)])
    assert [r["image"] for r in two] == [str((images / f"img{i:02d}.png").resolve()) for i in range(6)]
    assert [r["generated_text"] for r in two] == [r["generated_text"] for r in want]
    assert not list(tmp_path.glob("two.jsonl.part-*"))


def test_start_errors_name_the_url_and_write_nothing(server, tmp_path):
    images = _folder(tmp_path / "images", 1)
    out = tmp_path / "out.jsonl"
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    start = time.monotonic()
    assert _cli("classify", images, "--model", url, "--output", out) == \
        f"classify: error: cannot reach the classifier server at {url} (APIConnectionError: [Errno 111] Connection refused); " \
        "is it running, and is this its address?"
    assert time.monotonic() - start < 10 and not out.exists()
    message = _cli("curate", images, "--model", url, "--output-dir", tmp_path / "curated")
    assert message.startswith(f"curate: error: cannot reach the classifier server at {url}")
    assert not (tmp_path / "curated").exists()
    message = _cli("classify", images, "--model", server.url[:-3], "--output", out)
    assert message.startswith(f"classify: error: {server.url[:-3]} looks like a server address but does not end in /v1")
    assert message.endswith(f"e.g. {server.url}")
    assert not out.exists()


def test_the_key_is_sent_and_never_shown(server, tmp_path, monkeypatch, capsys):
    secret, wrong = "sk-never-shown-5f3a9c", "sk-wrong-77aa"
    proxy = FaultProxy(server.url.removesuffix("/v1"), key=secret)
    try:
        images = _folder(tmp_path / "images", 2)
        out = tmp_path / "out.jsonl"
        monkeypatch.setenv("SYNARTIFACT_API_KEY", secret)
        assert _cli("classify", images, "--model", proxy.url, "--output", out, "--max-new-tokens", 2) == 0
        assert len(_lines(out)) == 2 and f"Bearer {secret}" in proxy.seen_auth
        monkeypatch.delenv("SYNARTIFACT_API_KEY")
        monkeypatch.setenv("OPENAI_API_KEY", wrong)
        message = _cli("classify", images, "--model", proxy.url, "--output", tmp_path / "o2.jsonl")
        assert "refused the key from OPENAI_API_KEY (HTTP 401: Invalid API key)" in message
    finally:
        proxy.close()
    shown = capsys.readouterr()
    for text in (shown.out, shown.err, message, *(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())):
        assert secret not in text and wrong not in text


def test_app_analyzer_on_a_served_model(server, tiny_llava_path):
    from synartifact_hf.app.analysis import ArtifactAnalyzer

    served = ArtifactAnalyzer(server.url, server.url, max_new_tokens=TOKENS, detection_max_new_tokens=TOKENS)
    local = ArtifactAnalyzer(tiny_llava_path, tiny_llava_path, max_new_tokens=TOKENS, detection_max_new_tokens=TOKENS)
    image = _images(1, offset=1)[0]
    got, want = served.classify(image), local.classify(image)
    assert got["scores"] is None and want["scores"] is not None
    assert {k: v for k, v in got.items() if k != "scores"} == {k: v for k, v in want.items() if k != "scores"}
    assert served.detect(image) == local.detect(image)
    assert served.model_label == f"{tiny_llava_path.name} @ {server.url}"
    with pytest.raises(ValueError, match="likelihood"):
        ArtifactAnalyzer(server.url, reward_mode="likelihood")


def test_server_killed_mid_run_then_rerun_completes_every_image_once(server, tmp_path):
    """SIGKILL the server while classify runs; the run ends non-zero with no record for the unanswered
    images; the server comes back on the same port; the same command completes the rest, each once.
    (Runs last: the module's server is restarted.)"""
    import os
    import subprocess
    import sys

    images = _folder(tmp_path / "images", 12)
    out = tmp_path / "out.jsonl"
    args = [sys.executable, "-m", "synartifact_hf.cli", "classify", str(images), "--model", server.url,
            "--output", str(out), "--max-new-tokens", "24", "--concurrency", "1", "--max-retries", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (out.is_file() and len(out.read_text().splitlines()) >= 2):
        time.sleep(0.2)
    server.kill()
    stdout, stderr = proc.communicate(timeout=300)
    first = _lines(out)
    assert proc.returncode == 1, stderr[-3000:]
    assert 2 <= len(first) < 12 and not any("error" in r for r in first)
    assert "got no answer from" in stderr and "run the same command again" in stderr
    server.start()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = _lines(out)
    assert sorted(r["image"] for r in final) == sorted(str(p.resolve()) for p in images.glob("*.png"))
    assert len(final) == 12 and not any("error" in r for r in final)
    assert final[: len(first)] == first


def test_eval_generator_with_a_served_classifier(server, in_process, tiny_sd_path, tiny_llava_path, tmp_path):
    """eval-generator's classifier behind the server: the same answers as in-process for the images it drew,
    and the folder names the served model, not a path on the server."""
    import datasets

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\na cat\n", encoding="utf-8")
    out = tmp_path / "eval-served"
    assert _cli("eval-generator", tiny_sd_path, "--prompts", prompts, "--images-per-prompt", 1, "--classifier",
                server.url, "--concurrency", 2, "--output", out, "--steps", 2, "--max-new-tokens", TOKENS,
                "--resamples", 100) == 0
    rows = datasets.load_dataset(str(out), split="train")
    local = in_process.classify(list(rows["image"]))
    assert [a.strip() for a in rows["answer"]] == [r["generated_text"].strip() for r in local]
    assert rows["labels"] == [r["labels"] for r in local]
    classifier = json.loads((out / "generation.json").read_text())["classifier"]
    assert server.url in classifier and str(tiny_llava_path) not in classifier
