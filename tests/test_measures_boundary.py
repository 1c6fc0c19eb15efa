"""Boundary artifacts: border clusters, norms, high-norm outliers, prefix norms."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans

from atlas.measures.boundary import border_mask, boundary_artifacts

N, H, W, C = 30, 8, 8, 16


def features(border_offset: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(N, H, W, C))
    feats[:, border_mask(H, W)] += border_offset * rng.normal(size=C) / np.sqrt(C) * 4
    return feats.astype(np.float32)


def cluster(feats: np.ndarray, k: int = 5) -> np.ndarray:
    return KMeans(k, n_init=2, random_state=0).fit_predict(feats.reshape(-1, C)).reshape(N, H, W)


def test_border_mask():
    m = border_mask(5, 6)
    assert m.shape == (5, 6) and m.sum() == 5 * 6 - 3 * 4
    m2 = border_mask(8, 8, ring=2)
    assert m2.sum() == 64 - 16 and not m2[2:6, 2:6].any() and m2[1, 1]
    with pytest.raises(ValueError, match="ring"):
        border_mask(4, 4, ring=0)
    with pytest.raises(ValueError, match="no interior"):
        border_mask(4, 4, ring=2)


def test_constant_border_vector_is_flagged():
    feats = features(border_offset=2.0)
    out = boundary_artifacts(cluster(feats), feats)
    assert out["ami"] > 0.5
    assert out["max_enrichment"] > 5
    assert out["norm_ratio"] > 1.2
    assert out["norm_map"].shape == (H, W)
    assert out["norm_map"][border_mask(H, W)].min() > out["norm_map"][~border_mask(H, W)].max()


def test_no_border_effect_is_not_flagged():
    feats = features(border_offset=0.0)
    out = boundary_artifacts(cluster(feats), feats)
    assert abs(out["ami"]) < 0.02
    assert out["max_enrichment"] < 1.3
    assert out["norm_ratio"] == pytest.approx(1.0, abs=0.03)
    assert out["outlier_fraction"] < 0.002
    assert out["outlier_fraction_border"] < 0.002


def test_boundary_measures_rise_with_border_offset():
    rows = []
    for offset in (0.0, 0.5, 1.0, 2.0):
        feats = features(offset)
        out = boundary_artifacts(cluster(feats), feats)
        rows.append((out["ami"], out["max_enrichment"], out["norm_ratio"]))
    rows = np.array(rows)
    assert np.all(np.diff(rows, axis=0) > -0.02), rows
    # and they rise by much: a constant output, or one that saturates at the first offset, fails
    assert np.all(rows[-1] - rows[0] > [0.4, 10.0, 0.5]), rows
    assert np.all(rows[2] - rows[1] > [0.1, 2.0, 0.05]), rows


def test_high_norm_outliers_are_counted_by_position():
    feats = features(0.0)
    feats[:, 0, 0] *= 20  # a massive-activation token in one corner of every image
    feats[:5, 4, 4] *= 20  # and in the interior of a few images
    labels = np.zeros((N, H, W), dtype=int)
    out = boundary_artifacts(labels, feats)
    counts = out["outlier_count_map"]
    assert counts[0, 0] == N and counts[4, 4] == 5
    assert counts.sum() == N + 5
    n_border, n_interior = border_mask(H, W).sum(), (~border_mask(H, W)).sum()
    assert out["outlier_fraction_border"] == pytest.approx(1 / n_border)
    assert out["outlier_fraction_interior"] == pytest.approx(5 / (N * n_interior))
    assert out["ami"] == 0.0  # a single cluster explains nothing


def test_enrichment_definition():
    labels = np.broadcast_to(border_mask(H, W), (N, H, W)).astype(int)  # cluster 1 = exactly the border
    out = boundary_artifacts(labels, features(0.0))
    n_b, n_i = N * border_mask(H, W).sum(), N * (~border_mask(H, W)).sum()
    expected = ((n_b + 1) / (n_b + 2)) / (1 / (n_i + 2))
    assert out["enrichment"][1] == pytest.approx(expected)
    assert out["max_enrichment"] == pytest.approx(expected)
    assert out["ami"] == pytest.approx(1.0)
    assert out["cluster_sizes"].tolist() == [n_i, n_b]


def test_prefix_norms():
    feats = features(0.0)
    prefix = np.concatenate([np.ones((N, 1, C)) * 10, np.zeros((N, 1, C))], axis=1)
    out = boundary_artifacts(np.zeros((N, H, W), dtype=int), feats, prefix)
    assert out["prefix_norms"] == pytest.approx([10 * np.sqrt(C), 0.0])
    assert out["prefix_norm_ratio"][0] > 2 and out["prefix_norm_ratio"][1] == 0
    with pytest.raises(ValueError, match="prefix"):
        boundary_artifacts(np.zeros((N, H, W), dtype=int), feats, np.zeros((N, C)))


def test_prefix_tokens_like_the_patches_have_a_norm_ratio_near_one():
    """The control of :func:`test_prefix_norms`: prefix tokens drawn as the patch tokens are."""
    feats = features(0.0)
    prefix = np.random.default_rng(7).normal(size=(N, 2, C))
    out = boundary_artifacts(np.zeros((N, H, W), dtype=int), feats, prefix)
    assert out["prefix_norm_ratio"] == pytest.approx([1.0, 1.0], abs=0.1)


def test_validation():
    feats = features(0.0)
    with pytest.raises(ValueError, match="share"):
        boundary_artifacts(np.zeros((N, H, W + 1), dtype=int), feats)
    with pytest.raises(ValueError, match="outlier_z"):
        boundary_artifacts(np.zeros((N, H, W), dtype=int), feats, outlier_z=0)
