"""``SynArtifact1K``: a ``datasets.GeneratorBasedBuilder`` over the raw release, with three configs.

- ``default``: one row per image with its annotation (boxes in pixels, labels by the label rule).
- ``classification``: TRL conversational *prompt-completion* rows for vision SFT: ``images`` (the one
  image), ``prompt`` (a user turn: the image + the paper's classification instruction) and
  ``completion`` (an assistant turn: the reference answer). TRL's ``SFTTrainer`` computes the loss on
  the completion only for prompt-completion data (``completion_only_loss`` defaults to on), which is
  the paper's answer-only cross-entropy, and needs no ``{% generation %}`` markers in the chat template.
- ``detection``: the same for the detection instruction (judgement, classes, boxes as fractions of the
  image padded to a square, i.e. of the 336x336 LLaVA input, other-artifacts caption).

Label rule (``label_rule``, see :mod:`~synartifact_hf.data.label_rules`): ``"boxes+caption"`` (default)
= the classes of the boxes, plus "Other artifacts" when the other-artifacts caption is not "None" (the
paper's 768 / 542 split of images); ``"boxes"`` = the classes of the boxes only. When nothing
applies, ``["No artifacts"]``. The T2I-misalignment caption never makes a label. ``labels``,
``has_artifacts`` and the reference answers all follow the rule.

Images stream: each example reads its image file when it is written, so memory stays flat.

>>> from synartifact_hf.data.sample import SAMPLE_DIR
>>> import tempfile
>>> builder = SynArtifact1K(data_dir=str(SAMPLE_DIR), config_name="classification", cache_dir=tempfile.mkdtemp())
>>> builder.download_and_prepare()
>>> ds = builder.as_dataset("test")
>>> print(ds[0]["completion"][0]["content"][0]["text"])
1. Awkward facial expression.
2. Distorted and deformed components.
3. Other artifacts: The man's shadow points the wrong way.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
from datasets.builder import Key

from ..paper import CITATION
from ..prompts import (
    assistant_message,
    classification_instruction,
    detection_instruction,
    format_classification_answer,
    format_detection_answer,
    pixel_to_padded,
    user_message,
)
from ..taxonomy import NAMES, NO_ARTIFACTS_ID
from .label_rules import DEFAULT_LABEL_RULE, answer_other_caption, check_label_rule
from .release import DEFAULT_MAX_IMAGE_PIXELS, Release, ReleaseError, ReleaseRecord, scan_release

__all__ = [
    "CONFIG_NAMES",
    "SynArtifact1K",
    "SynArtifact1KConfig",
    "features_for",
    "example_for",
    "CITATION",
    "HOMEPAGE",
]

CONFIG_NAMES = ("default", "classification", "detection")
HOMEPAGE = "https://github.com/BBBiiinnn/SynArtifact"
# Examples per Arrow record batch: images are ~0.1-3 MB each, so a small batch keeps memory flat.
WRITER_BATCH_SIZE = 32
# Records per generator shard (the unit handed to each process with num_proc).
_SHARD_SIZE = 64

_LABELS = datasets.ClassLabel(names=list(NAMES))
# Chat messages as datasets stores them: every content part has both keys ("text" is null on image
# parts), which is what TRL's prepare_multimodal_messages and the processors' chat templates expect.
_CONTENT = datasets.List({"type": datasets.Value("string"), "text": datasets.Value("string")})
_MESSAGES = datasets.List({"role": datasets.Value("string"), "content": _CONTENT})


def features_for(config_name: str) -> datasets.Features:
    """The ``datasets.Features`` of a config."""
    if config_name == "default":
        return datasets.Features(
            {
                "image": datasets.Image(),
                "image_id": datasets.Value("string"),
                "file_name": datasets.Value("string"),
                "prompt": datasets.Value("string"),
                "generator": datasets.Value("string"),
                "prompt_source": datasets.Value("string"),
                "labels": datasets.List(_LABELS),
                "has_artifacts": datasets.Value("bool"),
                "artifacts": datasets.List(
                    {
                        "bbox": datasets.List(datasets.Value("int32"), length=4),
                        "label": _LABELS,
                        "caption": datasets.Value("string"),
                    }
                ),
                "other_artifacts_caption": datasets.Value("string"),
                "t2i_misalignment_caption": datasets.Value("string"),
                "aesthetics_score": datasets.Value("float64"),
                "width": datasets.Value("int32"),
                "height": datasets.Value("int32"),
            }
        )
    if config_name in ("classification", "detection"):
        return datasets.Features(
            {
                "images": datasets.List(datasets.Image()),
                "prompt": _MESSAGES,
                "completion": _MESSAGES,
                "image_id": datasets.Value("string"),
                "labels": datasets.List(_LABELS),
            }
        )
    raise ValueError(f"Unknown config {config_name!r}; expected one of {', '.join(CONFIG_NAMES)}")


def _image(record: ReleaseRecord) -> dict:
    # Bytes, not a path: the Arrow/parquet output must be self-contained for the Hub.
    try:
        data = record.image_path.read_bytes()
    except OSError as err:
        raise ReleaseError(f"{record.file_name}: cannot read the image ({err})") from None
    return {"bytes": data, "path": record.file_name}


def _messages(message: dict) -> list[dict]:
    parts = [{"type": part["type"], "text": part.get("text")} for part in message["content"]]
    return [{"role": message["role"], "content": parts}]


def _detection_answer(record: ReleaseRecord, label_rule: str) -> str:
    pairs = [(box.label, pixel_to_padded(box.bbox, record.width, record.height)) for box in record.boxes]
    return format_detection_answer(pairs, other_caption=answer_other_caption(record.other_artifacts_caption, label_rule))


def example_for(
    config_name: str,
    record: ReleaseRecord,
    *,
    instruction: str | None = None,
    label_rule: str = DEFAULT_LABEL_RULE,
) -> dict:
    """The row of ``config_name`` for one record (reads the image file); ``labels`` by ``label_rule``."""
    label_ids = record.label_ids_under(label_rule)
    if config_name == "default":
        return {
            "image": _image(record),
            "image_id": record.image_id,
            "file_name": record.file_name,
            "prompt": record.prompt,
            "generator": record.generator,
            "prompt_source": record.prompt_source,
            "labels": label_ids,
            "has_artifacts": label_ids != [NO_ARTIFACTS_ID],
            "artifacts": [{"bbox": box.bbox, "label": box.label, "caption": box.caption} for box in record.boxes],
            "other_artifacts_caption": record.other_artifacts_caption,
            "t2i_misalignment_caption": record.t2i_misalignment_caption,
            "aesthetics_score": record.aesthetics_score,
            "width": record.width,
            "height": record.height,
        }
    if config_name == "classification":
        instruction = instruction or classification_instruction()
        answer = format_classification_answer(
            [i for i in label_ids if i != NO_ARTIFACTS_ID],
            other_caption=answer_other_caption(record.other_artifacts_caption, label_rule),
        )
    elif config_name == "detection":
        instruction = instruction or detection_instruction()
        answer = _detection_answer(record, label_rule)
    else:
        raise ValueError(f"Unknown config {config_name!r}; expected one of {', '.join(CONFIG_NAMES)}")
    return {
        "images": [_image(record)],
        "prompt": _messages(user_message(instruction)),
        "completion": _messages(assistant_message(answer)),
        "image_id": record.image_id,
        "labels": label_ids,
    }


@dataclass
class SynArtifact1KConfig(datasets.BuilderConfig):
    """Builder config; ``data_dir`` is the release's ``data/`` folder.

    Attributes:
        skip_invalid: leave out images with problems instead of failing (they are logged).
        verify_images: decode every image once while validating, to catch truncated files.
        max_image_pixels: refuse larger images (decompression bombs).
        label_rule: ``"boxes+caption"`` (default, the paper's counts) or ``"boxes"``; see
            :mod:`~synartifact_hf.data.label_rules`.
    """

    skip_invalid: bool = False
    verify_images: bool = True
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    label_rule: str = DEFAULT_LABEL_RULE

    def __post_init__(self):
        super().__post_init__()
        check_label_rule(self.label_rule)


class SynArtifact1K(datasets.GeneratorBasedBuilder):
    """SynArtifact-1K from a local copy of the release: ``SynArtifact1K(data_dir=..., config_name=...)``.

    ``release`` (keyword, optional): an already validated :class:`~synartifact_hf.data.release.Release`
    of the same ``data_dir``, so that building several configs validates the images once.
    """

    BUILDER_CONFIG_CLASS = SynArtifact1KConfig
    BUILDER_CONFIGS = [
        SynArtifact1KConfig(name="default", description="One row per image: boxes in pixels, labels, captions."),
        SynArtifact1KConfig(
            name="classification",
            description="TRL prompt-completion rows: image + classification instruction -> reference answer.",
        ),
        SynArtifact1KConfig(
            name="detection",
            description="TRL prompt-completion rows: image + detection instruction -> judgement, classes, "
            "padded-square boxes and other-artifacts caption.",
        ),
    ]
    DEFAULT_CONFIG_NAME = "default"
    DEFAULT_WRITER_BATCH_SIZE = WRITER_BATCH_SIZE

    def __init__(self, *args, release: Release | None = None, **kwargs):
        self._release = release
        # datasets would name the cache folder after this module ("builder").
        kwargs.setdefault("dataset_name", "synartifact_1k")
        super().__init__(*args, **kwargs)

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=__doc__.split("\n\n")[0],
            features=features_for(self.config.name),
            homepage=HOMEPAGE,
            citation=CITATION,
        )

    def _split_generators(self, dl_manager):
        if self.config.data_dir is None:
            raise ValueError("SynArtifact1K needs data_dir=<the release's data/ folder (train.txt, eval.txt, sub_data_N/)>")
        release = self._release
        if release is None:
            release = scan_release(
                self.config.data_dir,
                skip_invalid=self.config.skip_invalid,
                verify_images=self.config.verify_images,
                max_image_pixels=self.config.max_image_pixels,
            )
        generators = []
        for split, records in release.records.items():
            if not records:
                continue
            shards = [records[i : i + _SHARD_SIZE] for i in range(0, len(records), _SHARD_SIZE)]
            generators.append(datasets.SplitGenerator(name=split, gen_kwargs={"shards": shards}))
        return generators

    def _generate_examples(self, shards):
        instruction = {"classification": classification_instruction, "detection": detection_instruction}.get(
            self.config.name, lambda: None
        )()
        for shard_index, shard in enumerate(shards):
            for index, record in enumerate(shard):
                yield Key(shard_index, index), example_for(
                    self.config.name, record, instruction=instruction, label_rule=self.config.label_rule
                )
