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
from atlas.site.maps import (MANIFEST, attention_levels, attention_to_rgb, decode_view, encode_view, label_map_to_rgb,
                             label_view_numbers, attention_view_numbers, pack_sprite, save_webp, sprite_layout,
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


def test_save_webp_atomic_and_deterministic(tmp_path):
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    labels = rng.integers(0, 5, size=(4, 4))
    p1, p2 = tmp_path / "a.webp", tmp_path / "sub" / "b.webp"
    save_webp(photo, p1)
    save_webp(photo, p2)
    assert p1.read_bytes() == p2.read_bytes()  # same input -> same bytes
    assert p1.read_bytes()[:4] == b"RIFF" and p1.read_bytes()[8:12] == b"WEBP"
    bare = label_map_to_rgb(labels)
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


def test_view_file_round_trips_and_draws_the_site_colours():
    """A view file holds every image's map at patch resolution; decoded as the browser does (its
    palette applied), each cell is exactly the site's colouring of that map."""
    rng = np.random.default_rng(3)
    stack = rng.integers(0, 6, size=(20, 5, 7))
    data = encode_view(stack, "labels")
    assert data == encode_view(stack, "labels")  # deterministic bytes
    np.testing.assert_array_equal(decode_view(data, 20, 5, 7), stack)
    from io import BytesIO
    drawn = np.asarray(Image.open(BytesIO(data)).convert("RGB"))
    cols, rows = sprite_layout(20, 5, 7)
    assert drawn.shape == (rows * 5, cols * 7, 3) and (cols, rows) == (16, 2)
    for i in (0, 15, 16, 19):
        r, c = divmod(i, cols)
        np.testing.assert_array_equal(drawn[r * 5:(r + 1) * 5, c * 7:(c + 1) * 7], label_map_to_rgb(stack[i], palette(6)))
    # attention: levels of the Inferno scale, drawn as attention_to_rgb colours
    att = rng.random((3, 4, 4))
    adata = encode_view(att, "attention")
    np.testing.assert_array_equal(decode_view(adata, 3, 4, 4), attention_levels(att))
    shown = np.asarray(Image.open(BytesIO(adata)).convert("RGB"))
    np.testing.assert_array_equal(shown[:, :4], attention_to_rgb(att[0]))
    pca = rng.integers(0, 256, size=(2, 3, 3, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_view(encode_view(pca, "rgb"), 2, 3, 3), pca)
    with pytest.raises(ValueError, match="unknown view kind"):
        encode_view(stack, "webp")
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        encode_view(stack + 300, "labels")
    assert pack_sprite(np.ones((17, 2, 2), np.uint8))[2:, 2:].sum() == 0  # cells past N stay empty


def test_view_numbers_find_a_planted_border_cluster():
    """Planted: cluster 2 sits on the outer ring only, in the first 3 of 10 images; cluster 1 is a
    centre blob. The legend gives cluster 2 a border share of 100%, cluster 1 none; per image, the
    border-enriched share is the ring's share where cluster 2 is, 0 elsewhere (the control)."""
    from atlas.measures.boundary import border_mask

    h = w = 8
    stack = np.zeros((10, h, w), np.uint8)
    stack[:, 3:5, 3:5] = 1
    ring = border_mask(h, w)
    stack[:3][:, ring] = 2
    out = label_view_numbers(stack)
    share = np.bincount(stack.ravel(), minlength=3) / stack.size
    assert [e[0] for e in out["legend"]] == [round(1000 * v) for v in share]
    assert out["legend"][2][1] == 1000 and out["legend"][1][1] == 0
    assert out["legend"][2][2] == [0, 1, 2]  # the images it covers, most first (ties: atlas order)
    assert out["numbers"]["border"] == [round(1000 * ring.mean())] * 3 + [0] * 7
    assert out["numbers"]["count"] == [3] * 3 + [2] * 7
    # attention: all mass on the ring -> 1000; the centre only -> 0
    att = np.zeros((2, h, w))
    att[0][ring] = 1.0
    att[1, 4, 4] = 1.0
    assert attention_view_numbers(att)["numbers"]["border"] == [1000, 0]


def test_write_maps_from_records(tmp_path):
    """One file per view, drawn from the records alone; unchanged views are not written again, the
    views of records that left are removed, and two images whose names give one slug get their own
    photos."""
    results = make_synthetic_results()
    results.images[1].name, results.images[2].name = "a b.jpg", "a-b.jpg"
    out = write_maps(results, tmp_path)
    m = results.models[0]
    view = out["views"][(m.card.slug, "b2-tokens-k4")]
    assert (view["n"], view["h"], view["w"], view["kind"]) == (4, 14, 14, "labels")
    np.testing.assert_array_equal(decode_view((tmp_path / view["src"]).read_bytes(), 4, 14, 14),
                                  m.label_maps["b2-tokens-k4"])
    photos = {p for (name, _), p in out["photos"].items()}
    assert len(photos) == len(results.images)  # one photo per image and aspect ratio, shared by every model
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "generated").rglob("*") if p.is_file() and p.name[0] != "."}
    # 3 models x 16 cluster views, 3 panels x 3 comparison columns, the model with pictures: 4 blocks x
    # 2 representations x 2 PCA recipes and per block the CLS head mean and head grid; 4 photos, 4
    # thumbnails, one Home overview file per model
    assert len(files) == 48 + 9 + 16 + 8 + 4 + 4 + 3
    pca = out["views"][("dino-vit-s16", "b2-keys-pca")]
    np.testing.assert_array_equal(decode_view((tmp_path / pca["src"]).read_bytes(), 4, 14, 14),
                                  results.models[0].pictures["b2-keys-pca"])
    write_maps(results, tmp_path)  # nothing changed: nothing written again
    assert {p: p.stat().st_mtime_ns for p in files} == files
    m.label_maps["b2-tokens-k4"] = (m.label_maps["b2-tokens-k4"] + 1) % 4  # one run changes
    results.models = results.models[:2]
    results.comparisons = []
    write_maps(results, tmp_path)
    now = {p: p.stat().st_mtime_ns for p in (tmp_path / "generated").rglob("*") if p.is_file() and p.name[0] != "."}
    assert {p for p in now if now[p] != files.get(p)} == {tmp_path / view["src"]}
    assert len(now) == 32 + 24 + 4 + 4 + 2  # the third model and the comparison are gone
    assert not (tmp_path / "generated" / "views" / "models" / "vit-s16-random").exists()
    assert not (tmp_path / "generated" / "views" / "comparisons").exists()
    assert (tmp_path / MANIFEST).is_file()
