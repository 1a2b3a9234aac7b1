"""push-dataset, up to the Hub: the folder is validated locally, then the real ``HfApi`` talks HTTP to
an endpoint. Tests cannot reach the Hub, so the endpoint is (a) a closed local port, which must give a
clear network error, and (b) a tiny local HTTP server that answers ``create_repo`` and rejects the
upload, recording what the real client sent: the dataset repo type, the private flag and exactly the
folder's files."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from huggingface_hub import constants

from synartifact_hf.cli import main
from synartifact_hf.data import build_sample_dataset, push_dataset, validate_dataset_folder


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_sample_dataset(tmp_path_factory.mktemp("push") / "synartifact-1k-push", configs=["default", "detection"])


@pytest.fixture
def online(monkeypatch):
    # conftest sets HF_HUB_OFFLINE=1; these tests only ever talk to 127.0.0.1.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


class _RecordingHub(BaseHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": len(raw)}
        self.requests.append(("POST", self.path, body))
        if self.path == "/api/repos/create":
            self._reply(200, {"url": f"http://{self.headers['Host']}/datasets/someone/{body.get('name')}"})
        elif self.path == "/api/validate-yaml":  # the client checks the card's YAML before uploading
            self._reply(200, {"errors": [], "warnings": []})
        else:
            self._reply(403, {"error": "recording server: uploads are not accepted"})

    def do_GET(self):  # noqa: N802
        self.requests.append(("GET", self.path, None))
        self._reply(403, {"error": "recording server"})


@pytest.fixture
def recording_hub():
    _RecordingHub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _RecordingHub.requests
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_validate_lists_exactly_the_dataset_files(built):
    assert validate_dataset_folder(built) == [
        "README.md",
        "class_distribution.png",
        "default/test-00000-of-00001.parquet",
        "default/train-00000-of-00001.parquet",
        "detection/test-00000-of-00001.parquet",
        "detection/train-00000-of-00001.parquet",
    ]


def test_validate_refuses_broken_folders(built, tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        validate_dataset_folder(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(built, broken)
    (broken / "detection" / "test-00000-of-00001.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="test-00000-of-00001.parquet: not a readable parquet file"):
        validate_dataset_folder(broken)
    (broken / "detection" / "test-00000-of-00001.parquet").unlink()
    with pytest.raises(ValueError, match="config 'detection' split 'test': no file matches 'detection/test-\\*'"):
        validate_dataset_folder(broken)
    (broken / "README.md").write_text("# no yaml\n")
    with pytest.raises(ValueError, match="no 'configs:' list"):
        validate_dataset_folder(broken)
    (broken / "README.md").unlink()
    with pytest.raises(ValueError, match="README.md: missing"):
        validate_dataset_folder(broken)


def test_offline_mode_is_refused_before_any_request(built):
    assert constants.HF_HUB_OFFLINE  # set by conftest
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE is set"):
        push_dataset(built, "someone/synartifact-1k")


def test_unreachable_endpoint_gives_a_clear_network_error(built, online):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ConnectionError, match=f"Could not reach the Hub at {endpoint}"):
        push_dataset(built, "someone/synartifact-1k", endpoint=endpoint, token="hf_test")


def test_upload_reaches_the_hub_with_the_folder_as_a_dataset_repo(built, online, recording_hub):
    endpoint, requests = recording_hub
    with pytest.raises(RuntimeError, match="refused the upload"):
        push_dataset(built, "someone/synartifact-1k", private=True, endpoint=endpoint, token="hf_test")
    method, path, body = requests[0]
    assert (method, path) == ("POST", "/api/repos/create")
    assert body["type"] == "dataset" and body["visibility"] == "private"
    assert (body.get("organization"), body["name"]) == ("someone", "synartifact-1k")
    validated = [b for m, p, b in requests if p == "/api/validate-yaml"]
    assert validated and validated[0]["repoType"] == "dataset"
    assert validated[0]["content"] == (built / "README.md").read_text()
    uploads = [(p, b) for m, p, b in requests[1:] if "/preupload/" in p]
    assert uploads, requests
    path, body = uploads[0]
    assert path.startswith("/api/datasets/someone/synartifact-1k/preupload/main")
    assert sorted(f["path"] for f in body["files"]) == validate_dataset_folder(built)


def test_cli_push_dataset_reports_errors(built, online, capsys, tmp_path):
    assert main(["push-dataset", str(tmp_path / "missing"), "someone/x"]) == 1
    assert "not a folder" in capsys.readouterr().out
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    from synartifact_hf.data import hub

    # the CLI takes the endpoint from HF_ENDPOINT, as huggingface_hub does
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "ENDPOINT", endpoint)
        assert main(["push-dataset", str(built), "someone/synartifact-1k", "--token", "hf_test"]) == 1
    assert "Could not reach the Hub" in capsys.readouterr().out
    assert hub.push_dataset is push_dataset
