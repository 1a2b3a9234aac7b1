"""Reader and validator for the raw SynArtifact-1K release (the public repository's ``data/`` folder).

Layout::

    data/train.txt, data/eval.txt                        one ``sub_data_N/images/<id>.<ext>`` per line
    data/sub_data_N/images/<id>.<png|jpg|webp>
    data/sub_data_N/annotation_json_artifacts_class/<id>.json
    data/sub_data_N/annotation_image/annotated_<id>.<ext>   (boxes drawn by the authors; not read)

:func:`scan_release` checks everything once, before anything is written, and returns the validated
records. Problems are collected per file; by default any problem is an error that lists them all
(``skip_invalid=True`` drops the offending images instead and reports them). Images are read from
their header for the size; with ``verify_images`` (default) they are also decoded once so that a
truncated file is caught here rather than in a user's training loop. Nothing in the release is
ever written to.

>>> from synartifact_hf.data.embedded_sample import SAMPLE_DIR
>>> release = scan_release(SAMPLE_DIR, progress=False)
>>> sorted(release.records), release.num_records, release.skipped
(['test', 'train'], 18, [])
>>> rec = release.records["train"][0]
>>> rec.file_name, rec.generator, rec.labels
('sub_data_0/images/000000012.png', 'Stable Diffusion 2.1-v', ['Distorted and deformed components', 'Omitted components', 'Other artifacts'])
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..taxonomy import NAMES, NO_ARTIFACTS_ID
from .label_rules import DEFAULT_LABEL_RULE, label_ids_for

__all__ = [
    "SPLIT_FILES",
    "ANNOTATION_DIR",
    "IMAGE_DIR",
    "IMAGE_FORMATS",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "ReleaseError",
    "ArtifactBox",
    "ReleaseRecord",
    "SkippedFile",
    "Release",
    "parse_annotation",
    "read_image_size",
    "safe_relative_path",
    "scan_release",
]

logger = logging.getLogger(__name__)

# dataset split -> split list in the release (the release calls its test split "eval")
SPLIT_FILES: dict[str, str] = {"train": "train.txt", "test": "eval.txt"}
ANNOTATION_DIR = "annotation_json_artifacts_class"
IMAGE_DIR = "images"
# Pillow format names the release uses; anything else is refused rather than handed to another decoder.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
# 32 MiP: 16x the largest image in the release (DALL-E 3, 1792x1024) and far below what would exhaust
# memory when decoded (about 100 MB as RGB), so a decompression bomb is refused before it is decoded.
DEFAULT_MAX_IMAGE_PIXELS = 1 << 25

_REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "Model Type": str,
    "Dataset": str,
    "Prompt": str,
    "Image path": str,
    "Artifacts annotation": list,
    "Other artifacts caption": (str, type(None)),
    "T2I misalignment caption": (str, type(None)),
    "Aesthetics score": (int, float),
}
_OPTIONAL_KEYS = {"tag"}
_BOX_KEYS = ("rect_start", "rect_end", "artifacts_caption", "artifacts_class")
_DECIMAL = re.compile(r"\s*\d+\s*")
_NUM_BOX_CLASSES = NO_ARTIFACTS_ID  # raw indices 0-12; "No artifacts" (13) never has a box


class ReleaseError(ValueError):
    """The raw release (or one of its files) is not what the SynArtifact-1K layout promises."""


@dataclass(frozen=True)
class ArtifactBox:
    """One annotated artifact: pixel corners (top-left origin, x2 > x1, y2 > y1), raw class index, caption."""

    x1: int
    y1: int
    x2: int
    y2: int
    label: int
    caption: str

    @property
    def bbox(self) -> list[int]:
        return [self.x1, self.y1, self.x2, self.y2]


@dataclass(frozen=True)
class ReleaseRecord:
    """One validated image of the release with its annotation."""

    split: str
    image_id: str
    file_name: str  # relative to the data root, posix, as written in train.txt / eval.txt
    image_path: Path
    annotation_path: Path
    prompt: str
    generator: str
    prompt_source: str
    boxes: tuple[ArtifactBox, ...]
    other_artifacts_caption: str | None
    t2i_misalignment_caption: str | None
    aesthetics_score: float
    width: int
    height: int
    image_format: str

    @property
    def label_ids(self) -> list[int]:
        """Sorted taxonomy ids under the default label rule (see :mod:`~synartifact_hf.data.label_rules`)."""
        return self.label_ids_under(DEFAULT_LABEL_RULE)

    def label_ids_under(self, rule: str) -> list[int]:
        """Sorted taxonomy ids under ``rule`` (``"boxes+caption"`` or ``"boxes"``)."""
        return label_ids_for((box.label for box in self.boxes), self.other_artifacts_caption, rule)

    @property
    def labels(self) -> list[str]:
        return [NAMES[i] for i in self.label_ids]

    @property
    def has_artifacts(self) -> bool:
        return self.label_ids != [NO_ARTIFACTS_ID]


@dataclass(frozen=True)
class SkippedFile:
    """A file left out under ``skip_invalid``: its path (relative to the data root) and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Release:
    """The validated release: records per split (in split-list order) and the files left out."""

    root: Path
    records: dict[str, list[ReleaseRecord]]
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def num_records(self) -> int:
        return sum(len(v) for v in self.records.values())

    def all_records(self) -> Iterable[ReleaseRecord]:
        for split in self.records:
            yield from self.records[split]


# ----------------------------------------------------------------------------------------------
# Paths


def safe_relative_path(value: str, what: str) -> str:
    """Normalize a release-relative path, refusing anything that could leave the data root.

    >>> safe_relative_path("sub_data_0/images/000000001.png", "Image path")
    'sub_data_0/images/000000001.png'
    >>> safe_relative_path("sub_data_0/../../etc/passwd", "Image path")
    Traceback (most recent call last):
    ...
    synartifact_hf.data.release.ReleaseError: Image path 'sub_data_0/../../etc/passwd' escapes the data root (absolute paths, '..' and '\\' are refused)
    """
    if (
        not value
        or "\\" in value
        or "\x00" in value
        or value.startswith("/")
        or re.match(r"^[A-Za-z]:", value)
        or ".." in value.split("/")
    ):
        raise ReleaseError(f"{what} {value!r} escapes the data root (absolute paths, '..' and '\\' are refused)")
    return posixpath.normpath(value)


def _resolve_inside(root: Path, relative: str, what: str) -> Path:
    """``root / relative``, refusing symlinks that lead outside the root."""
    path = root / relative
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        raise ReleaseError(f"{what} {relative!r} resolves outside the data root {root}") from None
    return path


# ----------------------------------------------------------------------------------------------
# One annotation file


def _as_pixel(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReleaseError(f"{where}: expected an integer pixel coordinate, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ReleaseError(f"{where}: expected an integer pixel coordinate, got {value!r}")
    return int(value)


def _corner(value, where: str) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise ReleaseError(f"{where}: expected [x, y], got {value!r}")
    return _as_pixel(value[0], where), _as_pixel(value[1], where)


def _class_index(value, where: str) -> int:
    # The release stores the index as a decimal string in most files and as an int in some.
    if isinstance(value, bool):
        raise ReleaseError(f"{where}: expected a class index, got {value!r}")
    if isinstance(value, int):
        idx = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        idx = int(value)
    else:
        raise ReleaseError(f"{where}: expected a class index (an integer or a decimal string), got {value!r}")
    if not 0 <= idx < _NUM_BOX_CLASSES:
        raise ReleaseError(
            f"{where}: unknown class index {idx}; boxes use 0-{_NUM_BOX_CLASSES - 1} "
            f"({', '.join(f'{i}={NAMES[i]}' for i in range(_NUM_BOX_CLASSES))})"
        )
    return idx


def _caption(value) -> str | None:
    # Empty captions are the literal string "None" in the release.
    if value is None or value.strip() in ("", "None"):
        return None
    return value


def parse_annotation(path: Path, *, display: str | None = None) -> dict:
    """Parse and type-check one annotation JSON (everything that does not need the image).

    Returns a dict with ``image_path`` (normalized, safe), ``prompt``, ``generator``, ``prompt_source``,
    ``boxes`` (tuple of :class:`ArtifactBox`), ``other_artifacts_caption``, ``t2i_misalignment_caption``
    and ``aesthetics_score``. Raises :class:`ReleaseError` naming the file and the field.
    """
    name = display or str(path)
    try:
        data = json.loads(Path(path).read_bytes().decode("utf-8"))
    except json.JSONDecodeError as err:
        raise ReleaseError(f"{name}: malformed JSON ({err})") from None
    except UnicodeDecodeError as err:
        raise ReleaseError(f"{name}: malformed JSON (not UTF-8: {err})") from None
    except OSError as err:
        raise ReleaseError(f"{name}: cannot read the annotation ({err})") from None
    if not isinstance(data, dict):
        raise ReleaseError(f"{name}: expected a JSON object at the top level, got {type(data).__name__}")
    for key, types in _REQUIRED_KEYS.items():
        if key not in data:
            raise ReleaseError(f"{name}: missing key {key!r} (expected keys: {', '.join(_REQUIRED_KEYS)})")
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, types):
            expected = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
            raise ReleaseError(f"{name}: field {key!r} must be {expected}, got {value!r}")
    unknown = set(data) - set(_REQUIRED_KEYS) - _OPTIONAL_KEYS
    if unknown:
        logger.debug("%s: ignoring unknown keys %s", name, sorted(unknown))
    score = float(data["Aesthetics score"])
    if not math.isfinite(score):
        raise ReleaseError(f"{name}: field 'Aesthetics score' must be a finite number, got {score!r}")

    boxes = []
    for i, raw in enumerate(data["Artifacts annotation"]):
        where = f"{name}: 'Artifacts annotation'[{i}]"
        if not isinstance(raw, dict):
            raise ReleaseError(f"{where}: expected an object with keys {', '.join(_BOX_KEYS)}, got {raw!r}")
        missing = [k for k in _BOX_KEYS if k not in raw]
        if missing:
            raise ReleaseError(f"{where}: missing key(s) {', '.join(missing)}")
        x1, y1 = _corner(raw["rect_start"], f"{where}.rect_start")
        x2, y2 = _corner(raw["rect_end"], f"{where}.rect_end")
        if x2 <= x1 or y2 <= y1:
            raise ReleaseError(
                f"{where}: box [{x1}, {y1}, {x2}, {y2}] is empty or inverted (expected x2 > x1 and y2 > y1)"
            )
        caption = raw["artifacts_caption"]
        if not isinstance(caption, str):
            raise ReleaseError(f"{where}.artifacts_caption: expected a string, got {caption!r}")
        boxes.append(ArtifactBox(x1, y1, x2, y2, _class_index(raw["artifacts_class"], f"{where}.artifacts_class"), caption))

    return {
        "image_path": safe_relative_path(data["Image path"], f"{name}: 'Image path'"),
        "prompt": data["Prompt"],
        "generator": data["Model Type"],
        "prompt_source": data["Dataset"],
        "boxes": tuple(boxes),
        "other_artifacts_caption": _caption(data["Other artifacts caption"]),
        "t2i_misalignment_caption": _caption(data["T2I misalignment caption"]),
        "aesthetics_score": score,
    }


# ----------------------------------------------------------------------------------------------
# Images


def read_image_size(
    path: Path, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, verify: bool = True, display: str | None = None
) -> tuple[int, int, str]:
    """``(width, height, format)`` from the image header; with ``verify`` the image is decoded once to
    catch truncation. Images over ``max_pixels`` are refused before decoding (decompression bombs)."""
    from PIL import Image

    name = display or str(path)
    try:
        # Pillow's own bomb check fires at a far higher limit; ours runs first, on the header.
        with Image.open(path, formats=IMAGE_FORMATS) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise ReleaseError(
                    f"{name}: image is {width}x{height} = {width * height:,} pixels, over the limit of "
                    f"{max_pixels:,} (decompression-bomb guard; raise max_image_pixels if this image is genuine)"
                )
            fmt = im.format
            if verify:
                im.load()
    except ReleaseError:
        raise
    except FileNotFoundError:
        raise ReleaseError(f"{name}: image file does not exist") from None
    except Image.DecompressionBombError as err:
        raise ReleaseError(f"{name}: refused as a decompression bomb ({err})") from None
    except Image.UnidentifiedImageError:
        raise ReleaseError(f"{name}: unreadable image (not a {'/'.join(IMAGE_FORMATS)} file)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ReleaseError(f"{name}: unreadable or truncated image ({err})") from None
    return width, height, fmt


# ----------------------------------------------------------------------------------------------
# The whole release


def _read_split_list(root: Path, split: str) -> list[tuple[int, str]]:
    list_path = root / SPLIT_FILES[split]
    if not list_path.is_file():
        raise ReleaseError(
            f"{list_path}: split list not found; {root} does not look like the release's data/ folder "
            f"(expected {', '.join(SPLIT_FILES.values())} and sub_data_N/ folders)"
        )
    try:
        text = list_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ReleaseError(f"{list_path}: cannot read the split list ({err})") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


@dataclass(frozen=True)
class _Job:
    split: str
    file_name: str
    root: Path
    max_pixels: int
    verify: bool


def _check_entry(job: _Job) -> tuple[ReleaseRecord | None, SkippedFile | None]:
    """Validate one listed image and its annotation (runs in worker processes with ``num_proc``)."""
    try:
        return _build_record(job), None
    except ReleaseError as err:
        return None, SkippedFile(job.file_name, str(err))


def _build_record(job: _Job) -> ReleaseRecord:
    root, file_name = job.root, job.file_name
    folder, _, image_name = file_name.split("/")
    stem = posixpath.splitext(image_name)[0]
    annotation_rel = f"{folder}/{ANNOTATION_DIR}/{stem}.json"
    annotation_path = _resolve_inside(root, annotation_rel, "annotation")
    if not annotation_path.is_file():
        raise ReleaseError(f"{annotation_rel}: annotation JSON not found for the listed image {file_name}")
    meta = parse_annotation(annotation_path, display=annotation_rel)
    if meta["image_path"] != file_name:
        raise ReleaseError(
            f"{annotation_rel}: 'Image path' is {meta['image_path']!r} but the split list and the file name "
            f"say {file_name!r}"
        )
    image_path = _resolve_inside(root, file_name, "Image path")
    if not image_path.is_file():
        raise ReleaseError(f"{file_name}: image file does not exist (listed in {SPLIT_FILES[job.split]}, "
                           f"annotated by {annotation_rel})")
    width, height, fmt = read_image_size(image_path, max_pixels=job.max_pixels, verify=job.verify, display=file_name)
    for i, box in enumerate(meta["boxes"]):
        if box.x1 < 0 or box.y1 < 0 or box.x2 > width or box.y2 > height:
            raise ReleaseError(
                f"{annotation_rel}: 'Artifacts annotation'[{i}] box {box.bbox} lies outside the "
                f"{width}x{height} image {file_name}"
            )
    return ReleaseRecord(
        split=job.split,
        image_id=stem,
        file_name=file_name,
        image_path=image_path,
        annotation_path=annotation_path,
        prompt=meta["prompt"],
        generator=meta["generator"],
        prompt_source=meta["prompt_source"],
        boxes=meta["boxes"],
        other_artifacts_caption=meta["other_artifacts_caption"],
        t2i_misalignment_caption=meta["t2i_misalignment_caption"],
        aesthetics_score=meta["aesthetics_score"],
        width=width,
        height=height,
        image_format=fmt,
    )


def _unlisted_annotation_problem(root: Path, path: Path) -> str:
    rel = path.relative_to(root).as_posix()
    try:
        meta = parse_annotation(path, display=rel)
    except ReleaseError as err:
        return f"{err} (and it is listed in neither {' nor '.join(SPLIT_FILES.values())})"
    image_rel = meta["image_path"]
    try:
        exists = _resolve_inside(root, image_rel, f"{rel}: 'Image path'").is_file()
    except ReleaseError as err:
        return str(err)
    if not exists:
        return f"{rel}: annotation without an image ('Image path' {image_rel!r} does not exist)"
    return f"{rel}: its image {image_rel} is listed in neither {' nor '.join(SPLIT_FILES.values())}"


def scan_release(
    data_dir: str | Path,
    *,
    skip_invalid: bool = False,
    verify_images: bool = True,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    num_proc: int | None = None,
    progress: bool = True,
) -> Release:
    """Read and validate the release in ``data_dir`` (the repository's ``data/`` folder).

    Args:
        data_dir: folder holding ``train.txt``, ``eval.txt`` and ``sub_data_N/``.
        skip_invalid: leave out images with problems (listed in :attr:`Release.skipped`) instead of
            raising. Problems with the release as a whole (a split list missing) always raise.
        verify_images: decode every image once to catch truncated files (header-only when False).
        max_image_pixels: refuse larger images (decompression bombs).
        num_proc: worker processes for the image checks.
        progress: show a progress bar.

    Raises:
        ReleaseError: listing every problem found (strict mode), or when nothing valid is left.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise ReleaseError(f"{root}: data folder not found (pass the release's data/ folder)")
    problems: list[SkippedFile] = []

    # 1. Split lists: safe paths, the expected shape, each image in exactly one split.
    listed: dict[str, list[str]] = {}
    where: dict[str, list[str]] = {}
    for split, list_name in SPLIT_FILES.items():
        listed[split] = []
        for line_no, entry in _read_split_list(root, split):
            ref = f"{list_name}:{line_no}"
            try:
                file_name = safe_relative_path(entry, f"{ref}: path")
            except ReleaseError as err:
                problems.append(SkippedFile(entry, str(err)))
                continue
            parts = file_name.split("/")
            if len(parts) != 3 or parts[1] != IMAGE_DIR:
                problems.append(SkippedFile(entry, f"{ref}: expected 'sub_data_N/{IMAGE_DIR}/<file>', got {entry!r}"))
                continue
            where.setdefault(file_name, []).append(ref)
            if len(where[file_name]) == 1:
                listed[split].append(file_name)
    for file_name, refs in where.items():
        if len(refs) > 1:
            kind = "in both splits" if len({r.split(':')[0] for r in refs}) > 1 else "twice"
            problems.append(SkippedFile(file_name, f"{file_name}: listed {kind} ({', '.join(refs)})"))
    ambiguous = {f for f, refs in where.items() if len(refs) > 1}

    # 2. Annotations that no split lists (or whose image is missing).
    listed_annotations = set()
    for file_name in where:
        folder, _, image_name = file_name.split("/")
        listed_annotations.add(f"{folder}/{ANNOTATION_DIR}/{posixpath.splitext(image_name)[0]}.json")
    for path in sorted(root.glob(f"*/{ANNOTATION_DIR}/*.json")):
        rel = path.relative_to(root).as_posix()
        if rel not in listed_annotations:
            problems.append(SkippedFile(rel, _unlisted_annotation_problem(root, path)))

    # 3. Every listed image with its annotation (JSON, image header or decode, boxes inside the image).
    jobs = [
        _Job(split, f, root, max_image_pixels, verify_images)
        for split in SPLIT_FILES
        for f in listed[split]
        if f not in ambiguous
    ]
    results = _map(_check_entry, jobs, num_proc=num_proc, progress=progress, desc="Checking release")
    records: dict[str, list[ReleaseRecord]] = {split: [] for split in SPLIT_FILES}
    for record, problem in results:
        if problem is not None:
            problems.append(problem)
        else:
            records[record.split].append(record)

    if problems and not skip_invalid:
        shown = "\n  ".join(str(p.reason) for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ReleaseError(
            f"{len(problems)} problem(s) in the release at {root} (nothing was written; pass skip_invalid=True "
            f"/ --skip-invalid to leave these files out):\n  {shown}{more}"
        )
    for problem in problems:
        logger.warning("skipping %s", problem.reason)
    release = Release(root=root, records=records, skipped=problems)
    if release.num_records == 0:
        raise ReleaseError(f"{root}: no valid images left ({len(problems)} skipped)")
    return release


def _map(fn, jobs: list, *, num_proc: int | None, progress: bool, desc: str) -> list:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress)
    try:
        if num_proc and num_proc > 1 and len(jobs) > 1:
            import multiprocessing

            with multiprocessing.get_context("spawn" if _threads_running() else None).Pool(num_proc) as pool:
                out = []
                for item in pool.imap(fn, jobs, chunksize=max(1, len(jobs) // (num_proc * 8))):
                    out.append(item)
                    bar.update()
                return out
        out = []
        for job in jobs:
            out.append(fn(job))
            bar.update()
        return out
    finally:
        bar.close()


def _threads_running() -> bool:
    # fork with live threads (e.g. tokenizers, torch) can deadlock; use spawn then.
    import threading

    return threading.active_count() > 1
