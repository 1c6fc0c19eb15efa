"""Tests of atlas.site.palette and atlas.site.maps: colours, nearest upsampling, overlays, atomic WebP,
the gallery maps drawn from the records."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

from atlas.site.palette import BASE_HEX, palette, palette_hex
from atlas.site.maps import (MANIFEST, label_map_to_rgb, overlay, save_segmentation_pair, save_webp, upsample_nearest,
                             write_maps)
from conftest import make_synthetic_results

OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"]


# ---------------------------------------------------------------------- palette


def test_palette_fixed_values_and_prefix_property():
    assert palette_hex(7) == OKABE_ITO  # the published CVD-safe colours come first
    assert palette(1).tolist() == [[230, 159, 0]]
    assert palette(0).shape == (0, 3)
    for k in (5, 20, 40):
        np.testing.assert_array_equal(palette(k), palette(k + 3)[:k])
    assert palette(32).dtype == np.uint8 and palette(32).shape == (32, 3)
    assert all(len(h) == 7 and h.startswith("#") for h in palette_hex(32))


@pytest.mark.parametrize("k", [32, len(BASE_HEX), 64])
def test_palette_colours_are_distinct(k):
    cols = palette(k)
    assert len({tuple(c) for c in cols.tolist()}) == k
    lab = rgb2lab(cols[None].astype(float) / 255)[0]
    d = deltaE_ciede2000(lab[:, None], lab[None])
    np.fill_diagonal(d, np.inf)
    # base colours were kept >= 8 apart (CIEDE2000); the extension stays clearly separable too
    assert d.min() >= (8.0 if k <= len(BASE_HEX) else 5.0)


def test_palette_is_deterministic_and_copies():
    a = palette(50)
    a[0] = 0  # callers may scribble on their copy
    np.testing.assert_array_equal(palette(50), palette(50))
    assert palette(1).tolist() == [[230, 159, 0]]
    with pytest.raises(ValueError, match="k must"):
        palette(-1)


# ---------------------------------------------------------------------- render


def test_label_map_to_rgb_values():
    labels = np.array([[0, 2], [1, 2]])
    rgb = label_map_to_rgb(labels)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 1], palette(3)[2])
    with pytest.raises(ValueError, match="no colour"):
        label_map_to_rgb(labels, palette(2))
    with pytest.raises(ValueError, match="2-D"):
        label_map_to_rgb(np.zeros((2, 2, 2), int))


def test_upsample_nearest_each_patch_is_one_block():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 27, size=(16, 16))
    up = upsample_nearest(labels, (224, 224))  # patch 14
    assert up.shape == (224, 224)
    blocks = up.reshape(16, 14, 16, 14)
    np.testing.assert_array_equal(blocks.min(axis=(1, 3)), labels)
    np.testing.assert_array_equal(blocks.max(axis=(1, 3)), labels)
    rgb = label_map_to_rgb(up)
    np.testing.assert_array_equal(rgb.reshape(16, 14, 16, 14, 3)[:, 3, :, 5], label_map_to_rgb(labels))
    # non-integer factor: still every output pixel takes the colour of one input cell
    odd = upsample_nearest(labels, (50, 37))
    assert odd.shape == (50, 37) and set(np.unique(odd)) <= set(np.unique(labels))


def test_overlay_size_alpha_and_boundaries():
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    labels = np.array([[0, 1], [2, 1]])
    img = overlay(photo, labels, alpha=0.0, boundaries=False)
    assert isinstance(img, Image.Image) and img.size == (80, 60) and img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img), photo)  # alpha 0: the photo
    full = np.asarray(overlay(Image.fromarray(photo), labels, alpha=1.0, boundaries=False))
    np.testing.assert_array_equal(full, label_map_to_rgb(upsample_nearest(labels, (60, 80))))
    half = np.asarray(overlay(photo, labels, alpha=0.5, boundaries=False)).astype(int)
    expected = np.rint(0.5 * photo + 0.5 * full.astype(float)).astype(int)
    assert np.abs(half - expected).max() <= 1
    edged = np.asarray(overlay(photo, labels, alpha=1.0, boundaries=True, boundary_color=(255, 255, 255)))
    white = (edged == 255).all(-1)
    # the label changes between columns 39 and 40 (and rows 29/30 on the left): 1-pixel lines
    assert white[:, 40].all() and not white[:30, 39].any() and not white[:, 41].any()
    assert white[30, :40].all() and not white[30, 41:].any()
    with pytest.raises(ValueError, match="alpha"):
        overlay(photo, labels, alpha=1.5)


def test_save_webp_atomic_and_deterministic(tmp_path):
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    labels = rng.integers(0, 5, size=(4, 4))
    p1, p2 = tmp_path / "a.webp", tmp_path / "sub" / "b.webp"
    save_webp(overlay(photo, labels), p1)
    save_webp(overlay(photo, labels), p2)
    assert p1.read_bytes() == p2.read_bytes()  # same input -> same bytes
    assert p1.read_bytes()[:4] == b"RIFF" and p1.read_bytes()[8:12] == b"WEBP"
    bare = label_map_to_rgb(upsample_nearest(labels, (64, 64)))
    lossless = save_webp(bare, tmp_path / "bare.webp", lossless=True)
    np.testing.assert_array_equal(np.asarray(Image.open(lossless).convert("RGB")), bare)  # exact
    assert sorted(os.listdir(tmp_path)) == ["a.webp", "bare.webp", "sub"]
    assert os.listdir(tmp_path / "sub") == ["b.webp"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "x.webp"
    save_webp(np.zeros((8, 8, 3), np.uint8), target)
    before = target.read_bytes()

    def boom(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_webp(np.full((8, 8, 3), 255, np.uint8), target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["x.webp"]


def test_save_segmentation_pair(tmp_path):
    photo = np.full((48, 64, 3), 128, np.uint8)
    labels = np.array([[0, 1, 1, 2], [0, 0, 2, 2], [3, 3, 3, 3]])
    o, b = save_segmentation_pair(Image.fromarray(photo), labels, tmp_path / "o.webp", tmp_path / "b.webp")
    assert Image.open(o).size == (64, 48) and Image.open(b).size == (64, 48)
    np.testing.assert_array_equal(
        np.asarray(Image.open(b).convert("RGB")), label_map_to_rgb(upsample_nearest(labels, (48, 64)))
    )
    o2, b2 = save_segmentation_pair(photo, labels, tmp_path / "o2.webp", tmp_path / "b2.webp")
    assert o.read_bytes() == o2.read_bytes() and b.read_bytes() == b2.read_bytes()


def test_write_maps_from_records(tmp_path):
    """The galleries are drawn from the records alone; unchanged maps are not drawn again, maps of
    records that left are removed, and two images whose names give one slug get their own files."""
    results = make_synthetic_results()
    results.images[1].name, results.images[2].name = "a b.jpg", "a-b.jpg"
    out = write_maps(results, tmp_path)
    m = results.models[0]
    entries = out["models"][(m.card.slug, "b2-tokens-k4")]
    assert [e["image"] for e in entries] == [i.name for i in results.images]
    assert len({e["overlay"] for e in entries}) == len(entries)  # no two images share a file
    bare = np.asarray(Image.open(tmp_path / entries[0]["bare"]).convert("RGB"))
    want = label_map_to_rgb(upsample_nearest(m.label_maps["b2-tokens-k4"][0], bare.shape[:2]))
    np.testing.assert_array_equal(bare, want)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "generated").rglob("*.webp")}
    # 3 models x 16 runs x 4 images x 2 files, 3 panels x 3 columns x 4 images x 2, 4 thumbnails,
    # 3 models x 4 relative depths on the Home overview; the one model with pictures: 4 blocks x 2
    # representations x 2 PCA recipes x 4 images x 2, and per block the CLS head mean and 6 heads x 4 x 2
    assert len(stamps) == 384 + 72 + 4 + 12 + 128 + 4 * 7 * 4 * 2
    # a PCA picture's bare map is its RGB patches, each a block of the photo's size / grid
    pca = results.models[0].pictures["b2-keys-pca"][0]
    rgb = np.asarray(Image.open(tmp_path / out["pictures"][("dino-vit-s16", "b2-keys-pca")][0]["bare"]).convert("RGB"))
    np.testing.assert_array_equal(rgb, np.asarray(Image.fromarray(pca).resize(rgb.shape[1::-1], Image.NEAREST)))
    write_maps(results, tmp_path)  # nothing changed: nothing drawn again
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "generated").rglob("*.webp")} == stamps
    m.label_maps["b2-tokens-k4"] = (m.label_maps["b2-tokens-k4"] + 1) % 4  # one run changes
    results.models = results.models[:2]
    results.comparisons = []
    write_maps(results, tmp_path)
    now = {p: p.stat().st_mtime_ns for p in (tmp_path / "generated").rglob("*.webp")}
    redrawn = {p for p in now if now[p] != stamps.get(p)}
    assert redrawn == {tmp_path / e[k] for e in entries for k in ("overlay", "bare")}
    assert len(now) == 2 * 16 * 4 * 2 + 4 + 2 * 4 + 128 + 4 * 7 * 4 * 2  # the third model and the comparison are gone
    assert not (tmp_path / "generated" / "models" / "vit-s16-random").exists()
    assert not (tmp_path / "generated" / "comparisons").exists()
    assert (tmp_path / MANIFEST).is_file()
