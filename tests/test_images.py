"""Tests for atlas.inputs.images: decoding edge cases, skip reasons, the embedded set, memory images."""

from __future__ import annotations

import logging
import pickle
import socket
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from atlas.inputs import images as im
from atlas.inputs.images import (
    AtlasImage,
    ImageReadError,
    content_hash,
    load_embedded_set,
    load_image_folder,
    memory_image,
    read_rgb,
)
from atlas.records import ImageInfo, SkippedItem

# ------------------------------------------------------------------------------------------
# Fixture writers
# ------------------------------------------------------------------------------------------


def _png_bytes(
    width: int, height: int, bit_depth: int, colour_type: int, rows: list[bytes], cut_stream: bool = False
) -> bytes:
    """A minimal PNG written by hand (PIL cannot write 16-bit RGB or lie about its size).

    ``cut_stream`` drops the second half of the compressed pixel stream, so decoding fails.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    data = zlib.compress(b"".join(b"\x00" + row for row in rows))  # filter type 0 per row
    data = data[: len(data) // 2] if cut_stream else data
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _quadrants(w: int, h: int) -> Image.Image:
    """TL red, TR green, BL blue, BR white (big flat blocks survive JPEG)."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[: h // 2, : w // 2] = (255, 0, 0)
    arr[: h // 2, w // 2 :] = (0, 255, 0)
    arr[h // 2 :, : w // 2] = (0, 0, 255)
    arr[h // 2 :, w // 2 :] = (255, 255, 255)
    return Image.fromarray(arr)


def _close(pixel, expected, tol=0):
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, expected))


# ------------------------------------------------------------------------------------------
# read_rgb: conversions
# ------------------------------------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored pixels must be turned 90 degrees clockwise for display
    _quadrants(64, 32).save(path, quality=95, exif=exif)
    out = read_rgb(path)
    assert out.mode == "RGB" and out.size == (32, 64)  # (width, height) swapped
    # 90 degrees clockwise: stored BL -> TL, TL -> TR, BR -> BL, TR -> BR
    assert _close(out.getpixel((8, 16)), (0, 0, 255), 40)
    assert _close(out.getpixel((24, 16)), (255, 0, 0), 40)
    assert _close(out.getpixel((8, 48)), (255, 255, 255), 40)
    assert _close(out.getpixel((24, 48)), (0, 255, 0), 40)
    # The folder record reports the size after orientation.
    images, _ = load_image_folder(tmp_path)
    assert (images[0].width, images[0].height) == (32, 64)


@pytest.mark.parametrize("mode, value, expected", [("L", 7, (7, 7, 7)), ("1", 1, (255, 255, 255))])
def test_grey_modes(tmp_path, mode, value, expected):
    path = tmp_path / "grey.png"
    Image.new(mode, (5, 4), value).save(path)
    out = read_rgb(path)
    assert out.mode == "RGB" and out.size == (5, 4) and out.getpixel((2, 2)) == expected


def test_palette_with_transparency_composited_over_white(tmp_path):
    path = tmp_path / "palette.png"
    pal = Image.new("P", (4, 2), 0)
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    pal.putpixel((3, 1), 1)
    pal.save(path, transparency=0)  # index 0 (red) is fully transparent
    assert Image.open(path).mode == "P"
    out = read_rgb(path)
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((3, 1)) == (0, 0, 255)


def test_palette_without_transparency(tmp_path):
    path = tmp_path / "palette.gif"
    Image.new("RGB", (3, 3), (10, 200, 30)).quantize(colors=4).save(path)
    assert Image.open(path).mode == "P"
    assert read_rgb(path).getpixel((1, 1)) == (10, 200, 30)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_composited_over_white(tmp_path, mode):
    arr = np.zeros((1, 3, 4), np.uint8)
    arr[0, 0] = (255, 0, 0, 0)  # transparent red -> white
    arr[0, 1] = (0, 0, 0, 255)  # opaque black stays black
    arr[0, 2] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    img = Image.fromarray(arr).convert(mode)
    path = tmp_path / f"{mode}.png"
    img.save(path)
    out = read_rgb(path)
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 0)) == (0, 0, 0)
    assert _close(out.getpixel((2, 0)), (127, 127, 127), 1)


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 0, 0)).save(path, quality=95)  # full magenta ink
    assert Image.open(path).mode == "CMYK"
    out = read_rgb(path)
    assert out.mode == "RGB" and _close(out.getpixel((8, 8)), (255, 0, 255), 8)


# Clipping to 8 bits would turn 1000 and 32896 into 255; scaling maps them to 4 and 128.
_GREY16 = np.array([[0, 257, 1000, 32896, 65535]], np.uint16)
_GREY16_8BIT = [0, 1, 4, 128, 255]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_grey_is_scaled_not_clipped(tmp_path, suffix):
    path = tmp_path / f"grey16{suffix}"
    Image.fromarray(_GREY16).save(path)
    assert Image.open(path).mode.startswith("I;16")
    out = np.asarray(read_rgb(path))
    assert out[0, :, 0].tolist() == _GREY16_8BIT
    assert np.array_equal(out[..., 0], out[..., 2])


def test_16bit_rgb_png(tmp_path):
    path = tmp_path / "rgb16.png"
    px = [(0x0000, 0x8080, 0xFFFF), (0x0101, 0xFF00, 0x1234)]
    path.write_bytes(_png_bytes(2, 1, 16, 2, [b"".join(struct.pack(">HHH", *p) for p in px)]))
    out = np.asarray(read_rgb(path))
    assert out[0].tolist() == [[0, 128, 255], [1, 255, 18]]


def test_32bit_int_and_float_grey(tmp_path):
    path_i = tmp_path / "int32.tif"
    Image.fromarray(np.array([[0, 32896, 65535]], np.int32)).save(path_i)
    assert Image.open(path_i).mode == "I"
    assert np.asarray(read_rgb(path_i))[0, :, 1].tolist() == [0, 128, 255]
    path_f = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(path_f)
    assert Image.open(path_f).mode == "F"
    assert np.asarray(read_rgb(path_f))[0, :, 1].tolist() == [0, 128, 255]


# ------------------------------------------------------------------------------------------
# read_rgb / folders: skip reasons
# ------------------------------------------------------------------------------------------


def _write_bad_files(folder):
    jpeg = folder / "truncated.jpg"
    Image.fromarray(_noise(64, 64)).save(jpeg, quality=90)
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image\n")
    # 100000 x 100000 declared, a few hundred bytes on disk; PIL itself refuses this one.
    (folder / "bomb.png").write_bytes(_png_bytes(100_000, 100_000, 8, 0, [b"\x00" * 10]))


def test_bad_files_are_skipped_with_reasons(tmp_path, caplog):
    _write_bad_files(tmp_path)
    Image.new("RGB", (8, 8), "red").save(tmp_path / "good.png")
    with caplog.at_level(logging.WARNING, logger="atlas.inputs.images"):
        images, skipped = load_image_folder(tmp_path)
    assert [i.name for i in images] == ["good.png"]
    reasons = {s.path: s.reason for s in skipped}
    assert reasons["empty.png"] == "empty file (0 bytes)"
    assert reasons["text.jpg"] == "not a recognised image format"
    assert reasons["truncated.jpg"].startswith("corrupt or truncated image data")
    assert reasons["bomb.png"].startswith("too large")
    assert all("\n" not in r for r in reasons.values())
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "atlas.inputs.images")
    for name in reasons:
        assert name in logged
    assert skipped[0].item() == SkippedItem(what=f"image {skipped[0].path}", reason=skipped[0].reason)


def test_max_pixels_is_checked_before_decoding(tmp_path):
    # Declares 3000 x 3000 (under PIL's limit) but its pixel stream is cut: decoding fails as
    # truncated, so the "too large" reason proves the size was refused before decoding.
    path = tmp_path / "declared.png"
    rows = [_noise(1, 1000, seed=i).tobytes() for i in range(4)]
    path.write_bytes(_png_bytes(3000, 3000, 8, 0, rows, cut_stream=True))
    with pytest.raises(ImageReadError, match=r"too large: 3000x3000 = 9,000,000 pixels exceeds max_pixels=1,000,000"):
        read_rgb(path, max_pixels=1_000_000)
    with pytest.raises(ImageReadError, match="corrupt or truncated"):
        read_rgb(path)
    small = tmp_path / "small.png"
    Image.new("RGB", (20, 20)).save(small)
    images, skipped = load_image_folder(tmp_path, max_pixels=399, extensions=["png"])
    assert images == [] and {s.path for s in skipped} == {"declared.png", "small.png"}
    assert read_rgb(small, max_pixels=400).size == (20, 20)


def test_read_rgb_errors(tmp_path):
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_rgb(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_rgb(tmp_path)
    with pytest.raises(ValueError, match="max_pixels must be a positive int"):
        read_rgb(tmp_path / "x.png", max_pixels=0)


def test_folder_is_recursive_sorted_and_deterministic(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for i, rel in enumerate(["b/deep/z.png", "b/a.JPG", "c.tif", "a.png", ".hidden/x.png", ".dot.png"]):
        Image.fromarray(_noise(8, 8, seed=i)).save(tmp_path / rel, format="PNG")
    (tmp_path / "notes.txt").write_text("reported: not an image extension")
    Image.fromarray(_noise(8, 8, seed=3)).save(tmp_path / "copy_of_a.png")  # same pixels as a.png
    images, skipped = load_image_folder(tmp_path)
    assert [i.name for i in images] == ["a.png", "b/a.JPG", "b/deep/z.png", "c.tif"]
    assert [(s.path, s.reason) for s in skipped] == [("copy_of_a.png", "duplicate of a.png (identical pixels)"),
                                                     ("notes.txt", "not an image file extension (.txt)")]
    assert images[0].source == "image folder: a.png"
    again, _ = load_image_folder(tmp_path)
    assert again == images  # loader is excluded from equality
    only_png, _ = load_image_folder(tmp_path, extensions=[".png"])
    assert [i.name for i in only_png] == ["a.png", "b/deep/z.png"]


def test_folder_parameter_validation(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_image_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="not a single string"):
        load_image_folder(tmp_path, extensions=".png")
    with pytest.raises(ValueError, match="at least one"):
        load_image_folder(tmp_path, extensions=[])


def test_atlas_image_reload_checks_hash_and_pickles(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(_noise(6, 5)).save(path)
    (img,), _ = load_image_folder(tmp_path, licence="CC0", credit="me")
    assert np.array_equal(np.asarray(img.load()), _noise(6, 5))
    clone = pickle.loads(pickle.dumps(img))
    assert clone == img and np.array_equal(np.asarray(clone.load()), _noise(6, 5))
    info = img.info()
    assert isinstance(info, ImageInfo) and (info.licence, info.credit, info.width, info.height) == ("CC0", "me", 5, 6)
    Image.fromarray(_noise(6, 5, seed=9)).save(path)  # the file changes after listing
    with pytest.raises(ImageReadError, match="pixels changed"):
        img.load()


# ------------------------------------------------------------------------------------------
# Embedded set
# ------------------------------------------------------------------------------------------


def test_embedded_set_loads_offline_with_credits(monkeypatch, caplog):
    def no_network(*args, **kwargs):
        raise AssertionError("the embedded set must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with caplog.at_level(logging.INFO, logger="atlas.inputs.images"):
        images, skipped = load_embedded_set()
    assert skipped == []
    names = [i.name for i in images]
    assert len(names) >= 8 and len(set(names)) == len(names)
    assert {"astronaut", "chelsea", "coffee", "rocket", "china", "flower"} <= set(names)
    for img in images:
        assert img.source and img.licence and img.credit, img.name
        assert len(img.content_hash) == 64 and int(img.content_hash, 16) >= 0
    assert len({i.content_hash for i in images}) == len(images)
    colour = [i for i in images if np.ptp(np.asarray(i.load()).astype(int), axis=2).max() > 0]
    assert len(colour) >= 8
    by_name = {i.name: i for i in images}
    assert by_name["astronaut"].source == "skimage.data.astronaut()"
    assert "public domain" in by_name["astronaut"].licence
    assert by_name["chelsea"].licence == "CC0" and "Stefan van der Walt" in by_name["chelsea"].credit
    assert by_name["china"].licence == "CC BY 2.0"
    assert (by_name["coffee"].width, by_name["coffee"].height) == (600, 400)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "grace_hopper" not in names
        assert any("matplotlib is not installed" in r.getMessage() for r in caplog.records)


def test_embedded_subset_and_pixels_match_skimage():
    import skimage.data

    (img,), skipped = load_embedded_set(names=["chelsea"])
    assert skipped == []
    assert np.array_equal(np.asarray(img.load()), skimage.data.chelsea())
    with pytest.raises(ValueError, match="unknown embedded image"):
        load_embedded_set(names=["lena"])
    with pytest.raises(ValueError, match="not a single string"):
        load_embedded_set(names="chelsea")


def test_embedded_missing_file_is_reported_not_downloaded(monkeypatch):
    fake = im._EmbeddedSpec("kidney", "skimage.data", "kidney.tif", "skimage.data.kidney()", "CC0", "x")
    absent = im._EmbeddedSpec("nothing", "no_such_package_xyz", "a.png", "no_such_package_xyz.a()", "CC0", "x")
    monkeypatch.setattr(im, "_EMBEDDED", (fake, absent))
    monkeypatch.setattr(im, "EMBEDDED_NAMES", ("kidney", "nothing"))
    images, skipped = load_embedded_set()
    assert images == []
    assert skipped[0].path == "skimage.data.kidney()" and "not bundled" in skipped[0].reason
    assert skipped[1].reason == "no_such_package_xyz is not installed"


# ------------------------------------------------------------------------------------------
# Hashes and records
# ------------------------------------------------------------------------------------------


def test_content_hash_is_pixel_based(tmp_path):
    arr = _noise(12, 10)
    Image.fromarray(arr).save(tmp_path / "a.png")
    Image.fromarray(arr).save(tmp_path / "a.tif")
    Image.fromarray(arr).convert("RGBA").save(tmp_path / "a_rgba.png")  # opaque alpha: same pixels
    hashes = {content_hash(read_rgb(tmp_path / n)) for n in ["a.png", "a.tif", "a_rgba.png"]}
    assert hashes == {content_hash(arr)}
    assert content_hash(arr) == content_hash(arr.copy())
    changed = arr.copy()
    changed[0, 0, 0] ^= 1
    assert content_hash(changed) != content_hash(arr)
    flat = np.zeros((2, 6, 3), np.uint8)
    assert content_hash(flat) != content_hash(flat.reshape(6, 2, 3))  # shape is part of the hash
    with pytest.raises(ValueError, match="RGB image"):
        content_hash(Image.new("L", (2, 2)))
    with pytest.raises(ValueError, match="uint8"):
        content_hash(arr.astype(np.float32))


def test_atlas_image_is_frozen():
    img = AtlasImage("n", "s", "l", "c", "0" * 64, 1, 1, loader=lambda: Image.new("RGB", (1, 1)))
    with pytest.raises(AttributeError):
        img.name = "other"  # type: ignore[misc]


def test_memory_image_round_trip():
    pic = Image.fromarray(_noise(6, 5))
    img = memory_image("n", pic, "made here")
    assert img.content_hash == content_hash(pic) and (img.width, img.height) == (5, 6)
    assert np.array_equal(np.asarray(img.load()), np.asarray(pic))
    pic.paste((1, 2, 3), (0, 0, 5, 6))  # the record keeps its own copy
    assert np.array_equal(np.asarray(img.load()), _noise(6, 5))
    grey = memory_image("g", Image.new("L", (2, 2), 7), "grey")
    assert grey.load().mode == "RGB" and grey.load().getpixel((0, 0)) == (7, 7, 7)
