"""The classifier behind an OpenAI-compatible server (vLLM, SGLang, TGI, ``transformers serve``).

Each image is one chat-completions request whose single user message is the one the in-process pipeline
renders through the chat template (:func:`synartifact_hf.prompts.conversation`: the image, then the
instruction), with the image as a base64 PNG data URL (after the pipeline's pixel cap),
``temperature=0`` and the pipeline's ``max_new_tokens``: the server applies the model's own chat template,
so greedy answers match the in-process ones. The answer goes through the same parser.

The client is the ``openai`` package (the server side of ``transformers[serving]`` depends on it too):
its typed errors tell a refused key from an unreachable server from a rate limit, and it lists the
server's models. Its own retries are off; :class:`ServedClassifier` retries a request after a connection
error, a timeout, HTTP 408, 429 or 5xx, waiting ``Retry-After`` when the server sends one, else an
exponential backoff (1 s, 2 s, 4 s, ... up to 30 s, with jitter), and counts the retries. Any other error
(a refused key, an unknown model, a prompt longer than the model's context) is shown as the server said
it and stops the run.

The API key comes from ``SYNARTIFACT_API_KEY``, else ``OPENAI_API_KEY`` (servers started without a key
accept any). It is never written, logged or put in an error message.
"""

from __future__ import annotations

import base64
import email.utils
import io
import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

from . import ClassificationFailed, ClassifierBackend, ServedClassifierError

__all__ = ["API_KEY_VARIABLES", "ServedClassifier", "api_key", "image_data_url", "public_url"]

API_KEY_VARIABLES = ("SYNARTIFACT_API_KEY", "OPENAI_API_KEY")
DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 5
# The start-up check must fail within seconds when nothing answers.
START_TIMEOUT = 10.0
BACKOFF_START, BACKOFF_CAP = 1.0, 30.0
RETRY_AFTER_CAP = 300.0
RETRY_STATUSES = {408, 429}  # and every 5xx


def api_key() -> str | None:
    """The key to send: ``SYNARTIFACT_API_KEY``, else ``OPENAI_API_KEY``, else None."""
    for name in API_KEY_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return None


def public_url(url: str) -> str:
    """``url`` without user:password (fit for messages, reports and cache keys)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def image_data_url(image, max_pixels: int | None = None) -> str:
    """A ``data:image/png;base64,...`` URL of ``image`` as the pipeline would see it (RGB, upright,
    refused above ``max_pixels``). PNG is lossless, so the server decodes the very same pixels."""
    from ..images import MAX_IMAGE_PIXELS, load_image

    rgb = load_image(image, max_pixels=max_pixels or MAX_IMAGE_PIXELS)
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def chat_messages(instruction: str, image_url: str) -> list[dict]:
    """The pipeline's conversation (:func:`~synartifact_hf.prompts.conversation`) in the OpenAI format:
    its image placeholder becomes the data URL, in the same place."""
    from ..prompts import conversation

    messages = []
    for message in conversation(instruction):
        content = [{"type": "image_url", "image_url": {"url": image_url}} if part["type"] == "image" else dict(part)
                   for part in message["content"]]
        messages.append({"role": message["role"], "content": content})
    return messages


def retry_after(headers) -> float | None:
    """Seconds the server asks to wait (``retry-after-ms``, ``Retry-After`` in seconds or as an HTTP
    date), or None."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class _GaveUp(Exception):
    """A request still failing after its retries (the caller writes no record for it)."""


class ServedClassifier(ClassifierBackend):
    """See the module docstring; build it with :func:`synartifact_hf.backends.open_classifier`."""

    supports_scores = False

    def __init__(self, url: str, *, served_model: str | None = None, batch_size: int = 8,
                 max_new_tokens: int | None = None, instruction: str | None = None, return_scores: bool = False,
                 concurrency: int = 16, timeout: float | None = None, max_retries: int | None = None,
                 max_image_pixels: int | None = None):
        from openai import OpenAI, Timeout

        from ..prompts import classification_instruction

        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.url = url.rstrip("/")
        self.public_url = public_url(self.url)
        if return_scores:
            raise ValueError(
                f"{self.public_url}: per-option scores (return_scores, --scores, ArtifactReward(mode='likelihood')) "
                "need the model's log-probabilities of all 14 answers, which the served classifier does not "
                "compute; use mode='bertscore' (paper Eq. 4) or drop --scores, or load the classifier in-process"
            )
        self.return_scores = False
        self.instruction = instruction if instruction is not None else classification_instruction()
        self.max_new_tokens = 128 if max_new_tokens is None else int(max_new_tokens)
        self.concurrency = int(concurrency)
        self.batch_size = max(int(batch_size), self.concurrency)
        self.timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        self.max_retries = DEFAULT_MAX_RETRIES if max_retries is None else int(max_retries)
        if self.timeout <= 0 or self.max_retries < 0:
            raise ValueError(f"timeout must be > 0 and max_retries >= 0, got {self.timeout} and {self.max_retries}")
        self.max_image_pixels = max_image_pixels
        self.retries = 0  # requests sent again, over this classifier's life
        self._lock = threading.Lock()
        self._key = api_key()
        self._client = OpenAI(base_url=self.url, api_key=self._key or "EMPTY", max_retries=0,
                              timeout=Timeout(self.timeout, connect=min(self.timeout, START_TIMEOUT)))
        self._pool = None
        try:
            self.model = self._choose_model(served_model)
            # transformers serve names a local model by its path on the server: show the folder's name.
            name = self.model.rstrip("/").rsplit("/", 1)[-1] if self.model.startswith("/") else self.model
            self.identity = f"{name} @ {self.public_url}"
            # One real request before anything is written: a key valid for /models but not for chat, a
            # model that takes no images or a prompt longer than its context fails here, not per image.
            try:
                self._ask(image_data_url(_probe_image()), max_tokens=1, attempts=1 + min(self.max_retries, 2))
            except _GaveUp as err:
                raise ServedClassifierError(str(err)) from None
        except BaseException:
            self._client.close()
            raise
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="served-classifier")

    # -- identity -------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        return json.dumps([self.public_url, self.model, self.instruction, self.max_new_tokens], sort_keys=True)

    def __repr__(self) -> str:
        return f"ServedClassifier({self.public_url!r}, model={getattr(self, 'model', None)!r})"

    def __reduce__(self):
        raise TypeError("a ServedClassifier holds open connections; open it again with open_classifier() "
                        "in the other process")

    # -- errors ---------------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _says(self, err) -> str:
        """What the server said, as it said it."""
        body = getattr(err, "body", None)
        if isinstance(body, dict):
            for name in ("detail", "error", "message"):
                value = body.get(name)
                if isinstance(value, dict):
                    value = value.get("message", value)
                if value:
                    return self._scrub(str(value))
        response = getattr(err, "response", None)
        text = response.text if response is not None else str(err)
        return self._scrub(text.strip()[:2000] or str(err))

    def _refused(self, err, what: str) -> ServedClassifierError:
        import openai

        status = err.status_code
        if isinstance(err, (openai.AuthenticationError, openai.PermissionDeniedError)):
            set_vars = [name for name in API_KEY_VARIABLES if os.environ.get(name)]
            source = f"the key from {set_vars[0]}" if set_vars else f"no key ({' / '.join(API_KEY_VARIABLES)} unset)"
            return ServedClassifierError(
                f"{self.public_url} refused {source} (HTTP {status}: {self._says(err)}); set "
                f"{API_KEY_VARIABLES[0]} (or {API_KEY_VARIABLES[1]}) to the server's API key")
        return ServedClassifierError(f"{self.public_url} refused {what} (HTTP {status}): {self._says(err)}")

    def _unreachable(self, err) -> ServedClassifierError:
        reason = self._scrub(str(getattr(err, "__cause__", None) or err))
        return ServedClassifierError(
            f"cannot reach the classifier server at {self.public_url} ({type(err).__name__}: {reason}); is it "
            "running, and is this its address?")

    # -- start-up -------------------------------------------------------------------------------------
    def _choose_model(self, served_model: str | None) -> str:
        import openai

        try:
            listed = [m.id for m in self._client.models.list(timeout=START_TIMEOUT)]
        except openai.APIConnectionError as err:
            raise self._unreachable(err) from None
        except openai.NotFoundError as err:
            raise ServedClassifierError(
                f"{self.public_url}/models is not there (HTTP 404: {self._says(err)}); is {self.public_url} the "
                "API root of an OpenAI-compatible server (vLLM, SGLang, TGI, transformers serve)?") from None
        except openai.APIStatusError as err:
            raise self._refused(err, "the list of its models") from None
        if served_model is not None:
            if listed and served_model not in listed:
                raise ServedClassifierError(
                    f"{self.public_url} serves no model {served_model!r}; it serves: {', '.join(listed)}")
            return served_model
        if len(listed) == 1:
            return listed[0]
        if not listed:
            raise ServedClassifierError(f"{self.public_url} lists no model; name one with --served-model / served_model=")
        raise ServedClassifierError(
            f"{self.public_url} serves {len(listed)} models; pick one with --served-model NAME (served_model=): "
            + ", ".join(listed))

    # -- requests -------------------------------------------------------------------------------------
    def _ask(self, image_url: str, max_tokens: int | None = None, attempts: int | None = None) -> str:
        """The answer text for one image; retries as the module docstring says."""
        import openai

        attempts = self.max_retries + 1 if attempts is None else attempts
        for attempt in range(attempts):
            try:
                completion = self._client.chat.completions.create(
                    model=self.model, messages=chat_messages(self.instruction, image_url), temperature=0,
                    max_tokens=max_tokens or self.max_new_tokens,
                )
                return completion.choices[0].message.content or ""
            except openai.APIConnectionError as err:  # includes timeouts
                failure, wait = self._unreachable(err), None
            except openai.APIStatusError as err:
                if err.status_code not in RETRY_STATUSES and err.status_code < 500:
                    raise self._refused(err, f"a request for {self.model}") from None
                failure = ServedClassifierError(f"{self.public_url} answered HTTP {err.status_code}: {self._says(err)}")
                wait = retry_after(err.response.headers)
            if attempt + 1 == attempts:
                raise _GaveUp(f"{failure} (after {attempts} attempts)")
            if wait is None:
                wait = min(BACKOFF_CAP, BACKOFF_START * 2**attempt) * random.uniform(0.5, 1.0)
            with self._lock:
                self.retries += 1
            time.sleep(min(wait, RETRY_AFTER_CAP))
        raise AssertionError("unreachable")

    def _record(self, image) -> dict:
        from ..parsing import parse_answer

        text = self._ask(image_data_url(image, self.max_image_pixels)).strip()
        parsed = parse_answer(text)
        return {
            "labels": parsed.labels,
            "has_artifacts": parsed.has_artifacts,
            "other_artifacts": parsed.other_caption,
            "generated_text": text,
            "parse_issues": list(parsed.issues),
            "scores": None,
        }

    def classify(self, images: list) -> list[dict]:
        """Records for ``images``, ``concurrency`` requests at a time. Raises :class:`ServedClassifierError`
        when the server refuses a request (nothing to retry), :class:`ClassificationFailed` when some
        images are still unanswered after their retries (with the others' records)."""
        if self._pool is None:
            raise RuntimeError(f"{self!r} is closed")
        futures = [self._pool.submit(self._record, image) for image in images]
        results, errors = [], []
        try:
            for future in futures:
                try:
                    results.append(future.result())
                    errors.append(None)
                except _GaveUp as err:
                    results.append(None)
                    errors.append(str(err))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        failed = [e for e in errors if e is not None]
        if failed:
            raise ClassificationFailed(
                f"{len(failed)} of {len(images)} image(s) got no answer from {self.public_url}: {failed[0]}",
                results, errors)
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            self._client.close()


def _probe_image():
    from PIL import Image

    return Image.new("RGB", (64, 64), (128, 128, 128))
