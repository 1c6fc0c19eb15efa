"""Positional clustering, position decodability, blank-input probe and the measure registry."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans

from atlas.measures.registry import REGISTRY
from atlas.measures.summary import PAIR_INPUTS, summarise
from atlas.measures.positional import blank_input_structure, position_decodability, positional_clustering

ALPHAS = (0.0, 0.5, 1.0, 2.0, 4.0)
N, H, W, C = 40, 7, 7, 64


def planted(alpha: float, seed: int = 0) -> np.ndarray:
    """f(i, p) = content(i, p) + alpha * pos(p): content i.i.d. per image and token."""
    rng = np.random.default_rng(seed)
    pos = rng.normal(size=(1, H, W, C))
    return (rng.normal(size=(N, H, W, C)) + alpha * pos).astype(np.float32)


def cluster(feats: np.ndarray, k: int = 6) -> np.ndarray:
    n, h, w, c = feats.shape
    return KMeans(k, n_init=2, random_state=0).fit_predict(feats.reshape(-1, c)).reshape(n, h, w)


def assert_rises(values, *, start_tol: float, gain: float, plateau_tol: float = 0.01) -> None:
    values = np.asarray(values)
    assert abs(values[0]) < start_tol, values
    assert np.all(np.diff(values) > -plateau_tol), values  # monotone (saturating scores may plateau)
    assert values[1] > values[0] + 0.05, values  # already visible at alpha = 0.5
    assert values[-1] - values[0] > gain, values


@pytest.fixture(scope="module")
def planted_scores():
    rows = []
    for a in ALPHAS:
        f = planted(a)
        pc = positional_clustering(cluster(f))
        rows.append((pc["nce"], pc["ami"], position_decodability(f)["r2"]))
    return np.array(rows)


# --------------------------------------------------------------------------- positional clustering


def test_positional_clustering_rises_with_planted_position(planted_scores):
    assert_rises(planted_scores[:, 0], start_tol=0.02, gain=0.8)  # chance-corrected NCE
    # AMI saturates at ln K / mean(ln K, ln P) ~ 0.63 for K = 6 clusters, P = 49 positions
    assert_rises(planted_scores[:, 1], start_tol=0.02, gain=0.4, plateau_tol=0.03)


def test_nce_chance_correction_removes_small_sample_bias():
    labels = np.random.default_rng(1).integers(0, 8, (10, 7, 7))  # few images, many clusters
    out = positional_clustering(labels)
    assert out["nce_raw"] > 0.1  # plug-in H(c|p) from 10 samples is biased low
    assert abs(out["nce"]) < 0.03
    assert abs(out["ami"]) < 0.03


def test_positional_clustering_position_determined_labels_and_maps():
    grid = np.arange(H * W).reshape(1, H, W) % 5
    labels = np.repeat(grid, 12, axis=0)
    labels[0] = 4 - labels[0]  # one image disagrees
    out = positional_clustering(labels)
    assert out["nce"] > 0.8 and out["ami"] > 0.4  # AMI cap here: ln 5 / mean(ln 5, ln 49) = 0.59
    np.testing.assert_array_equal(out["dominant"], grid[0])
    assert out["dominant"].shape == out["dominant_freq"].shape == (H, W)
    assert out["dominant_freq"].min() >= 11 / 12 - 1e-12


def test_positional_clustering_image_level_clusters_score_zero():
    # each image is one cluster (pure content, no layout): position explains nothing
    labels = np.repeat(np.arange(30)[:, None, None] % 4, H * W, axis=1).reshape(30, H, W)
    out = positional_clustering(labels)
    assert abs(out["nce"]) < 1e-9
    assert abs(out["ami"]) < 0.05  # AMI's all-token permutation null makes MI = 0 slightly negative


def test_positional_clustering_single_cluster_is_zero():
    out = positional_clustering(np.zeros((5, 3, 3), dtype=int))
    assert out["nce"] == 0.0 and out["ami"] == 0.0
    assert np.all(out["dominant_freq"] == 1.0)


def test_positional_clustering_is_deterministic():
    labels = np.random.default_rng(2).integers(0, 5, (15, 6, 6))
    assert positional_clustering(labels, seed=3)["nce"] == positional_clustering(labels, seed=3)["nce"]


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((4, 4)), "shape"),
        (np.zeros((2, 4, 4)), "integer"),
        (-np.ones((2, 4, 4), dtype=int), "non-negative"),
    ],
)
def test_label_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        positional_clustering(bad)


# --------------------------------------------------------------------------- decodability


def test_position_decodability_rises_with_planted_position(planted_scores):
    assert_rises(planted_scores[:, 2], start_tol=0.03, gain=0.7)


def test_position_decodability_ignores_image_level_content():
    # strong per-image offsets, no position: held-out images must not look decodable
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(N, H, W, C)) + 5 * rng.normal(size=(N, 1, 1, C))
    out = position_decodability(feats)
    assert out["r2"] < 0.03
    assert set(out) >= {"r2_row", "r2_col", "r2"}


def test_position_decodability_of_constant_features_is_zero_not_nan():
    """Constant tokens (e.g. a model whose blocks are switched off) carry no position: R^2 about 0
    (the training folds' mean), where the penalty scale trace(X^T X) / C = 0 once gave 0 / 0."""
    out = position_decodability(np.zeros((6, 3, 3, 4), np.float32))
    assert np.isfinite(out["r2"]) and -0.2 < out["r2"] <= 0.0


def test_position_decodability_holds_out_whole_images():
    # every image writes (row, col) along its *own* random directions: a probe can fit all
    # training images at once (20 constraints in 64 dims) but has nothing for an unseen image.
    # Folds that split an image's tokens between train and test would score ~1 here.
    rng = np.random.default_rng(0)
    n = 10
    rows, cols = np.meshgrid(np.arange(H) / (H - 1), np.arange(W) / (W - 1), indexing="ij")
    a, b = rng.normal(size=(n, 1, 1, C)), rng.normal(size=(n, 1, 1, C))
    feats = rows[None, :, :, None] * a + cols[None, :, :, None] * b + 0.05 * rng.normal(size=(n, H, W, C))
    assert position_decodability(feats)["r2"] < 0.1


def test_position_decodability_smooth_code_is_read_out_linearly():
    rr, cc = np.meshgrid(np.linspace(0, 1, W), np.linspace(0, 1, H), indexing="xy")
    code = np.zeros((1, H, W, C))
    code[..., 0], code[..., 1] = cc, rr  # row and column written into two channels
    feats = np.random.default_rng(0).normal(size=(N, H, W, C)) * 0.05 + code
    out = position_decodability(feats)
    assert out["r2_row"] > 0.95 and out["r2_col"] > 0.95


def test_position_decodability_subsample_and_determinism():
    feats = planted(1.0)
    a = position_decodability(feats, max_tokens=400, seed=1)
    b = position_decodability(feats, max_tokens=400, seed=1)
    assert a == b
    assert a["n_tokens"] == N * (400 // N)
    assert position_decodability(feats, n_splits=3)["n_splits"] == 3


def test_position_decodability_validation():
    with pytest.raises(ValueError, match="2 x 2"):
        position_decodability(np.zeros((5, 1, 4, 3)))
    with pytest.raises(ValueError, match="at least 2 image"):
        position_decodability(np.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        position_decodability(np.full((3, 4, 4, 3), np.nan))


# --------------------------------------------------------------------------- blank-input probe


def test_blank_probe_position_only_maps_have_structure():
    rng = np.random.default_rng(0)
    smooth = (np.arange(H)[:, None] // 3 * 2 + np.arange(W)[None, :] // 4)  # 3 x 2 blocks of one id
    labels = np.repeat(smooth[None], 8, axis=0)
    flip = rng.random(labels.shape) < 0.1  # 10% label noise
    labels = np.where(flip, rng.integers(0, 6, labels.shape), labels)
    out = blank_input_structure(labels)
    assert out["position_score"] > 0.8
    assert out["autocorrelation"] > 0.5
    np.testing.assert_array_equal(out["majority"], smooth)


def test_blank_probe_random_labels_have_none():
    labels = np.random.default_rng(0).integers(0, 6, (8, H, W))
    out = blank_input_structure(labels)
    assert abs(out["position_score"]) < 0.05
    assert abs(out["autocorrelation"]) < 0.05


def test_blank_probe_separates_position_from_smoothness():
    rng = np.random.default_rng(0)
    constant = np.repeat(np.arange(6)[:, None, None], H * W, axis=1).reshape(6, H, W)  # one id per image
    out = blank_input_structure(constant)
    assert out["position_score"] == 0.0 and out["autocorrelation"] == 0.0
    scattered = np.repeat(rng.integers(0, 6, (1, H, W)), 6, axis=0)  # repeated but not smooth
    out = blank_input_structure(scattered)
    assert out["position_score"] > 0.95 and abs(out["autocorrelation"]) < 0.1


def test_blank_probe_needs_two_images():
    with pytest.raises(ValueError, match="at least 2 image"):
        blank_input_structure(np.zeros((1, 3, 3), dtype=int))


# --------------------------------------------------------------------------- registry and summary


def test_summarise_returns_plain_floats_matching_registry():
    rng = np.random.default_rng(0)
    feats = planted(2.0)
    labels = cluster(feats)
    prefix = rng.normal(size=(N, 2, C)) * 10
    out = summarise(labels, feats, prefix)
    expected = {n for n, m in REGISTRY.items() if m.inputs in PAIR_INPUTS}
    assert set(out) == expected
    assert all(isinstance(v, float) for v in out.values())
    assert out["positional_nce"] > 0.9 and out["position_r2"] > 0.5 and out["positional_effect"] > 0.5
    assert out["prefix_norm_ratio"] > 3
    assert "prefix_norm_ratio" not in summarise(labels, feats)


def test_position_free_measures_are_exactly_those_a_within_image_shuffle_leaves_unchanged():
    """The registry's ``position_free`` measures (no content-only reference: it would equal them) are
    unchanged when every image's tokens and labels are shuffled over its positions, on planted
    features with a strong position effect and a high-norm token; every other measure of a pair
    changes there."""
    from atlas.pipeline.model_run import reference_tokens

    feats = planted(2.0)
    feats[:, 0, 0] *= 40.0  # one high-norm token per image, in a corner
    labels = cluster(feats)
    shuffled = reference_tokens(feats, "content-only", seed=3)
    order = reference_tokens(np.arange(feats[..., :1].size, dtype=float).reshape(*feats.shape[:3], 1),
                             "content-only", seed=3)[..., 0].astype(int)  # the same shuffle, as indices
    moved = labels.reshape(-1)[order.reshape(-1)].reshape(labels.shape)
    a, b = summarise(labels, feats), summarise(moved, shuffled)
    same = {n for n in a if abs(a[n] - b[n]) <= 1e-6 * max(1.0, abs(a[n]))}
    assert same == {n for n, m in REGISTRY.items() if m.position_free}, same


def test_summarise_full_results_equal_the_public_functions():
    """summarise validates the features once and calls the measures' cores; its full results
    (which the pages draw maps and curves from) must be what each public function returns."""
    from atlas.measures.boundary import boundary_artifacts
    from atlas.measures.locality import similarity_structure
    from atlas.measures.pca import pca_variance_share
    from atlas.measures.positional import position_decodability, positional_clustering

    rng = np.random.default_rng(1)
    feats = planted(1.0)
    labels = cluster(feats)
    prefix = rng.normal(size=(N, 1, C))
    values, results = summarise(labels, feats, prefix, seed=3, return_results=True)
    assert values == summarise(labels, feats, prefix, seed=3)
    expected = {
        "positional_clustering": positional_clustering(labels, seed=3),
        "position_decodability": position_decodability(feats, seed=3),
        "similarity_structure": similarity_structure(feats),
        "boundary_artifacts": boundary_artifacts(labels, feats, prefix),
        "pca_variance_share": pca_variance_share(feats),
    }
    assert set(results) == set(expected)
    for name, want in expected.items():
        assert set(results[name]) == set(want), name
        for key, value in want.items():
            np.testing.assert_array_equal(results[name][key], value, err_msg=f"{name}[{key}]")
    with pytest.raises(ValueError, match="NaN"):
        summarise(labels, np.where(feats > 3, np.nan, feats))


def test_position_probe_control_with_smooth_image_content_stays_near_zero():
    """Control: each image has its own smooth content field (like photos) and no position code.
    Tokens of one image are then correlated; a probe whose penalty is chosen token by token learns
    image identity and scores R^2 well below 0 on unseen images (-0.19 / -0.20 here before the
    fix). The image-grouped choice must stay near 0."""
    from scipy.ndimage import gaussian_filter

    from atlas.measures.positional import position_decodability

    rng = np.random.default_rng(3)
    for c in (64, 768):
        fields = gaussian_filter(rng.normal(size=(10, 14, 14, 16)), sigma=(0, 2, 2, 0))
        mix = rng.normal(size=(16, c)) / np.arange(1, 17)[:, None]
        feats = (fields / fields.std()) @ mix + 0.3 * rng.normal(size=(10, 14, 14, c))
        r2 = position_decodability(feats, seed=0)["r2"]
        assert -0.05 < r2 < 0.05, (c, r2)


@pytest.mark.parametrize("rows, cols, n", [(2, 8, 19_600), (2, 27, 1_000_000), (196, 8, 19_600), (3, 5, 40)])
def test_expected_mutual_information_equals_sklearn(rows, cols, n):
    """The expected MI sums only the n_ij near the hypergeometric mean (a tail bound drops the
    rest); with large margins that skips most terms and must still equal sklearn's full sum."""
    from atlas.measures.positional import _expected_mutual_information

    # sklearn's own (private) routine behind adjusted_mutual_info_score
    expected_mutual_information = pytest.importorskip(
        "sklearn.metrics.cluster._expected_mutual_info_fast").expected_mutual_information

    rng = np.random.default_rng(rows * cols)
    x = rng.integers(0, rows, n)
    y = np.where(rng.random(n) < 0.5, x % cols, rng.integers(0, cols, n))
    counts = np.zeros((rows, cols), dtype=np.int64)
    np.add.at(counts, (x, y), 1)
    counts = counts[counts.sum(1) > 0][:, counts.sum(0) > 0]
    ours = _expected_mutual_information(counts.sum(1), counts.sum(0), n)
    assert ours == pytest.approx(expected_mutual_information(counts, n), rel=1e-11)


@pytest.mark.parametrize("case", ["positions", "border", "random", "one-cluster", "empty-rows", "tiny"])
def test_ami_from_counts_equals_sklearn(case):
    """The measures compute AMI from the contingency counts they already have; it must be the
    value scikit-learn computes from the labelings themselves."""
    from sklearn.metrics import adjusted_mutual_info_score
    from sklearn.metrics.cluster import contingency_matrix

    from atlas.measures.positional import _ami_from_counts

    rng = np.random.default_rng(0)
    if case == "positions":  # every position holds one token per image, clusters partly positional
        pos = np.tile(np.arange(49), 30)
        lab = np.where(rng.random(pos.size) < 0.5, pos % 6, rng.integers(0, 6, pos.size))
        x, y = lab, pos
    elif case == "border":  # 2 x K, big counts
        y = (rng.random(20_000) < 0.27).astype(int)
        x = np.where(y == 1, rng.integers(0, 3, y.size), rng.integers(0, 8, y.size))
    elif case == "random":
        x, y = rng.integers(0, 7, 3000), rng.integers(0, 11, 3000)
    elif case == "one-cluster":  # one side constant: AMI 0; both constant: 1 (sklearn's convention)
        x, y = np.zeros(500, int), rng.integers(0, 4, 500)
        assert _ami_from_counts(contingency_matrix(x, x)) == adjusted_mutual_info_score(x, x) == 1.0
    elif case == "empty-rows":  # ids that never occur must not matter
        x, y = rng.integers(0, 5, 800) * 2, rng.integers(0, 3, 800)
    else:
        x, y = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    counts = contingency_matrix(x, y)
    if case == "empty-rows":
        counts = np.insert(counts, [1, 3], 0, axis=0)  # zero rows, as a bincount over all ids gives
    assert _ami_from_counts(counts) == pytest.approx(adjusted_mutual_info_score(x, y), abs=1e-10)


def test_ridge_coefficients_by_cholesky_equal_those_by_eigh():
    """The GPU's ridge path (a batched Cholesky per fold and penalty) and the CPU's (one eigenbasis
    per fold) solve the same systems: equal coefficients, equal probe scores; run here on the CPU."""
    import torch

    from atlas.measures import positional

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 300, 40)) @ rng.normal(size=(40, 40))  # correlated channels
    grams = torch.from_numpy(np.einsum("fnc,fnd->fcd", x, x))
    xys = torch.from_numpy(np.einsum("fnc,fnt->fct", x, rng.normal(size=(3, 300, 2))))
    alphas = torch.from_numpy(float(torch.diagonal(grams, dim1=1, dim2=2).mean()) * np.logspace(-4, 4, 9))
    by_eigh = positional._ridge_coefficients(grams, xys, alphas, "eigh")
    by_cholesky = positional._ridge_coefficients(grams, xys, alphas, "cholesky")
    assert by_eigh.shape == by_cholesky.shape == (3, 40, 9 * 2)
    # exact solve, column by column (penalty-major); the eigh path works in a float32 basis (errors up to ~1e-3 at the smallest penalties)
    for f in range(3):
        for a, alpha in enumerate(alphas):
            exact = np.linalg.solve(grams[f].numpy() + float(alpha) * np.eye(40), xys[f].numpy())
            np.testing.assert_allclose(by_cholesky[f, :, 2 * a:2 * a + 2].numpy(), exact, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(by_eigh[f, :, 2 * a:2 * a + 2].numpy(), exact,
                                       rtol=0, atol=1e-2 * np.abs(exact).max())

    feats = rng.normal(size=(12, 6, 6, 32)) + 2 * rng.normal(size=(1, 6, 6, 32))  # a planted position code
    default = position_decodability(feats)["r2"]
    original = positional._ridge_coefficients
    try:
        positional._ridge_coefficients = lambda g, xy, al: original(g, xy, al, "cholesky")
        assert position_decodability(feats)["r2"] == pytest.approx(default, abs=1e-6)
    finally:
        positional._ridge_coefficients = original
    assert default > 0.5
