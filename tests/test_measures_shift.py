"""Shift test: content-following vs position-following cluster ids."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans

from atlas.measures.shift import shift_curve, shift_test

N, H, W, C, K = 20, 10, 12, 16, 5
MAX_SHIFT = 4


def crops(feature_fn, shift: int, seed: int = 0):
    """Features of crops a (columns 0..W-1) and b (columns shift..shift+W-1) of a wider scene."""
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, K, (N, H, W + MAX_SHIFT))  # content class at every location
    return feature_fn(scene[:, :, :W], rng), feature_fn(scene[:, :, shift : shift + W], rng)


def joint_labels(fa: np.ndarray, fb: np.ndarray):
    """Cluster crop a, assign crop b to the same centroids (as the pipeline does)."""
    km = KMeans(K, n_init=2, random_state=0).fit(fa.reshape(-1, C))
    return km.labels_.reshape(N, H, W), km.predict(fb.reshape(-1, C)).reshape(N, H, W)


EMBED = np.random.default_rng(42).normal(size=(K, C)) * 3
POS = np.random.default_rng(43).normal(size=(H, W, C)) * 3


def content_features(content, rng):
    """A function of the content at each location (+ small token noise)."""
    return EMBED[content] + 0.3 * rng.normal(size=(*content.shape, C))


def position_features(content, rng):
    """A function of the grid position only (+ small token noise)."""
    return np.broadcast_to(POS, (*content.shape, C)) + 0.3 * rng.normal(size=(*content.shape, C))


@pytest.mark.parametrize("shift", [1, 3])
def test_content_features_follow_content(shift):
    a, b = joint_labels(*crops(content_features, shift))
    out = shift_test(a, b, shift)
    assert out["content"] > 0.98
    assert out["position"] < 0.5
    assert out["content_fraction_adjusted"] > 0.95
    assert out["content_fraction"] > 0.65


@pytest.mark.parametrize("shift", [1, 3])
def test_position_features_follow_position(shift):
    fa, fb = crops(position_features, shift)
    km = KMeans(K, n_init=2, random_state=0).fit(fa.reshape(-1, C))
    a, b = km.labels_.reshape(N, H, W), km.predict(fb.reshape(-1, C)).reshape(N, H, W)
    out = shift_test(a, b, shift)
    assert out["position"] > 0.98
    assert 1 - out["content_fraction_adjusted"] > 0.85  # position-following near 1
    assert out["content_fraction"] < 0.45


def smooth_scene(seed: int = 0, run: int = 3):
    """Content in runs of ``run`` patches along each row: maps of it are spatially smooth."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, K, (N, H, (W + MAX_SHIFT) // run + 2))
    return np.repeat(coarse, run, axis=2)[:, :, : W + MAX_SHIFT]


@pytest.mark.parametrize("shift", [1, 2, 4])
def test_smooth_content_still_counts_as_content(shift):
    """Planted: ids that are the content itself, on smooth scenes. By grid position they agree as
    often as the map agrees with itself ``shift`` patches away (well above chance), so a chance
    baseline would score them far from 1; the self-agreement baseline scores them 1."""
    scene = smooth_scene()
    a, b = scene[:, :, :W], scene[:, :, shift:shift + W]
    out = shift_test(a, b, shift)
    assert out["content"] == 1.0
    if shift <= 2:  # runs of 3 patches: the maps are smooth at short lags
        assert out["position"] > out["chance"] + 0.2  # the smoothness a chance baseline ignores
    assert out["position"] == pytest.approx(out["self_agreement"], abs=0.03)
    assert out["content_fraction_adjusted"] > 0.95
    # and a smooth position code (the same map in both crops) scores 0
    grid = np.broadcast_to(scene[:1, :, :W], a.shape)
    assert shift_test(grid, grid, shift)["content_fraction_adjusted"] == 0.0


def test_independent_maps_sit_at_chance():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, K, (50, H, W)), rng.integers(0, K, (50, H, W))
    out = shift_test(a, b, 2)
    assert out["chance"] == pytest.approx(1 / K, abs=0.01)
    assert out["content"] == pytest.approx(out["chance"], abs=0.02)
    assert out["position"] == pytest.approx(out["chance"], abs=0.02)
    assert out["n_tokens"] == 50 * H * (W - 2)


def test_the_headline_of_maps_that_follow_neither_stays_near_one_half():
    """The pipeline's size (16 images, 14 x 14 patches): independent maps, seed after seed. The
    ratio of the agreements' excesses over the self-agreement went 1, NaN, 0, 0, NaN, 0 here."""
    values = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        a, b = rng.integers(0, K, (16, 14, 14)), rng.integers(0, K, (16, 14, 14))
        values.append(shift_curve({2: (a, b)})["content_fraction_mean"])
    assert np.all(np.abs(np.array(values) - 0.5) < 0.05), values


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.75])
def test_a_mix_of_content_and_position_images_scores_its_content_share(alpha):
    """Planted: in a share ``alpha`` of the images the ids follow content (crop b shows the scene
    shifted), in the others they stay on the grid (crop b's map equals crop a's). This pins what
    the number means; the old ratio gave the same here (the test above is the one it failed)."""
    scene = smooth_scene(seed=1)
    n_content = int(alpha * N)
    a = scene[:, :, :W]
    b = np.concatenate([scene[:n_content, :, 2:2 + W], a[n_content:]])
    assert shift_test(a, b, 2)["content_fraction_adjusted"] == pytest.approx(alpha, abs=0.05)


def test_exact_agreements_and_negative_shift():
    a = np.array([[[0, 1, 2, 3]]])
    b = np.array([[[1, 2, 3, 0]]])  # b[x] = a[x + 1] for x < 3
    out = shift_test(a, b, 1)
    assert out["content"] == 1.0 and out["position"] == 0.0
    assert out["chance"] == pytest.approx(0.25)
    assert out["content_fraction"] == 1.0 and out["content_fraction_adjusted"] == 1.0
    assert shift_test(b, a, -1) == out  # negative shift = b lies to the left


def test_nan_for_constant_maps():
    a = np.zeros((2, 3, 4), dtype=int)
    out = shift_test(a, a, 1)  # constant maps: every agreement and the self-agreement are 1
    assert out["content"] == out["position"] == out["chance"] == 1.0
    assert np.isnan(out["content_fraction_adjusted"])


def test_shift_curve():
    pairs = {s: joint_labels(*crops(content_features, s)) for s in (3, 1, 4, 2)}
    curve = shift_curve(pairs)
    assert curve["shifts"].tolist() == [1, 2, 3, 4]
    assert np.all(curve["content"] > 0.98)
    assert curve["content_fraction_adjusted"].shape == (4,)
    assert curve["content_fraction_mean"] == pytest.approx(np.mean(curve["content_fraction_adjusted"]))
    with pytest.raises(ValueError, match="at least one"):
        shift_curve({})


def test_shift_curve_mean_skips_undefined_shifts():
    const = np.zeros((2, H, W), dtype=int)  # constant maps: no shift beats chance (NaN)
    assert np.isnan(shift_curve({1: (const, const)})["content_fraction_mean"])
    pairs = {1: (const, const), 2: joint_labels(*crops(content_features, 2))}
    curve = shift_curve(pairs)
    assert np.isnan(curve["content_fraction_adjusted"][0])
    assert curve["content_fraction_mean"] == curve["content_fraction_adjusted"][1]


@pytest.mark.parametrize("shift", [0, W, -W])
def test_shift_validation(shift):
    a = np.zeros((2, H, W), dtype=int)
    with pytest.raises(ValueError, match="shift"):
        shift_test(a, a, shift)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        shift_test(np.zeros((2, 3, 4), dtype=int), np.zeros((2, 3, 5), dtype=int), 1)
