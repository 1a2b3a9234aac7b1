"""The artifact-classification pipeline's mechanics on tiny random-weight models (answers are noise,
so these tests check plumbing: inputs, batching, parsing, errors, registration, Hub sharing)."""

from __future__ import annotations

import http.server
import json
import os
import re
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

import synartifact_hf  # noqa: F401  (registers the task)
from synartifact_hf.pipeline import (
    DEFAULT_MODEL,
    TASK,
    ArtifactClassificationPipeline,
    ImageTooLargeError,
    add_pipeline_code,
    load_image,
    load_pipeline,
)
from synartifact_hf.taxonomy import NAMES

REPO_ROOT = Path(__file__).resolve().parents[1]
KEYS = {"labels", "has_artifacts", "other_artifacts", "generated_text", "parse_issues"}


def _noise(seed: int, height: int = 40, width: int = 52) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 255, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def llava(tiny_llava_path):
    return pipeline(TASK, model=str(tiny_llava_path))


@pytest.fixture(scope="module")
def idefics3(tiny_idefics3_path):
    return pipeline(TASK, model=str(tiny_idefics3_path))


def test_registered_with_pinned_default_model():
    from transformers.pipelines import PIPELINE_REGISTRY

    task = PIPELINE_REGISTRY.supported_tasks[TASK]
    assert task["impl"] is ArtifactClassificationPipeline
    assert task["default"] == {"model": DEFAULT_MODEL}
    repo, revision = DEFAULT_MODEL
    assert repo == "llava-hf/llava-1.5-7b-hf"
    assert len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


def test_import_is_light_and_registers_when_transformers_pipelines_loads():
    code = (
        "import sys, time\n"
        "start = time.perf_counter()\n"
        "import synartifact_hf\n"
        "elapsed = time.perf_counter() - start\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
        "from transformers.pipelines import PIPELINE_REGISTRY\n"
        f"assert '{TASK}' in PIPELINE_REGISTRY.get_supported_tasks()\n"
        "import synartifact_hf.pipeline as p\n"
        f"assert PIPELINE_REGISTRY.supported_tasks['{TASK}']['impl'] is p.ArtifactClassificationPipeline\n"
        "print(elapsed)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) < 2.0  # generous: ~0.01 s when idle


def test_output_is_json_able_with_scores(llava):
    out = llava(_noise(0), max_new_tokens=4, return_scores=True, threshold=0.05)
    assert set(out) == KEYS | {"scores", "labels_above_threshold"}
    json.dumps(out)
    assert list(out["scores"]) == list(NAMES)
    assert sum(out["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert out["labels_above_threshold"] == [k for k, v in out["scores"].items() if v >= 0.05]
    assert set(llava(_noise(0), max_new_tokens=2)) == KEYS


def test_postprocess_parses_the_answer(llava):
    answer = "1. Duplicated components.\n2. Other artifacts: The gown is out of frame."
    ids = llava.tokenizer(answer, add_special_tokens=False, return_tensors="pt").input_ids
    ids = torch.cat([ids, torch.tensor([[llava.tokenizer.eos_token_id]])], dim=1)
    out = llava.postprocess({"generated_ids": ids})
    assert out == {
        "labels": ["Duplicated components", "Other artifacts"],
        "has_artifacts": True,
        "other_artifacts": "The gown is out of frame.",
        "generated_text": answer,
        "parse_issues": [],
    }
    clean = llava.tokenizer("1. No artifacts.", add_special_tokens=False, return_tensors="pt").input_ids
    assert llava.postprocess({"generated_ids": clean})["has_artifacts"] is False
    junk = llava.postprocess({"generated_ids": torch.tensor([[5, 6, 7]])})
    assert junk["labels"] == [] and junk["has_artifacts"] is None and junk["parse_issues"]


@pytest.mark.parametrize("which", ["llava", "idefics3"])
def test_batch_8_equals_batch_1_with_prompts_of_different_lengths(which, request):
    clf = request.getfixturevalue(which)
    short = "List the artifacts."
    inputs = [
        {"image": _noise(i, 30 + 7 * i, 60 - 3 * i), "instruction": short} if i % 3 == 1 else _noise(i, 30 + 7 * i, 60)
        for i in range(9)
    ]
    one = clf(inputs, batch_size=1, max_new_tokens=6, return_scores=True)
    eight = clf(inputs, batch_size=8, max_new_tokens=6, return_scores=True)
    assert [o["generated_text"] for o in one] == [o["generated_text"] for o in eight]
    assert [o["labels"] for o in one] == [o["labels"] for o in eight]
    for a, b in zip(one, eight):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)
    # The short instruction really changes the prompt (and so the answer distribution).
    assert one[1]["scores"] != pytest.approx(one[0]["scores"], abs=1e-6)


def test_batching_pads_left_even_if_the_checkpoint_pads_right(tiny_llava_path, tmp_path):
    import shutil

    folder = tmp_path / "right-padded"
    shutil.copytree(tiny_llava_path, folder)
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["padding_side"] = "right"  # as many released checkpoints save it (set for training)
    config_file.write_text(json.dumps(config))
    clf = pipeline(TASK, model=str(folder))
    assert clf.tokenizer.padding_side == "left"
    inputs = [{"image": _noise(i, 30 + 7 * i), "instruction": "List the artifacts."} if i % 2 else _noise(i)
              for i in range(4)]
    one = clf(inputs, batch_size=1, max_new_tokens=6, return_scores=True)
    four = clf(inputs, batch_size=4, max_new_tokens=6, return_scores=True)
    assert [o["generated_text"] for o in one] == [o["generated_text"] for o in four]
    for a, b in zip(one, four):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)


def test_scores_without_a_pad_token(tiny_llava_path):
    clf = pipeline(TASK, model=str(tiny_llava_path))
    reference = clf(_noise(3), max_new_tokens=4, return_scores=True)
    clf.tokenizer.pad_token = None  # some checkpoints ship none; the 14 continuations still need padding
    assert clf.tokenizer.pad_token_id is None
    result = clf(_noise(3), max_new_tokens=4, return_scores=True)
    assert result["scores"] == pytest.approx(reference["scores"], abs=1e-6)


def test_input_kinds_and_key_dataset(llava, tmp_path):
    from datasets import Dataset
    from datasets import Image as ImageFeature
    from transformers.pipelines.pt_utils import KeyDataset

    path = tmp_path / "a.png"
    _noise(1).save(path)
    array = np.asarray(_noise(1))
    expected = llava(_noise(1), max_new_tokens=4)["generated_text"]
    for source in (str(path), path, array, array.astype(np.float32) / 255.0, np.moveaxis(array, -1, 0)):
        assert llava(source, max_new_tokens=4)["generated_text"] == expected

    ds = Dataset.from_dict({"image": [str(path), str(path)]}).cast_column("image", ImageFeature())
    outs = list(llava(KeyDataset(ds, "image"), batch_size=2, max_new_tokens=4))
    assert [o["generated_text"] for o in outs] == [expected, expected]


def test_http_url(llava, tmp_path):
    _noise(2).save(tmp_path / "img.png")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/img.png"
        assert llava(url, max_new_tokens=3, timeout=10)["generated_text"] == llava(_noise(2), max_new_tokens=3)["generated_text"]
    finally:
        server.shutdown()


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16", "I", "F", "LA", "1"])
def test_load_image_converts_modes_to_rgb(mode):
    base = _noise(3, 20, 24)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257)
    elif mode == "I":
        image = base.convert("L").convert("I")
    elif mode == "F":
        image = base.convert("L").convert("F")
    else:
        image = base.convert(mode)
    out = load_image(image)
    assert out.mode == "RGB" and out.size == (24, 20)
    if mode in ("I;16", "I", "F"):
        # Rescaled, not clipped to white: greyscale levels survive.
        grey = np.asarray(base.convert("L")).astype(int)
        assert np.abs(np.asarray(out)[..., 0].astype(int) - grey).max() <= 2 or mode != "I;16"
        assert np.asarray(out).std() > 10


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert load_image(image).getpixel((0, 0)) == (255, 255, 255)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding(llava, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(60_000, 60_000))  # 3.6 gigapixels declared, a few bytes on disk
    with pytest.raises(ImageTooLargeError, match="bomb.png.*decompression bomb"):
        load_image(bomb)
    bomb.write_bytes(_png_header_only(9_000, 9_000))  # 81 MP: under PIL's cap, over ours
    with pytest.raises(ImageTooLargeError, match="bomb.png is 9000x9000.*over the limit.*max_image_pixels"):
        load_image(bomb)
    with pytest.raises(ImageTooLargeError, match="over the limit of 100"):
        llava(_noise(0), max_image_pixels=100)
    with pytest.raises(ImageTooLargeError):
        load_image(np.zeros((200, 300, 3), dtype=np.uint8), max_pixels=1000)


def test_bad_inputs_have_clear_errors(llava, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        llava(str(tmp_path / "missing.png"))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="broken.jpg"):
        llava(str(broken))
    with pytest.raises(TypeError, match="Unsupported image input"):
        load_image(3.5)
    with pytest.raises(ValueError, match="unknown keys"):
        llava({"image": _noise(0), "prompt": "x"})
    with pytest.raises(ValueError, match="threshold"):
        llava(_noise(0), threshold=2.0)
    with pytest.raises(ValueError, match="num_beams"):
        llava(_noise(0), return_scores=True, generate_kwargs={"num_beams": 2}, max_new_tokens=2)


def _answers(classifier, seeds=range(4), **kwargs) -> set[str]:
    texts = set()
    for seed in seeds:
        torch.manual_seed(seed)
        texts.add(classifier(_noise(0), max_new_tokens=8, **kwargs)["generated_text"])
    return texts


def test_greedy_by_default_and_every_way_of_asking_for_sampling_samples(llava, tiny_llava_path):
    from transformers import GenerationConfig

    # a checkpoint whose own generation config samples is still decoded greedily unless the caller asks
    llava.model.generation_config.do_sample = True
    try:
        assert len(_answers(llava)) == 1
        assert len(_answers(llava, generation_config=GenerationConfig(max_new_tokens=8))) == 1
        assert len(_answers(llava, generate_kwargs={"do_sample": False})) == 1
    finally:
        llava.model.generation_config.do_sample = False
    sampling = {
        "do_sample per call": {"do_sample": True},
        "generation_config per call": {"generation_config": GenerationConfig(do_sample=True, max_new_tokens=8)},
        "do_sample in generate_kwargs": {"generate_kwargs": {"do_sample": True}},
        "generation_config in generate_kwargs": {"generate_kwargs": {"generation_config": GenerationConfig(do_sample=True)}},
    }
    for how, kwargs in sampling.items():
        assert len(_answers(llava, **kwargs)) > 1, how
    for how, kwargs in {"do_sample": {"do_sample": True},
                        "generation_config": {"generation_config": GenerationConfig(do_sample=True)}}.items():
        at_construction = pipeline(TASK, model=llava.model, processor=llava.processor, **kwargs)
        assert len(_answers(at_construction)) > 1, f"{how} at construction"
    # sampling and scores: the scores come from the prefix, so they do not depend on the sampled answer
    out = llava(_noise(0), max_new_tokens=4, return_scores=True, do_sample=True)
    assert sum(out["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="num_beams"):  # beams asked through a generation_config are seen too
        llava(_noise(0), return_scores=True, generation_config=GenerationConfig(num_beams=2, max_new_tokens=2))
    with pytest.raises(TypeError, match="unexpected parameter.*'sample'"):
        llava(_noise(0), sample=True)


def test_idefics3_architecture(idefics3):
    out = idefics3([_noise(0), _noise(1, 70, 20)], max_new_tokens=4, return_scores=True)
    assert all(set(o) == KEYS | {"scores"} for o in out)


def test_load_pipeline_refuses_pickled_weights(tiny_llava_path, tmp_path):
    import shutil

    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_llava_path, folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises((OSError, ValueError), match="model.safetensors"):  # never falls back to the pickle
        load_pipeline(folder)
    assert load_pipeline(tiny_llava_path).model is not None


def test_offline_default_model_error_says_how_to_pass_a_local_path(tmp_path):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(OSError, match=r"Pass a local checkpoint folder.*model='/path/to/checkpoint'"):
        load_pipeline()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_pipeline(tmp_path)
    # Plain pipeline() resolves the pinned default too (transformers' own offline error).
    with pytest.raises(OSError):
        pipeline(TASK)


@pytest.mark.parametrize("how", ["pipeline.save_pretrained", "add_pipeline_code"])
def test_save_pretrained_loads_with_trust_remote_code_without_synartifact(how, llava, tiny_llava_path, tmp_path):
    import shutil

    folder = tmp_path / "shared"
    if how == "pipeline.save_pretrained":
        llava.save_pretrained(folder)
    else:  # a checkpoint folder as a Trainer writes it (model + processor), code added afterwards
        shutil.copytree(tiny_llava_path, folder)
        weights = (folder / "model.safetensors").read_bytes()
        add_pipeline_code(folder)
        assert (folder / "model.safetensors").read_bytes() == weights  # weights untouched
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"][TASK]["impl"] == "pipeline.ArtifactClassificationPipeline"
    assert (folder / "pipeline.py").exists() and (folder / "processor_config.json").exists()
    for module in folder.glob("*.py"):
        assert not re.search(r"^\s*(from|import)\s+synartifact_hf", module.read_text(), re.M), module
    expected = llava(_noise(5), max_new_tokens=5, return_scores=True)
    code = (
        "import sys, json\n"
        "class Block:\n"  # synartifact-hf is installed here; make sure the copy does not need it
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'synartifact_hf':\n"
        "            raise ImportError('synartifact_hf is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np\n"
        "from PIL import Image\n"
        "from transformers import pipeline\n"
        f"clf = pipeline(model={str(folder)!r}, trust_remote_code=True)\n"
        "img = Image.fromarray(np.random.RandomState(5).randint(0, 255, (40, 52, 3), dtype=np.uint8))\n"
        "print(json.dumps(clf(img, max_new_tokens=5, return_scores=True)))\n"
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert remote["generated_text"] == expected["generated_text"]
    assert remote["scores"] == pytest.approx(expected["scores"], abs=1e-6)
