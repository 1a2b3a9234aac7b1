"""`synartifact-hf eval-generator PIPELINE --prompts P --images-per-prompt N --classifier MODEL --output DIR`.

Draw N images per prompt with a diffusers text-to-image pipeline (optionally + a LoRA folder), one fixed
seed per (prompt, image index), classify each with the artifact classifier (in-process or served), and
write DIR: a Hub-ready image dataset with the answers, ``generation.json``, ``report.json``/``report.md``
(artifact rate, per-class rates, parse rate, mean Eq. 4 reward, 95% bootstrap intervals over prompts) and
figures. Scales out and resumes::

    synartifact-hf eval-generator stable-diffusion-v1-5/stable-diffusion-v1-5 --prompts imagenet-animals \\
        --images-per-prompt 4 --classifier ./classifier --output eval-sd15
    accelerate launch -m synartifact_hf.cli eval-generator ... --lora ddpo-out/lora --output eval-sd15-ddpo
    synartifact-hf compare-generators eval-sd15 eval-sd15-ddpo --output sd15-vs-ddpo
"""

from __future__ import annotations

import argparse

from .prompt_sets import PROMPT_SET_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", metavar="PIPELINE",
                        help="diffusers pipeline folder or Hub id (any text-to-image class model_index.json names)")
    parser.add_argument("--prompts", required=True,
                        help=f"built-in set ({', '.join(PROMPT_SET_NAMES)}: the paper's 398 ImageNet animals), a "
                             "text file (one prompt per line) or a dataset folder / Hub id (see --prompt-column)")
    parser.add_argument("--prompt-column", default="prompt", help="dataset column with the prompts (default: %(default)s)")
    parser.add_argument("--prompt-split", default="train", help="dataset split (default: %(default)s)")
    parser.add_argument("--prompt-config", default=None, help="dataset config (default: its default)")
    parser.add_argument("--max-prompts", type=int, default=None, help="use only the first N prompts")
    parser.add_argument("--images-per-prompt", type=int, default=4, help="images per prompt (default: %(default)s)")
    from ..backends import MODEL_HELP, add_served_arguments

    parser.add_argument("--classifier", required=True, help="the artifact classifier: " + MODEL_HELP)
    parser.add_argument("--instruction-file", default=None, help="classifier instruction (default: the paper's Fig. 11)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="classifier answer length cap")
    parser.add_argument("--output", required=True, help="output folder (a new Hub-ready dataset folder)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--lora", default=None, help="LoRA folder to load on the pipeline (load_lora_weights)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the per-image seeds (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="inference steps (default: the pipeline's)")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the pipeline's)")
    parser.add_argument("--height", type=int, default=None, help="image height (default: the pipeline's)")
    parser.add_argument("--width", type=int, default=None, help="image width (default: the pipeline's)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                        help="pipeline weights dtype (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per pipeline call (default: %(default)s)")
    parser.add_argument("--classifier-batch-size", type=int, default=8, help="images per classifier call")
    parser.add_argument("--device", default=None, help="torch device with one process (default: CUDA if available)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default: %(default)s)")
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    add_served_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..backends import ServedClassifierError, served_settings
    from .prompt_sets import load_prompts
    from .run import EvalConfig, run_eval

    try:
        prompts = load_prompts(args.prompts, column=args.prompt_column, split=args.prompt_split,
                               config=args.prompt_config, limit=args.max_prompts)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(str(err)) from None
    instruction = None
    if args.instruction_file:
        instruction = Path(args.instruction_file).read_text(encoding="utf-8").strip()
    config = EvalConfig(
        pipeline=args.pipeline, prompts=prompts.prompts, prompts_source=prompts.source, classifier=args.classifier,
        output=args.output, lora=args.lora, images_per_prompt=args.images_per_prompt, seed=args.seed,
        steps=args.steps, guidance=args.guidance, height=args.height, width=args.width, dtype=args.dtype,
        batch_size=args.batch_size, classifier_batch_size=args.classifier_batch_size, served=served_settings(args),
        max_new_tokens=args.max_new_tokens, instruction=instruction, device=args.device,
        overwrite=args.overwrite, resamples=args.resamples, bootstrap_seed=args.bootstrap_seed,
    )
    try:
        out = run_eval(config)
    except ServedClassifierError as err:
        raise SystemExit(f"eval-generator: error: {err}") from None
    if out is not None:
        import json

        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
        rate = report["artifact_rate"]
        print(f"{out}: {report['images']} images, {report['prompts']} prompts; artifact rate "
              + ("n/a" if rate["estimate"] is None else
                 f"{100 * rate['estimate']:.1f}% [95% CI {100 * rate['ci_low']:.1f}, {100 * rate['ci_high']:.1f}]")
              + f"; parse rate {100 * report['parse_rate']['estimate']:.1f}%; report: {out / 'report.md'}")
    return 0
