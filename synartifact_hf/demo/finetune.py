"""Step 3 of the demo: fine-tune the classifier on the train split through ``examples/train_classifier.py``'s code.

:func:`finetune_classifier` fills the script's three argument dataclasses (``ClassifierScriptArguments``,
TRL's ``SFTConfig``, ``ClassifierModelArguments``) and calls
:func:`synartifact_hf.training.sft.train_classifier`, the function the script's ``main`` runs: TRL's
``SFTTrainer`` on the ``classification`` config's prompt-completion rows, loss on the answer tokens only.

The tiny model's recipe (:data:`TINY_RECIPE`): the LLM is *updated in full* (``llm_mode="full"``). The
tiny LLaVA's Llama has random weights, so with the LLM frozen (the paper's best row) only the projector
trains and a random language model cannot learn to write option lists; LoRA on a random base learns too
slowly (r=16, lr 1e-2, 30 steps: mean training loss 6.2, about where it starts). Full fine-tuning at a constant
learning rate of 3e-3 with batches of 4 does it: on the sample's train split (a dozen images), after 15 epochs every answer
still stops at "1.", after 20 they are option lists; the default of 30 epochs (90 steps, about 0.2 s each
on two free CPU cores) leaves a margin. A real checkpoint (``--model`` with ``--finetune``) uses the
paper's ``frozen`` mode by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["SFTRecipe", "TINY_RECIPE", "REAL_MODEL_LLM_MODE", "finetune_classifier"]


@dataclass(frozen=True)
class SFTRecipe:
    """The few training knobs the demo sets; the rest are ``SFTConfig`` defaults."""

    llm_mode: str = "full"
    learning_rate: float = 3e-3
    num_train_epochs: float = 30
    per_device_train_batch_size: int = 4
    seed: int = 0


TINY_RECIPE = SFTRecipe()
REAL_MODEL_LLM_MODE = "frozen"  # the paper's best Table 2 row (Stage 1 init, LLM frozen)


def finetune_classifier(base_model: str | os.PathLike, dataset_dir: str | os.PathLike,
                        output_dir: str | os.PathLike, recipe: SFTRecipe = TINY_RECIPE):
    """Fine-tune ``base_model`` on ``dataset_dir``'s classification train split into ``output_dir``.

    Returns the :class:`~synartifact_hf.training.sft.SFTRun` (model folder, the trainer's log). The test
    split is evaluated by the demo itself (same settings as the "before" row), not here.
    """
    from trl import SFTConfig

    from ..training.sft import ClassifierModelArguments, ClassifierScriptArguments, train_classifier

    script_args = ClassifierScriptArguments(
        dataset_name=os.fspath(dataset_dir), dataset_config="classification", evaluate_after_training=False,
    )
    training_args = SFTConfig(
        output_dir=os.fspath(output_dir),
        num_train_epochs=recipe.num_train_epochs,
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=15,  # six loss lines over the default 90 steps
        save_strategy="no",
        report_to=[],
        seed=recipe.seed,
        bf16=False,  # the tiny model trains in fp32; a real checkpoint keeps the dtype it loads in
        max_length=None,  # the paper's instruction is long; never cut the answer off
        dataloader_num_workers=0,
    )
    model_args = ClassifierModelArguments(model_name_or_path=os.fspath(base_model), llm_mode=recipe.llm_mode)
    return train_classifier(script_args, training_args, model_args)
