"""The rating page (Gradio): a rater's personal link ``/?token=...`` shows one item at a time, the two
images of one prompt and seed side by side, each scored 1-7, and optionally which shows fewer
artifacts; ``/?admin=...`` shows the organiser's progress table, the report and the export.

What a rater's browser (or any API client) can do, all checked by :class:`~.store.StudyStore`:
``next_item(token)`` returns the item to rate now (and progress); ``submit(token, item_id, left,
right, fewer)`` stores the two scores, then returns the next item. Nothing names a model or shows
another rater's ratings: the page knows sides only, the server maps them to models. Refusals (bad
link, unknown or already-rated item, a score outside 1-7) come back as a message and store nothing.
The admin endpoints need the admin token on every call, not just to show the panel.

Safe defaults as the app's: bind 127.0.0.1, no share link, no uploads, no files served beyond the
page's own, no run history kept in the browser (it would hold the link and the scores), a bounded
queue (requests are cheap here, so it is longer than the classifier app's).
"""

from __future__ import annotations

import atexit
import csv
import hashlib
import io
import os
import shutil
import tempfile
from collections import deque
from pathlib import Path

import gradio as gr

from .pairs import StudyPairs
from .report import FIGURE_FILE, draw_figure, report_markdown, summarize
from .store import Refused, StudyStore

__all__ = ["CONCURRENCY", "QUEUE_SIZE", "build_study_app", "launch_study"]

QUEUE_SIZE = 64  # requests waiting at most; more are refused ("queue is full")
CONCURRENCY = 8  # handlers at a time; SQLite serialises the writes themselves
KEEP_EXPORTS = 4  # admin export folders kept on disk; older ones are deleted

INTRO = """\
# Which image looks better?
Each page shows two images made from the same text. Score **each image from 1 (very poor) to 7
(excellent)** for its overall quality: how natural and free of flaws it looks (distorted or duplicated
parts, illegible letters, odd lighting or textures, blur). If you can, also say which one shows
**fewer artifacts**. Your answers are saved as you go: close the page any time and open your link
again to continue where you stopped.
"""
SCALE_CHOICES = [(str(s), s) for s in range(1, 8)]
FEWER_CHOICES = [("Left image", "left"), ("Right image", "right"), ("About the same", "same")]
EXPORT_COLUMNS = ("rater", "item_id", "prompt", "prompt_index", "seed", "side", "model", "score",
                  "fewer_artifacts", "time")


def _progress_text(done: int, total: int) -> str:
    return f"**Item {done + 1} of {total}**" if done < total else f"**All {total} items rated. Thank you!**"


class _ImageFiles:
    """The images as PNG files named by their content's hash, written once each (temp file, then rename)
    into a folder gradio serves as it is. Handing gradio PIL images instead makes it write the same
    cache file from two requests at once when two raters see one item, and serve a half-written file."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="synartifact-study-images-"))
        atexit.register(shutil.rmtree, self.folder, ignore_errors=True)
        gr.set_static_paths([self.folder])

    def path(self, image) -> str:
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        data = buffer.getvalue()
        path = self.folder / f"{hashlib.sha256(data).hexdigest()[:32]}.png"
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        return str(path)


def build_study_app(pairs: StudyPairs, store: StudyStore, *, queue_size: int = QUEUE_SIZE,
                    concurrency_limit: int = CONCURRENCY) -> gr.Blocks:
    """The study page as a ``gradio.Blocks`` (queued); ``store`` must be bound to ``pairs``' items."""
    exports: deque[Path] = deque()
    files = _ImageFiles()
    image_paths: dict[str, tuple[str, str]] = {}  # item_id -> (A's file, B's file)

    def view(assignment, message: str = ""):
        """Outputs for the rating panel: item id, status, prompt, left, right, three cleared answers, button."""
        status = _progress_text(assignment.done, assignment.total) + (f"\n\n{message}" if message else "")
        if assignment.item is None:
            return ("", status, "", None, None, None, None, None, gr.update(interactive=False))
        item_id = assignment.item.item_id
        if item_id not in image_paths:  # decoded and encoded once per item, whoever sees it first
            image_paths[item_id] = tuple(files.path(image) for image in pairs.images(item_id))
        a, b = image_paths[item_id]
        left, right = (a, b) if assignment.left_model == "A" else (b, a)
        return (item_id, status, f"**Text:** {assignment.item.prompt}", left, right,
                None, None, None, gr.update(interactive=True))

    def next_item(token):
        try:
            return view(store.current(token))
        except Refused as err:
            raise gr.Error(str(err), print_exception=False) from None

    def submit(token, item_id, left_score, right_score, fewer):
        try:
            return view(store.submit(token, item_id, left_score, right_score, fewer), "Saved.")
        except Refused as err:
            raise gr.Error(str(err), print_exception=False) from None

    def admin(admin_token):
        try:
            store.check_admin(admin_token)
        except Refused as err:
            raise gr.Error(str(err), print_exception=False) from None
        summary = summarize(store)
        ratings = store.ratings()
        folder = Path(tempfile.mkdtemp(prefix="synartifact-study-"))
        exports.append(folder)
        while len(exports) > KEEP_EXPORTS:
            shutil.rmtree(exports.popleft(), ignore_errors=True)
        draw_figure(summary, ratings, folder / FIGURE_FILE)
        export = folder / "ratings.csv"
        with export.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, EXPORT_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({**r, "rater": f"rater-{r['rater_id']:03d}"} for r in ratings)
        table = [[f"rater-{r['rater_id']:03d}", r["name"] or "", r["rated"], r["assigned"], "yes" if r["revoked"] else ""]
                 for r in store.raters()]
        return report_markdown(summary, figure=False), table, str(folder / FIGURE_FILE), [str(export)]

    def on_load(request: gr.Request):
        params = dict(request.query_params) if request is not None else {}
        hidden, shown = gr.update(visible=False), gr.update(visible=True)
        if params.get("admin"):
            try:
                outputs = admin(params["admin"])
            except gr.Error as err:
                return ("", "", f"**{err.message}**", "", None, None, None, None, None,
                        gr.update(interactive=False), hidden, hidden, "", "", [], None, None)
            return ("", "", "", "", None, None, None, None, None, gr.update(interactive=False), hidden, shown,
                    params["admin"], *outputs)
        token = params.get("token", "")
        try:
            outputs = view(store.current(token))
        except Refused as err:
            return ("", "", f"**{err}**", "", None, None, None, None, None, gr.update(interactive=False),
                    hidden, hidden, "", "", [], None, None)
        return (token, *outputs, shown, hidden, "", "", [], None, None)

    with gr.Blocks(title="Image rating study", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        token_box = gr.Textbox(visible=False, elem_id="token")
        item_box = gr.Textbox(visible=False, elem_id="item")
        admin_box = gr.Textbox(visible=False, elem_id="admin-token")
        status = gr.Markdown(elem_id="status")
        with gr.Column(visible=False, elem_id="rating") as rating_panel:
            gr.Markdown(INTRO)
            prompt = gr.Markdown(elem_id="prompt")
            with gr.Row():
                with gr.Column():
                    left_image = gr.Image(label="Left image", type="filepath", interactive=False,
                                          buttons=[], height=420, elem_id="left-image")
                    left_score = gr.Radio(SCALE_CHOICES, label="Left image: quality, 1 (very poor) to 7 (excellent)",
                                          elem_id="left-score")
                with gr.Column():
                    right_image = gr.Image(label="Right image", type="filepath", interactive=False,
                                           buttons=[], height=420, elem_id="right-image")
                    right_score = gr.Radio(SCALE_CHOICES, label="Right image: quality, 1 (very poor) to 7 (excellent)",
                                           elem_id="right-score")
            fewer = gr.Radio(FEWER_CHOICES, label="Which shows fewer artifacts? (optional)", elem_id="fewer")
            submit_button = gr.Button("Save and next", variant="primary", elem_id="submit")
        with gr.Column(visible=False, elem_id="admin") as admin_panel:
            gr.Markdown("# Study progress (organiser)")
            refresh = gr.Button("Refresh", elem_id="refresh")
            summary_text = gr.Markdown(elem_id="summary")
            per_rater = gr.Dataframe(headers=["rater", "name", "items rated", "assigned", "revoked"],
                                     interactive=False, elem_id="per-rater")
            figure = gr.Image(label="Fig. 9", type="filepath", interactive=False, elem_id="figure")
            export = gr.File(label="All ratings (CSV)", file_count="multiple", elem_id="export")
        item_outputs = [item_box, status, prompt, left_image, right_image, left_score, right_score, fewer,
                        submit_button]
        admin_outputs = [summary_text, per_rater, figure, export]
        demo.load(on_load, inputs=None, outputs=[token_box, *item_outputs, rating_panel, admin_panel, admin_box,
                                                 *admin_outputs], api_visibility="private")
        # no progress overlay: a refused submission would leave an "Error" veil over the answers to correct
        # (the message shows as a notice); a stored one answers in milliseconds
        submit_button.click(submit, inputs=[token_box, item_box, left_score, right_score, fewer],
                            outputs=item_outputs, api_name="submit", show_progress="hidden")
        refresh.click(admin, inputs=[admin_box], outputs=admin_outputs, api_name="admin")
        # a rater's way in through the API (the page itself gets its first item from on_load)
        resume = gr.Button(visible=False, elem_id="resume")
        resume.click(next_item, inputs=[token_box], outputs=item_outputs, api_name="next_item")
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency_limit)
    return demo


def launch_study(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False):
    """``demo.launch`` with the safe defaults (local bind, no share link unless asked, no uploads, no
    run history: gradio would keep each call's inputs, a rater's link and scores, in the browser)."""
    return demo.launch(server_name=host, server_port=port, share=share, show_error=True, max_file_size=0,
                       run_history=False)
