"""Turn a LoRA training output into a checkpoint that ``pipeline("artifact-classification")`` loads.

``Trainer.save_model`` is the one save that works in every setting (one GPU, DDP, DeepSpeed ZeRO-3,
FSDP: it gathers sharded weights); for a PEFT model it writes only the adapter (with the trained
projector, a ``modules_to_save`` module). :func:`merge_lora_checkpoint` then moves that adapter to
``lora_adapter/`` and writes the base model with the adapter merged in at the top level, on one process.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["ADAPTER_DIR", "merge_lora_checkpoint"]

ADAPTER_DIR = "lora_adapter"
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


def merge_lora_checkpoint(base_model, output_dir) -> Path:
    """Merge the adapter saved in ``output_dir`` into ``base_model`` and save the result there.

    Args:
        base_model: the model the adapter was trained on, freshly loaded (same weights as at the start
            of training).
        output_dir: the folder ``Trainer.save_model`` wrote (``adapter_config.json`` at its top level).

    Returns:
        ``output_dir``, now holding the merged weights, with the adapter under ``lora_adapter/``.
    """
    from peft import PeftModel

    out = Path(output_dir)
    if not (out / "adapter_config.json").is_file():
        raise FileNotFoundError(f"No adapter_config.json in {out}: save the PEFT model with Trainer.save_model first")
    adapter_dir = out / ADAPTER_DIR
    adapter_dir.mkdir(exist_ok=True)
    for name in _ADAPTER_FILES:
        if (out / name).exists():
            os.replace(out / name, adapter_dir / name)
    readme = out / "README.md"
    if readme.exists():  # PEFT's generic card; ours is written later
        shutil.move(str(readme), str(adapter_dir / "README.md"))
    merged = PeftModel.from_pretrained(base_model, str(adapter_dir)).merge_and_unload()
    # Write beside, then move in file by file: a crash mid-save leaves no half-written model at the top.
    staging = out / ".merged-staging"
    shutil.rmtree(staging, ignore_errors=True)
    merged.save_pretrained(staging)
    for path in staging.iterdir():
        os.replace(path, out / path.name)
    staging.rmdir()
    return out
