"""Which annotations make an image's ``labels``: the two label rules of the builder.

The release marks artifacts in two ways: boxes (each with one of the 13 artifact classes) and a free-text
"Other artifacts" caption for what a box cannot hold (e.g. "the whole image is too blurred"). On all
1,310 release files, boxes *or* an other-artifacts caption gives 768 images with artifacts / 542 without,
exactly the paper's counts; boxes alone give 728 / 582.

- ``"boxes+caption"`` (default): the classes of the boxes, plus "Other artifacts" when the
  other-artifacts caption is set: the paper's split of images. Every artifact an annotator wrote down
  becomes a label, so the classifier is never taught to answer "No artifacts" for an image a person
  described as flawed.
- ``"boxes"``: the classes of the boxes only; the other-artifacts caption is kept in its column but makes
  no label and is left out of the reference answers.

Under both rules an image with no label gets ``["No artifacts"]``, and the T2I-misalignment caption
makes no label (the taxonomy has no such class).

>>> label_ids_for([2, 2, 4], "A shoe on the head.", "boxes+caption")
[2, 4, 12]
>>> label_ids_for([], "The whole image is blurred.", "boxes")
[13]
"""

from __future__ import annotations

from collections.abc import Iterable

from ..taxonomy import NO_ARTIFACTS_ID, OTHER_ARTIFACTS_ID

__all__ = [
    "LABEL_RULES",
    "DEFAULT_LABEL_RULE",
    "PAPER_WITH_ARTIFACTS",
    "PAPER_WITHOUT_ARTIFACTS",
    "check_label_rule",
    "label_ids_for",
    "answer_other_caption",
]

LABEL_RULES = ("boxes+caption", "boxes")
DEFAULT_LABEL_RULE = "boxes+caption"
# The paper's counts over all 1,310 images (Sec. 3): the default rule gives exactly these on the release.
PAPER_WITH_ARTIFACTS = 768
PAPER_WITHOUT_ARTIFACTS = 542


def check_label_rule(rule: str) -> str:
    """``rule`` itself, or a ``ValueError`` naming the accepted rules."""
    if rule not in LABEL_RULES:
        raise ValueError(f"unknown label rule {rule!r}; expected one of {', '.join(map(repr, LABEL_RULES))}")
    return rule


def label_ids_for(box_labels: Iterable[int], other_caption: str | None, rule: str = DEFAULT_LABEL_RULE) -> list[int]:
    """Sorted taxonomy ids of an image under ``rule``; ``[13]`` ("No artifacts") when nothing applies."""
    ids = set(box_labels)
    if check_label_rule(rule) == "boxes+caption" and other_caption is not None:
        ids.add(OTHER_ARTIFACTS_ID)
    return sorted(ids) if ids else [NO_ARTIFACTS_ID]


def answer_other_caption(other_caption: str | None, rule: str = DEFAULT_LABEL_RULE) -> str | None:
    """The other-artifacts caption a reference answer carries under ``rule`` (none under ``"boxes"``,
    where it is not a label, so the answer and ``labels`` agree)."""
    return other_caption if check_label_rule(rule) == "boxes+caption" else None
