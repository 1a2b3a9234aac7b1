"""The resumable generate -> classify loop of ``eval-generator``, over the processes of ``accelerate
launch`` / ``torchrun`` (:mod:`synartifact_hf.scaleout`).

Items are (prompt index, image index) pairs, named ``p00012-i003``, each with its own seed
(:func:`~.sampling.item_seed`). While the run is going, everything lives in a work folder beside the
output, ``<DIR>.partial/``:

- ``settings.json``: the run's settings (pipeline, LoRA, steps, guidance, seed, prompts, classifier,
  instruction hash); a rerun with other settings is refused, naming the fields that differ;
- ``images/<item_id>.png``: each image as soon as it is drawn (temporary name, then rename);
- ``records.jsonl``: one line per classified image (generation metadata, the classifier's answer and
  labels, the Eq. 4 reward), written through :class:`~synartifact_hf.scaleout.ShardedJsonLines` (a part
  file per process, merged at the end in item order).

A rerun after a crash or ``kill -9`` (with any number of processes) skips every item with a record and
classifies, without drawing it again, every image that was saved but not yet classified. When all items
are done the main process writes ``DIR`` (:mod:`.folder`) and removes the work folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import write_text_atomic
from .sampling import GeneratorSettings, item_id, item_seed

__all__ = ["EvalConfig", "Item", "items_of", "run_eval", "work_dir_of"]

IMAGE_DIR = "images"
RECORDS = "records.jsonl"
SETTINGS = "settings.json"
REWARD_BACKBONE = "all-MiniLM-L6-v2"
NSFW_KEY = "synartifact:nsfw_flagged"


@dataclass
class EvalConfig:
    pipeline: str
    prompts: list[str]
    prompts_source: str
    classifier: str
    output: str
    lora: str | None = None
    images_per_prompt: int = 1
    seed: int = 0
    steps: int | None = None
    guidance: float | None = None
    height: int | None = None
    width: int | None = None
    dtype: str = "float32"
    batch_size: int = 4
    classifier_batch_size: int = 8
    served: dict = field(default_factory=dict)  # open_classifier's served_model / concurrency / timeout / max_retries
    max_new_tokens: int | None = None
    instruction: str | None = None
    device: str | None = None
    overwrite: bool = False
    resamples: int = 2000
    bootstrap_seed: int = 0
    progress: bool = True
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Item:
    item_id: str
    prompt_index: int
    image_index: int
    prompt: str
    seed: int


def items_of(prompts: list[str], images_per_prompt: int, seed: int) -> list[Item]:
    return [Item(item_id(p, i), p, i, prompt, item_seed(seed, p, i))
            for p, prompt in enumerate(prompts) for i in range(images_per_prompt)]


def work_dir_of(output: str | os.PathLike) -> Path:
    out = Path(output)
    return out.with_name(out.name + ".partial")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _requested(config: EvalConfig) -> dict:
    """The settings known before any model is loaded (explicit --steps etc. only)."""
    from .prompt_sets import PromptSet

    known = {
        "pipeline": config.pipeline,
        "lora": config.lora,
        "dtype": config.dtype,
        "seed": config.seed,
        "images_per_prompt": config.images_per_prompt,
        "num_prompts": len(config.prompts),
        "prompts_source": config.prompts_source,
        "prompts_sha256": PromptSet(config.prompts, config.prompts_source).sha256,
        "max_new_tokens": config.max_new_tokens,
    }
    for key in ("steps", "guidance", "height", "width"):
        if getattr(config, key) is not None:
            known[key] = getattr(config, key)
    return known


def _settings(config: EvalConfig, resolved: dict, classifier) -> dict:
    return {
        **_requested(config),
        **{k: resolved[k] for k in ("steps", "guidance", "height", "width")},
        "classifier": classifier.identity,
        "instruction_sha256": _sha256(classifier.instruction),
        "reward": {"equation": "paper Eq. 4 (BERTScore F1)", "backbone": REWARD_BACKBONE},
        "seeds": "item_seed(seed, prompt_index, image_index): blake2b of 'seed/prompt_index/image_index', 63 bits",
    }


def _check_settings(work: Path, settings: dict, *, partial: bool = False) -> None:
    """Compare with the unfinished run's settings (``partial``: only the keys given, before loading
    models, so a mismatch is reported in seconds); the first complete check writes them."""
    path = work / SETTINGS
    if not path.is_file():
        if not partial:
            write_text_atomic(path, json.dumps(settings, indent=1))
        return
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SystemExit(f"{path} is not JSON ({err}); remove {work} to start this evaluation afresh") from None
    keys = set(settings) if partial else set(before) | set(settings)
    changed = sorted(k for k in keys if before.get(k) != settings.get(k))
    if changed:
        lines = "\n".join(f"  {k}: {before.get(k)!r} (unfinished run) vs {settings.get(k)!r} (now)" for k in changed)
        raise SystemExit(f"{work} holds an unfinished evaluation with other settings:\n{lines}\n"
                         f"Rerun with the same settings to resume it, or remove {work} (or choose another --output).")


def _save_png(image, path: Path, nsfw) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if nsfw is not None:  # the safety checker's verdict survives a restart with the image
        info.add_text(NSFW_KEY, str(bool(nsfw)))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        image.save(tmp, format="PNG", pnginfo=info)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _record(item: Item, result: dict, reward: float, nsfw) -> dict:
    return {
        **asdict(item),
        "answer": result.get("generated_text", ""),
        "labels": list(result.get("labels") or []),
        "has_artifacts": result.get("has_artifacts"),
        "other_artifacts": result.get("other_artifacts"),
        "parse_issues": list(result.get("parse_issues") or []),
        "reward": float(reward),
        "nsfw_flagged": nsfw,
    }


def run_eval(config: EvalConfig) -> Path | None:
    """Generate, classify and write ``config.output``; returns it on the main process (``None`` on others)."""
    from PIL import Image
    from tqdm.auto import tqdm

    from ..backends import ClassificationFailed, open_classifier
    from ..hub_folder import check_out_dir
    from ..reward import ArtifactReward
    from ..scaleout import ShardedJsonLines, iter_records, process_device, process_state, share
    from .sampling import load_text_to_image, sample

    if config.images_per_prompt < 1 or config.batch_size < 1:
        raise SystemExit("--images-per-prompt and --batch-size must be at least 1")
    if config.images_per_prompt > 1000:
        raise SystemExit("--images-per-prompt is at most 1000 (item ids have three digits for the image index)")
    out = Path(config.output)
    try:  # --overwrite replaces only a folder this command wrote
        check_out_dir(out, config.overwrite, looks_like_ours=lambda d: (d / "generation.json").is_file())
    except FileExistsError as err:
        raise SystemExit(f"--output: {err}") from None
    state = process_state()
    device = process_device(state, config.device)
    work = work_dir_of(out)
    images_dir = work / IMAGE_DIR
    if state.is_main_process:
        _check_settings(work, _requested(config), partial=True)
        images_dir.mkdir(parents=True, exist_ok=True)

    classifier = open_classifier(config.classifier, device=device, batch_size=config.classifier_batch_size,
                                 max_new_tokens=config.max_new_tokens, instruction=config.instruction, **config.served)
    pipe = load_text_to_image(config.pipeline, lora=config.lora, device=device, dtype=config.dtype)
    resolved = GeneratorSettings(config.steps, config.guidance, config.height, config.width).resolved(pipe)
    settings = _settings(config, resolved, classifier)
    if state.is_main_process:
        _check_settings(work, settings)
    state.wait_for_everyone()

    items = items_of(config.prompts, config.images_per_prompt, config.seed)
    results = ShardedJsonLines(work / RECORDS, state, key="item_id")
    done = results.prepare()
    todo = [item for item in items if item.item_id not in done]
    mine = share(len(todo), state.process_index, state.num_processes)
    mine = todo[mine.start:mine.stop]
    bar = tqdm(total=len(todo), desc="generate+classify", unit="img",
               disable=not (config.progress and state.is_main_process and todo))
    if state.num_processes > 1:
        results.start_counting()
    others = 0
    drawn = reused = failed = 0
    if mine:
        reward = ArtifactReward(classifier=None, bertscore_model=REWARD_BACKBONE)
        with results.open() as handle:
            for start in range(0, len(mine), config.batch_size):
                batch = mine[start:start + config.batch_size]
                paths = [images_dir / f"{item.item_id}.png" for item in batch]
                images: list = [None] * len(batch)
                nsfw: list = [None] * len(batch)
                for k, path in enumerate(paths):
                    if path.is_file():  # drawn before a crash, not yet classified
                        with Image.open(path) as im:
                            images[k] = im.convert("RGB")
                            flag = im.info.get(NSFW_KEY)
                        nsfw[k] = None if flag is None else flag == "True"
                        reused += 1
                missing = [k for k in range(len(batch)) if images[k] is None]
                if missing:
                    new, flags = sample(pipe, [batch[k].prompt for k in missing], [batch[k].seed for k in missing],
                                        resolved)
                    for k, image, flag in zip(missing, new, flags):
                        _save_png(image, paths[k], flag)
                        images[k], nsfw[k] = image, flag
                    drawn += len(missing)
                try:
                    answers = classifier.classify(images)
                except ClassificationFailed as err:  # a served classifier gave up on some images
                    answers = err.results
                    failed += sum(a is None for a in answers)
                    print(f"rank {state.process_index}: {err}")
                kept = [(item, answer, flag) for item, answer, flag in zip(batch, answers, nsfw) if answer is not None]
                if kept:
                    rewards, _ = reward.rewards_from_outputs([answer for _, answer, _ in kept])
                    for (item, answer, flag), r in zip(kept, rewards.tolist()):
                        results.write(handle, _record(item, answer, r, flag))
                bar.update(len(batch))
                if state.num_processes > 1 and state.is_main_process:
                    now = results.written_by_others()
                    bar.update(now - others)
                    others = now
    if failed:
        print(f"rank {state.process_index}: {failed} image(s) got no answer from the classifier (kept for a rerun)")
    classifier.close()
    del pipe
    results.finish(item.item_id for item in items)
    bar.update(bar.total - bar.n)
    bar.close()
    if not state.is_main_process:
        return None
    if drawn or reused:
        print(f"rank 0: drew {drawn} image(s), classified {reused} drawn before a restart")
    missing = len(items) - sum(1 for _ in iter_records(work / RECORDS, "item_id"))
    if missing:
        raise SystemExit(f"{missing} image(s) have no answer from the classifier yet (see the errors above); their "
                         f"images are kept in {images_dir}: rerun the same command to classify them")
    from .folder import write_eval_folder

    write_eval_folder(config, settings, work, items)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return out
