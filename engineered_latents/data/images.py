"""One image normaliser for every adapter: whatever a dataset or a user gives -> a sane RGB image.

`load_image(source)` accepts encoded bytes, a path, a `{"bytes", "path"}` dict (how `datasets`
stores an Image feature) or a PIL image, and returns an RGB `PIL.Image` that is safe to give to
CLIP's processor:

- EXIF orientation applied (`ImageOps.exif_transpose`), as a viewer shows the photo.
- Modes: RGBA/LA/PA/P-with-transparency composited on white; 16-bit "I;16*"/"I" and float "F"
  rescaled to 8 bits first (a plain `convert("RGB")` saturates them to nearly white); CMYK,
  YCbCr, 1, L, P... converted to RGB.
- Extremely elongated images are trimmed around the centre to at most `MAX_ASPECT`:1. CLIP's
  processor resizes the short side to 224 and then centre-crops a square, so the trimmed-away
  ends are never seen by the model, while an untrimmed 1 x 3000 image becomes 224 x 672,000
  pixels (1.8 GB as float32) inside the processor.
- Large images shrunk so that the long side is at most `MAX_SIDE` (the short side stays >= 1 px).
  JPEGs are decoded at reduced scale (`Image.draft`), so a huge JPEG never fully decompresses.
- Decompression bombs: anything above PIL's `MAX_IMAGE_PIXELS` that cannot be decoded at a
  reduced scale is refused with an `ImageError` that says so.

Unreadable input raises `ImageError`; adapters skip such examples and report them.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Longest side handed to the processor (px). High enough that benchmark images (COCO, Flickr,
# ImageNet, What'sUp photos up to 4032 px) reach CLIP's processor untouched, as in the published
# protocols (a second resampling would move the numbers); low enough to bound memory.
MAX_SIDE = 4096
MAX_ASPECT = 4.0  # longest / shortest side; beyond it the ends are trimmed (see module docstring)
NORMALIZE_VERSION = 2  # bump when the output of `normalize_image` changes
_WHITE = (255, 255, 255)


class ImageError(ValueError):
    """An image that cannot be used; the message says why (shown to the user when it is skipped)."""


def load_image(source, max_side: int = MAX_SIDE) -> Image.Image:
    """Decode and normalise `source` (bytes, path, `{"bytes", "path"}` dict or PIL image) to RGB."""
    if isinstance(source, Image.Image):
        return normalize_image(source, max_side)
    data = image_bytes(source)
    return normalize_image(open_image(data, max_side), max_side)


def image_bytes(source) -> bytes:
    """The encoded bytes of an image given as bytes, a path, or a `{"bytes", "path"}` dict."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, dict):
        if source.get("bytes") is not None:
            return bytes(source["bytes"])
        if source.get("path"):
            return _read_path(source["path"])
        raise ImageError("the image entry has neither bytes nor a path")
    if isinstance(source, (str, os.PathLike)):
        return _read_path(source)
    raise ImageError(f"not an image: {type(source).__name__}")


def _read_path(path) -> bytes:
    text = str(path)
    try:
        if "://" in text:  # hf://, https://: what `datasets` leaves when bytes are not embedded
            import fsspec

            with fsspec.open(text, "rb") as f:
                return f.read()
        return Path(text).read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read {text}: {e}") from e


def open_image(data: bytes, max_side: int = MAX_SIDE) -> Image.Image:
    """Decode encoded bytes, refusing decompression bombs and decoding big JPEGs at reduced scale.

    The result is fully loaded (so a truncated file fails here, not later) but not yet normalised.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            pixels = width * height
            if pixels > max_side * max_side and image.format == "JPEG":
                image.draft("RGB", _draft_target(image.size, max_side))
            elif Image.MAX_IMAGE_PIXELS and pixels > Image.MAX_IMAGE_PIXELS:
                raise ImageError(_too_large(width, height))
            image.load()
    except Image.DecompressionBombError as e:
        raise ImageError(f"{e}; shrink the image before using it") from e
    except ImageError:
        raise
    except Image.UnidentifiedImageError as e:  # its message names a BytesIO object: say more
        raise ImageError("unreadable image: not a picture format PIL knows (not an image at "
                         "all, or a corrupt or truncated file)") from e
    except Exception as e:  # noqa: BLE001 - PIL raises many types for broken files
        raise ImageError(f"unreadable image ({type(e).__name__}: {e})") from e
    return image


def _draft_target(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The size `draft` must not go below: the final size after `shrink` (draft picks >= it)."""
    width, height = _trimmed_size(size)
    scale = min(1.0, max_side / max(width, height))
    return max(1, int(size[0] * scale)), max(1, int(size[1] * scale))


def _too_large(width: int, height: int) -> str:
    return (
        f"the image is {width} x {height} = {width * height:,} pixels, above the safety limit of "
        f"{Image.MAX_IMAGE_PIXELS:,} (a possible decompression bomb); shrink it (or save it as "
        "JPEG, which is decoded at reduced size) before using it"
    )


def normalize_image(image: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """EXIF orientation, RGB, trimmed to `MAX_ASPECT`, long side <= `max_side`."""
    image = _exif_upright(image)
    image = to_rgb(image)
    image = trim_aspect(image)
    return shrink(image, max_side)


def _exif_upright(image: Image.Image) -> Image.Image:
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the image
        return image
    return upright if upright is not None else image


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with transparency composited on white and high bit depths rescaled to 8 bits."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_to_uint8(np.asarray(image)), mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, _WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """8-bit grey from 16-bit, 32-bit integer or float pixels.

    Integers: <= 255 kept, <= 65535 divided by 257 (the 16-bit range), larger ranges min-max
    scaled. Floats: [0, 1] scaled by 255, other ranges min-max scaled. Never all white.
    """
    is_float = values.dtype.kind == "f"
    values = values.astype(np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if is_float and low >= 0 and high <= 1:
        scaled = values * 255
    elif not is_float and low >= 0 and high <= 255:
        scaled = values
    elif not is_float and low >= 0 and high <= 65535:
        scaled = values / 257
    else:
        scaled = (values - low) / ((high - low) or 1) * 255
    return np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8)


def _trimmed_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    if width > height * MAX_ASPECT:
        width = max(1, int(height * MAX_ASPECT))
    elif height > width * MAX_ASPECT:
        height = max(1, int(width * MAX_ASPECT))
    return width, height


def trim_aspect(image: Image.Image) -> Image.Image:
    """Trim the long side around the centre to at most `MAX_ASPECT` times the short side."""
    width, height = _trimmed_size(image.size)
    if (width, height) == image.size:
        return image
    left = (image.width - width) // 2
    top = (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def shrink(image: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """Resize so that the long side is at most `max_side`, keeping the aspect, short side >= 1."""
    width, height = image.size
    if max(width, height) <= max_side:
        return image
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of a PIL image (for images handed over in memory rather than encoded)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
