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
from synartifact_hf.backends.local_server import LocalServer, free_port  # noqa: E402

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
    with pytest.raises(ValueError, match=r"does not end in /v1.*http://127.0.0.1:9/v1"):
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
