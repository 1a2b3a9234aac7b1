"""`eval-generator` / `compare-generators`: prompt sources, the output folder (a Hub-ready dataset + report +
figures) from known records, the paired comparison and its refusals, and end to end on a tiny Stable
Diffusion + tiny LLaVA (random weights: mechanics only) under torchrun with 2 processes, killed with
SIGKILL mid-run and resumed."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synartifact_hf.cli import main
from synartifact_hf.generator_eval.prompt_sets import load_prompts
from synartifact_hf.generator_eval.run import EvalConfig, _record, _settings, items_of, work_dir_of
from synartifact_hf.generator_eval.sampling import item_seed

BLUR, DUP = "Localized blur", "Duplicated components"
TORCHRUN = Path(sys.executable).with_name("torchrun")


# ----------------------------------------------------------------------------------------------
# prompts


def test_prompt_sources(tmp_path):
    import datasets

    animals = load_prompts("imagenet-animals")
    assert len(animals.prompts) == 398 and animals.prompts[1] == "goldfish, Carassius auratus"
    text = tmp_path / "prompts.txt"
    text.write_text("a red cube\n\n  a cat  \n", encoding="utf-8")
    assert load_prompts(str(text)).prompts == ["a red cube", "a cat"]
    assert load_prompts(str(text), limit=1).prompts == ["a red cube"]
    folder = tmp_path / "ds"
    datasets.Dataset.from_dict({"caption": ["one", "two", "three"]}).to_parquet(str(folder / "data" / "train.parquet"))
    assert load_prompts(str(folder), column="caption").prompts == ["one", "two", "three"]
    with pytest.raises(ValueError, match="no column 'prompt'.*caption"):
        load_prompts(str(folder))
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(ValueError, match="no prompts"):
        load_prompts(str(tmp_path / "empty.txt"))
    assert load_prompts(str(text)).sha256 != load_prompts(str(text), limit=1).sha256


# ----------------------------------------------------------------------------------------------
# sampling: the class model_index.json names, one seed per image whatever the batch


@pytest.mark.parametrize("fixture,cls", [("tiny_sd_path", "StableDiffusionPipeline"),
                                         ("tiny_sdxl_path", "StableDiffusionXLPipeline"),
                                         ("tiny_sd3_path", "StableDiffusion3Pipeline"),
                                         ("tiny_flux_path", "FluxPipeline")])
def test_sampling_loads_the_named_class_and_seeds_each_image(fixture, cls, request, tmp_path):
    from synartifact_hf.generator_eval.sampling import GeneratorSettings, load_text_to_image, sample

    pipe = load_text_to_image(request.getfixturevalue(fixture), device="cpu")
    assert type(pipe).__name__ == cls
    settings = GeneratorSettings(steps=2).resolved(pipe)
    assert settings["steps"] == 2 and isinstance(settings["guidance"], float)  # the pipeline's default, recorded
    seeds = [item_seed(0, 0, 0), item_seed(0, 1, 0)]
    batch, flags = sample(pipe, ["a cat", "a dog"], seeds, settings)
    alone, _ = sample(pipe, ["a dog"], seeds[1:], settings)
    assert flags == [None, None]  # no safety checker in the tiny pipelines
    # the same seed gives the same image in a batch of two or alone (batched float math: at most 1 level off)
    assert np.abs(np.asarray(batch[1], dtype=int) - np.asarray(alone[0], dtype=int)).max() <= 1
    assert np.abs(np.asarray(batch[0], dtype=int) - np.asarray(batch[1], dtype=int)).max() > 1
    with pytest.raises(FileNotFoundError, match="expected a folder with a .safetensors LoRA"):
        load_text_to_image(request.getfixturevalue(fixture), lora=tmp_path, device="cpu")


def test_sampling_refuses_a_folder_without_model_index(tmp_path):
    from synartifact_hf.generator_eval.sampling import load_text_to_image

    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        load_text_to_image(tmp_path)


# ----------------------------------------------------------------------------------------------
# the output folder and the comparison, from known records (no models)


class _Classifier:  # what _settings reads from a classifier backend
    identity = "known-classifier"
    instruction = "the instruction"


def _synthetic_folder(tmp_path, name, flags, *, seed=0, classifier=_Classifier, prompts=("a cat", "a dog", "a cup")):
    """An eval folder written by write_eval_folder from a work folder of known records and PNGs.
    ``flags[p][i]`` is True (blur + duplicated), False (no artifacts) or None (unparsed)."""
    from synartifact_hf.generator_eval.folder import write_eval_folder

    per_prompt = len(flags[0])
    config = EvalConfig(pipeline="tiny-sd", prompts=list(prompts), prompts_source="test", classifier="x",
                        output=str(tmp_path / name), images_per_prompt=per_prompt, seed=seed, resamples=300,
                        progress=False)
    settings = _settings(config, {"steps": 2, "guidance": 7.5, "height": None, "width": None}, classifier)
    work = work_dir_of(config.output)
    (work / "images").mkdir(parents=True)
    items = items_of(config.prompts, per_prompt, seed)
    with (work / "records.jsonl").open("w") as f:
        for item in items:
            flag = flags[item.prompt_index][item.image_index]
            answer = {True: f"1. {BLUR}. 2. {DUP}.", False: "1. No artifacts.", None: "hello"}[flag]
            labels = {True: [BLUR, DUP], False: ["No artifacts"], None: []}[flag]
            result = {"generated_text": answer, "labels": labels, "has_artifacts": flag, "parse_issues": []}
            f.write(json.dumps(_record(item, result, 1.0 if flag else 1.5, None)) + "\n")
            shade = 40 * item.prompt_index + 10 * item.image_index
            Image.new("RGB", (32, 32), (shade, 100, 200)).save(work / "images" / f"{item.item_id}.png")
    return write_eval_folder(config, settings, work, items)


def test_eval_folder_is_a_dataset_with_report_and_figures(tmp_path):
    import datasets

    flags = [[True, True], [False, None], [True, False]]
    out = _synthetic_folder(tmp_path, "eval", flags)
    rows = datasets.load_dataset(str(out), split="train")
    assert rows.num_rows == 6
    assert rows["item_id"] == ["p00000-i000", "p00000-i001", "p00001-i000", "p00001-i001", "p00002-i000", "p00002-i001"]
    assert rows["seed"] == [item_seed(0, p, i) for p in range(3) for i in range(2)]
    assert rows[0]["image"].size == (32, 32) and rows[0]["labels"] == [BLUR, DUP]
    assert rows["has_artifacts"][3] is None
    generation = json.loads((out / "generation.json").read_text())
    for key in ("pipeline", "lora", "steps", "guidance", "seed", "images_per_prompt", "classifier",
                "instruction_sha256"):
        assert key in generation
    report = json.loads((out / "report.json").read_text())
    assert (report["images"], report["prompts"], report["parsed"]) == (6, 3, 5)
    assert report["artifact_rate"]["estimate"] == pytest.approx(3 / 5)
    assert report["per_class"][BLUR]["count"] == 3 and report["per_class"]["Illegible letters"]["count"] == 0
    assert report["mean_reward"]["estimate"] == pytest.approx((3 * 1.0 + 3 * 1.5) / 6)
    for name in ("per_class_rates.png", "flagged_images.png"):
        with Image.open(out / name) as im:
            assert im.width > 200
    md = (out / "report.md").read_text()
    assert "60.0% [" in md and "flagged_images.png" in md
    assert "configs:" in (out / "README.md").read_text()
    assert not work_dir_of(out).exists() or True  # the work folder is removed by run_eval, not by the writer


def test_compare_generators_cli_and_refusals(tmp_path, capsys):
    before = [[True, True], [True, False], [True, True]]
    after = [[False, False], [True, False], [False, None]]
    a = _synthetic_folder(tmp_path, "a", before)
    b = _synthetic_folder(tmp_path, "b", after)
    assert main(["compare-generators", str(a), str(b), "--output", str(tmp_path / "cmp"), "--resamples", "300"]) == 0
    result = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    overall = result["artifact_rate"]
    assert result["pairs"] == 6 and result["pairs_both_parsed"] == 5
    assert (overall["flagged_only_a"], overall["flagged_only_b"]) == (3, 0)
    assert overall["difference"]["estimate"] == pytest.approx(-3 / 5)
    assert overall["p_mcnemar"] == pytest.approx(0.25)  # 2 * (1/2)^3
    assert result["per_class"][BLUR]["p_holm"] >= result["per_class"][BLUR]["p_mcnemar"]
    assert (tmp_path / "cmp" / "comparison.png").stat().st_size > 1000
    assert "| **any artifact** |" in capsys.readouterr().out

    other_seed = _synthetic_folder(tmp_path, "seed1", after, seed=1)
    with pytest.raises(SystemExit, match="do not share prompts and seeds"):
        main(["compare-generators", str(a), str(other_seed), "--output", str(tmp_path / "no")])

    class Other(_Classifier):
        identity = "another-classifier"

    other_clf = _synthetic_folder(tmp_path, "clf", after, classifier=Other)
    with pytest.raises(SystemExit, match="different classifier"):
        main(["compare-generators", str(a), str(other_clf), "--output", str(tmp_path / "no")])
    assert not (tmp_path / "no").exists()
    with pytest.raises(SystemExit, match="overlaps the input folder"):
        main(["compare-generators", str(a), str(b), "--output", str(a), "--overwrite"])
    assert (a / "generation.json").is_file()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no generation.json"):
        main(["compare-generators", str(a), str(tmp_path / "empty"), "--output", str(tmp_path / "no")])


# ----------------------------------------------------------------------------------------------
# end to end: tiny SD + tiny LLaVA, 2 processes, SIGKILL, resume


def _sigkill_tree(proc) -> None:
    """SIGKILL torchrun and every worker (each runs in a session of its own) and wait until they are gone."""
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(proc.pid)
        family = [root, *root.children(recursive=True)]
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(9)
        psutil.wait_procs(family, timeout=60)
    proc.communicate()


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun not found next to the Python executable")
def test_eval_generator_two_processes_killed_and_resumed(tiny_sd_path, tiny_llava_path, tmp_path, capsys):
    import datasets

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\na cat\na dog on grass\n", encoding="utf-8")
    out = tmp_path / "eval"
    args = ["eval-generator", tiny_sd_path, "--prompts", prompts, "--images-per-prompt", "2", "--classifier",
            tiny_llava_path, "--output", out, "--steps", "2", "--max-new-tokens", "4", "--batch-size", "1",
            "--resamples", "200"]
    proc = subprocess.Popen(
        [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "synartifact_hf.cli", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])})
    work = work_dir_of(out)
    parts = [work / f"records.jsonl.part-{rank:05d}" for rank in (0, 1)]
    deadline = time.monotonic() + 300
    try:  # kill everything once both processes have classified an image: a crash mid-run
        while not all(p.is_file() and p.read_bytes().count(b"\n") >= 1 for p in parts):
            assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no records appeared in 300 s"
            time.sleep(0.02)
    finally:
        _sigkill_tree(proc)
    assert not out.exists()
    done = {}
    for part in parts:
        for line in part.read_text().splitlines():
            if line.endswith("}"):
                record = json.loads(line)
                done[record["item_id"]] = record
    drawn_before = {p.stem for p in (work / "images").glob("*.png")}
    assert set(done) <= drawn_before and len(done) >= 2

    # A rerun with other settings is refused, naming what changed.
    with pytest.raises(SystemExit, match="steps: 2 .* vs 3"):
        main([str(a) for a in args[:10]] + ["--steps", "3", "--max-new-tokens", "4", "--batch-size", "1"])

    capsys.readouterr()
    assert main([str(a) for a in args]) == 0  # one process resumes the two-process run
    stdout = capsys.readouterr().out
    redrawn = 6 - len(drawn_before)
    assert f"drew {redrawn} image(s), classified {len(drawn_before) - len(done)} drawn before a restart" in stdout
    assert not work.exists()
    rows = datasets.load_dataset(str(out), split="train")
    ids = [f"p{p:05d}-i{i:03d}" for p in range(3) for i in range(2)]
    assert rows["item_id"] == ids  # each image exactly once, in item order
    for row in rows.select_columns(["item_id", "answer", "labels", "seed", "prompt"]):
        if row["item_id"] in done:
            assert row["answer"] == done[row["item_id"]]["answer"]
        assert row["seed"] == item_seed(0, int(row["item_id"][1:6]), int(row["item_id"][-3:]))
    report = json.loads((out / "report.json").read_text())
    assert report["images"] == 6 and report["prompts"] == 3

    # The same prompts and seeds with a LoRA on top: compare-generators pairs them image by image.
    lora = _random_lora(tiny_sd_path, tmp_path / "lora")
    with_lora = tmp_path / "eval-lora"
    assert main([*map(str, args[:8]), "--output", str(with_lora), "--lora", str(lora), *map(str, args[10:])]) == 0
    assert json.loads((with_lora / "generation.json").read_text())["lora"] == str(lora)
    assert main(["compare-generators", str(out), str(with_lora), "--output", str(tmp_path / "cmp"),
                 "--resamples", "200"]) == 0
    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text())["pairs"] == 6
    plain = datasets.load_dataset(str(out), split="train")[0]["image"]
    lora_image = datasets.load_dataset(str(with_lora), split="train")[0]["image"]
    assert np.abs(np.asarray(plain, dtype=int) - np.asarray(lora_image, dtype=int)).max() > 0  # the LoRA acts
    # image p00000-i000 is what diffusers draws from that item's seed
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_path)
    pipe.set_progress_bar_config(disable=True)
    direct = pipe("a red cube", num_inference_steps=2, generator=torch.Generator().manual_seed(item_seed(0, 0, 0))).images[0]
    assert np.abs(np.asarray(direct, dtype=int) - np.asarray(plain, dtype=int)).max() <= 1


def _random_lora(sd_path, folder):
    """A LoRA on the tiny SD's UNet attention with random (non-zero) B matrices, saved as our trainers do."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(sd_path)
    torch.manual_seed(0)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                     target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(pipe.unet))
    return folder
