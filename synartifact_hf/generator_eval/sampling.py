"""Text-to-image sampling for generator evaluation: load any diffusers text-to-image pipeline (the class its
``model_index.json`` names: Stable Diffusion 1.x/2.x/XL, SD3, FLUX, ...), optionally with a LoRA folder
from our trainers, and draw images with one fixed seed per (prompt, image index).

The noise of an image depends only on its seed: every image gets its own CPU ``torch.Generator``
(diffusers draws the initial latents on the generator's device and moves them), so the batch size, the
process that drew it, the device and a resume after a crash change nothing, and two models with the same
latent shape start from the same noise for the same (prompt, index). Seeds come from
:func:`item_seed`: a hash of the run's base seed and the two indices.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from pathlib import Path

__all__ = ["ITEM_ID_FORMAT", "GeneratorSettings", "item_id", "item_seed", "load_text_to_image", "sample"]

ITEM_ID_FORMAT = "p{prompt_index:05d}-i{image_index:03d}"
DTYPES = ("float32", "float16", "bfloat16")


def item_id(prompt_index: int, image_index: int) -> str:
    """>>> item_id(3, 1)
    'p00003-i001'
    """
    return ITEM_ID_FORMAT.format(prompt_index=prompt_index, image_index=image_index)


def item_seed(base_seed: int, prompt_index: int, image_index: int) -> int:
    """The seed of image ``image_index`` of prompt ``prompt_index`` (63 bits, fits int64 columns).

    >>> item_seed(0, 0, 0) == item_seed(0, 0, 0) != item_seed(0, 0, 1)
    True
    """
    digest = hashlib.blake2b(f"{base_seed}/{prompt_index}/{image_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class GeneratorSettings:
    """What is passed to every pipeline call; ``None`` means the pipeline's own default (resolved from
    its ``__call__`` signature so the run records the real value)."""

    def __init__(self, steps: int | None = None, guidance: float | None = None, height: int | None = None,
                 width: int | None = None):
        for name, value in (("steps", steps), ("height", height), ("width", width)):
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be >= 1, got {value}")
        if guidance is not None and guidance < 0:
            raise ValueError(f"--guidance must be >= 0, got {guidance}")
        self.steps, self.guidance, self.height, self.width = steps, guidance, height, width

    def resolved(self, pipe) -> dict:
        params = inspect.signature(pipe.__call__).parameters

        def default(name):
            p = params.get(name)
            return None if p is None or p.default is inspect.Parameter.empty else p.default

        return {
            "steps": int(self.steps if self.steps is not None else default("num_inference_steps")),
            "guidance": None if (g := self.guidance if self.guidance is not None else default("guidance_scale")) is None
            else float(g),
            "height": self.height, "width": self.width,
        }


def _check_pipeline_folder(pipeline: str) -> None:
    path = Path(pipeline)
    if path.exists() and not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"{pipeline}: no model_index.json; pass a diffusers pipeline folder (save_pretrained) "
                                "or a Hub id such as stable-diffusion-v1-5/stable-diffusion-v1-5")


def load_text_to_image(pipeline: str | os.PathLike, *, lora: str | os.PathLike | None = None, device: str | None = None,
                       dtype: str = "float32"):
    """The diffusers pipeline named by ``pipeline``'s ``model_index.json`` (safetensors weights only), with
    ``lora`` loaded through ``load_lora_weights``; on ``device`` (default: CUDA when available)."""
    import torch
    from diffusers import DiffusionPipeline

    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {DTYPES}, got {dtype!r}")
    pipeline = os.fspath(pipeline)
    _check_pipeline_folder(pipeline)
    pipe = DiffusionPipeline.from_pretrained(pipeline, use_safetensors=True, dtype=getattr(torch, dtype))
    params = inspect.signature(pipe.__call__).parameters
    if "prompt" not in params or "generator" not in params:
        raise ValueError(f"{pipeline} loads as {type(pipe).__name__}, which is not a text-to-image pipeline "
                         "(its __call__ takes no prompt/generator)")
    if lora is not None:
        lora_dir = Path(lora)
        if not hasattr(pipe, "load_lora_weights"):
            raise ValueError(f"{type(pipe).__name__} cannot load LoRA weights (--lora {lora})")
        if not lora_dir.is_dir() or not any(lora_dir.glob("*.safetensors")):
            raise FileNotFoundError(f"--lora {lora}: expected a folder with a .safetensors LoRA file (what "
                                    "DDPOTrainer.save_pretrained / the Flow-GRPO trainer write)")
        pipe.load_lora_weights(os.fspath(lora_dir), use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return pipe.to(device)


def sample(pipe, prompts: list[str], seeds: list[int], settings: dict) -> tuple[list, list]:
    """``(images, nsfw_flags)`` for ``prompts``, image k drawn from ``seeds[k]``; flags are ``None`` when the
    pipeline has no safety checker."""
    import torch

    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts for {len(seeds)} seeds")
    kwargs = {"num_inference_steps": settings["steps"], "output_type": "pil"}
    if settings.get("guidance") is not None:
        kwargs["guidance_scale"] = settings["guidance"]
    for key in ("height", "width"):
        if settings.get(key) is not None:
            kwargs[key] = settings[key]
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    with torch.inference_mode():
        out = pipe(prompt=list(prompts), generator=generators, **kwargs)
    flags = getattr(out, "nsfw_content_detected", None)
    flags = [None] * len(prompts) if flags is None else [bool(f) for f in flags]
    return [im.convert("RGB") for im in out.images], flags
