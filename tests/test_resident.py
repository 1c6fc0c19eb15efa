"""Features kept on the device from extraction to the analyses (atlas.features.resident).

Planted: a build that keeps every pair reads nothing back from the cache, one whose budget holds a
single pair reads back all the others, and a set with a cached image is not kept; the control is
the same build keeping nothing. Whatever is kept, the results are the same numbers and maps.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from atlas.config import block_representations, parse_config
from atlas.features.backbones import load_backbone
from atlas.features.cache import FeatureCache
from atlas.features.resident import ResidentFeatures
from atlas.pipeline import model_run as model_run_module
from atlas.pipeline.inputs import load_images
from atlas.pipeline.model_run import ModelRun, image_set_key

CONFIG = """
[images]
resolution = [96, 96]
[features]
layers = [0, 1]
gallery_layers = [1]
representations = ["tokens", "queries", "keys"]
[clustering]
ks = [4]
[analyses]
k = 4
[uncertainty]
resamples = 10
seeds = 2
[[backbones]]
display_name = "tiny"
timm_name = "vit_small_patch16_224"
weights = "random"
training = "random"
overrides = { depth = 2, embed_dim = 32, num_heads = 2, patch_size = 8 }
"""


def test_store_admits_within_its_budget_and_serves_only_complete_sets():
    one = 2 * 3 * 5 * 4  # float16 bytes of one pair: 3 images x 5 tokens x 4 channels
    store = ResidentFeatures(torch.device("cpu"), budget_bytes=2 * one + one // 2)
    shapes = {(0, "keys"): (5, 4), (1, "keys"): (5, 4), (1, "values"): (5, 4)}
    assert store.admit("a", shapes, n_images=3) == [(0, "keys"), (1, "keys")]
    assert store.used == 2 * one
    assert store.admit("a", {(0, "keys"): (5, 4)}, n_images=3) == [(0, "keys")]  # already there: no new bytes
    assert store.admit("b", {(0, "keys"): (5, 4)}, n_images=3) == [] and store.used == 2 * one
    x = torch.randn(3, 5, 4)
    store.keep("a", (0, "keys"), 0, x[:1])
    store.keep("a", (0, "keys"), 2, x[2:])
    assert store.get("a", (0, "keys")) is None  # image 1 missing: not served
    store.keep("a", (0, "keys"), 1, x[1:2])
    got = store.get("a", (0, "keys"))
    assert got.dtype == torch.float16
    torch.testing.assert_close(got, x.half(), rtol=0, atol=0)  # the cache's float16 values
    assert store.pairs("a") == [(0, "keys")] and store.names() == ["a"]
    store.clear()
    assert store.used == 0 and store.get("a", (0, "keys")) is None
    with pytest.raises(ValueError, match="budget_bytes"):
        ResidentFeatures(torch.device("cpu"), -1)


@pytest.fixture(scope="module")
def setup():
    cfg = parse_config(CONFIG)
    images, _ = load_images(cfg)
    loaded = load_backbone(cfg.backbones[0], (96, 96), seed=0)
    return cfg, images[:6], loaded


def _result(run):
    res = run.run()
    measures = {(m.block, m.representation, m.measure, m.reference): (m.value, m.lo, m.hi)
                for m in res.measures + res.references}
    return measures, res.label_maps, res.pictures


def _counting_loads(monkeypatch):
    """Records the (block, representation, image names) reads of the cache by the analyses."""
    reads = []
    original = model_run_module.load_block

    def counted(loaded, images, block, rep, cache, **kw):
        reads.append((block, rep, tuple(img.name for img in images)))
        return original(loaded, images, block, rep, cache, **kw)

    monkeypatch.setattr(model_run_module, "load_block", counted)
    return reads


def _assert_same(a, b):
    measures_a, maps_a, pictures_a = a
    measures_b, maps_b, pictures_b = b
    assert measures_a.keys() == measures_b.keys() and maps_a.keys() == maps_b.keys()
    assert pictures_a.keys() == pictures_b.keys()
    for key in maps_a:
        np.testing.assert_array_equal(maps_a[key], maps_b[key])
    for key in pictures_a:
        np.testing.assert_array_equal(pictures_a[key], pictures_b[key])
    for key, values in measures_a.items():
        # the same float16 values: the same numbers, exactly (NaN where both are undefined)
        np.testing.assert_equal(measures_b[key], values, err_msg=str(key))


@pytest.mark.slow
def test_kept_features_give_the_cache_path_results_and_skip_its_reads(setup, tmp_path, monkeypatch, caplog):
    cfg, images, loaded = setup
    cpu = torch.device("cpu")
    pairs = block_representations([0, 1], ["tokens", "queries", "keys"], 2)
    names = tuple(img.name for img in images)
    reads = _counting_loads(monkeypatch)

    # control: nothing kept (the CPU default) -- every pair of the images is read from the cache
    control = _result(ModelRun(cfg, loaded, images, FeatureCache(tmp_path / "none"), cpu))
    assert {(b, r) for b, r, n in reads if n == names} == set(pairs)

    # everything kept: the analyses read nothing back, and the numbers are the same
    reads.clear()
    with caplog.at_level(logging.INFO, logger="atlas.pipeline.model_run"):
        run = ModelRun(cfg, loaded, images, FeatureCache(tmp_path / "all"), cpu, resident_bytes=2**30)
        kept_all = _result(run)
    assert reads == []
    assert f"{len(pairs)} of {len(pairs)} (block, representation) pairs" in caplog.text
    assert run.resident.used == 0  # given back at the end of the run
    _assert_same(control, kept_all)

    # a budget for one pair of the images: that pair is kept, every other is read back
    reads.clear()
    n_tokens = 1 + (96 // 8) ** 2
    one_pair = 2 * len(images) * n_tokens * 32
    kept_one = _result(ModelRun(cfg, loaded, images, FeatureCache(tmp_path / "one"), cpu, resident_bytes=one_pair))
    assert {(b, r) for b, r, n in reads if n == names} == set(pairs[1:])
    _assert_same(control, kept_one)


def test_a_set_with_a_cached_image_is_not_kept(setup, tmp_path):
    cfg, images, loaded = setup
    cpu = torch.device("cpu")
    cache = FeatureCache(tmp_path)
    ModelRun(cfg, loaded, images[:1], cache, cpu).extract_images(images[:1], [0, 1], ["tokens"], "warm")
    run = ModelRun(cfg, loaded, images, cache, cpu, resident_bytes=2**30)
    run.resident = ResidentFeatures(cpu, 2**30)
    with_cached = images[:3]  # images[0] is in the cache: the set is read from the cache
    run.extract_images(with_cached, [0, 1], ["tokens"], "test", keep=True)
    assert run.resident.pairs(image_set_key(with_cached)) == [] and run.resident.used == 0
    fresh = images[3:]
    run.extract_images(fresh, [0, 1], ["tokens"], "test", keep=True)
    assert run.resident.pairs(image_set_key(fresh)) == [(0, "tokens"), (1, "tokens")]
    kept, kept_prefix = run.features(fresh, 1, "tokens")
    cached, cached_prefix = run.load(fresh, 1, "tokens")
    assert isinstance(kept, np.ndarray) and kept.dtype == np.float32  # the CPU analyses take numpy
    np.testing.assert_array_equal(kept, cached)
    np.testing.assert_array_equal(kept_prefix, cached_prefix)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")
def test_on_a_gpu_features_are_kept_by_default_and_change_nothing(setup, tmp_path, monkeypatch):
    cfg, images, loaded = setup
    cuda = torch.device("cuda")
    reads = _counting_loads(monkeypatch)
    run = ModelRun(cfg, loaded, images, FeatureCache(tmp_path / "kept"), cuda)
    assert run.resident_budget() > 2**30  # a tiny model on a GPU: room for everything
    kept = _result(run)
    assert reads == []
    not_kept = _result(ModelRun(cfg, loaded, images, FeatureCache(tmp_path / "read"), cuda, resident_bytes=0))
    assert reads
    _assert_same(not_kept, kept)
