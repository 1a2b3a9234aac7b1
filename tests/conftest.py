"""Shared test fixtures. Tests never touch the Hugging Face Hub: the environment variables below make
any accidental download fail fast, and the tiny checkpoints are built locally from configs with random
weights (see synartifact_hf/tiny_models.py)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny kernels gain nothing from more, and on a busy 2-core machine two
    threads are an order of magnitude slower (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_llava_path(tmp_path_factory):
    """Folder of a tiny LLaVA-1.5-style checkpoint (random weights, seed 0): CLIP tower 32px/8px patches
    (16 image tokens), 2-layer Llama, BPE tokenizer, LlavaProcessor with a vicuna chat template that has
    {% generation %} markers, left padding. Treat it as read-only (it is shared by the whole session)."""
    from synartifact_hf.tiny_models import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"), seed=0)


@pytest.fixture(scope="session")
def tiny_idefics3_path(tmp_path_factory):
    """Folder of a tiny Idefics3/SmolVLM-style checkpoint (random weights, seed 0), 4 image tokens,
    ChatML-like "User:/Assistant:" template with {% generation %} markers, left padding. Read-only."""
    from synartifact_hf.tiny_models import build_tiny_idefics3

    return build_tiny_idefics3(tmp_path_factory.mktemp("tiny-idefics3"), seed=0)


@pytest.fixture(scope="session")
def tiny_sd_path(tmp_path_factory):
    """Folder of a tiny Stable-Diffusion-v1-style pipeline (random weights, seed 0; 32x32 images, DDIM
    scheduler, no safety checker); see synartifact_hf/tiny_diffusion.py. Read-only."""
    from synartifact_hf.tiny_diffusion import build_tiny_sd_pipeline

    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd"), seed=0)


@pytest.fixture(scope="session")
def tiny_sd2v_path(tmp_path_factory):
    """Tiny SD 2.x-v-style pipeline (v-prediction DDIM, linear attention projections; random weights,
    seed 0, 32x32 images). Read-only."""
    from synartifact_hf.tiny_diffusion import build_tiny_sd_pipeline

    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd2v"), seed=0, v_prediction=True)


@pytest.fixture(scope="session")
def tiny_sdxl_path(tmp_path_factory):
    """Tiny Stable-Diffusion-XL-base-style pipeline (two text encoders, text_time UNet, force_upcast VAE,
    SDXL's Euler scheduler config; random weights, seed 0, 32x32 images); loads with
    StableDiffusionXLPipeline.from_pretrained. Read-only."""
    from synartifact_hf.tiny_diffusion import build_tiny_sdxl_pipeline

    return build_tiny_sdxl_pipeline(tmp_path_factory.mktemp("tiny-sdxl"), seed=0)


@pytest.fixture(scope="session")
def tiny_sd3_path(tmp_path_factory):
    """Tiny SD3.5-style pipeline (MMDiT-X transformer, two CLIP encoders + a tiny T5 with a `tokenizers`-built
    Unigram tokenizer, 16-channel-style VAE with shift, flow-matching scheduler; random weights, seed 0, 32x32
    images); loads with StableDiffusion3Pipeline.from_pretrained. Read-only."""
    from synartifact_hf.tiny_diffusion import build_tiny_sd3_pipeline

    return build_tiny_sd3_pipeline(tmp_path_factory.mktemp("tiny-sd3"), seed=0)


@pytest.fixture(scope="session")
def tiny_sd3_no_t5_path(tmp_path_factory):
    """The tiny SD3 pipeline without its T5 encoder (text_encoder_3=None, as SD3 allows). Read-only."""
    from synartifact_hf.tiny_diffusion import build_tiny_sd3_pipeline

    return build_tiny_sd3_pipeline(tmp_path_factory.mktemp("tiny-sd3-no-t5"), seed=0, with_t5=False)


@pytest.fixture(scope="session")
def tiny_flux_path(tmp_path_factory):
    """Tiny FLUX.1-dev-style pipeline (double- and single-stream blocks, guidance embedding, packed latents,
    CLIP + tiny T5; random weights, seed 0; sample it at 32 px). Read-only."""
    from synartifact_hf.tiny_diffusion import build_tiny_flux_pipeline

    return build_tiny_flux_pipeline(tmp_path_factory.mktemp("tiny-flux"), seed=0)


@pytest.fixture(scope="session")
def release_annotations():
    """``../shared/synartifact-annotations`` (all 1,310 of the release's annotation JSONs, exact copies,
    in the release's paths, plus the split lists); the test is skipped where it is absent. Test data
    only: the release states no license, so these files are never shipped."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "shared" / "synartifact-annotations"
    if not (folder / "train.txt").is_file():
        pytest.skip(f"{folder} not present (the release's annotations are test data from ../shared)")
    return folder


STUDY_PROMPTS = 6  # prompts x 2 images = 12 items


def _toy_picture(size: int, shade: int, prompt: int, index: int):
    """A small drawn 'animal' on a sky gradient; ``shade`` < 128 (model A) adds a stray second head."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(picture)
    for y in range(size):
        draw.line([(0, y), (size, y)], fill=(120 + 100 * y // size, 170 + 60 * y // size, 230))
    body = ((40 * prompt) % 200 + 40, shade // 2 + 40, 90 + 30 * index)
    u = size / 10
    draw.ellipse([2 * u, 5 * u, 7 * u, 8 * u], fill=body)
    draw.ellipse([6 * u, 3 * u, 8.5 * u, 5.5 * u], fill=body)
    draw.rectangle([0, 8.5 * u, size, size], fill=(90, 150, 70))
    if shade < 128:
        draw.ellipse([1 * u, 2.5 * u, 3 * u, 4.5 * u], fill=body)
    return picture


def write_generation_folder(folder, pipeline: str, size: int, shade: int, lora: str | None = None, seed: int = 0):
    """An ``eval-generator`` output folder (the contract with the user study) written by eval-generator's
    own writer (``generator_eval.folder.write_eval_folder``) from drawn pictures and made-up classifier
    records instead of a diffusion model and a classifier: 6 prompts x 2 images."""
    import json
    from pathlib import Path

    from PIL import PngImagePlugin

    from synartifact_hf.generator_eval.folder import write_eval_folder
    from synartifact_hf.generator_eval.run import IMAGE_DIR, RECORDS, EvalConfig, items_of

    folder = Path(folder)
    prompts = [f"a photo of animal number {p}" for p in range(STUDY_PROMPTS)]
    config = EvalConfig(pipeline=pipeline, prompts=prompts, prompts_source="test", classifier="tiny-llava",
                        output=str(folder), lora=lora, images_per_prompt=2, seed=seed, resamples=50, progress=False)
    work = folder.with_name(folder.name + ".work")
    (work / IMAGE_DIR).mkdir(parents=True)
    items = items_of(prompts, 2, seed)
    with open(work / RECORDS, "w") as records:
        for item in items:
            info = PngImagePlugin.PngInfo()
            info.add_text("parameters", f"made by {pipeline} {lora}")  # the study must not pass this on
            _toy_picture(size, shade, item.prompt_index, item.image_index).save(
                work / IMAGE_DIR / f"{item.item_id}.png", "PNG", pnginfo=info)
            records.write(json.dumps({
                "item_id": item.item_id, "prompt": item.prompt, "prompt_index": item.prompt_index,
                "image_index": item.image_index, "seed": item.seed, "answer": "No artifacts", "labels": [],
                "has_artifacts": False, "other_artifacts": None, "parse_issues": [], "reward": 0.5,
                "nsfw_flagged": False}) + "\n")
    settings = {"pipeline": pipeline, "lora": lora, "steps": 2, "guidance": 5.0, "seed": seed, "images_per_prompt": 2,
                "prompts_source": "test", "classifier": "tiny-llava", "instruction_sha256": "0" * 64}
    return write_eval_folder(config, settings, work, items)


@pytest.fixture(scope="session")
def generation_folder():
    """:func:`write_generation_folder`, for tests that need a folder of their own."""
    return write_generation_folder


@pytest.fixture(scope="session")
def study_folders(tmp_path_factory):
    """``(DIR_A, DIR_B)``: two generator-evaluation folders over the same 12 items (A: 256 px images;
    B: 320 px, a LoRA on top; each image carries a PNG text chunk naming its model)."""
    root = tmp_path_factory.mktemp("generations")
    return (write_generation_folder(root / "before", "tiny-sd", 256, 90),
            write_generation_folder(root / "after", "tiny-sd", 320, 200, lora="runs/ddpo/lora"))


BROWSER_HINT = ("browser tests need Debian's Chromium and its driver (`apt-get install chromium chromium-driver`) "
                "and selenium (`pip install -e '.[dev]'`)")


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Chromium driven by selenium (Debian's `chromium` + `chromium-driver`). Skipped with one line
    saying what to install when missing; a failure instead under SYNARTIFACT_REQUIRE_BROWSER=1 (make test)."""
    import shutil

    binary = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None
    if binary is None or driver is None or webdriver is None:
        if os.environ.get("SYNARTIFACT_REQUIRE_BROWSER"):
            pytest.fail(f"SYNARTIFACT_REQUIRE_BROWSER is set but {BROWSER_HINT}")
        pytest.skip(BROWSER_HINT)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1200", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    chrome = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
    chrome.set_page_load_timeout(120)
    yield chrome
    chrome.quit()
