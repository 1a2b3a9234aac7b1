"""Prompt functions for RL fine-tuning (DDPO, Flow-GRPO): picklable callables ``prompt_fn() -> (prompt, metadata)``.

Not to be confused with ``synartifact_hf.prompts`` (the classifier's instructions).

The paper's prompt set is ddpo-pytorch's "ImageNet animals": the first 398 ImageNet class names,
shipped here as package data (``imagenet_animals.txt``; provenance and MIT license in
``imagenet_animals.md`` beside it).

>>> prompts = ImageNetAnimalPrompts(seed=0)
>>> len(prompts.prompts)
398
>>> prompts.prompts[0]
'tench, Tinca tinca'
>>> prompt, metadata = prompts()
>>> prompt in prompts.prompts, metadata
(True, {})
>>> import pickle
>>> pickle.loads(pickle.dumps(prompts))() == prompts()  # the RNG state travels with it
True
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from importlib import resources

__all__ = ["PromptList", "ImageNetAnimalPrompts", "imagenet_animal_classes"]


def imagenet_animal_classes() -> list[str]:
    """The 398 ImageNet animal class names (one prompt each), in ImageNet order."""
    text = resources.files(__package__).joinpath("imagenet_animals.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


class PromptList:
    """Draw prompts uniformly (with replacement) from a fixed list; metadata is ``{}``.

    ``template`` formats each entry (``"a photo of a {}"``); ``seed`` makes the draws reproducible
    (None: seeded from the OS). Picklable: it holds only the list, the template and a ``random.Random``.
    """

    def __init__(self, prompts: Sequence[str], template: str = "{}", seed: int | None = None):
        prompts = [str(p) for p in prompts]
        if not prompts:
            raise ValueError("PromptList needs at least one prompt")
        if "{}" not in template:
            raise ValueError(f"template must contain '{{}}' where the prompt goes; got {template!r}")
        self.prompts = prompts
        self.template = template
        self.rng = random.Random(seed)

    def __call__(self) -> tuple[str, dict]:
        return self.template.format(self.rng.choice(self.prompts)), {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.prompts)} prompts, template={self.template!r})"


class ImageNetAnimalPrompts(PromptList):
    """The paper's DDPO prompts: a random ImageNet animal class name per call (ddpo-pytorch's
    ``imagenet_animals``)."""

    def __init__(self, template: str = "{}", seed: int | None = None):
        super().__init__(imagenet_animal_classes(), template=template, seed=seed)
