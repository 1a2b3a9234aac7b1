"""Instructions (paper Fig. 11 and Appendix A.3), reference-answer formatters and box normalization.

The classification instruction reproduces the paper's Figure 11 word for word. The figure shows three
headings ("Task description", "Answer examples", "Answer commands") over the text; the paper does not
say whether they were part of the prompt. The default (``headings=False``) leaves them out, so the
prompt is exactly the figure's running text; ``classification_instruction(headings=True)`` puts each
heading on its own line before its block.

>>> text = classification_instruction()
>>> text.splitlines()[0]
'You are my assistant to analyze this image. There are some options for you.'
>>> format_classification_answer(["Omitted components", "Duplicated components"])
'1. Duplicated components.\\n2. Omitted components.'
>>> format_classification_answer([])
'1. No artifacts.'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .taxonomy import CLASSES, NO_ARTIFACTS_ID, OTHER_ARTIFACTS_ID, get_class

__all__ = [
    "INTRO",
    "EXAMPLES_INTRO",
    "ANSWER_COMMANDS",
    "HEADINGS",
    "PADDED_SIZE",
    "classification_instruction",
    "detection_instruction",
    "format_classification_answer",
    "format_detection_answer",
    "format_box",
    "pixel_to_padded",
    "padded_to_pixel",
    "user_message",
    "assistant_message",
    "conversation",
    "render_prompt",
]

INTRO = "You are my assistant to analyze this image. There are some options for you."
EXAMPLES_INTRO = (
    "I will give you two answer examples for reference. The first example is a template if there are no "
    "artifacts in the image. The second example is that five kinds of artifacts, Awkward facial expression, "
    "Distorted and deformed components, Duplicated components, Abnormal non-spatial relationship, Other "
    "artifacts, exist in the image."
)
EXAMPLE_1 = ("1. No artifacts.",)
EXAMPLE_2 = (
    "1. Awkward facial expression.",
    "2. Distorted and deformed components.",
    "3. Duplicated components.",
    "4. Abnormal non-spatial relationship.",
    "5. Other artifacts: The gown is out of frame.",
)
ANSWER_COMMANDS = (
    "The format of your answer should follow the format of examples. Don't make a long analysis, just give "
    "your choices. Every choice you make should be considered carefully. Conflicts between options should "
    "not exist in your reply. Your reply should be highly credible."
)
HEADINGS = ("Task description:", "Answer examples:", "Answer commands:")

# LLaVA-1.5 pads an image to a square (centered) and resizes it to 336x336; the paper's detection
# boxes live in that padded square (Appendix A.3).
PADDED_SIZE = 336


def _options_block() -> list[str]:
    return [cls.option_text for cls in CLASSES]


def classification_instruction(headings: bool = False) -> str:
    """The paper's classification instruction (Fig. 11), one item per line.

    Args:
        headings: put "Task description:", "Answer examples:" and "Answer commands:" before their
            blocks, as drawn in the figure. Off by default (see the module docstring).
    """
    task = [INTRO, *_options_block()]
    examples = [EXAMPLES_INTRO, "Example 1:", *EXAMPLE_1, "Example 2:", *EXAMPLE_2]
    commands = [ANSWER_COMMANDS]
    blocks = (task, examples, commands)
    lines: list[str] = []
    for heading, block in zip(HEADINGS, blocks):
        if headings:
            lines.append(heading)
        lines.extend(block)
    return "\n".join(lines)


def _numbered(items: Sequence[str]) -> str:
    return "\n".join(f"{i}. {item}" for i, item in enumerate(items, start=1))


def _answer_items(labels: Iterable, other_caption: str | None) -> list[str]:
    ids = sorted({get_class(label).id for label in labels})
    if other_caption is not None and not isinstance(other_caption, str):
        raise TypeError(f"other_caption must be a string or None, got {type(other_caption).__name__}")
    caption = other_caption.strip() if other_caption else ""
    if caption and OTHER_ARTIFACTS_ID not in ids:
        ids = sorted({*ids, OTHER_ARTIFACTS_ID})
    if NO_ARTIFACTS_ID in ids and len(ids) > 1:
        names = [CLASSES[i].name for i in ids if i != NO_ARTIFACTS_ID]
        raise ValueError(f"'No artifacts' conflicts with the artifact labels {names}; pass one or the other")
    if not ids:
        ids = [NO_ARTIFACTS_ID]
    items = []
    for i in ids:
        if i == OTHER_ARTIFACTS_ID and caption:
            items.append(f"{CLASSES[i].name}: {caption}")
        else:
            items.append(f"{CLASSES[i].name}.")
    return items


def format_classification_answer(labels: Iterable, other_caption: str | None = None) -> str:
    """The reference answer for a label set, in the format of the instruction's examples.

    Labels may be ids or names (tolerant); they are written once each, in taxonomy order. An empty set
    (or ``["No artifacts"]``) gives ``"1. No artifacts."``. A non-empty ``other_caption`` implies
    "Other artifacts" and is written verbatim after a colon: ``"N. Other artifacts: <caption>"``.
    "No artifacts" together with an artifact label is a ``ValueError``.

    >>> print(format_classification_answer([12, 1], other_caption="The gown is out of frame."))
    1. Awkward facial expression.
    2. Other artifacts: The gown is out of frame.
    """
    return _numbered(_answer_items(labels, other_caption))


# ----------------------------------------------------------------------------------------------
# Detection (paper Appendix A.3): judgement, classification, location, other-artifact caption.

DETECTION_HEADERS = (
    "Artifact judgement:",
    "Artifact classification:",
    "Artifact location:",
    "Other artifacts caption:",
)


def detection_instruction() -> str:
    """The detection instruction: four sub-tasks over the same 14 options.

    1. artifact judgement (Yes/No), 2. artifact classification (the options), 3. artifact location:
    one normalized box ``[x1, y1, x2, y2]`` per artifact, in the coordinates of the image padded to a
    square and resized to 336x336, as fractions of the side (0 = left/top, 1 = right/bottom), and
    4. the caption of other artifacts.
    """
    example = format_detection_answer(
        [("Awkward facial expression", (0.412, 0.205, 0.530, 0.318)),
         ("Distorted and deformed components", (0.102, 0.600, 0.251, 0.804))],
        other_caption="The gown is out of frame.",
    )
    lines = [
        INTRO,
        *_options_block(),
        "Please finish four sub-tasks. 1. Artifact judgement: answer Yes if there are artifacts in the image, "
        "otherwise No. 2. Artifact classification: choose the options above that exist in the image. "
        "3. Artifact location: give the bounding box [x1, y1, x2, y2] of every artifact, where the image is "
        f"padded to a square and resized to {PADDED_SIZE}x{PADDED_SIZE}, and the coordinates are fractions of "
        "the side between 0 and 1 with three decimals, (x1, y1) the top-left and (x2, y2) the bottom-right "
        "corner. 4. Other artifacts caption: describe the other artifacts, or write None.",
        "I will give you two answer examples for reference.",
        "Example 1:",
        format_detection_answer([]),
        "Example 2:",
        example,
        ANSWER_COMMANDS,
    ]
    return "\n".join(lines)


def format_box(box: Sequence[float], decimals: int = 3) -> str:
    """``[0.102, 0.600, 0.251, 0.804]`` with a fixed number of decimals."""
    if len(box) != 4:
        raise ValueError(f"A box needs 4 numbers [x1, y1, x2, y2], got {list(box)!r}")
    return "[" + ", ".join(f"{float(v):.{decimals}f}" for v in box) + "]"


def format_detection_answer(
    artifacts: Iterable[tuple[int | str, Sequence[float]]],
    other_caption: str | None = None,
    decimals: int = 3,
) -> str:
    """The detection reference answer.

    Args:
        artifacts: ``(label, normalized_box)`` pairs (boxes from :func:`pixel_to_padded`); the order is
            kept for the location block (sorted by taxonomy id, then box, for a stable reference).
        other_caption: caption of other artifacts, or None.

    >>> print(format_detection_answer([(4, (0.1, 0.2, 0.3, 0.4))]))
    Artifact judgement: Yes.
    Artifact classification:
    1. Omitted components.
    Artifact location:
    1. Omitted components: [0.100, 0.200, 0.300, 0.400]
    Other artifacts caption: None.
    """
    pairs = sorted(((get_class(label).id, tuple(float(v) for v in box)) for label, box in artifacts))
    for cls_id, box in pairs:
        if cls_id == NO_ARTIFACTS_ID:
            raise ValueError("'No artifacts' cannot have a box")
        if len(box) != 4:
            raise ValueError(f"Box for {CLASSES[cls_id].name!r} needs 4 numbers, got {box!r}")
    caption = other_caption.strip() if other_caption else ""
    # The caption has its own line in detection answers, so the classification block lists the bare name.
    ids = [cls_id for cls_id, _ in pairs] + ([OTHER_ARTIFACTS_ID] if caption else [])
    items = _answer_items(ids, None)
    has_artifacts = items != ["No artifacts."]
    lines = [f"{DETECTION_HEADERS[0]} {'Yes' if has_artifacts else 'No'}.", DETECTION_HEADERS[1], _numbered(items)]
    lines.append(DETECTION_HEADERS[2])
    if pairs:
        lines.append(
            "\n".join(
                f"{i}. {CLASSES[cls_id].name}: {format_box(box, decimals)}"
                for i, (cls_id, box) in enumerate(pairs, start=1)
            )
        )
    else:
        lines.append("None.")
    lines.append(f"{DETECTION_HEADERS[3]} {caption if caption else 'None.'}")
    return "\n".join(lines)


def _padded_square(width: int, height: int) -> tuple[int, float, float]:
    """Side of the centered padded square and the padding added left and top (LLaVA's expand2square)."""
    if not (isinstance(width, int) and isinstance(height, int)) or width <= 0 or height <= 0:
        raise ValueError(f"Image size must be positive integers, got width={width!r}, height={height!r}")
    side = max(width, height)
    return side, (side - width) / 2, (side - height) / 2


def pixel_to_padded(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """Pixel box ``[x1, y1, x2, y2]`` (top-left origin) -> fractions of the centered padded square.

    The image is padded to a ``max(width, height)`` square with the original centered (LLaVA's
    ``expand2square``); resizing that square to 336x336 keeps fractions unchanged, so the result is the
    box in the 336x336 padded image divided by 336.

    >>> pixel_to_padded([0, 0, 512, 256], 512, 256)
    (0.0, 0.25, 1.0, 0.75)
    """
    side, pad_x, pad_y = _padded_square(width, height)
    x1, y1, x2, y2 = (float(v) for v in box)
    return ((x1 + pad_x) / side, (y1 + pad_y) / side, (x2 + pad_x) / side, (y2 + pad_y) / side)


def padded_to_pixel(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """Inverse of :func:`pixel_to_padded` (no clipping, no rounding).

    >>> padded_to_pixel((0.0, 0.25, 1.0, 0.75), 512, 256)
    (0.0, 0.0, 512.0, 256.0)
    """
    side, pad_x, pad_y = _padded_square(width, height)
    u1, v1, u2, v2 = (float(v) for v in box)
    return (u1 * side - pad_x, v1 * side - pad_y, u2 * side - pad_x, v2 * side - pad_y)


# ----------------------------------------------------------------------------------------------
# Chat messages: the instruction as a user turn with one image, in the content-list format that
# every transformers processor chat template (and TRL's vision SFT) accepts.


def user_message(instruction: str) -> dict:
    return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}


def assistant_message(answer: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": answer}]}


def conversation(instruction: str, answer: str | None = None) -> list[dict]:
    """``[user(image + instruction)]`` or ``[user, assistant(answer)]``."""
    messages = [user_message(instruction)]
    if answer is not None:
        messages.append(assistant_message(answer))
    return messages


def render_prompt(processor, instruction: str | None = None) -> str:
    """The text prompt for ``processor`` (any processor with a chat template), ending with the
    generation prompt so that the model's next tokens are its answer."""
    if instruction is None:
        instruction = classification_instruction()
    template_owner = processor if getattr(processor, "chat_template", None) else getattr(processor, "tokenizer", None)
    if template_owner is None or not getattr(template_owner, "chat_template", None):
        raise ValueError(
            f"{type(processor).__name__} has no chat template; pass a processor that defines one "
            "(processor.chat_template) so the instruction can be rendered as a user turn with an image"
        )
    return template_owner.apply_chat_template(conversation(instruction), add_generation_prompt=True, tokenize=False)
