"""Images in, RGB ``PIL.Image`` out: the one place the package turns what users hand it into pixels.

:func:`load_image` reads one image (a PIL image, a local path, an http(s) URL, a numpy array, a torch
tensor or a ``datasets`` image dict) and :func:`to_pil_images` converts a batch (a list, or a 4-D
array / tensor such as a diffusers pipeline's ``output_type="pt"`` / ``"np"`` output). The
classifier pipeline, ``classify``, curation, the app and the reward all go through here, so the
rules below hold everywhere:

- **Floats are in [0, 1].** A float array or tensor is multiplied by 255 and rounded. Values outside
  [0, 1] (beyond a 1e-3 rounding slack) or NaN are refused with a ``ValueError`` that says how to map
  the usual other ranges (``x / 2 + 0.5`` for [-1, 1], ``x / 255`` for [0, 255]) instead of guessing
  the range from the data: a dark image in [0, 255] and a bright one in [0, 1] can have the same maximum.
- **Integers**: uint8 as is, uint16 keeps its high byte, other integer types are clipped to [0, 255].
- **Layout**: (H, W), (H, W, 1|3|4) or channels-first (1|3|4, H, W) per image; batches add a leading B.
- **Colour**: any PIL mode becomes RGB; 16-bit, 32-bit and float greyscale are rescaled (a plain
  ``convert`` would clip them to white); transparency is composited on white; EXIF orientation is applied.
- **Size**: an image declaring more than ``max_pixels`` pixels is refused from its header, before any
  pixel is decoded (decompression bombs), with :class:`ImageTooLargeError`; a file PIL cannot read
  raises :class:`UnreadableImageError`. Both are ``ValueError`` and carry fields (``source_name``,
  ``width``, ``height``, ``limit``, ``reason``) so an app can word its own message for a visitor.

This module imports only numpy and PIL (torch only if the caller already did), and the classifier
pipeline imports it relatively, so ``save_pretrained`` copies it next to a checkpoint.
"""

from __future__ import annotations

import io
import os
import re
import sys
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "FLOAT_RANGE_TOLERANCE",
    "MAX_DOWNLOAD_BYTES",
    "MAX_IMAGE_PIXELS",
    "ImageTooLargeError",
    "UnreadableImageError",
    "load_image",
    "to_pil_images",
]

# Images with more pixels are refused before their pixels are decoded (decompression bombs); 50 MP is
# ~7000x7000, far above what any VLM processor keeps (LLaVA-1.5 resizes to 336x336).
MAX_IMAGE_PIXELS = 50_000_000
MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024
# Float pixels may stray this far outside [0, 1]: half-precision rounding of a clamped 1.0 or 0.0.
FLOAT_RANGE_TOLERANCE = 1e-3


class ImageTooLargeError(ValueError):
    """An image over a size limit, refused before its pixels were decoded.

    Attributes:
        source_name: what the image was (a path, a URL, ``"image bytes"``, a type name).
        width, height: its declared size, or None when the size is not known (a download over
            :data:`MAX_DOWNLOAD_BYTES`, or PIL's own bomb guard fired before the size was readable).
        limit: the limit it broke: pixels, or bytes when ``num_bytes`` is set.
        num_bytes: the download size for the byte limit, else None.
    """

    def __init__(self, message: str, *, source_name: str, limit: int, width: int | None = None,
                 height: int | None = None, num_bytes: int | None = None):
        super().__init__(message)
        self.source_name = source_name
        self.width = width
        self.height = height
        self.limit = limit
        self.num_bytes = num_bytes

    def __reduce__(self):  # picklable across processes (keyword-only fields)
        return _rebuild_too_large, (str(self), self.source_name, self.limit, self.width, self.height, self.num_bytes)


def _rebuild_too_large(message, source_name, limit, width, height, num_bytes):
    return ImageTooLargeError(message, source_name=source_name, limit=limit, width=width, height=height,
                              num_bytes=num_bytes)


class UnreadableImageError(ValueError):
    """Bytes or a file that is not an image PIL can decode.

    Attributes:
        source_name: what the image was (a path, a URL, ``"image bytes"``).
        reason: why, worded for a person (no object addresses, no Python reprs).
    """

    def __init__(self, source_name: str, reason: str):
        super().__init__(f"Cannot read {source_name} as an image: {reason}")
        self.source_name = source_name
        self.reason = reason

    def __reduce__(self):
        return UnreadableImageError, (self.source_name, self.reason)


_ADDRESS = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


def _reason(err: BaseException) -> str:
    if isinstance(err, UnidentifiedImageError):
        return "not an image file, or a format PIL cannot read"
    text = _ADDRESS.sub("the data", str(err)).strip()
    if "truncated" in text.lower():
        return "the file is truncated (cut off before the end of the image data)"
    return text or type(err).__name__


def _describe(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return type(source).__name__


def _check_size(width: int, height: int, source, max_pixels: int) -> None:
    if width * height > max_pixels:
        name = _describe(source)
        raise ImageTooLargeError(
            f"Image {name} is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (decompression-bomb guard). Resize it, or pass max_image_pixels=N to the pipeline "
            "call if you trust the file.",
            source_name=name, width=int(width), height=int(height), limit=int(max_pixels),
        )


def _open(fp, source, max_pixels: int) -> Image.Image:
    name = _describe(source)
    try:
        image = Image.open(fp)
    except Image.DecompressionBombError as err:
        # PIL refuses above 2 x PIL.Image.MAX_IMAGE_PIXELS while reading the header, before we see the size.
        pil_limit = int(2 * Image.MAX_IMAGE_PIXELS) if Image.MAX_IMAGE_PIXELS else max_pixels
        raise ImageTooLargeError(
            f"Image {name} refused as a decompression bomb: its header declares more than {pil_limit:,} pixels "
            f"(PIL's own guard, PIL.Image.MAX_IMAGE_PIXELS, applies on top of max_image_pixels={max_pixels:,})",
            source_name=name, limit=min(pil_limit, max_pixels),
        ) from err
    except (OSError, SyntaxError) as err:
        raise UnreadableImageError(name, _reason(err)) from err
    # The header gives the size; nothing has been decoded yet.
    _check_size(*image.size, source, max_pixels)
    try:
        image.load()
    except (OSError, SyntaxError) as err:
        raise UnreadableImageError(name, _reason(err)) from err
    return image


def _torch_tensor_type():
    # A tensor exists only if torch was imported by someone; never import it here (import cost).
    torch = sys.modules.get("torch")
    return getattr(torch, "Tensor", None)


def _tensor_to_numpy(tensor) -> np.ndarray:
    tensor = tensor.detach()
    if tensor.is_floating_point():
        tensor = tensor.float()  # numpy has no bfloat16
    return tensor.cpu().numpy()


def _is_channels_first(shape: tuple, from_torch: bool = False) -> bool:
    """(C, H, W)? Torch tensors are channels-first whenever the first axis can be channels (torch's
    convention); numpy arrays only when the last axis cannot be (numpy / PIL's convention is (H, W, C))."""
    if len(shape) != 3 or shape[0] not in (1, 3, 4):
        return False
    return from_torch or shape[-1] not in (1, 3, 4)


def _height_width(shape: tuple, from_torch: bool = False) -> tuple[int, int]:
    return tuple(int(n) for n in (shape[1:3] if _is_channels_first(shape, from_torch) else shape[:2]))


def _to_uint8(array: np.ndarray, what: str = "image") -> np.ndarray:
    """The float / integer rule of the module docstring."""
    if np.issubdtype(array.dtype, np.floating):
        finite = bool(np.isfinite(array).all())
        lo = float(array.min(initial=0.0)) if finite else float("nan")
        hi = float(array.max(initial=0.0)) if finite else float("nan")
        if not (finite and lo >= -FLOAT_RANGE_TOLERANCE and hi <= 1 + FLOAT_RANGE_TOLERANCE):
            raise ValueError(
                f"A float {what} must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]"
                + ("" if finite else " (NaN or infinite values)")
                + "; map [-1, 1] with x / 2 + 0.5 and [0, 255] with x / 255 (diffusers pipelines give [0, 1] "
                "with output_type='pt' or 'np')"
            )
        return np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        return np.clip(array.astype(np.int64), 0, 255).astype(np.uint8)
    raise TypeError(f"Unsupported {what} dtype {array.dtype}; pass uint8, uint16, another integer type or float in [0, 1]")


def _from_array(array: np.ndarray, from_torch: bool = False) -> Image.Image:
    if _is_channels_first(array.shape, from_torch):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"Expected an image array of shape (H, W), (H, W, 1|3|4) or (1|3|4, H, W), got {array.shape}")
    return Image.fromarray(np.ascontiguousarray(_to_uint8(array, "image array")))


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB for any PIL mode: 16/32-bit and float greyscale are rescaled to 8 bits (a plain convert would
    clip them to white), transparency is composited on white, CMYK/L/P/... are converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image).astype(np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(array.max(initial=0.0)), 1.0)
        image = Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB") if image.mode != "RGB" else image


def _download(url: str, timeout: float | None) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout or 30) as response:  # noqa: S310 (http(s) only)
        data = response.read(MAX_DOWNLOAD_BYTES + 1)
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ImageTooLargeError(f"Image {url} is larger than {MAX_DOWNLOAD_BYTES:,} bytes",
                                 source_name=url, limit=MAX_DOWNLOAD_BYTES, num_bytes=len(data))
    return data


def load_image(source, timeout: float | None = None, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """An RGB ``PIL.Image`` from a PIL image, a local path, an http(s) URL, a numpy array, a torch
    tensor or a ``datasets`` image dict (``{"bytes": ..., "path": ...}``), upright per its EXIF orientation.

    Raises :class:`ImageTooLargeError` above ``max_pixels`` (checked from the header, before decoding),
    ``FileNotFoundError`` for a missing path, :class:`UnreadableImageError` for bytes that are no image
    and ``ValueError`` for arrays outside the rules of the module docstring.

    >>> import numpy as np
    >>> load_image(np.full((2, 3, 3), 0.5, dtype=np.float32)).getpixel((0, 0))
    (128, 128, 128)
    """
    tensor_type = _torch_tensor_type()
    from_torch = tensor_type is not None and isinstance(source, tensor_type)
    if from_torch:
        source = _tensor_to_numpy(source)
    if isinstance(source, Image.Image):
        _check_size(*source.size, source, max_pixels)
        image = source
    elif isinstance(source, np.ndarray):
        if source.ndim >= 2:
            height, width = _height_width(source.shape, from_torch)
            _check_size(width, height, source, max_pixels)
        image = _from_array(source, from_torch)
    elif isinstance(source, dict) and ("bytes" in source or "path" in source):
        if source.get("bytes") is not None:
            image = _open(io.BytesIO(source["bytes"]), source.get("path") or "image bytes", max_pixels)
        else:
            return load_image(source["path"], timeout=timeout, max_pixels=max_pixels)
    elif isinstance(source, (str, os.PathLike)):
        text = str(source)
        if text.startswith(("http://", "https://")):
            image = _open(io.BytesIO(_download(text, timeout)), text, max_pixels)
        else:
            path = Path(text)
            if not path.is_file():
                raise FileNotFoundError(f"Image file not found: {path}")
            image = _open(path, path, max_pixels)
    else:
        raise TypeError(
            f"Unsupported image input {type(source).__name__}; pass a PIL image, a path, an http(s) URL, a numpy "
            "array, a torch tensor or a datasets image"
        )
    image = ImageOps.exif_transpose(image) or image
    return _to_rgb(image)


def to_pil_images(images) -> list[Image.Image]:
    """RGB images from a batch: a list of PIL images (or of single-image arrays / tensors), or a 4-D
    array or tensor, (B, 3, H, W) or (B, H, W, 3), on any device. Floats follow the module's rule
    ([0, 1]), so the reward sees exactly the pixels the pipeline sees for the same input.

    >>> import numpy as np
    >>> [im.size for im in to_pil_images(np.zeros((2, 3, 4, 5), dtype=np.float32))]  # (B, 3, H, W)
    [(5, 4), (5, 4)]
    """
    if isinstance(images, (list, tuple)):
        tensor_type = _torch_tensor_type()
        kinds = (Image.Image, np.ndarray) + ((tensor_type,) if tensor_type is not None else ())
        bad = [i for i, im in enumerate(images) if not isinstance(im, kinds)]
        if bad:
            raise TypeError(f"images[{bad[0]}] is {type(images[bad[0]]).__name__}; a list of images must hold PIL "
                            "images (or single-image arrays / tensors)")
        return [load_image(im, max_pixels=sys.maxsize) for im in images]
    tensor_type = _torch_tensor_type()
    from_torch = tensor_type is not None and isinstance(images, tensor_type)
    if from_torch:
        images = _tensor_to_numpy(images)
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or not (images.shape[1] in (1, 3, 4) or images.shape[-1] in (1, 3, 4)):
            raise ValueError(f"An image batch must be (B, 3, H, W) or (B, H, W, 3), got shape {images.shape}")
        batch = _to_uint8(images, "image batch")  # one range check for the whole batch
        return [_to_rgb(_from_array(image, from_torch)) for image in batch]
    raise TypeError(
        f"Unsupported images {type(images).__name__}: pass a float tensor (B, 3, H, W) in [0, 1], a uint8 "
        "array (B, H, W, 3) or a list of PIL images"
    )
