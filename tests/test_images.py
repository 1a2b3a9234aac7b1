"""synartifact_hf.images: one converter, one float rule, errors with fields a person can read."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from synartifact_hf.images import (
    ImageTooLargeError,
    UnreadableImageError,
    load_image,
    to_pil_images,
)


def _batch(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, 6, 10, generator=torch.Generator().manual_seed(seed))


def test_reward_and_pipeline_see_the_same_pixels_for_every_input_kind():
    from synartifact_hf import pipeline, reward

    images = _batch()
    expected = [np.asarray(im) for im in reward.to_pil_images(images)]
    channels_last = images.permute(0, 2, 3, 1).numpy()
    uint8 = np.stack(expected)
    for batch in (images, images.half(), channels_last, uint8, torch.from_numpy(uint8), list(images)):
        got = [np.asarray(im) for im in to_pil_images(batch)]
        tolerance = 1 if isinstance(batch, torch.Tensor) and batch.dtype == torch.float16 else 0
        assert all(np.abs(g.astype(int) - e.astype(int)).max() <= tolerance for g, e in zip(got, expected))
    # The pipeline's loader, one image at a time, agrees with the reward's batch converter.
    for i in range(len(images)):
        for single in (images[i], images[i].numpy(), channels_last[i]):
            assert np.array_equal(np.asarray(pipeline.load_image(single)), expected[i])


@pytest.mark.parametrize("bad", [np.full((4, 5, 3), 255.0, np.float32), np.full((4, 5, 3), -0.5, np.float32),
                                 np.full((4, 5, 3), np.nan, np.float32)])
def test_floats_outside_0_1_are_refused_by_the_pipeline_loader_and_the_reward_alike(bad):
    """The old pipeline guessed [0, 255] from the maximum; the old reward refused: one rule now."""
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*x / 2 \+ 0.5"):
        load_image(bad)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        to_pil_images(bad[None])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        to_pil_images(torch.from_numpy(bad).permute(2, 0, 1)[None])


def test_float_rule_rounds_and_tolerates_half_precision_overshoot():
    assert load_image(np.full((2, 2), 0.5, np.float32)).getpixel((0, 0)) == (128, 128, 128)
    assert load_image(np.full((2, 2, 3), 1.0005, np.float32)).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(torch.full((3, 2, 2), 1 / 255)).getpixel((1, 1)) == (1, 1, 1)


def test_torch_tensors_are_channels_first_even_when_the_width_could_be_channels():
    # (3, 4, 4): numpy would read (H=3, W=4, RGBA); torch's convention is (C, H, W).
    tensor = torch.zeros(1, 3, 4, 4)
    tensor[:, 0] = 1.0
    (image,) = to_pil_images(tensor)
    assert image.size == (4, 4) and image.getpixel((3, 3)) == (255, 0, 0)


def test_size_error_has_fields_and_survives_pickling(tmp_path):
    with pytest.raises(ImageTooLargeError) as info:
        load_image(np.zeros((200, 300, 3), dtype=np.uint8), max_pixels=1000)
    err = info.value
    assert (err.width, err.height, err.limit, err.source_name) == (300, 200, 1000, "ndarray")
    again = pickle.loads(pickle.dumps(err))
    assert (again.width, again.height, again.limit, str(again)) == (300, 200, 1000, str(err))
    path = tmp_path / "big.png"
    Image.new("RGB", (40, 30)).save(path)
    with pytest.raises(ImageTooLargeError) as info:
        load_image(path, max_pixels=100)
    assert (info.value.width, info.value.height, info.value.source_name) == (40, 30, str(path))


def test_unreadable_bytes_give_a_reason_without_object_addresses():
    with pytest.raises(UnreadableImageError) as info:
        load_image({"bytes": b"definitely not an image", "path": None})
    err = info.value
    assert err.source_name == "image bytes"
    assert "0x" not in err.reason and "BytesIO" not in err.reason and "<" not in str(err)
    assert isinstance(err, ValueError) and err.reason in str(err)

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, format="PNG")
    with pytest.raises(UnreadableImageError, match="truncated") as info:
        load_image({"bytes": buffer.getvalue()[:-40], "path": "cut.png"})
    assert info.value.source_name == "cut.png"
    assert pickle.loads(pickle.dumps(info.value)).reason == info.value.reason


def test_batches_with_the_wrong_shape_or_kind_say_what_was_expected():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\) or \(B, H, W, 3\)"):
        to_pil_images(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match=r"images\[1\] is str"):
        to_pil_images([Image.new("RGB", (4, 4)), "x.png"])
    with pytest.raises(TypeError, match="Unsupported images"):
        to_pil_images("x.png")
