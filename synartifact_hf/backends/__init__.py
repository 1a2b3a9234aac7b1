"""The classifier behind one seam: images in, the pipeline's records out, whether the model runs in this
process or behind an OpenAI-compatible inference server (vLLM, SGLang, TGI, ``transformers serve``).

:func:`open_classifier` picks the implementation from ``model``:

- an ``artifact-classification`` pipeline object, a checkpoint folder or a Hub id: the in-process
  pipeline (:class:`~synartifact_hf.backends.in_process.InProcessClassifier`);
- an ``http://`` or ``https://`` URL ending in ``/v1``: the served classifier
  (:class:`~synartifact_hf.backends.served.ServedClassifier`), which asks the server the same question
  the pipeline asks the model (the chat template's rendering of the instruction and one image).

Both return, per image, the pipeline's record: ``generated_text``, ``labels``, ``other_artifacts``,
``has_artifacts``, ``parse_issues`` and ``scores`` (the 14-option distribution, or None when not asked
for or when the server cannot give it). classify, curate, evaluate, the app and the reward all go
through here, so the same answer parser, metrics and reward code run on both.

>>> is_served_model("http://127.0.0.1:8000/v1"), is_served_model("llava-hf/llava-1.5-7b-hf")
(True, False)
"""

from __future__ import annotations

import os

__all__ = [
    "add_served_arguments",
    "served_settings",
    "ClassifierBackend",
    "ClassificationFailed",
    "ServedClassifierError",
    "is_served_model",
    "looks_like_url",
    "open_classifier",
]

DEFAULT_CONCURRENCY = 16


def looks_like_url(model) -> bool:
    """``model`` is an http(s) URL (whether or not it names an API root)."""
    return isinstance(model, str) and model.lower().startswith(("http://", "https://"))


def is_served_model(model) -> bool:
    """``model`` names an OpenAI-compatible server: an http(s) URL whose path ends in ``/v1``."""
    return looks_like_url(model) and model.rstrip("/").endswith("/v1")


def add_served_arguments(parser) -> None:
    """The served classifier's command-line options, the same for classify, curate, evaluate and the app."""
    group = parser.add_argument_group("served classifier (--model http(s)://HOST:PORT/v1)")
    group.add_argument("--served-model", default=None, metavar="NAME",
                       help="the server's model to ask (default: its only one, from /v1/models)")
    group.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                       help="requests in flight at once (default: %(default)s)")
    group.add_argument("--request-timeout", type=float, default=None, metavar="SECONDS",
                       help="seconds before a request is abandoned and retried (default: 120)")
    group.add_argument("--max-retries", type=int, default=None,
                       help="retries after a connection error, timeout, 429 or 5xx (default: 5)")


def served_settings(args) -> dict:
    """:func:`open_classifier` keywords from :func:`add_served_arguments`' options."""
    return {"served_model": args.served_model, "concurrency": args.concurrency, "timeout": args.request_timeout,
            "max_retries": args.max_retries}


MODEL_HELP = ("classifier checkpoint folder or Hub id (e.g. llava-hf/llava-1.5-7b-hf), or the URL of an "
              "OpenAI-compatible server ending in /v1 (vLLM, SGLang, TGI, transformers serve; API key from "
              "SYNARTIFACT_API_KEY, else OPENAI_API_KEY)")


class ServedClassifierError(RuntimeError):
    """The server cannot be used: unreachable, refusing the key, no such model, or a request it rejects
    (e.g. a prompt longer than its context). The message names the URL and repeats what the server said;
    it never contains the API key."""


class ClassificationFailed(RuntimeError):
    """Some images got no answer, even after the retries (the server went away or kept failing).

    ``results`` holds one entry per image: its record, or None where it failed (``errors`` says why).
    Callers that write results keep the records and write nothing for the failed images, so rerunning
    the same command completes them.
    """

    def __init__(self, message: str, results: list, errors: list):
        super().__init__(message)
        self.results = results
        self.errors = errors


class ClassifierBackend:
    """What every consumer of the classifier sees.

    Attributes:
        identity: the model's name for people and reports: a Hub id, a folder's name, or the served model's
            name with the server's address; never a secret, never a path on the server.
        instruction: the instruction text every image is asked with.
        return_scores: whether records carry the 14-option ``scores``.
        supports_scores: whether this classifier can give ``scores`` at all.
        batch_size: images per :meth:`classify` call that keep it busy (a served classifier's is at
            least its concurrency).
        fingerprint: what a cache of labels must key on (model, weights or server, settings).
    """

    identity: str
    instruction: str
    return_scores: bool = False
    supports_scores: bool = False
    batch_size: int = 8
    fingerprint: str = ""

    def classify(self, images: list) -> list[dict]:
        """One record per PIL image, in order (see the module docstring)."""
        raise NotImplementedError

    def __call__(self, images: list) -> list[dict]:
        return self.classify(images)

    def close(self) -> None:
        """Release what the classifier holds (threads, connections). Idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_classifier(
    model,
    *,
    served_model: str | None = None,
    device=None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    instruction: str | None = None,
    return_scores: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float | None = None,
    max_retries: int | None = None,
    **pipeline_kwargs,
) -> ClassifierBackend:
    """The classifier named by ``model`` (see the module docstring).

    Args:
        model: a pipeline object, a checkpoint folder or Hub id (in-process), or an ``http(s)://.../v1`` URL.
        served_model: with a URL, the server's model to use (default: its only one, from ``/v1/models``).
        device: the torch device when the model is loaded here (ignored for a pipeline object or a URL).
        batch_size: in-process: images per ``generate()``; served: images per call (raised to ``concurrency``).
        max_new_tokens: answer length cap (default 128, the pipeline's).
        instruction: the instruction (default: the paper's classification instruction, Fig. 11).
        return_scores: also return the 14-option ``scores`` (a served classifier refuses when the server
            gives no prompt log-probabilities).
        concurrency: served only: requests in flight at once.
        timeout: served only: seconds per request before it is abandoned and retried (default 120).
        max_retries: served only: retries of a request after a connection error, a timeout, 429 or 5xx
            (default 5; exponential backoff from 1 s, honouring ``Retry-After``).
        **pipeline_kwargs: in-process only: passed to :func:`~synartifact_hf.pipeline.load_pipeline`.

    Raises:
        ServedClassifierError: a URL that does not end in ``/v1``, or whose server is unreachable or refuses
            (checked here, within seconds).
        ValueError: settings the chosen classifier cannot honour.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if looks_like_url(model) and not is_served_model(model):
        from .served import public_url

        raise ServedClassifierError(
            f"{public_url(model)} looks like a server address but does not end in /v1; the served classifier "
            f"needs the OpenAI-compatible API root, e.g. {public_url(model).rstrip('/')}/v1"
        )
    if served_model is not None and not is_served_model(model):
        raise ValueError(f"served_model={served_model!r} needs a server URL ending in /v1 as the model, got {model!r}")
    if is_served_model(model):
        if pipeline_kwargs:
            raise ValueError(f"{sorted(pipeline_kwargs)} configure an in-process pipeline; they do not apply to the "
                             f"served model {model}")
        from .served import ServedClassifier

        return ServedClassifier(
            model, served_model=served_model, batch_size=batch_size, max_new_tokens=max_new_tokens,
            instruction=instruction, return_scores=return_scores, concurrency=concurrency, timeout=timeout,
            max_retries=max_retries,
        )
    from .in_process import InProcessClassifier

    if isinstance(model, (str, os.PathLike)):
        from ..pipeline import load_pipeline

        pipe = load_pipeline(os.fspath(model), device=device, **pipeline_kwargs)
    else:
        if pipeline_kwargs:
            raise ValueError(f"{sorted(pipeline_kwargs)} apply when the classifier is loaded here; this one is a "
                             "ready pipeline object")
        pipe = model
    return InProcessClassifier(pipe, batch_size=batch_size, max_new_tokens=max_new_tokens,
                               instruction=instruction, return_scores=return_scores)
