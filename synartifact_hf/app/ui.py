"""The Gradio Blocks app: upload images (or click a sample), see verdict, labels, scores, reward terms and
detection boxes; download the results.

Safe defaults, kept here so the CLI and the Space export get the same ones: the server binds 127.0.0.1,
never opens a share link unless asked, serves no extra ``allowed_paths``, refuses uploads over
:data:`~synartifact_hf.app.analysis.MAX_UPLOAD_BYTES`, and queues requests in a bounded queue (one
model call at a time; a full queue refuses new requests instead of growing). Inputs are uploads only:
a visitor's URL is refused before gradio would download it (:func:`upload_only`), a path outside
gradio's upload folder is refused by gradio itself, and :mod:`.analysis` only ever sees bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import deque
from pathlib import Path

import gradio as gr

from ..taxonomy import NAMES, NO_ARTIFACTS_ID
from .analysis import (
    MAX_UPLOAD_BYTES,
    TABLE_COLUMNS,
    ArtifactAnalyzer,
    UploadError,
    answer_notes,
    detection_overlay,
    logger,
    results_table,
    sample_image_paths,
    write_results,
)

__all__ = ["QUEUE_SIZE", "SESSIONS_KEPT", "build_app", "launch_app", "upload_only"]

QUEUE_SIZE = 16  # requests waiting at most; more are refused ("queue is full")
CONCURRENCY = 1  # model calls at a time (one pipeline object, one CPU/GPU)
KEEP_DOWNLOADS = 32  # result folders kept on disk; older ones are deleted
# Sessions whose state and last outputs gradio keeps in memory. gradio keeps 10,000 by default and every
# API call is a session of its own, holding the request's state and a copy of every output (the chart as
# an image, the JSON: ~45 kB pickled here), so memory grew with every request. Older sessions are dropped:
# a visitor whose session was dropped re-runs Analyze to pick an image in the menu again.
SESSIONS_KEPT = 64

INTRO = """\
# SynArtifact: which artifacts does the model see?
Upload, drop or paste one or several images (or click a sample below), then **Analyze**.
The classifier answers the paper's 14-option question; the reward is the DDPO reward of that answer
(paper Eq. 4). The option scores are the model's relative likelihoods of answering each option, **not
calibrated probabilities** of the artifact being present.
"""


def _refuse_url(value) -> None:
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else ""
    if "://" in text or text.startswith("data:"):
        logger.info("refused a URL sent to the API: %.200s", text)
        raise gr.Error("Only uploaded images are accepted; this app never fetches a URL.", print_exception=False)


class _RefusedPath(gr.Error, gr.exceptions.InvalidPathError):
    """gradio's refusal of a path it did not receive as an upload, told to the visitor in words and kept
    out of the log's tracebacks (still an ``InvalidPathError`` for any code that catches that)."""


def _quiet_path_refusals() -> None:
    """gradio refuses a file path outside its upload folder (that check stays as it is) but prints a full
    traceback for every refusal, so any visitor can fill the server log. Report each as one log line
    and a visitor message instead. Wraps gradio's check once per process."""
    from gradio import processing_utils

    check = getattr(processing_utils, "_check_allowed", None)
    if check is None or getattr(check, "quiet_refusals", False):
        return

    def _check_allowed(path, check_in_upload_folder):
        try:
            return check(path, check_in_upload_folder)
        except gr.exceptions.InvalidPathError as err:
            logger.info("refused a path sent to the API: %s", err)
            raise _RefusedPath("Only images uploaded to this app are accepted (a path on the server is not).",
                               print_exception=False) from None

    _check_allowed.quiet_refusals = True
    processing_utils._check_allowed = _check_allowed


def upload_only(component):
    """Make an input component refuse a URL in its payload instead of having the server download it
    (gradio would fetch it); gradio itself refuses paths outside its upload folder. Patched on the
    instance: a Component subclass would make gradio write a ``.pyi`` stub next to this module."""
    move, async_move = component.move_resource_to_block_cache, component.async_move_resource_to_block_cache

    def move_resource_to_block_cache(url_or_file_path):
        _refuse_url(url_or_file_path)
        return move(url_or_file_path)

    async def async_move_resource_to_block_cache(url_or_file_path):
        _refuse_url(url_or_file_path)
        return await async_move(url_or_file_path)

    component.move_resource_to_block_cache = move_resource_to_block_cache
    component.async_move_resource_to_block_cache = async_move_resource_to_block_cache
    return component


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _read_uploads(value) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of the gallery's files, which gradio has put in its upload folder."""
    folder = Path(gr.utils.get_upload_folder())
    uploads = []
    for item in value or []:
        path = Path(item[0] if isinstance(item, (tuple, list)) else item)
        if not _inside(path, folder):  # defence in depth: gradio already checks this
            raise UploadError(f"{path.name} was not uploaded to this app")
        with path.open("rb") as handle:  # one byte past the cap is enough for decode_upload to refuse it
            uploads.append((path.name, handle.read(MAX_UPLOAD_BYTES + 1)))
    return uploads


def _score_figure(scores: dict):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.2), dpi=100)
    ax = fig.subplots()
    names = list(NAMES)
    colors = ["#2a9d8f" if i == NO_ARTIFACTS_ID else "#e76f51" for i in range(len(names))]
    ax.barh(range(len(names)), [scores[n] for n in names], color=colors)
    ax.set_yticks(range(len(names)), labels=names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1e-6, max(scores.values())) * 1.1)
    ax.set_xlabel("relative likelihood of answering each option (sums to 1)")
    ax.set_title("Option scores", fontsize=10)
    fig.tight_layout()
    return fig


def _verdict_markdown(report: dict) -> str:
    record = report["classification"]
    lines = [f"### {report['name']}: **{report['verdict']}**"]
    lines.append("**Labels:** " + (", ".join(record["labels"]) or "none (the answer could not be parsed)"))
    lines.append(f"**Other artifacts caption:** {record.get('other_artifacts') or '-'}")
    notes = answer_notes(record)
    if notes:
        lines.append("**How the answer was read:** " + " ".join(notes))
    if report.get("reference"):
        lines.append("**Reference labels (bundled sample annotation):** " + ", ".join(report["reference"]["labels"]))
    return "\n\n".join(lines)


def _reward_markdown(reward: dict) -> str:
    if reward["mode"] == "likelihood":
        head = "r = P(No artifacts) - alpha * sum_k P(artifact k) + beta"
    else:
        head = 'r = BERTScore("No artifacts", answer) - alpha * sum_k BERTScore(phrase_k, answer) + beta'
    total = sum(reward["artifact_terms"].values())
    text = (f"### Reward r = {reward['reward']:.4f}\n\n`{head}` (paper Eq. 4)\n\n"
            f"= {reward['no_artifacts_term']:.4f} - {reward['alpha']:.4f} * {total:.4f} + {reward['beta']:.4f}")
    if reward.get("empty_answer"):
        text += "\n\nThe answer is empty, so the reward is its lower bound."
    return text


REWARD_COLUMNS = ("term", "score", "contribution to r")


def _reward_rows(reward: dict) -> list[list]:
    """One row per Eq. 4 term, named by its class (which is also its reference phrase s_k)."""
    rows = [[NAMES[NO_ARTIFACTS_ID], round(reward["no_artifacts_term"], 4), round(reward["no_artifacts_term"], 4)]]
    for name in NAMES[:NO_ARTIFACTS_ID]:
        value = reward["artifact_terms"][name]
        rows.append([name, round(value, 4), round(-reward["alpha"] * value, 4)])
    return rows


PROGRESS = gr.Progress()  # gradio injects a live tracker for a handler argument defaulting to one
EMPTY_DETAILS = ("", "", None, "", [], "")


def _details(reports: list[dict], name: str | None):
    report = next((r for r in reports or [] if r["name"] == name and r.get("classification")), None)
    if report is None:
        return EMPTY_DETAILS
    detection = report.get("detection")
    return (
        _verdict_markdown(report),
        report["classification"]["generated_text"],
        _score_figure(report["classification"]["scores"]) if report["classification"].get("scores") else None,
        _reward_markdown(report["reward"]),
        _reward_rows(report["reward"]),
        detection["generated_text"] if detection else "",
    )


def build_app(model, detection_model=None, *, reward_mode: str = "bertscore", max_new_tokens: int = 128,
              detection_max_new_tokens: int = 256, device=None, queue_size: int = QUEUE_SIZE,
              concurrency_limit: int = CONCURRENCY, analyzer: ArtifactAnalyzer | None = None,
              served_model: str | None = None, model_label: str | None = None) -> gr.Blocks:
    """The app as a ``gradio.Blocks`` (queued; call :func:`launch_app` or ``.launch()`` on it).

    Args:
        model: classifier checkpoint folder, Hub id, an ``artifact-classification`` pipeline, or the URL of
            an OpenAI-compatible server ending in ``/v1`` (``served_model`` picks its model).
        detection_model: detection checkpoint (may equal ``model``); ``None`` hides nothing but leaves
            the detection panel empty.
        reward_mode / max_new_tokens / detection_max_new_tokens / device: see
            :class:`~synartifact_hf.app.analysis.ArtifactAnalyzer`.
        queue_size: requests that may wait; more are refused. concurrency_limit: model calls at a time.
        model_label: the model's name shown to visitors (default: the Hub id, or the checkpoint folder's
            name; never the server's path).
    """
    _quiet_path_refusals()
    analyzer = analyzer or ArtifactAnalyzer(model, detection_model, reward_mode=reward_mode,
                                            max_new_tokens=max_new_tokens,
                                            detection_max_new_tokens=detection_max_new_tokens, device=device,
                                            served_model=served_model, label=model_label)
    downloads: deque[str] = deque()
    downloads_lock = threading.Lock()

    def keep_download_folder(folder: str) -> None:
        with downloads_lock:
            downloads.append(folder)
            while len(downloads) > KEEP_DOWNLOADS:
                shutil.rmtree(downloads.popleft(), ignore_errors=True)

    def analyze(value, progress=PROGRESS):
        def report_progress(i, n, name):
            progress((i, n), desc=f"image {min(i + 1, n)} of {n}: {name}" if i < n else "done")

        try:
            reports = analyzer.analyze(_read_uploads(value), progress=report_progress)
        except UploadError as err:
            return (f"**{err}**", [], None, {"model": analyzer.model_label, "images": []}, [],
                    gr.update(choices=[], value=None), [], *EMPTY_DETAILS)
        folder = tempfile.mkdtemp(prefix="synartifact-app-")
        files = [str(p) for p in write_results(reports, folder)]
        keep_download_folder(folder)
        dicts = [r.to_dict() for r in reports]
        good = [r for r in reports if r.error is None]
        errors = [r.error for r in reports if r.error is not None]
        status = f"Analysed {len(good)} of {len(reports)} image(s) with `{analyzer.model_label}`."
        if errors:
            status += "\n\n" + "\n".join(f"- **{e}**" for e in errors)
        _, rows = results_table(reports)
        overlays = []
        if analyzer.detector is not None:
            for r in good:
                reference = r.reference["boxes"] if r.reference else []
                overlays.append((detection_overlay(r.image, r.detection["boxes"], reference),
                                 f"{r.name}: {len(r.detection['boxes'])} predicted box(es)"
                                 + (f", {len(reference)} reference" if reference else "")))
        names = [r.name for r in good]
        first = names[0] if names else None
        _release_freed_memory()
        return (status, rows, files, {"model": analyzer.model_label, "images": dicts}, dicts,
                gr.update(choices=names, value=first), overlays, *_details(dicts, first))

    with gr.Blocks(title="SynArtifact", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=2):
                images = upload_only(gr.Gallery(label="Images", file_types=["image"], sources=["upload", "clipboard"],
                                                  type="filepath", columns=3, height=300, interactive=True,
                                                  elem_id="images"))
                with gr.Row():
                    run = gr.Button("Analyze", variant="primary", elem_id="analyze")
                    gr.ClearButton([images], value="Clear", elem_id="clear")
                gr.Examples([[[str(p)]] for p in sample_image_paths()], inputs=[images],
                            label="Samples (project-written annotations in the SynArtifact-1K schema, placeholder images; reference boxes "
                                  "are drawn in green)", examples_per_page=6, elem_id="samples")
            with gr.Column(scale=3):
                status = gr.Markdown(label="Status", show_label=False, elem_id="status")
                with gr.Tab("Classification"):
                    selector = gr.Dropdown(label="Image", choices=[], interactive=True, elem_id="selector")
                    verdict = gr.Markdown(label="Verdict", show_label=False, elem_id="verdict")
                    chart = gr.Plot(label="Option scores (not calibrated probabilities)", elem_id="chart")
                    answer = gr.Textbox(label="Raw answer of the model", lines=3, elem_id="answer")
                with gr.Tab("Reward (Eq. 4)"):
                    reward_text = gr.Markdown(label="Reward", show_label=False, elem_id="reward")
                    reward_table = gr.Dataframe(headers=list(REWARD_COLUMNS), label="Reward terms",
                                                interactive=False, elem_id="reward-terms")
                with gr.Tab("Detection"):
                    detections = gr.Gallery(label="Predicted boxes (yellow) and sample reference boxes (green)",
                                            columns=2, height=420, elem_id="detections", interactive=False,
                                            format="png")
                    detection_answer = gr.Textbox(label="Raw detection answer", lines=4, elem_id="detection-answer")
                with gr.Tab("All images"):
                    table = gr.Dataframe(headers=list(TABLE_COLUMNS), label="Results table", interactive=False,
                                         elem_id="table")
                    download = gr.File(label="Results (JSON lines, CSV)", file_count="multiple", elem_id="download")
                    raw = gr.JSON(label="Everything, as JSON (what the API returns)", elem_id="raw")
        state = gr.State([])
        detail_outputs = [verdict, answer, chart, reward_text, reward_table, detection_answer]
        run.click(analyze, inputs=[images],
                  outputs=[status, table, download, raw, state, selector, detections, *detail_outputs],
                  api_name="analyze")
        selector.input(_details, inputs=[state, selector], outputs=detail_outputs, api_visibility="private")
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency_limit)
    return demo


def _release_freed_memory() -> None:
    """Hand the heap pages freed by a request back to the OS (glibc's ``malloc_trim``): the model's and
    gradio's temporary buffers are freed in many threads' arenas, and glibc keeps them otherwise, so the
    server's resident memory ratchets up with every burst. A no-op where libc has no ``malloc_trim``."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _log_to_stderr() -> None:
    """One line per refused upload on the server's stderr, unless the host application set up logging."""
    import logging

    logger = logging.getLogger("synartifact_hf.app")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def launch_app(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False,
               state_session_capacity: int = SESSIONS_KEPT, **kwargs):
    """``demo.launch`` with the app's safe defaults (local bind, no share link, no extra allowed paths,
    upload size cap, at most ``state_session_capacity`` sessions kept in memory); other keyword arguments
    go to ``launch``."""
    if kwargs.get("allowed_paths"):
        raise ValueError("The app serves no files outside its own; allowed_paths is not supported")
    _log_to_stderr()
    return demo.launch(server_name=host, server_port=port, share=share, max_file_size=MAX_UPLOAD_BYTES,
                       show_error=True, state_session_capacity=state_session_capacity, **kwargs)
