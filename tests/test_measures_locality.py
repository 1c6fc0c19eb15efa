"""Positional effect and locality-beyond-position curves."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from atlas.measures.locality import similarity_structure

N, H, W, C = 30, 10, 10, 32


def smooth_field(seed: int = 0, sigma: float = 1.5, n: int = N) -> np.ndarray:
    """Gaussian-filtered noise per image and channel: nearby tokens alike, images independent."""
    noise = np.random.default_rng(seed).normal(size=(n, H, W, C))
    field = gaussian_filter(noise, sigma=(0, sigma, sigma, 0), mode="wrap")
    return (field / field.std()).astype(np.float32)


def brute_force(features: np.ndarray) -> dict[str, float]:
    """Direct pair loops over centred unit tokens (Chebyshev distance 1)."""
    n, h, w, c = features.shape
    u = features.reshape(n, h * w, c) - features.reshape(-1, c).mean(0)
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    rc = [divmod(p, w) for p in range(h * w)]
    same, diff, within1, across1 = [], [], [], []
    for p in range(h * w):
        for q in range(h * w):
            d = max(abs(rc[p][0] - rc[q][0]), abs(rc[p][1] - rc[q][1]))
            for i in range(n):
                for j in range(n):
                    s = float(u[i, p] @ u[j, q])
                    if i != j and p == q:
                        same.append(s)
                    elif i != j:
                        diff.append(s)
                    if d == 1:
                        (within1 if i == j else across1).append(s)
    return {
        "same_position": np.mean(same),
        "different_position": np.mean(diff),
        "within1": np.mean(within1),
        "across1": np.mean(across1),
    }


def test_exact_against_brute_force():
    feats = np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype(np.float32) + 0.3
    out = similarity_structure(feats)
    ref = brute_force(feats)
    assert out["same_position"] == pytest.approx(ref["same_position"], abs=1e-5)
    assert out["different_position"] == pytest.approx(ref["different_position"], abs=1e-5)
    assert out["within"][0] == pytest.approx(ref["within1"], abs=1e-5)
    assert out["across"][0] == pytest.approx(ref["across1"], abs=1e-5)


# --------------------------------------------------------------------------- positional effect


def test_positional_effect_rises_with_planted_position():
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(1, H, W, C))
    content = rng.normal(size=(N, H, W, C))
    feats = [(content + a * pos).astype(np.float32) for a in (0, 0.5, 1, 2, 4)]
    effects = [similarity_structure(f)["positional_effect"] for f in feats]
    assert abs(effects[0]) < 0.01
    assert np.all(np.diff(effects) > 0.05), effects
    assert effects[-1] > 0.8


def test_positional_effect_is_zero_for_image_level_content():
    # images differ as wholes (shared within an image) but nothing is tied to a position
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(N, H, W, C)) + 3 * rng.normal(size=(N, 1, 1, C))
    out = similarity_structure(feats.astype(np.float32))
    assert abs(out["positional_effect"]) < 0.01
    assert out["same_position_map"].shape == (H, W)


def test_centring_removes_a_shared_offset():
    feats = smooth_field(2)
    shifted = feats + 50.0 * np.random.default_rng(0).normal(size=C).astype(np.float32)
    a, b = similarity_structure(feats), similarity_structure(shifted)
    for key in ("positional_effect", "locality_d1", "locality_slope"):
        assert a[key] == pytest.approx(b[key], abs=1e-3)


# --------------------------------------------------------------------------- locality


def test_smooth_field_locality_decays_with_distance():
    out = similarity_structure(smooth_field(0), max_distance=6)
    beyond = out["beyond"]
    assert out["distances"].tolist() == [1, 2, 3, 4, 5, 6]
    assert beyond[0] > 0.3
    assert np.all(np.diff(beyond[:4]) < 0), beyond
    assert out["locality_slope"] < -0.05
    assert np.all(np.abs(out["across"]) < 0.05)  # independent images share nothing


def test_iid_tokens_give_a_flat_curve():
    feats = np.random.default_rng(0).normal(size=(N, H, W, C)).astype(np.float32)
    out = similarity_structure(feats)
    assert np.nanmax(np.abs(out["beyond"])) < 0.02
    assert abs(out["locality_d1"]) < 0.01 and abs(out["locality_slope"]) < 0.005


def test_shared_smooth_position_code_is_not_locality():
    # the same smooth field in every image: tokens are local *on the grid*, but only through
    # position, so within(d) and across(d) decay together and nothing is left beyond position
    rng = np.random.default_rng(0)
    code = smooth_field(5, n=1)
    feats = (code + 0.3 * rng.normal(size=(N, H, W, C))).astype(np.float32)
    out = similarity_structure(feats, max_distance=6)
    assert out["within"][0] > out["within"][5] + 0.2  # raw within-image curve does decay
    assert np.all(np.abs(out["beyond"]) < 0.02)
    assert out["positional_effect"] > 0.5


def test_euclidean_metric_and_max_distance():
    out = similarity_structure(smooth_field(0), metric="euclidean", max_distance=20)
    assert len(out["distances"]) == 20
    assert np.isnan(out["beyond"][-1])  # no pair is 20 patches apart on a 10 x 10 grid
    assert out["beyond"][0] > out["beyond"][3]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"metric": "manhattan"}, "metric"),
        ({"max_distance": 0}, "max_distance"),
        ({"slope_distance": 1}, "slope_distance"),
    ],
)
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        similarity_structure(np.zeros((3, 4, 4, 2)), **kwargs)


def test_needs_two_images():
    with pytest.raises(ValueError, match="at least 2 image"):
        similarity_structure(np.zeros((1, 4, 4, 2)))
