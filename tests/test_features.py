"""Feature cache and streaming extraction: content addressing, reuse, atomic writes."""


import numpy as np
import pytest
import torch
from PIL import Image

from atlas.features.backbones import load_backbone
from atlas.features.cache import FeatureCache
from atlas.config import Backbone
from atlas.features.extractor import TokenExtractor
from atlas.features.extract import extract_to_cache, load_block
from atlas.inputs.geometry import to_tensor
from atlas.inputs.images import AtlasImage, content_hash

TINY = {"depth": 3, "embed_dim": 64, "num_heads": 2}


def _images(n, seed=0, size=(40, 56)):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8))
        out.append(AtlasImage(f"img{i}", "test", "test", "", content_hash(img), img.width, img.height, loader=img.copy))
    return out


@pytest.fixture(scope="module")
def loaded():
    spec = Backbone(display_name="tiny reg", timm_name="vit_small_patch14_reg4_dinov2", weights="random",
                    training="random", overrides=TINY)
    return load_backbone(spec, (56, 84), seed=0)


def test_extraction_matches_direct_run_and_is_reused(tmp_path, loaded):
    cache = FeatureCache(tmp_path)
    images = _images(5)
    policy = loaded.policy
    assert policy.size == (56, 84)
    reps = ["tokens", "keys", "queries", "values"]
    first = extract_to_cache(loaded, images, [0, 2], reps, cache, batch_size=2, progress=False)
    assert (first.extracted, first.cached, first.entries_written) == (5, 0, 5 * 2 * 4)
    second = extract_to_cache(loaded, images, [0, 2], reps, cache, batch_size=2, progress=False)
    assert (second.extracted, second.cached, second.entries_written) == (0, 5, 0)

    patches, prefix = load_block(loaded, images, 2, "keys", cache)
    assert patches.shape == (5, 4, 6, 64) and prefix.shape == (5, 5, 64)
    x = torch.stack([to_tensor(policy.apply(im.load()), loaded.card.mean, loaded.card.std) for im in images])
    direct = TokenExtractor(loaded.model, [2], ["keys"])(x)[(2, "keys")].numpy()
    np.testing.assert_allclose(patches.reshape(5, 24, 64), direct[:, 5:], atol=2e-3, rtol=2e-3)  # float16 storage
    np.testing.assert_allclose(prefix, direct[:, :5], atol=2e-3, rtol=2e-3)

    # a new image is the only one extracted; a new block re-extracts every image once
    more = extract_to_cache(loaded, images + _images(1, seed=9), [0, 2], reps, cache, progress=False)
    assert (more.extracted, more.cached) == (1, 5)
    deeper = extract_to_cache(loaded, images, [1], ["tokens"], cache, progress=False)
    assert deeper.extracted == 5
    # one file per image, and writing a new block kept the blocks stored before
    assert len(list(tmp_path.rglob("*.safetensors"))) == 6
    again = extract_to_cache(loaded, images, [0, 1, 2], ["tokens"], cache, progress=False)
    assert (again.extracted, again.cached) == (0, 5)
    np.testing.assert_array_equal(load_block(loaded, images, 2, "keys", cache)[0], patches)


def test_cache_key_covers_everything_that_changes_features():
    base = dict(model="m", weights="w", image="i", preprocessing="p")
    keys = {FeatureCache.key(**base)}
    for field, value in [("model", "m2"), ("weights", "w2"), ("image", "i2"), ("preprocessing", "p2")]:
        keys.add(FeatureCache.key(**{**base, field: value}))
    assert len(keys) == 5


def test_cached_features_follow_the_extraction_code_and_libraries(tmp_path, loaded, monkeypatch):
    """A changed extraction module (or timm, or torch) makes every model compute again; the opt-in
    cache must then not hand it the old code's features."""
    import timm

    import atlas.features.extract as extract

    cache, images = FeatureCache(tmp_path), _images(2)
    assert extract_to_cache(loaded, images, [0], ["tokens"], cache, progress=False).extracted == 2
    assert extract_to_cache(loaded, images, [0], ["tokens"], cache, progress=False).cached == 2
    before = extract.extraction_fingerprint()
    monkeypatch.setattr(timm, "__version__", timm.__version__ + ".post1")
    extract.extraction_fingerprint.cache_clear()
    try:
        assert extract.extraction_fingerprint() != before
        assert extract_to_cache(loaded, images, [0], ["tokens"], cache, progress=False).extracted == 2
    finally:
        monkeypatch.undo()
        extract.extraction_fingerprint.cache_clear()
    assert extract.extraction_fingerprint() == before


def test_cached_features_follow_the_resize_and_decoding_code(tmp_path):
    """The pixels a model sees come from the image decoding and the resize as well: a changed line
    there gives new cache keys, a reworded docstring or comment does not."""
    import shutil
    from pathlib import Path

    import atlas
    from atlas.features.extract import extraction_fingerprint

    fingerprint = extraction_fingerprint.__wrapped__  # uncached: the copy changes under one path
    package = tmp_path / "atlas"
    shutil.copytree(Path(atlas.__file__).resolve().parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = fingerprint(package)
    assert before == extraction_fingerprint()
    geometry = package / "inputs" / "geometry.py"
    text = geometry.read_text()
    geometry.write_text(text.replace('"""What identifies the pixels', '"""Reworded: what identifies the pixels', 1)
                        + "\n# a comment\n")
    assert geometry.read_text() != text and fingerprint(package) == before
    assert "= Image.Resampling.BICUBIC" in text
    geometry.write_text(text.replace("= Image.Resampling.BICUBIC", "= Image.Resampling.BILINEAR", 1))
    assert fingerprint(package) != before
    geometry.write_text(text)
    images = package / "inputs" / "images.py"
    images.write_text(images.read_text() + "\nX = 1\n")
    assert fingerprint(package) != before


def test_atomic_write_and_corrupt_entries(tmp_path, monkeypatch):
    import atlas.features.cache as cache_mod

    cache = FeatureCache(tmp_path)
    key = FeatureCache.key(model="m", weights="w", image="i", preprocessing="p")
    tokens = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)  # 1 prefix token + a 2 x 2 grid

    # a write killed half way leaves no entry and no visible partial file
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod, "save_file", boom)
    with pytest.raises(KeyboardInterrupt):
        cache.put(key, {(0, "keys"): tokens}, n_prefix=1, grid=(2, 2))
    monkeypatch.undo()
    assert not cache.has(key, [(0, "keys")]) and not list(tmp_path.rglob(".tmp-*"))
    cache.put(key, {(0, "keys"): tokens}, n_prefix=1, grid=(2, 2))
    patches, prefix = cache.get(key, 0, "keys")
    assert patches.dtype == np.float16 and patches.shape == (2, 2, 3)
    np.testing.assert_array_equal(prefix[0], tokens[0])
    np.testing.assert_array_equal(patches.reshape(4, 3), tokens[1:])
    assert cache.get(key, 0, "values") is None and cache.get(key, 1, "keys") is None
    # a second write of other pairs merges with the stored ones
    cache.put(key, {(3, "values"): -tokens}, n_prefix=1, grid=(2, 2))
    assert cache.entries(key) == {(0, "keys"), (3, "values")}
    with pytest.raises(ValueError, match="shape"):
        cache.put(key, {(0, "keys"): tokens[:4]}, n_prefix=1, grid=(2, 2))
    # a truncated file (e.g. from another tool) reads as absent, not as garbage
    path = cache.path(key)
    path.write_bytes(path.read_bytes()[:20])
    assert cache.get(key, 0, "keys") is None and cache.entries(key) == frozenset()
    # so does a valid safetensors file that is not one of ours
    from safetensors.numpy import save_file

    save_file({"0/keys": tokens.astype(np.float16)}, str(path))
    assert cache.get(key, 0, "keys") is None and not cache.has(key, [(0, "keys")])
    # entries of the earlier per-(block, representation) .npz format are listed, never read
    assert cache.stale_files() == []
    old = path.parent / "0123.npz"
    np.savez(old, patches=tokens)
    assert cache.stale_files() == [old]


def test_load_block_reports_missing_entries(tmp_path, loaded):
    with pytest.raises(KeyError, match="not cached"):
        load_block(loaded, _images(1), 0, "tokens", FeatureCache(tmp_path))
