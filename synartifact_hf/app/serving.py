"""Run ``synartifact-hf app`` in a child process on 127.0.0.1 and put load on it: used by the browser
tests and ``benchmarks/bench_app_load.py``.

:func:`burst` sends N analyse requests at once through gradio's HTTP API (``/gradio_api/call/analyze``)
and sorts every answer into ``answered`` (the result came back), ``refused`` (HTTP 503 "Queue is full")
or ``other`` (anything else: a failure), while sampling the server's resident memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..child_server import free_port, wait_until_answering

__all__ = ["BurstResult", "burst", "free_port", "running_app", "upload"]


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    wait_until_answering(f"{url}/gradio_api/info", proc, log, timeout, "the app")


@contextmanager
def running_app(argv: Sequence[str], log: str | os.PathLike, *, port: int | None = None, timeout: float = 240,
                command: Sequence[str] = ("app",)):
    """``python -m synartifact_hf.cli COMMAND ARGV --port PORT`` (127.0.0.1; COMMAND ``app`` or e.g.
    ``study serve``) in a child process; yields ``(url, process)`` once it answers, stops it afterwards.
    Its output goes to ``log``."""
    port = port or free_port()
    log = Path(log)
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "synartifact_hf.cli", *command, *argv, "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=handle, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log, timeout)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def upload(url: str, path: str | os.PathLike) -> dict:
    """Upload one file the way the browser does; returns the gallery item that refers to it."""
    import httpx

    with open(path, "rb") as handle:
        response = httpx.post(f"{url}/gradio_api/upload", files={"files": (Path(path).name, handle)}, timeout=60)
    response.raise_for_status()
    return {"image": {"path": response.json()[0], "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}}


def call_analyze(url: str, images: list, timeout: float = 600) -> tuple[str, object]:
    """``("complete", outputs)``, ``("error", message)`` or ``("refused", message)`` for one API call."""
    import httpx

    response = httpx.post(f"{url}/gradio_api/call/analyze", json={"data": [images]}, timeout=timeout)
    if response.status_code == 503:
        return "refused", response.json().get("detail", response.text)
    response.raise_for_status()
    event_id = response.json()["event_id"]
    with httpx.stream("GET", f"{url}/gradio_api/call/analyze/{event_id}", timeout=timeout) as stream:
        text = "".join(stream.iter_text())
    event, data = None, None
    for line in text.splitlines():
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: ") and event in ("complete", "error"):
            data = json.loads(line[len("data: "):])
            break
    return (event or "none"), data


@dataclass
class BurstResult:
    answered: int = 0
    refused: int = 0
    other: list = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    rss_before: int = 0  # bytes
    rss_peak: int = 0
    rss_after: int = 0
    seconds: float = 0.0


def burst(url: str, pid: int, images: list, n: int = 50, check=None) -> BurstResult:
    """Send ``n`` concurrent analyse requests for ``images`` (gallery items from :func:`upload`);
    ``check(outputs)`` may raise for a wrong answer (counted in ``other``)."""
    import psutil

    process = psutil.Process(pid)
    result = BurstResult(rss_before=process.memory_info().rss)
    result.rss_peak = result.rss_before
    done = threading.Event()

    def watch():
        while not done.is_set():
            result.rss_peak = max(result.rss_peak, process.memory_info().rss)
            time.sleep(0.02)

    def one(_):
        start = time.monotonic()
        try:
            kind, data = call_analyze(url, images)
            if kind == "complete" and check is not None:
                check(data)
        except Exception as err:  # a failure of any kind is what this counts
            return "other", f"{type(err).__name__}: {err}", 0.0
        return kind, data, time.monotonic() - start

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        outcomes = list(pool.map(one, range(n)))
    result.seconds = time.monotonic() - start
    done.set()
    watcher.join()
    result.rss_after = process.memory_info().rss
    for kind, data, seconds in outcomes:
        if kind == "complete":
            result.answered += 1
            result.latencies.append(seconds)
        elif kind == "refused" and "Queue is full" in str(data):
            result.refused += 1
        else:
            result.other.append((kind, str(data)[:300]))
    return result
