"""``transformers serve`` in a child process on 127.0.0.1: the server the served classifier's tests and
``benchmarks/bench_served.py`` talk to (needs ``pip install 'synartifact-hf[served]'``).

    with running_server("tiny-llava", log="serve.log") as server:
        classifier = open_classifier(server.url)   # http://127.0.0.1:<port>/v1

The server runs in a process group of its own; :meth:`LocalServer.kill` sends SIGKILL to the whole group
(the API process and the model's worker process), :meth:`LocalServer.start` starts it again on the
same port.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from ..child_server import free_port, wait_until_answering

__all__ = ["LocalServer", "running_server"]


def _serve_command() -> list[str]:
    found = Path(sys.executable).with_name("transformers")
    if found.is_file():
        return [str(found), "serve"]
    on_path = shutil.which("transformers")
    if on_path is None:
        raise FileNotFoundError("the `transformers` command is not installed; pip install 'synartifact-hf[served]'")
    return [on_path, "serve"]


class LocalServer:
    """``transformers serve MODEL --host 127.0.0.1 --port PORT [ARGS]`` (see the module docstring)."""

    def __init__(self, model: str | os.PathLike, log: str | os.PathLike, *, port: int | None = None,
                 args: Sequence[str] = (), timeout: float = 300):
        self.model = os.fspath(model)
        self.log = Path(log)
        self.port = port or free_port()
        self.args = list(args)
        self.timeout = timeout
        self.process: subprocess.Popen | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI API root, what ``--model`` takes."""
        return f"{self.root}/v1"

    def start(self) -> LocalServer:
        """Start the server and wait until ``/health`` answers and the model is loaded."""
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
        with self.log.open("a") as handle:
            self.process = subprocess.Popen(
                [*_serve_command(), self.model, "--host", "127.0.0.1", "--port", str(self.port), *self.args],
                stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        try:
            wait_until_answering(f"{self.root}/health", self.process, self.log, self.timeout, "transformers serve")
        except TimeoutError:
            self.kill()
            raise

    def _signal_group(self, sig) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the server's whole process group (a crash, as far as clients can tell)."""
        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM the process group; SIGKILL what is left after 20 s."""
        if self.process is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
        # The model's worker may outlive the API process for a moment: leave no orphan behind.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextmanager
def running_server(model: str | os.PathLike, log: str | os.PathLike, *, port: int | None = None,
                   args: Sequence[str] = (), timeout: float = 300):
    """A started :class:`LocalServer`, stopped on exit."""
    server = LocalServer(model, log, port=port, args=args, timeout=timeout)
    try:
        yield server.start()
    finally:
        server.stop()
