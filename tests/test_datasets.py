"""Labelled dataset loaders: tiny fixtures in every format, and the real CamVid / SUIM samples."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlas.inputs.datasets import (
    ADE20K_CLASSES,
    ADE20K_STUFF,
    CAMVID_CLASSES,
    COCOSTUFF27_CLASSES,
    COCOSTUFF27_FINE_TO_COARSE,
    DATASETS,
    GROUP_REGEX,
    IGNORE_INDEX,
    DatasetError,
    load_dataset,
    mask_for_size,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _rgb(path: Path, size=(8, 6), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def _index(path: Path, arr, palette=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(np.asarray(arr, dtype=np.uint8), mode="L")
    if palette:
        im = im.convert("P")
        im.putpalette([v for i in range(256) for v in (i, (7 * i) % 256, (13 * i) % 256)])
    im.save(path)


RAW = np.array([[0, 1, 2, 3, 4, 5, 6, 7]] * 6)  # 8x6 image, 6 rows


# ---------------------------------------------------------------- mask_for_size


def test_mask_for_size_matches_pil_nearest():
    rng = np.random.default_rng(0)
    m = rng.integers(0, 200, (13, 17))
    for size in [(26, 34), (5, 7), (13, 40), (31, 9)]:
        ours = mask_for_size(m, size)
        pil = np.array(Image.fromarray(m.astype(np.int32), mode="I").resize(size[::-1], Image.NEAREST))
        np.testing.assert_array_equal(ours, pil)
    assert mask_for_size(m, (13, 17)).tolist() == m.tolist()
    with pytest.raises(ValueError, match="2-D"):
        mask_for_size(np.zeros((2, 2, 3)), (4, 4))


# ---------------------------------------------------------------- formats


def test_registry_names():
    assert set(DATASETS) == {"folder", "voc", "camvid", "suim", "suim6", "cocostuff27", "cityscapes27", "ade20k"}
    with pytest.raises(ValueError, match="unknown dataset kind"):
        load_dataset("pascal", ".")


def test_folder_and_skips(tmp_path):
    for name in ["a", "b", "c", "d"]:
        _rgb(tmp_path / "images" / f"{name}.jpg")
    _index(tmp_path / "masks" / "a.png", np.where(RAW > 2, 9, RAW))  # 9 = files' ignore id
    _index(tmp_path / "masks" / "b.png", np.zeros((6, 4)))  # wrong size
    _index(tmp_path / "masks" / "c.png", RAW)  # ids 3..7 unknown
    ds = load_dataset("folder", tmp_path, class_names=["x", "y", "z"], ignore_index=9, foreground=["z"])
    assert [s.name for s in ds] == ["a"] and ds.n_classes == 3 and ds.foreground == [2]
    m = ds[0].mask
    assert m.dtype == np.int64 and m.shape == (6, 8)
    assert set(np.unique(m)) == {0, 1, 2, IGNORE_INDEX}
    reasons = {s.what: s.reason for s in ds.skipped}
    assert "4x6" in reasons["b.png"] and "8x6" in reasons["b.png"]
    assert "unknown ids [3, 4, 5, 6, 7]" in reasons["c.png"]
    assert "not found" in reasons["d.jpg"]
    assert ds[0].image.mode == "RGB" and ds[0].image.size == (8, 6)
    assert ds.foreground_mask(m).sum() == (m == 2).sum()
    with pytest.raises(DatasetError, match="b.png"):
        load_dataset("folder", tmp_path, class_names=["x", "y", "z"], ignore_index=9, strict=True,
                     names=["a", "b"])
    with pytest.raises(ValueError, match="collides"):
        load_dataset("folder", tmp_path, class_names=["x", "y", "z"], ignore_index=1)


def test_unvalidated_bad_mask_raises_on_access(tmp_path):
    _rgb(tmp_path / "images" / "a.png")
    _index(tmp_path / "masks" / "a.png", RAW)
    ds = load_dataset("folder", tmp_path, class_names=["x", "y"], validate=False)
    with pytest.raises(DatasetError, match=r"a\.png: mask contains unknown ids"):
        ds[0].mask


def test_voc_palette(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    raw = np.where(RAW == 7, 255, RAW * 2)  # 0..12 + boundary 255
    _rgb(root / "JPEGImages" / "2007_000001.jpg")
    _index(root / "SegmentationClass" / "2007_000001.png", raw, palette=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000001\n")
    ds = load_dataset("voc", tmp_path / "VOCdevkit")
    assert ds.n_classes == 21 and ds.foreground == list(range(1, 21))
    np.testing.assert_array_equal(ds[0].mask, raw)  # palette indices, not colours


def test_camvid_fixture(tmp_path):
    _rgb(tmp_path / "images" / "x.png")
    _index(tmp_path / "masks" / "x.png", np.minimum(RAW + 4, 11))
    ds = load_dataset("camvid", tmp_path)
    assert ds.class_names == CAMVID_CLASSES
    assert [ds.class_names[i] for i in ds.foreground] == ["Pole", "SignSymbol", "Car", "Pedestrian", "Bicyclist"]
    m = ds[0].mask
    assert m[0].tolist() == [4, 5, 6, 7, 8, 9, 10, IGNORE_INDEX]


def test_suim_colour_threshold(tmp_path):
    _rgb(tmp_path / "images" / "s.jpg", size=(8, 1))
    colours = [(0, 0, 0), (10, 5, 250), (0, 255, 0), (0, 130, 200), (200, 0, 0), (255, 0, 255),
               (255, 255, 0), (129, 128, 255)]
    mask = np.array([colours], dtype=np.uint8)
    (tmp_path / "masks").mkdir()
    Image.fromarray(mask, "RGB").save(tmp_path / "masks" / "s.bmp")
    ds = load_dataset("suim", tmp_path)
    assert ds[0].mask.tolist() == [[0, 1, 2, 3, 4, 5, 6, 7]]
    assert [ds.class_names[i] for i in ds.foreground] == [
        "human divers", "wrecks/ruins", "robots", "reefs/invertebrates", "fish/vertebrates"]


def test_suim6_merges_water_plants_and_floor(tmp_path):
    _rgb(tmp_path / "images" / "s.jpg", size=(8, 1))
    colours = [(0, 0, 0), (10, 5, 250), (0, 255, 0), (0, 130, 200), (200, 0, 0), (255, 0, 255),
               (255, 255, 0), (129, 128, 255)]
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.array([colours], dtype=np.uint8), "RGB").save(tmp_path / "masks" / "s.bmp")
    ds = load_dataset("suim6", tmp_path)
    assert ds.n_classes == 6 and ds[0].mask.tolist() == [[0, 1, 0, 2, 3, 4, 5, 0]]
    assert [ds.class_names[i] for i in ds.foreground] == [
        "human divers", "wrecks/ruins", "robots", "reefs/invertebrates", "fish/vertebrates"]


def test_image_list_and_group_key(tmp_path):
    for i, name in enumerate(["seqA_001", "seqA_002", "seqB_001"]):
        _rgb(tmp_path / "images" / f"{name}.png", seed=i)
        _index(tmp_path / "masks" / f"{name}.png", RAW % 3)
    (tmp_path / "keep.txt").write_text("seqB_001.jpg\nseqA_001\n")
    ds = load_dataset("folder", tmp_path, class_names=["a", "b", "c"], image_list=tmp_path / "keep.txt")
    assert [s.name for s in ds] == ["seqB_001", "seqA_001"]  # list order, stems
    assert ds.group_regex is None  # folder datasets have no default group key
    assert re.search(GROUP_REGEX["camvid"], "0016E5_07959").group(1) == "0016E5"  # CamVid's sequence
    with pytest.raises(ValueError, match="image_list or names"):
        load_dataset("folder", tmp_path, class_names=["a", "b", "c"], image_list=tmp_path / "keep.txt", names=["x"])


def test_cocostuff27_mapping(tmp_path):
    fine = np.array([[0, 1, 2, 15, 71, 91, 181, 255]] * 6)
    _rgb(tmp_path / "images" / "val2017" / "000000000139.jpg")
    _rgb(tmp_path / "images" / "val2017" / "000000000285.jpg")
    _index(tmp_path / "annotations" / "val2017" / "000000000139.png", fine)
    _index(tmp_path / "annotations" / "val2017" / "000000000285.png", np.full((6, 8), 200))
    (tmp_path / "list.txt").write_text("000000000139\n")
    ds = load_dataset("cocostuff27", tmp_path, image_list=tmp_path / "list.txt")
    assert len(ds) == 1 and ds.n_classes == 27 and ds.foreground == list(range(12))
    # person, bicycle, car -> person, vehicle; bird -> animal; tv -> electronic; banner -> textile
    assert ds[0].mask[0].tolist() == [9, 11, 11, 7, 0, 17, 24, IGNORE_INDEX]
    names = [COCOSTUFF27_CLASSES[c] for c in ds[0].mask[0][:7]]
    assert names == ["person", "vehicle", "vehicle", "animal", "electronic", "textile", "solid"]
    full = load_dataset("cocostuff27", tmp_path)  # 200 is not a stuffthingmaps id
    assert len(full) == 1 and "unknown ids [200]" in full.skipped[0].reason


def test_cocostuff27_table_shape():
    table = np.array(COCOSTUFF27_FINE_TO_COARSE)
    assert table.shape == (182,) and set(table) == set(range(27))
    assert set(table[:91]) == set(range(12)) and set(table[91:]) == set(range(12, 27))  # things / stuff


def test_cityscapes27(tmp_path):
    label_ids = np.array([[0, 6, 7, 8, 24, 26, 33, 255]] * 6)
    _rgb(tmp_path / "leftImg8bit" / "val" / "frankfurt" / "frankfurt_000000_000294_leftImg8bit.png")
    _index(tmp_path / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000294_gtFine_labelIds.png", label_ids)
    ds = load_dataset("cityscapes27", tmp_path)
    assert ds[0].name == "frankfurt_000000_000294"
    m = ds[0].mask[0]
    assert m.tolist() == [255, 255, 0, 1, 17, 19, 26, 255]
    assert [ds.class_names[c] for c in m[2:7]] == ["road", "sidewalk", "person", "car", "bicycle"]
    assert "person" in [ds.class_names[i] for i in ds.foreground]


def test_ade20k(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    _rgb(root / "images" / "validation" / "ADE_val_00000001.jpg")
    _index(root / "annotations" / "validation" / "ADE_val_00000001.png", np.array([[0, 1, 2, 150, 13, 5, 6, 7]] * 6))
    ds = load_dataset("ade20k", tmp_path)
    assert ds.n_classes == 150 and len(ADE20K_CLASSES) == 150
    assert ds[0].mask[0].tolist() == [IGNORE_INDEX, 0, 1, 149, 12, 4, 5, 6]
    assert set(ADE20K_STUFF) <= set(ADE20K_CLASSES)
    fg = {ds.class_names[i] for i in ds.foreground}
    assert "person" in fg and "wall" not in fg


def test_missing_root_and_bad_options(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_dataset("camvid", tmp_path / "nope")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DatasetError, match="no usable samples"):
        load_dataset("camvid", tmp_path)
    with pytest.raises(ValueError, match="bad options"):
        load_dataset("camvid", tmp_path, colour=True)
    with pytest.raises(ValueError, match="foreground class"):
        _rgb(tmp_path / "images" / "a.png")
        _index(tmp_path / "masks" / "a.png", RAW)
        load_dataset("camvid", tmp_path, foreground=["Cat"])


# ---------------------------------------------------------------- real data


@pytest.mark.shared_data
def test_shared_camvid():
    root = SHARED / "camvid"
    if not root.is_dir():
        pytest.skip(f"shared CamVid data not found at {root}")
    ds = load_dataset("camvid", root)
    assert len(ds) == 101 and not ds.skipped
    s = ds[0]
    assert s.image.size == (480, 360) and s.mask.shape == (360, 480)
    ids = np.unique(s.mask)
    assert set(ids) <= set(range(11)) | {IGNORE_INDEX}


@pytest.mark.shared_data
def test_shared_suim():
    root = SHARED / "suim"
    if not root.is_dir():
        pytest.skip(f"shared SUIM data not found at {root}")
    ds = load_dataset("suim", root)
    assert len(ds) == 8 and not ds.skipped
    for s in ds:
        m = s.mask
        assert m.shape == s.image.size[::-1] and m.min() >= 0 and m.max() <= 7
        assert ds.foreground_mask(m).any()  # every sample shows divers, fish, reefs, robots or wrecks
