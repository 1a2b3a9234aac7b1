"""Demo step: the tiny Stable Diffusion before vs after its DDPO epochs, measured the way a real model is
(``eval-generator`` on each, then ``compare-generators``).

Both runs draw the same ImageNet-animal prompts with the same per-image seeds, the "after" one with the
DDPO LoRA loaded, and the same classifier labels every image. A toy: a random-weight UNet trained for a few
epochs on a handful of images, judged by a tiny classifier trained on placeholder images; the rates and
their differences show the machinery (pairing, intervals, McNemar, Holm, figures), not whether DDPO
removes artifacts. With a real pipeline and classifier the same two commands answer that question.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEMO_PROMPTS", "GeneratorComparison", "TOY_NOTE", "compare_before_after"]

DEMO_PROMPTS = 4
DEMO_IMAGES_PER_PROMPT = 2
TOY_NOTE = ("A toy: a tiny random-weight Stable Diffusion after a few DDPO epochs, judged by a tiny classifier "
            "trained on placeholder images. The numbers show the mechanics, not whether DDPO reduces artifacts.")


@dataclass
class GeneratorComparison:
    before: Path
    after: Path
    comparison: Path
    summary: str


def compare_before_after(pipeline: str | os.PathLike, lora: str | os.PathLike, classifier: str | os.PathLike,
                         output_dir: str | os.PathLike, *, steps: int, guidance: float, max_new_tokens: int,
                         seed: int = 0) -> GeneratorComparison:
    """Evaluate ``pipeline`` without and with ``lora`` on the first ``DEMO_PROMPTS`` ImageNet-animal prompts
    and compare the two; everything goes under ``output_dir``."""
    import json

    from ..generator_eval.compare import compare_folders
    from ..generator_eval.prompt_sets import load_prompts
    from ..generator_eval.run import EvalConfig, run_eval

    out = Path(output_dir)
    prompts = load_prompts("imagenet-animals", limit=DEMO_PROMPTS)
    folders = {}
    for name, weights in (("before", None), ("after", lora)):
        config = EvalConfig(
            pipeline=os.fspath(pipeline), lora=None if weights is None else os.fspath(weights),
            prompts=prompts.prompts, prompts_source=prompts.source, classifier=os.fspath(classifier),
            output=os.fspath(out / name), images_per_prompt=DEMO_IMAGES_PER_PROMPT, seed=seed, steps=steps,
            guidance=guidance, max_new_tokens=max_new_tokens, overwrite=True, extra={"toy_note": TOY_NOTE},
        )
        folders[name] = run_eval(config)
    comparison = compare_folders(folders["before"], folders["after"], out / "before-vs-after", overwrite=True)
    result = json.loads((comparison / "comparison.json").read_text(encoding="utf-8"))
    rate = result["artifact_rate"]

    def pct(entry):
        return "n/a" if entry["estimate"] is None else f"{100 * entry['estimate']:.0f}%"

    diff = rate["difference"]
    summary = (f"artifact rate before {pct(rate['a'])}, after {pct(rate['b'])} on {result['pairs_both_parsed']} of "
               f"{result['pairs']} pairs with both answers parsed; B - A "
               + ("n/a" if diff["estimate"] is None else
                  f"{100 * diff['estimate']:+.0f} points [95% CI {100 * diff['ci_low']:+.0f}, {100 * diff['ci_high']:+.0f}]")
               + f", McNemar p = {rate['p_mcnemar']:.2g}")
    return GeneratorComparison(folders["before"], folders["after"], comparison, summary)


def add_to_demo(ddpo, out: Path, classifier, args, entries: list, folders: list) -> None:
    """The demo's hook after its DDPO step: evaluate the tiny SD before/after, print the line, index the files."""
    import dataclasses

    from ..ddpo import DDPOConfig
    from .ddpo_run import TINY_DDPO
    from .index import Entry

    guidance = next(f.default for f in dataclasses.fields(DDPOConfig) if f.name == "sample_guidance_scale")

    print(f"  Generator evaluation, before vs after DDPO ({DEMO_PROMPTS} prompts x {DEMO_IMAGES_PER_PROMPT} images, "
          "same seeds; eval-generator + compare-generators):")
    result = compare_before_after(out / "ddpo" / "tiny-random-sd", ddpo.lora_dir, classifier, out / "generator-eval",
                                  steps=TINY_DDPO["sample_num_steps"], guidance=guidance,
                                  max_new_tokens=args.max_new_tokens)
    print(f"  {result.summary}\n  ({TOY_NOTE})")
    for name in ("before", "after"):
        entries.append(Entry("table", f"generator-eval/{name}/report.md",
                             f"tiny SD {name} DDPO: artifact rate, per-class rates, parse rate, mean reward (95% CIs)"))
        entries.append(Entry("figure", f"generator-eval/{name}/per_class_rates.png",
                             f"tiny SD {name} DDPO: per-class artifact rates with bootstrap whiskers"))
        if (out / "generator-eval" / name / "flagged_images.png").is_file():
            entries.append(Entry("figure", f"generator-eval/{name}/flagged_images.png",
                                 f"tiny SD {name} DDPO: flagged images with the classifier's labels"))
    entries.append(Entry("table", "generator-eval/before-vs-after/comparison.md",
                         "tiny SD before vs after DDPO: artifact rates, paired differences, McNemar (a toy)"))
    entries.append(Entry("figure", "generator-eval/before-vs-after/comparison.png",
                         "tiny SD before vs after DDPO: rates and B - A with 95% paired CIs"))
    folders.append(("generator-eval", "eval-generator folders of the tiny SD before/after DDPO (datasets + reports)"))
