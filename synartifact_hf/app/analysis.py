"""What the web app computes for one uploaded image, without gradio: classification, Eq. 4 reward terms,
detection boxes, and the reference boxes of the bundled sample images.

The app hands this module the *bytes* of an upload, never a name to open or a URL to fetch:
:func:`decode_upload` decodes them with the pipeline's pixel cap (checked from the header before any
pixel is decoded), and only the decoded ``PIL.Image`` reaches the pipeline. Everything a visitor can
get wrong (not an image, truncated, too many pixels, too many files) becomes an :class:`ImageReport`
with an ``error`` message for the page instead of an exception, so one bad file never fails a batch.

>>> import io
>>> from PIL import Image
>>> buffer = io.BytesIO()
>>> Image.new("RGB", (40, 30), "red").save(buffer, format="PNG")
>>> decode_upload(buffer.getvalue(), "red.png").size
(40, 30)
>>> decode_upload(b"hello", "notes.png")
Traceback (most recent call last):
...
synartifact_hf.app.analysis.UploadError: notes.png is not an image this app can read: it may be damaged or cut off, or in another format (PNG, JPEG, WebP, GIF, BMP and TIFF work).

The messages are worded for the person at the browser; what went wrong in detail goes to the server's
log, one line per refused file (logger ``synartifact_hf.app``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from ..atomic import write_text_atomic
from ..images import MAX_IMAGE_PIXELS, ImageTooLargeError, UnreadableImageError, load_image
from ..taxonomy import NAMES, NO_ARTIFACTS_ID

__all__ = [
    "MAX_IMAGES",
    "MAX_UPLOAD_BYTES",
    "ArtifactAnalyzer",
    "ImageReport",
    "UploadError",
    "answer_notes",
    "decode_upload",
    "detection_overlay",
    "model_label",
    "read_detection",
    "results_table",
    "sample_references",
    "verdict",
    "write_results",
]

# One request may carry this many images; more are refused with a message (memory stays bounded).
MAX_IMAGES = 16
# Bytes per uploaded file, refused before decoding (the server's upload limit is set to the same).
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
TABLE_COLUMNS = ("image", "verdict", "labels", "other artifacts", "reward", "boxes", "error")
READABLE_FORMATS = "PNG, JPEG, WebP, GIF, BMP and TIFF"

logger = logging.getLogger("synartifact_hf.app")


class UploadError(ValueError):
    """An upload the app cannot analyse; the message, worded for a visitor, is shown in the page as it is."""


def _megabytes(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB"


def _too_large(name: str, err: ImageTooLargeError) -> str:
    if err.num_bytes is not None:
        return f"{name} is {_megabytes(err.num_bytes)}; this app takes files up to {_megabytes(err.limit)}."
    limit = f"this app takes images up to {err.limit / 1e6:g} megapixels. Please upload a smaller version."
    if err.width is None or err.height is None:
        return f"{name} has too many pixels; {limit}"
    return f"{name} is {err.width:,} × {err.height:,} pixels ({err.width * err.height / 1e6:.0f} megapixels); {limit}"


def decode_upload(data: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS):
    """RGB ``PIL.Image`` from the bytes of an upload, refusing non-images, truncated files and images over
    ``max_pixels`` (from the header, before decoding) with an :class:`UploadError` naming ``name``, worded
    for a visitor; the technical reason goes to the server log as one line."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"decode_upload takes the bytes of an upload, got {type(data).__name__}")
    try:
        if not data:
            raise UploadError(f"{name} is empty.")
        if len(data) > MAX_UPLOAD_BYTES:
            raise UploadError(f"{name} is {_megabytes(len(data))}; this app takes files up to "
                              f"{_megabytes(MAX_UPLOAD_BYTES)}.")
        try:
            # bytes are always given, so load_image never opens a path or a URL here
            return load_image({"bytes": bytes(data), "path": None}, max_pixels=max_pixels)
        except ImageTooLargeError as err:
            raise UploadError(_too_large(name, err)) from err
        except UnreadableImageError as err:
            raise UploadError(f"{name} is not an image this app can read: it may be damaged or cut off, or in "
                              f"another format ({READABLE_FORMATS} work).") from err
    except UploadError as err:
        detail = f" ({type(err.__cause__).__name__}: {err.__cause__})" if err.__cause__ is not None else ""
        logger.info("refused upload %r, %d bytes: %s%s", name, len(data), err, detail)
        raise


def model_label(model) -> str:
    """The name visitors see for ``model``: a Hub id as it is, a local checkpoint by its folder's name (never
    the server's path), a pipeline object by its model's ``name_or_path`` read the same way."""
    if not isinstance(model, (str, os.PathLike)):
        model = getattr(getattr(model, "model", None), "name_or_path", "") or type(model).__name__
    name = os.fspath(model)
    if os.path.isabs(name) or os.path.exists(name) or name.startswith((".", "~")):
        return Path(name).expanduser().resolve().name or name
    return name


def answer_notes(record: dict) -> list[str]:
    """What a visitor should know about how the model's answer was read, in sentences (the pipeline's
    ``parse_issues`` are terse notes for developers): empty answer, no option recognised, the parts that
    match no option (each once), conflicts."""
    from ..parsing import parse_answer

    text = record.get("generated_text")
    if not isinstance(text, str) or not text.strip():
        return ["The model's answer is empty."]
    parsed = parse_answer(text)
    notes = []
    if not parsed.labels:
        notes.append("None of the 14 options could be recognised in the answer.")
    unmapped = list(dict.fromkeys(u.strip() for u in parsed.unmapped if u.strip()))
    if unmapped:
        shown = ", ".join(f"“{u[:60]}{'…' if len(u) > 60 else ''}”" for u in unmapped[:5])
        more = f" and {len(unmapped) - 5} more" if len(unmapped) > 5 else ""
        notes.append(f"Parts of the answer that match no option: {shown}{more}.")
    if parsed.conflict:
        notes.append("The answer contradicts itself (for example “No artifacts” together with artifacts); "
                     "the artifacts it names are kept.")
    return notes


@lru_cache(maxsize=1)
def sample_references() -> dict[str, dict]:
    """``{sha256 of the image file: {"image_id", "boxes", "labels", "other_caption"}}`` for the bundled
    SynArtifact-1K sample images, so the app can draw their reference boxes (for these files only)."""
    from ..data.embedded_sample import SAMPLE_DIR
    from ..data.release import scan_release

    references = {}
    for record in scan_release(SAMPLE_DIR, verify_images=False, progress=False).all_records():
        digest = hashlib.sha256(record.image_path.read_bytes()).hexdigest()
        references[digest] = {
            "image_id": record.image_id,
            "boxes": [{"label": NAMES[box.label], "bbox": box.bbox, "caption": box.caption} for box in record.boxes],
            "labels": record.labels,
            "other_caption": record.other_artifacts_caption,
        }
    return references


def sample_image_paths() -> list[Path]:
    """The bundled sample images (placeholders with the project-written annotations), test split first."""
    from ..data.embedded_sample import SAMPLE_DIR, SAMPLE_FILES

    ordered = sorted(SAMPLE_FILES, key=lambda item: item[0] != "test")
    return [SAMPLE_DIR / file_name for _, file_name in ordered]


def verdict(record: dict) -> str:
    """"artifacts", "no artifacts" or "answer not understood" for a pipeline output."""
    has = record.get("has_artifacts")
    return "answer not understood" if has is None else ("artifacts" if has else "no artifacts")


@dataclass
class ImageReport:
    """Everything the app shows for one image; ``error`` set (and nothing else) when it could not be read."""

    name: str
    classification: dict | None = None  # the pipeline's output, as it returns it
    reward: dict | None = None  # {"reward", "no_artifacts_term", "artifact_terms": {name: value}, ...}
    detection: dict | None = None  # {"generated_text", "boxes" (pixels), "judgement", "parse_issues"}
    reference: dict | None = None  # sample images only: their annotated boxes (pixels) and labels
    error: str | None = None
    image: object = field(default=None, repr=False)  # the decoded PIL image (not serialised)

    def to_dict(self) -> dict:
        out = asdict(replace(self, image=None))  # asdict would deep-copy the decoded image
        out.pop("image")
        if self.classification is not None:
            out["verdict"] = verdict(self.classification)
        return out


def detection_overlay(image, boxes: Sequence[dict], reference_boxes: Sequence[dict] = ()):
    """``image`` with the predicted boxes (yellow) and reference boxes (green) drawn, in pixels."""
    from ..drawing import draw_box_comparison

    return draw_box_comparison(image, boxes, reference_boxes)


def read_detection(answer: str, width: int, height: int) -> dict:
    """A detection answer read for a ``width`` x ``height`` image: boxes in pixels (the answer's are
    fractions of the padded square), judgement, labels, parse issues."""
    from ..instructions import padded_to_pixel
    from ..parsing import parse_answer

    parsed = parse_answer(answer)
    boxes = [{"label": b["label"], "bbox": [round(v, 1) for v in padded_to_pixel(b["bbox"], width, height)]}
             for b in parsed.boxes]
    return {"generated_text": answer, "boxes": boxes, "judgement": parsed.judgement, "labels": parsed.labels,
            "parse_issues": list(parsed.issues)}


class ArtifactAnalyzer:
    """Runs the classifier, the reward and the detector on decoded images (the web app's engine).

    Args:
        model: classifier checkpoint (folder or Hub id) or an ``artifact-classification`` pipeline.
        detection_model: detection checkpoint or pipeline (the same as ``model`` reuses it); ``None``: no
            detection panel.
        reward_mode: ``"bertscore"`` (paper Eq. 4) or ``"likelihood"`` (see :mod:`synartifact_hf.reward`).
        max_new_tokens / detection_max_new_tokens: answer length caps.
        max_image_pixels: refuse larger uploads (default: the pipeline's cap).
        device: device for the pipelines (default: transformers' choice).
        served_model: with a server URL ending in ``/v1`` as ``model`` / ``detection_model`` (the served
            classifier of :mod:`synartifact_hf.backends`): the server's model. A served classifier gives
            no option scores (the chart stays empty) and no likelihood reward.
        label: the model's name shown to visitors (status line, JSON); default :func:`model_label` (a
            served classifier: its backend's identity), which never shows the server's file system.
    """

    def __init__(self, model, detection_model=None, *, reward_mode: str = "bertscore", max_new_tokens: int = 128,
                 detection_max_new_tokens: int = 256, max_image_pixels: int = MAX_IMAGE_PIXELS, device=None,
                 served_model: str | None = None, label: str | None = None):
        from ..backends import is_served_model, open_classifier
        from ..instructions import detection_instruction
        from ..reward import ArtifactReward

        if reward_mode == "likelihood" and is_served_model(model):
            raise ValueError(f"reward mode 'likelihood' needs option scores, which the served classifier {model} "
                             "does not give; use the bertscore reward mode")
        if is_served_model(model):
            self.classifier = open_classifier(model, served_model=served_model, max_new_tokens=max_new_tokens)
        else:
            self.classifier = self._pipeline(model, device)
        paths = (str, os.PathLike)
        same = detection_model is model or (isinstance(model, paths) and isinstance(detection_model, paths)
                                            and os.fspath(detection_model) == os.fspath(model))
        if detection_model is None:
            self.detector = None
        elif is_served_model(detection_model):  # the instruction is settled when a served classifier opens
            self.detector = open_classifier(detection_model, served_model=served_model,
                                            instruction=detection_instruction(), max_new_tokens=detection_max_new_tokens)
        else:  # the same checkpoint is loaded once
            self.detector = self.classifier if same else self._pipeline(detection_model, device)
        if label:
            self.model_label = label
        elif is_served_model(model):
            self.model_label = self.classifier.identity  # the server's address and model name, no key
        else:
            self.model_label = model_label(model if isinstance(model, (str, os.PathLike)) else self.classifier)
        self.reward = ArtifactReward(classifier=None, mode=reward_mode, device="cpu")
        self.max_new_tokens = max_new_tokens
        self.detection_max_new_tokens = detection_max_new_tokens
        self.max_image_pixels = max_image_pixels

    @staticmethod
    def _pipeline(model, device):
        if not isinstance(model, (str, os.PathLike)):
            return model
        from ..pipeline import load_pipeline

        return load_pipeline(os.fspath(model), **({"device": device} if device is not None else {}))

    def classify(self, image) -> dict:
        """The pipeline's output for one decoded image, with the 14 option scores (None when served)."""
        from ..backends import ClassifierBackend

        if isinstance(self.classifier, ClassifierBackend):
            return self.classifier.classify([image])[0]
        return self.classifier(image, max_new_tokens=self.max_new_tokens, return_scores=True)

    def reward_terms(self, record: dict) -> dict:
        """Eq. 4 for one pipeline output: the reward, the "No artifacts" term and the 13 artifact terms."""
        rewards, info = self.reward.rewards_from_outputs([record])
        return {
            "reward": float(rewards[0]),
            "mode": info["mode"],
            "no_artifacts_term": info["no_artifacts_term"][0],
            "artifact_terms": dict(zip(NAMES[:NO_ARTIFACTS_ID], info["artifact_terms"][0])),
            "alpha": info["alpha"],
            "beta": info["beta"],
            "empty_answer": info["empty"][0],
        }

    def detect(self, image) -> dict:
        """The detector's answer for one decoded image, its boxes converted to pixels of ``image``."""
        from ..backends import ClassifierBackend
        from ..instructions import detection_instruction

        if isinstance(self.detector, ClassifierBackend):
            out = self.detector.classify([image])[0]
        else:
            out = self.detector(image, instruction=detection_instruction(), max_new_tokens=self.detection_max_new_tokens)
        return read_detection(out["generated_text"], *image.size)

    def analyze(self, uploads: Sequence[tuple[str, bytes]],
                progress: Callable[[int, int, str], None] | None = None) -> list[ImageReport]:
        """One :class:`ImageReport` per ``(name, bytes)`` upload, in order; bad files get an ``error``."""
        if not uploads:
            raise UploadError("No image was given: upload, drop or paste an image, or click a sample image first.")
        if len(uploads) > MAX_IMAGES:
            raise UploadError(f"{len(uploads)} images were given; this app analyses at most {MAX_IMAGES} per run.")
        references = sample_references()
        reports = []
        for i, (name, data) in enumerate(uploads):
            if progress is not None:
                progress(i, len(uploads), name)
            try:
                image = decode_upload(data, name, self.max_image_pixels)
            except UploadError as err:
                reports.append(ImageReport(name=name, error=str(err)))
                continue
            report = ImageReport(name=name, image=image)
            report.reference = references.get(hashlib.sha256(data).hexdigest())
            report.classification = self.classify(image)
            report.reward = self.reward_terms(report.classification)
            if self.detector is not None:
                report.detection = self.detect(image)
            reports.append(report)
        if progress is not None:
            progress(len(uploads), len(uploads), "done")
        return reports


def _table_row(report: ImageReport) -> list:
    if report.error is not None:
        return [report.name, "error", "", "", None, None, report.error]
    record = report.classification
    boxes = len(report.detection["boxes"]) if report.detection is not None else None
    return [report.name, verdict(record), ", ".join(record["labels"]), record.get("other_artifacts") or "",
            round(report.reward["reward"], 4), boxes, ""]


def results_table(reports: Sequence[ImageReport]) -> tuple[list[str], list[list]]:
    """``(columns, rows)``: one row per image for the app's results table and the CSV download."""
    return list(TABLE_COLUMNS), [_table_row(r) for r in reports]


def write_results(reports: Sequence[ImageReport], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``results.jsonl`` (everything, one image a line) and ``results.csv`` (the table) into
    ``out_dir``; each file is written to a temporary name and renamed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "results.jsonl"
    write_text_atomic(jsonl, "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in reports))
    columns, rows = results_table(reports)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    table = out / "results.csv"
    write_text_atomic(table, buffer.getvalue())
    return jsonl, table

