"""Where the prompts of a generator evaluation come from: the paper's ImageNet-animal prompts (built in),
a text file (one prompt per line), or a column of a ``datasets`` dataset (a local folder or a Hub id).

``PROMPT_SET_NAMES`` are the built-in sets. A prompt's index is its position in the loaded list (after
``limit``), and it names the images made from it (``item_id`` ``p<prompt index>-i<image index>``), so the
same source and limit give the same indices in every run.

>>> prompts = load_prompts("imagenet-animals", limit=3)
>>> prompts.prompts
['tench, Tinca tinca', 'goldfish, Carassius auratus', 'great white shark, white shark, man-eater, man-eating shark, Carcharodon carcharias']
>>> prompts.source, len(prompts.sha256)
('imagenet-animals (built in), first 3', 64)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PROMPT_SET_NAMES", "PromptSet", "load_prompts"]

PROMPT_SET_NAMES = ("imagenet-animals",)
MAX_PROMPT_CHARS = 4000  # a line longer than this is not a prompt (a binary file read as text, a paste accident)


@dataclass(frozen=True)
class PromptSet:
    prompts: list[str]
    source: str  # for people: where the list came from

    @property
    def sha256(self) -> str:
        """Hash of the exact list (order included): two runs compare only on the same prompts."""
        return hashlib.sha256(json.dumps(self.prompts, ensure_ascii=False).encode("utf-8")).hexdigest()


def _from_text_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err}); --prompts FILE needs one prompt per line") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _from_dataset(name: str, column: str, split: str, config: str | None) -> list[str]:
    import datasets

    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except ValueError as err:  # unknown split names come as ValueError
        raise ValueError(f"--prompts {name}: cannot load split {split!r}: {err}") from None
    if column not in dataset.column_names:
        raise ValueError(f"--prompts {name} ({split}) has no column {column!r}; columns: {dataset.column_names} "
                         "(choose one with --prompt-column)")
    values = dataset[column]
    bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
    if bad is not None:
        raise ValueError(f"--prompts {name}: column {column!r} row {bad} is {type(values[bad]).__name__}, not text")
    return [v.strip() for v in values if v.strip()]


def load_prompts(source: str, *, column: str = "prompt", split: str = "train", config: str | None = None,
                 limit: int | None = None) -> PromptSet:
    """The prompt list of ``source``: a built-in set name (``PROMPT_SET_NAMES``), a ``.txt`` file, or a
    dataset (local folder or Hub id) whose ``column`` of ``split`` holds the prompts. ``limit`` keeps
    the first prompts."""
    if limit is not None and limit < 1:
        raise ValueError(f"the prompt limit must be >= 1, got {limit}")
    path = Path(source)
    if source in PROMPT_SET_NAMES and not path.exists():
        from ..ddpo.prompts import imagenet_animal_classes

        prompts, described = imagenet_animal_classes(), f"{source} (built in)"
    elif path.is_file():
        prompts, described = _from_text_file(path), str(path)
    else:
        prompts, described = _from_dataset(source, column, split, config), f"{source} [{split}].{column}"
    if not prompts:
        raise ValueError(f"--prompts {source}: no prompts found (empty lines are skipped)")
    too_long = next((i for i, p in enumerate(prompts) if len(p) > MAX_PROMPT_CHARS), None)
    if too_long is not None:
        raise ValueError(f"--prompts {source}: prompt {too_long} has {len(prompts[too_long])} characters "
                         f"(at most {MAX_PROMPT_CHARS}); is this a text file of prompts, one per line?")
    if limit is not None:
        prompts = prompts[:limit]
        described += f", first {len(prompts)}"
    return PromptSet(prompts, described)
