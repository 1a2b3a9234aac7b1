"""``pipeline("artifact-classification")``: which SynArtifact artifacts a vision-language model sees.

The pipeline asks any ``AutoModelForImageTextToText`` checkpoint whose processor has a chat template
the paper's classification instruction (Fig. 11) about each image, decodes its answer greedily and
parses it into taxonomy labels. With ``return_scores=True`` it also returns, for each of the 14
options, the model's likelihood of answering with that option (see :mod:`synartifact_hf.scoring`).

>>> import tempfile
>>> from PIL import Image
>>> from transformers import pipeline
>>> import synartifact_hf  # registers the task
>>> from synartifact_hf.tiny_models import build_tiny_llava
>>> classifier = pipeline("artifact-classification", model=build_tiny_llava(tempfile.mkdtemp()))
>>> out = classifier(Image.new("RGB", (64, 48), "white"), max_new_tokens=8, return_scores=True)
>>> sorted(out)
['generated_text', 'has_artifacts', 'labels', 'other_artifacts', 'parse_issues', 'scores']
>>> round(sum(out["scores"].values()), 6)  # a distribution over the 14 options
1.0

(The tiny model has random weights, so its answers are noise; pass a fine-tuned checkpoint for real
predictions, e.g. ``pipeline("artifact-classification", model="path/to/checkpoint")``.)

This module only imports installed packages and its sibling modules (images, taxonomy, prompts,
parsing, scoring) through relative imports, so ``save_pretrained`` can copy it, with those siblings, next to a
checkpoint for ``pipeline(model=folder, trust_remote_code=True)`` without synartifact-hf installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import GenerationConfig, Pipeline

# Image loading lives in .images; these names stay importable from here because users import them
# (``from synartifact_hf.pipeline import load_image``).
from .atomic import write_text_atomic
from .images import MAX_IMAGE_PIXELS, ImageTooLargeError, UnreadableImageError, load_image
from .instructions import classification_instruction, render_prompt
from .parsing import parse_answer
from .scoring import OptionScorer, continuation_texts, encode_continuations, scores_from_logprobs
from .taxonomy import NAMES

__all__ = [
    "TASK",
    "add_pipeline_code",
    "DEFAULT_MODEL",
    "MAX_IMAGE_PIXELS",
    "ArtifactClassificationPipeline",
    "ImageTooLargeError",
    "UnreadableImageError",
    "load_image",
    "load_pipeline",
    "register_pipeline",
]

TASK = "artifact-classification"
# The paper's baseline, LLaVA-1.5-7B in transformers format, pinned to a snapshot of the Hub repo
# that has the chat template and the processor's patch_size / num_additional_image_tokens.
DEFAULT_MODEL = ("llava-hf/llava-1.5-7b-hf", "b234b804b114d9e37bb655e11cbbb5f5e971b7a9")


def _generation_keys() -> set[str]:
    """The parameters ``generate()`` takes from a call: GenerationConfig's fields and ``generation_config``."""
    return {key for key in vars(GenerationConfig()) if not key.startswith("_")} | {"generation_config"}


class ArtifactClassificationPipeline(Pipeline):
    """Classify the artifacts in synthetic images with a vision-language model.

    Call it on one image or a list (PIL images, paths, http(s) URLs, numpy arrays, ``datasets`` image
    dicts, or ``{"image": ..., "instruction": ...}`` for a per-image instruction), or on a ``datasets``
    column through ``KeyDataset``; ``batch_size=N`` generates N images at once (left padding; the
    results equal ``batch_size=1`` under greedy decoding).

    Parameters (at construction or per call):
        instruction (`str`): the user text; defaults to the paper's classification instruction.
        max_new_tokens (`int`): answer length cap (default 128).
        return_scores (`bool`): also return ``scores``, the 14-option distribution of
            :mod:`synartifact_hf.scoring` (one extra batched pass over the 14 continuations; the prefix is
            shared with generation).
        threshold (`float`): with scores, also return ``labels_above_threshold``: the options whose score
            is at least ``threshold`` (implies ``return_scores``).
        generate_kwargs (`dict`): passed to ``generate()``; generation parameters (``do_sample``,
            ``generation_config``, ``temperature``, ...) may also be given directly. Decoding is greedy
            (whatever the checkpoint's own generation config says) unless the caller asks for sampling:
            ``do_sample=True`` or a ``generation_config`` with ``do_sample=True``, at construction or per call.
        max_image_pixels (`int`): decompression-bomb cap (default ``MAX_IMAGE_PIXELS``).
        timeout (`float`): seconds to wait for an image URL.

    Returns, per image, a JSON-able dict: ``labels`` (taxonomy names parsed from the answer, taxonomy
    order; ``[]`` when nothing could be parsed), ``has_artifacts`` (True/False, None when unparsed),
    ``other_artifacts`` (the "Other artifacts:" caption or None), ``generated_text`` (the raw answer),
    ``parse_issues`` (what the parser could not read cleanly) and, when asked, ``scores``
    ({option name: probability} over all 14 options, summing to 1) and ``labels_above_threshold``.
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _pipeline_calls_generate = True
    _default_generation_config = GenerationConfig(max_new_tokens=128)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(f"{TASK} needs a processor (image processor + tokenizer); none was loaded for {self.model.name_or_path}")
        if getattr(self.processor, "chat_template", None) is None and getattr(self.tokenizer, "chat_template", None) is None:
            raise ValueError(
                f"The processor of {self.model.name_or_path} has no chat template; {TASK} renders the instruction "
                "with it. Save one with processor.chat_template = '...'; processor.save_pretrained(path)."
            )
        # Batches pad prompts of different lengths on the tokenizer's side (pad_collate_fn); generation and
        # the shared-prefix scores need them left-padded, whatever side the checkpoint was saved with.
        if self.tokenizer is not None and self.tokenizer.padding_side != "left":
            self.tokenizer.padding_side = "left"
        self._prompts: dict[str, str] = {}
        self._scorers: dict[str, OptionScorer] = {}

    def _sanitize_parameters(
        self,
        instruction=None,
        max_new_tokens=None,
        return_scores=None,
        threshold=None,
        generate_kwargs=None,
        max_image_pixels=None,
        timeout=None,
        **generation_params,
    ):
        preprocess_params, forward_params, postprocess_params = {}, {}, {}
        unknown = sorted(set(generation_params) - _generation_keys())
        if unknown:
            raise TypeError(f"{TASK} got unexpected parameter(s) {unknown}; generation parameters (do_sample, "
                            "generation_config, temperature, ...) and the pipeline's own are accepted")
        if instruction is not None:
            preprocess_params["instruction"] = instruction
        if max_image_pixels is not None:
            preprocess_params["max_image_pixels"] = max_image_pixels
        if timeout is not None:
            preprocess_params["timeout"] = timeout
        if generate_kwargs is not None:
            forward_params["generate_kwargs"] = dict(generate_kwargs)
        if max_new_tokens is not None:
            generation_params["max_new_tokens"] = max_new_tokens
        for key, value in generation_params.items():  # per-call generation parameters, like generate()'s
            forward_params.setdefault("generate_kwargs", {})
            if key in forward_params["generate_kwargs"]:
                raise ValueError(f"{key} given twice: as a parameter and in generate_kwargs; pass it once")
            forward_params["generate_kwargs"][key] = value
        if threshold is not None:
            if not 0.0 <= float(threshold) <= 1.0:
                raise ValueError(f"threshold must be between 0 and 1, got {threshold!r}")
            postprocess_params["threshold"] = float(threshold)
            return_scores = True if return_scores is None else return_scores
            if not return_scores:
                raise ValueError("threshold applies to scores; it cannot be used with return_scores=False")
        if return_scores is not None:
            forward_params["return_scores"] = bool(return_scores)
        return preprocess_params, forward_params, postprocess_params

    def _prompt(self, instruction: str | None) -> str:
        key = instruction if instruction is not None else ""
        if key not in self._prompts:
            self._prompts[key] = render_prompt(self.processor, instruction or classification_instruction())
        return self._prompts[key]

    def _scorer(self, instruction: str | None) -> OptionScorer:
        key = instruction if instruction is not None else ""
        if key not in self._scorers:
            prompt, continuations = continuation_texts(self.processor, instruction or classification_instruction())
            ids = encode_continuations(self.tokenizer, prompt, continuations)
            # Padded positions are masked out, so any valid id pads; checkpoints without a pad token work.
            pad_id = next((i for i in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id) if i is not None), 0)
            self._scorers[key] = OptionScorer(self.model, ids, pad_token_id=pad_id)
        return self._scorers[key]

    def preprocess(self, image, instruction=None, max_image_pixels=MAX_IMAGE_PIXELS, timeout=None):
        if isinstance(image, dict) and "image" in image:
            unknown = set(image) - {"image", "instruction"}
            if unknown:
                raise ValueError(f"Input dicts take the keys 'image' and 'instruction'; got unknown keys {sorted(unknown)}")
            instruction = image.get("instruction", instruction)
            image = image["image"]
        pil = load_image(image, timeout=timeout, max_pixels=max_image_pixels)
        inputs = self.processor(images=[[pil]], text=[self._prompt(instruction)], return_tensors="pt")
        inputs = inputs.to(dtype=self.dtype)
        inputs["instruction"] = instruction  # not a tensor: batched into a list, popped in _forward
        return inputs

    def _caller_generate_kwargs(self, generate_kwargs: dict) -> dict:
        """The generation settings the caller gave for this call, merged as ``_prepare_generate_kwargs``
        merges them: a call's ``generation_config`` replaces the construction-time settings."""
        if "generation_config" in generate_kwargs:
            return generate_kwargs
        return {**self._generate_kwargs, **generate_kwargs}

    def _caller_sets_do_sample(self, generate_kwargs: dict) -> bool:
        """Whether the caller chose the decoding mode: ``do_sample`` given (at construction, per call or in
        ``generate_kwargs``) or a ``generation_config`` that samples. Only then is greedy not forced."""
        settings = self._caller_generate_kwargs(generate_kwargs)
        config = settings.get("generation_config")
        return "do_sample" in settings or bool(getattr(config, "do_sample", False))

    def _forward(self, model_inputs, generate_kwargs=None, return_scores=False):
        instructions = model_inputs.pop("instruction")
        if not isinstance(instructions, list):
            instructions = [instructions]
        generate_kwargs = dict(generate_kwargs or {})
        overrides = {"return_dict_in_generate": True}
        if not self._caller_sets_do_sample(generate_kwargs):
            overrides["do_sample"] = False  # greedy, even where the checkpoint's generation config samples
        if return_scores:
            settings = self._get_set_generation_params(self._caller_generate_kwargs(generate_kwargs))
            if settings.get("num_beams", 1) != 1 or settings.get("num_return_sequences", 1) != 1:
                raise ValueError("return_scores needs one sequence per image (num_beams=1, num_return_sequences=1)")
            overrides["output_logits"] = True
        prompt_length = model_inputs["input_ids"].shape[1]
        kwargs = self._prepare_generate_kwargs(generate_kwargs, **overrides)
        outputs = self.model.generate(**model_inputs, **kwargs)
        result = {"generated_ids": outputs.sequences[:, prompt_length:]}
        if return_scores:
            cache = getattr(outputs, "cache", None)
            cache = cache if cache is not None else outputs.past_key_values
            # generate()'s prefill already encoded image + prompt: reuse its cache and first-step logits.
            logprobs = torch.empty(len(instructions), len(NAMES), device=outputs.logits[0].device)
            for instruction in dict.fromkeys(instructions):
                rows = [i for i, x in enumerate(instructions) if x == instruction]
                logprobs[rows] = self._scorer(instruction).from_prefix(
                    cache, outputs.logits[0], model_inputs["attention_mask"], rows=rows
                )
            result["option_logprobs"] = logprobs
        return result

    def postprocess(self, model_outputs, threshold=None):
        ids = model_outputs["generated_ids"][0]
        text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        parsed = parse_answer(text)
        record = {
            "labels": parsed.labels,
            "has_artifacts": parsed.has_artifacts,
            "other_artifacts": parsed.other_caption,
            "generated_text": text,
            "parse_issues": list(parsed.issues),
        }
        if "option_logprobs" in model_outputs:
            scores = scores_from_logprobs(model_outputs["option_logprobs"])[0]
            record["scores"] = scores
            if threshold is not None:
                record["labels_above_threshold"] = [name for name, p in scores.items() if p >= threshold]
        return record

    def save_pretrained(self, save_directory, safe_serialization: bool = True, **kwargs):
        """Save model, processor and pipeline code: ``config.json`` gets ``custom_pipelines``, and this module
        is copied with its sibling modules, so ``pipeline(model=save_directory, trust_remote_code=True)``
        works without synartifact-hf installed."""
        if not safe_serialization:
            raise ValueError("Only safetensors serialization is supported (safe_serialization=True)")
        # Registration 3 of 3 (see register_pipeline): a copy of this module loaded with trust_remote_code
        # was never registered (transformers does not register custom pipelines), and the base class
        # writes custom_pipelines only from the _registered_impl that registering sets; re-saving such a
        # pipeline needs it. For the installed class this is a no-op.
        register_pipeline()
        super().save_pretrained(save_directory, **kwargs)  # transformers 5 writes safetensors only
        # Processor-only pipelines: the base class saves tokenizer and image processor separately, not the
        # processor config (patch size, image tokens) nor its chat template.
        self.processor.save_pretrained(save_directory)


def add_pipeline_code(checkpoint_dir: str | os.PathLike) -> Path:
    """Make a checkpoint folder (e.g. a fine-tuning output) loadable without synartifact-hf.

    Copies this module and the sibling modules it imports relatively into the folder and adds
    ``custom_pipelines`` to its ``config.json``, as :meth:`ArtifactClassificationPipeline.save_pretrained`
    does, without loading or rewriting the weights. Then ``pipeline(model=folder, trust_remote_code=True)``
    works for users who never installed synartifact-hf.
    """
    import json
    import shutil

    from transformers.dynamic_module_utils import get_relative_import_files
    from transformers.pipelines import PIPELINE_REGISTRY

    folder = Path(checkpoint_dir)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder} has no config.json; pass a folder written by save_pretrained")
    info = dict(PIPELINE_REGISTRY.supported_tasks[TASK])  # registered when this module was imported
    # The same entry Pipeline.save_pretrained writes: classes become names the Hub loader resolves.
    info["impl"] = f"{__name__.split('.')[-1]}.{ArtifactClassificationPipeline.__name__}"
    info["pt"] = tuple(cls.__name__ for cls in info["pt"])
    for source in [__file__, *get_relative_import_files(__file__)]:
        shutil.copy(source, folder / Path(source).name)
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["custom_pipelines"] = {TASK: info}
    write_text_atomic(config_file, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder


def register_pipeline() -> None:
    """Register ``"artifact-classification"`` with transformers (idempotent).

    Called from three places, each needed by a user path:

    1. ``synartifact_hf/__init__.py``'s import hook, right after ``transformers.pipelines`` is imported:
       ``import synartifact_hf; pipeline("artifact-classification", ...)`` works without importing this
       module first, and ``import synartifact_hf`` stays fast (it imports neither torch nor transformers).
    2. The end of this module's own import: a user who imports ``synartifact_hf.pipeline`` directly
       triggers the hook while this module is only half imported (it imports ``transformers.pipelines``
       itself), so the hook leaves the registration to this line.
    3. :meth:`ArtifactClassificationPipeline.save_pretrained`, for a copy loaded with ``trust_remote_code``.

    :func:`load_pipeline` and :func:`add_pipeline_code` live in this module, so it is registered by the
    time they run; they do not register again.
    """
    from transformers import AutoModelForImageTextToText
    from transformers.pipelines import PIPELINE_REGISTRY

    current = PIPELINE_REGISTRY.supported_tasks.get(TASK, {})
    if current.get("impl") is ArtifactClassificationPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=ArtifactClassificationPipeline,
        pt_model=AutoModelForImageTextToText,
        default={"model": DEFAULT_MODEL},
        type="multimodal",
    )


def load_pipeline(model: str | os.PathLike | None = None, revision: str | None = None, **kwargs):
    """``pipeline("artifact-classification", model=...)`` with a clear error when the model is not available.

    Without ``model`` it loads ``DEFAULT_MODEL`` (the paper's baseline, pinned revision), which needs the
    Hub or a warm cache. Other keyword arguments go to ``transformers.pipeline``.
    """
    from transformers import pipeline

    if model is None:
        model, revision = DEFAULT_MODEL[0], revision or DEFAULT_MODEL[1]
    local = Path(model)
    if local.exists() and not (local / "config.json").is_file():
        raise FileNotFoundError(f"{local} has no config.json; pass a folder written by save_pretrained")
    try:
        # Weights load only from safetensors (no pickle), whatever the checkpoint also ships.
        model_kwargs = {"use_safetensors": True, **kwargs.pop("model_kwargs", {})}
        # The installed class, also for folders whose config.json declares custom_pipelines (for which
        # transformers would otherwise insist on running the folder's copy with trust_remote_code).
        return pipeline(TASK, model=str(model), revision=revision, model_kwargs=model_kwargs,
                        pipeline_class=ArtifactClassificationPipeline, **kwargs)
    except OSError as err:
        if local.exists():
            raise
        offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
        raise OSError(
            f"Could not load the artifact classifier {model!r}"
            + (f" (revision {revision})" if revision else "")
            + (" because the Hugging Face Hub is offline (HF_HUB_OFFLINE=1)" if offline else " from the Hub or the local cache")
            + ". Pass a local checkpoint folder instead: pipeline('artifact-classification', model='/path/to/checkpoint') "
            "(or `synartifact-hf classify ... --model /path/to/checkpoint`); the folder must hold config.json, "
            "model.safetensors and the processor files written by save_pretrained. To fetch the default model "
            f"once while online: `hf download {DEFAULT_MODEL[0]} --revision {DEFAULT_MODEL[1]}`."
        ) from err


if __name__ == "synartifact_hf.pipeline":
    # Registration 2 of 3 (see register_pipeline). Only the installed package registers itself; a copy
    # loaded with trust_remote_code is found by transformers through config.json's custom_pipelines.
    register_pipeline()
