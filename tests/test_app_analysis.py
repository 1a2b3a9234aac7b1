"""The web app without a browser: the core never imports gradio; uploads are decoded from bytes with the
pipeline's cap and clear messages; the analysis equals the pipeline and the reward on the same image;
detection answers become pixel boxes drawn on the image; results files; the Space export."""

from __future__ import annotations

import csv
import io
import json
import runpy
import struct
import subprocess
import sys
import zlib

import pytest
from PIL import Image

from synartifact_hf.app.analysis import (
    MAX_IMAGES,
    ArtifactAnalyzer,
    UploadError,
    answer_notes,
    decode_upload,
    detection_overlay,
    model_label,
    read_detection,
    write_results,
)
from synartifact_hf.data.embedded_sample import SAMPLE_DIR
from synartifact_hf.drawing import PREDICTED_COLOR
from synartifact_hf.instructions import format_detection_answer, pixel_to_padded

SAMPLE = SAMPLE_DIR / "sub_data_0/images/000000037.png"
TOKENS = 12


def _png(width: int, height: int, color="white") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _declare_size(png: bytes, width: int, height: int) -> bytes:
    """The same PNG with its header claiming another size (a decompression bomb's header)."""
    ihdr = png[16:29]
    ihdr = struct.pack(">II", width, height) + ihdr[8:]
    chunk = b"IHDR" + ihdr
    return png[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]


def test_core_and_pipeline_do_not_import_gradio():
    code = ("import sys, synartifact_hf, synartifact_hf.pipeline, synartifact_hf.app, synartifact_hf.app.analysis, "
            "synartifact_hf.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in ('gradio', 'gradio_client')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_decode_upload_refuses_bad_files_with_their_name_in_words_for_a_visitor(caplog):
    assert decode_upload(_png(30, 20), "ok.png").size == (30, 20)
    unreadable = (r"is not an image this app can read: it may be damaged or cut off, or in another format "
                  r"\(PNG, JPEG, WebP, GIF, BMP and TIFF work\)\.$")
    cases = {
        "notes.txt": (b"just text", r"^notes\.txt " + unreadable),
        "cut.png": (_png(64, 64, "red")[:-30], r"^cut\.png " + unreadable),
        "empty.png": (b"", r"^empty\.png is empty\.$"),
        # headers claiming 64 MP (over the pipeline's 50 MP cap) and 400 MP (PIL's own cap), in ~100 bytes
        "big.png": (_declare_size(_png(8, 8), 8000, 8000),
                    r"^big\.png is 8,000 × 8,000 pixels \(64 megapixels\); this app takes images up to 50 megapixels\. "
                    r"Please upload a smaller version\.$"),
        "bomb.png": (_declare_size(_png(8, 8), 20_000, 20_000),
                     r"^bomb\.png (is 20,000 × 20,000 pixels \(400 megapixels\)|has too many pixels); this app takes "
                     r"images up to 50 megapixels\."),
    }
    with caplog.at_level("INFO", logger="synartifact_hf.app"):
        for name, (data, pattern) in cases.items():
            with pytest.raises(UploadError, match=pattern) as info:
                decode_upload(data, name)
            # no library hints, Python reprs or object addresses in what a visitor reads
            for word in ("PIL", "max_image_pixels", "0x", "<_io", "Image.", "decompression", "bomb DOS"):
                assert word not in str(info.value), (name, word)
    # the details go to the server log, one line per refused file
    records = [r for r in caplog.records if r.name == "synartifact_hf.app"]
    assert [r.getMessage().split("'")[1] for r in records] == list(cases)
    assert all("\n" not in r.getMessage() and r.exc_info is None for r in records)
    assert "UnreadableImageError" in records[0].getMessage() and "ImageTooLargeError" in records[3].getMessage()
    with pytest.raises(TypeError, match="bytes of an upload"):
        decode_upload(str(SAMPLE), "path.png")  # a path is never opened


def test_answer_notes_are_sentences_with_each_fragment_once():
    assert answer_notes({"generated_text": "   "}) == ["The model's answer is empty."]
    assert answer_notes({"generated_text": "1. Localized blur."}) == []
    notes = answer_notes({"generated_text": "1. Purple sky.\n2. Purple sky.\n3. Localized blur.\n4. Odd hands."})
    assert notes == ["Parts of the answer that match no option: “Purple sky”, “Odd hands”."]
    notes = answer_notes({"generated_text": "zzz qqq"})
    assert notes[0] == "None of the 14 options could be recognised in the answer." and "“zzz qqq”" in notes[1]
    assert "contradicts itself" in " ".join(answer_notes({"generated_text": "1. No artifacts.\n2. Localized blur."}))


def test_model_label_never_shows_the_server_path(tiny_llava_path, analyzer):
    assert model_label(str(tiny_llava_path)) == tiny_llava_path.name
    assert model_label(tiny_llava_path) == tiny_llava_path.name
    assert model_label("someone/classifier") == "someone/classifier"  # a Hub id is a name
    assert analyzer.model_label == tiny_llava_path.name and str(tiny_llava_path.parent) not in analyzer.model_label
    assert model_label(analyzer.classifier) == tiny_llava_path.name  # a pipeline object: its model's folder name


@pytest.fixture(scope="module")
def analyzer(tiny_llava_path):
    return ArtifactAnalyzer(str(tiny_llava_path), str(tiny_llava_path), max_new_tokens=TOKENS,
                            detection_max_new_tokens=24, device="cpu")


def test_analysis_equals_pipeline_and_reward_and_keeps_going_after_bad_files(analyzer, tiny_llava_path, tmp_path):
    from synartifact_hf.pipeline import load_image, load_pipeline
    from synartifact_hf.reward import ArtifactReward

    seen = []
    reports = analyzer.analyze([("bad.png", b"nope"), ("sample.png", SAMPLE.read_bytes()),
                                ("white.png", _png(48, 32))], progress=lambda i, n, name: seen.append((i, n)))
    assert [r.name for r in reports] == ["bad.png", "sample.png", "white.png"]
    assert reports[0].error.startswith("bad.png is not an image") and reports[0].classification is None
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert analyzer.detector is analyzer.classifier  # the same checkpoint is loaded once
    pipe = load_pipeline(str(tiny_llava_path))
    for report, image in ((reports[1], load_image(SAMPLE)), (reports[2], Image.open(io.BytesIO(_png(48, 32))))):
        direct = pipe(image.convert("RGB"), max_new_tokens=TOKENS, return_scores=True)
        assert report.classification["generated_text"] == direct["generated_text"]
        assert report.classification["scores"] == pytest.approx(direct["scores"], abs=1e-6)
        rewards, info = ArtifactReward(classifier=None, device="cpu").rewards_from_outputs([direct])
        assert report.reward["reward"] == pytest.approx(float(rewards[0]), abs=1e-6)
        assert list(report.reward["artifact_terms"].values()) == pytest.approx(info["artifact_terms"][0], abs=1e-6)
        assert set(report.detection) >= {"generated_text", "boxes", "judgement"}
    # the bundled sample is recognised by its bytes; any other image is not
    assert [b["bbox"] for b in reports[1].reference["boxes"]] == [[331, 102, 398, 170], [270, 300, 352, 388]]
    assert reports[2].reference is None
    jsonl, table = write_results(reports, tmp_path)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["name"] for line in lines] == ["bad.png", "sample.png", "white.png"]
    assert lines[1]["classification"] == json.loads(json.dumps(reports[1].classification))
    rows = list(csv.reader(table.open()))
    assert rows[0][:3] == ["image", "verdict", "labels"] and rows[1][1] == "error" and len(rows) == 4
    assert not list(tmp_path.glob(".*.tmp"))


def test_analysis_refuses_empty_and_too_many(analyzer):
    with pytest.raises(UploadError, match="No image was given"):
        analyzer.analyze([])
    with pytest.raises(UploadError, match=f"at most {MAX_IMAGES} per run"):
        analyzer.analyze([("a.png", b"x")] * (MAX_IMAGES + 1))


def test_detection_answer_becomes_boxes_drawn_on_the_image():
    image = Image.new("RGB", (400, 200), (90, 90, 90))
    box = (100, 50, 220, 150)
    answer = format_detection_answer([("Localized blur", pixel_to_padded(box, 400, 200))])
    detection = read_detection(answer, 400, 200)
    assert detection["judgement"] is True and detection["labels"] == ["Localized blur"]
    (predicted,) = detection["boxes"]
    assert predicted["label"] == "Localized blur" and predicted["bbox"] == pytest.approx(box, abs=0.5)
    overlay = detection_overlay(image, detection["boxes"])
    assert overlay.getpixel((100, 120)) == PREDICTED_COLOR and overlay.getpixel((300, 20)) == (90, 90, 90)


def test_space_export_writes_a_runnable_space(tmp_path, tiny_llava_path):
    gr = pytest.importorskip("gradio", reason="the Space export needs gradio: pip install 'synartifact-hf[app]'")
    import yaml

    from synartifact_hf.cli import main

    out = tmp_path / "space"
    assert main(["app", "--export-space", str(out), "--model", str(tiny_llava_path), "--max-new-tokens", "8"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "app.py", "requirements.txt"]
    readme = (out / "README.md").read_text()
    meta = yaml.safe_load(readme.split("---\n")[1])
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gr.__version__ and meta["app_file"] == "app.py"
    assert meta["models"] == [str(tiny_llava_path)]
    assert "synartifact-hf[app]" in (out / "requirements.txt").read_text()
    space = runpy.run_path(str(out / "app.py"))  # not __main__: builds the app, does not launch
    assert isinstance(space["demo"], gr.Blocks)
    assert "analyze" in [d["api_name"] for d in space["demo"].config["dependencies"]]
    assert main(["app", "--export-space", str(out), "--model", "someone/model"]) == 1  # not empty: refused
    assert main(["app", "--export-space", str(out), "--model", "someone/model", "--overwrite"]) == 0
    assert "someone/model" in (out / "app.py").read_text()
