"""The image normaliser: modes, bit depths, orientation, size limits, broken files."""

import io

import numpy as np
import pytest
from PIL import Image

from engineered_latents.data import images
from engineered_latents.data.images import ImageError, load_image
from tests.fixtures_data import encode, pattern


def test_rgba_composited_on_white():
    rgba = pattern((8, 6), seed=1, mode="RGBA")  # even columns opaque, odd transparent
    out = load_image(encode(rgba))
    src = np.asarray(rgba)
    expected = np.where(src[..., 3:] == 255, src[..., :3], 255)
    assert out.mode == "RGB" and np.array_equal(np.asarray(out), expected)


@pytest.mark.parametrize("mode", ["L", "LA", "1", "P", "CMYK"])
def test_other_modes_become_rgb(mode):
    source = pattern((8, 6), seed=2).convert(mode)
    out = load_image(encode(source, "TIFF" if mode == "CMYK" else "PNG"))
    assert out.mode == "RGB" and out.size == (8, 6)


def test_palette_with_transparency_composited_on_white():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((1, 1), 1)
    image.info["transparency"] = 0  # colour 0 (red) is transparent
    out = np.asarray(load_image(encode(image)))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[1, 1]) == (0, 0, 255)


def test_grayscale_pixels_kept():
    gray = pattern((10, 7), seed=3, mode="L")
    out = np.asarray(load_image(encode(gray)))
    assert np.array_equal(out, np.repeat(np.asarray(gray)[..., None], 3, axis=2))


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])  # modes "I;16" and "I"
def test_16_bit_is_rescaled_not_white(dtype):
    values = np.linspace(0, 65535, 32 * 16).reshape(16, 32).astype(np.uint16)
    source = Image.fromarray(values.astype(dtype))
    assert source.mode.startswith("I")
    assert np.asarray(source.convert("RGB")).mean() > 250  # the trap: plain convert is white
    out = np.asarray(load_image(encode(source)))  # a 16-bit PNG
    assert out.mean() < 200 and out.min() == 0 and out.max() == 255
    assert np.allclose(out[..., 0], values / 257, atol=1)


def test_float_image_rescaled():
    source = Image.fromarray(np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8), mode="F")
    out = np.asarray(load_image(source))
    assert out.min() == 0 and out.max() == 255


def test_exif_orientation_applied():
    image = pattern((30, 10), seed=4)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    out = load_image(encode(image, "JPEG", exif=exif.tobytes()))
    assert out.size == (10, 30)


def test_large_image_shrunk_keeping_aspect():
    out = load_image(Image.new("RGB", (6000, 3000), "red"))
    assert out.size == (images.MAX_SIDE, images.MAX_SIDE // 2)


def test_a_benchmark_sized_photo_reaches_the_processor_untouched():
    photo = Image.new("RGB", (4032, 3024), "red")  # a phone photo, as in What'sUp
    assert load_image(photo).size == (4032, 3024)


@pytest.mark.parametrize("size", [(1, 3000), (3000, 1), (7, 5000)])
def test_elongated_image_trimmed_and_small(size):
    out = load_image(encode(Image.new("L", size, 90)))
    width, height = out.size
    assert min(width, height) >= 1 and max(width, height) <= images.MAX_SIDE
    assert max(width, height) <= images.MAX_ASPECT * min(width, height)


def test_trim_keeps_the_centre():
    column = np.arange(400, dtype=np.uint8).reshape(400, 1) % 251
    image = Image.fromarray(np.repeat(column, 10, axis=1))  # 10 wide, 400 tall
    out = np.asarray(images.trim_aspect(image))
    assert out.shape == (40, 10)
    assert np.array_equal(out, np.asarray(image)[180:220])


def test_decompression_bomb_refused_unless_jpeg(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40_000)
    big = Image.new("RGB", (300, 200), "blue")  # 60,000 px: above the limit, below twice it
    with pytest.raises(ImageError, match="safety limit"):
        load_image(encode(big, "PNG"))
    out = load_image(encode(big, "JPEG"), max_side=64)  # decoded at reduced scale instead
    assert max(out.size) == 64
    with pytest.raises(ImageError, match="shrink"):
        load_image(encode(Image.new("RGB", (400, 300)), "PNG"))  # above twice: PIL's own error


@pytest.mark.parametrize("data", [b"not an image at all", b""])
def test_garbage_is_an_image_error(data):
    with pytest.raises(ImageError, match="unreadable"):
        load_image(data)


def test_truncated_file_is_an_image_error():
    data = encode(pattern((64, 64), seed=5), "PNG")
    with pytest.raises(ImageError):
        load_image(data[: len(data) // 2])


def test_sources_bytes_path_dict(tmp_path):
    image = pattern((6, 6), seed=6)
    path = tmp_path / "x.png"
    image.save(path)
    expected = np.asarray(image)
    for source in (path.read_bytes(), str(path), path, {"bytes": None, "path": str(path)},
                   {"bytes": path.read_bytes(), "path": "ignored.png"}, image):
        assert np.array_equal(np.asarray(load_image(source)), expected)
    with pytest.raises(ImageError):
        load_image({"bytes": None, "path": None})
    with pytest.raises(ImageError):
        load_image(str(tmp_path / "missing.png"))


def test_rgb_image_returned_unchanged():
    image = pattern((5, 5), seed=7)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    assert np.array_equal(np.asarray(load_image(buffer.getvalue())), np.asarray(image))
