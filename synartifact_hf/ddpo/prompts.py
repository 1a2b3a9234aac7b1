"""Kept so that ``from synartifact_hf.ddpo.prompts import ...`` goes on working: the RL prompt functions live in
`synartifact_hf.rl.prompt_functions` (shared by DDPO and Flow-GRPO; not the classifier's instructions, which are
``synartifact_hf.prompts``)."""

from ..rl.prompt_functions import ImageNetAnimalPrompts, PromptList, imagenet_animal_classes

__all__ = ["ImageNetAnimalPrompts", "PromptList", "imagenet_animal_classes"]
