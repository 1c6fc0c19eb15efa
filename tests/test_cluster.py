"""Tests of atlas.clustering.kmeans: agreement with scikit-learn, determinism, canonical order, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from atlas.clustering.kmeans import JointKMeans, cluster_features

BACKENDS = ["faiss", "torch", "sklearn"]


def planted_mixture(seed=0, sizes=(400, 300, 250, 200, 150, 100), dim=16, noise=0.05):
    """Well-separated directions (cosine geometry) with unequal cluster sizes."""
    rng = np.random.default_rng(seed)
    means = np.linalg.qr(rng.normal(size=(dim, dim)))[0][: len(sizes)]  # orthonormal directions
    truth = np.repeat(np.arange(len(sizes)), sizes)
    X = means[truth] * rng.uniform(0.5, 3.0, size=(len(truth), 1))  # norms vary; directions don't
    X = X + noise * rng.normal(size=X.shape)
    perm = rng.permutation(len(truth))
    return X[perm].astype(np.float32), truth[perm]


def overlapping_mixture(seed=0, n=20_000, dim=32, n_comp=12, k=8):
    """A harder, overlapping mixture where k-means has many local optima (as real tokens)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_comp, dim))
    X = means[rng.integers(0, n_comp, n)] + 1.2 * rng.normal(size=(n, dim))
    return X.astype(np.float32), k


def normalized(X):
    X = np.asarray(X, dtype=np.float64)
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_recovers_planted_clusters_in_canonical_order(backend):
    X, truth = planted_mixture()
    km = JointKMeans(6, backend=backend).fit(X)
    # planted cluster i is the i-th largest, so canonical ids must equal the planted ids exactly
    np.testing.assert_array_equal(km.labels_, truth)
    assert km.cluster_sizes_.tolist() == [400, 300, 250, 200, 150, 100]
    assert km.cluster_centers_.dtype == np.float32 and km.cluster_centers_.shape == (6, 16)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_agrees_with_sklearn(backend):
    X, truth = planted_mixture(seed=1)
    Xn = normalized(X)
    ref = KMeans(6, n_init=1, max_iter=30, init="k-means++", random_state=0).fit(Xn)
    km = JointKMeans(6, backend=backend).fit(X)
    assert adjusted_rand_score(ref.labels_, km.labels_) == pytest.approx(1.0)
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-3)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_inertia_within_1pct_of_sklearn_on_overlapping_mixture(backend):
    X, k = overlapping_mixture()
    ours = JointKMeans(k, backend=backend).fit(X).inertia_
    ref = JointKMeans(k, backend="sklearn").fit(X).inertia_
    assert ours <= ref * 1.01, (ours, ref)


def test_inertia_is_sum_of_squared_distances_in_normalised_space():
    X, _ = overlapping_mixture(n=3000)
    km = JointKMeans(5, backend="faiss").fit(X)
    Xn = normalized(X).astype(np.float64)
    d = ((Xn[:, None, :] - km.cluster_centers_[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_array_equal(km.labels_, d.argmin(1))
    assert km.inertia_ == pytest.approx(d.min(1).sum(), rel=1e-5)
    # and the sklearn backend reports what sklearn reports
    sk = JointKMeans(5, backend="sklearn").fit(X)
    ref = KMeans(5, n_init=1, max_iter=30, init="k-means++", random_state=0).fit(normalized(X))
    assert sk.inertia_ == pytest.approx(ref.inertia_, rel=1e-4)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_same_seed_gives_identical_result(backend):
    X, k = overlapping_mixture(n=4000)
    a = JointKMeans(k, backend=backend, seed=3).fit(X)
    b = JointKMeans(k, backend=backend, seed=3).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.inertia_ == b.inertia_
    # control: the seed matters on a problem with many local optima
    c = JointKMeans(k, backend=backend, seed=50).fit(X)
    assert not np.array_equal(a.cluster_centers_, c.cluster_centers_)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_consecutive_seeds_share_no_restart(backend, monkeypatch):
    """The intervals' k-means seeds are consecutive (atlas seed + j): with n_init restarts each,
    no restart may repeat across seeds, or their clusterings coincide and the seed spread reads 0."""
    from atlas.clustering import kmeans

    used, greedy = {}, kmeans._greedy_kmeanspp

    def recording(xs, k, seed, chunk):
        used.setdefault(current, []).append(seed)
        return greedy(xs, k, seed, chunk)

    monkeypatch.setattr(kmeans, "_greedy_kmeanspp", recording)
    X, k = overlapping_mixture(n=3000)
    for current in range(4):
        JointKMeans(k, backend=backend, seed=current, n_init=3).fit(X)
    assert all(len(set(s)) == 3 for s in used.values())
    assert len(set().union(*used.values())) == 12, used
    used.clear()
    current = 7
    JointKMeans(k, backend=backend, seed=7, n_init=1).fit(X)
    assert used == {7: [7]}  # one restart: the seed itself (results of n_init = 1 unchanged)


def test_normalisation_merges_clusters_that_differ_only_in_norm():
    rng = np.random.default_rng(0)
    d = rng.normal(size=8)
    d /= np.linalg.norm(d)
    norms = np.repeat([1.0, 6.0], 300)  # same direction, two norms
    X = (norms[:, None] * (d + 0.05 * rng.normal(size=(600, 8)))).astype(np.float32)  # noise scales with norm
    truth = (norms > 3).astype(int)
    raw = JointKMeans(2, normalize=False, backend="faiss").fit(X)
    cos = JointKMeans(2, normalize=True, backend="faiss").fit(X)
    assert adjusted_rand_score(truth, raw.labels_) == pytest.approx(1.0)
    assert abs(adjusted_rand_score(truth, cos.labels_)) < 0.05
    # control: two directions, mixed norms -> normalisation finds the directions
    e = np.linalg.qr(rng.normal(size=(8, 2)))[0].T
    dirs = np.tile([0, 1], 300)
    Y = (norms[:, None] * (e[dirs] + 0.05 * rng.normal(size=(600, 8)))).astype(np.float32)
    assert adjusted_rand_score(dirs, JointKMeans(2, backend="faiss").fit(Y).labels_) == pytest.approx(1.0)


@pytest.mark.parametrize("normalize", [True, False])
def test_chunked_predict_equals_unchunked(normalize):
    X, k = overlapping_mixture(n=5000)
    km = JointKMeans(k, backend="faiss", normalize=normalize, chunk_size=1_000_000).fit(X)
    full = km.predict(X)
    np.testing.assert_array_equal(full, km.labels_)
    km.chunk_size = 7
    np.testing.assert_array_equal(km.predict(X), full)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_float16_input_and_input_left_untouched(backend):
    X, truth = planted_mixture(seed=2)
    X16 = X.astype(np.float16)
    before = X16.copy()
    km = JointKMeans(6, backend=backend, chunk_size=333).fit(X16)
    np.testing.assert_array_equal(X16, before)  # normalisation must not write into the input
    np.testing.assert_array_equal(km.labels_, truth)
    assert km.cluster_centers_.dtype == np.float32
    np.testing.assert_array_equal(km.predict(X16), km.labels_)
    X32 = X.copy()
    JointKMeans(6, backend=backend).fit(X32)
    np.testing.assert_array_equal(X32, X)


def test_max_train_tokens_fits_on_subsample_but_labels_all():
    X, truth = planted_mixture(seed=3)
    km = JointKMeans(6, backend="faiss", max_train_tokens=300).fit(X)
    assert km.labels_.shape == truth.shape
    assert km.cluster_sizes_.sum() == len(X)
    assert adjusted_rand_score(truth, km.labels_) == pytest.approx(1.0)


def test_nan_outside_the_fitting_sample_is_refused():
    """The fit checks its sample; every other row is checked as it is assigned (a NaN row got a
    label and a NaN inertia before)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 8)).astype(np.float32)
    km = JointKMeans(3, seed=0, max_train_tokens=100).fit(X)  # the control: finite rows fit
    assert km.labels_.shape == (5000,)
    X[4321] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        JointKMeans(3, seed=0, max_train_tokens=100).fit(X)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fewer_distinct_points_than_clusters_warns_and_keeps_empty_clusters_last(backend):
    pts = np.eye(4, dtype=np.float32)[:3]
    X = np.repeat(pts, [10, 6, 3], axis=0)
    with pytest.warns(UserWarning, match="distinct clusters"):
        km = JointKMeans(5, backend=backend).fit(X)
    assert km.cluster_sizes_.tolist() == [10, 6, 3, 0, 0]
    np.testing.assert_array_equal(km.labels_, np.repeat([0, 1, 2], [10, 6, 3]))


def test_parameter_validation():
    X = np.zeros((5, 3), np.float32) + 1
    with pytest.raises(ValueError, match="exceeds the number of tokens"):
        JointKMeans(6).fit(X)
    with pytest.raises(ValueError, match="backend"):
        JointKMeans(2, backend="cuml").fit(X)
    with pytest.raises(ValueError, match="n_clusters"):
        JointKMeans(0).fit(X)
    with pytest.raises(ValueError, match="max_train_tokens"):
        JointKMeans(3, max_train_tokens=2).fit(X)
    with pytest.raises(ValueError, match="2-D"):
        JointKMeans(2).fit(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        JointKMeans(2).fit(np.full((5, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="not fitted"):
        JointKMeans(2).predict(X)


def test_cluster_features_reshapes_to_images():
    X, truth = planted_mixture(sizes=(200, 120, 40))
    n = len(X)  # 360 = 10 images x 6 x 6 patches
    labels, model = cluster_features(X.reshape(10, 6, 6, 16), 3, backend="faiss")
    assert labels.shape == (10, 6, 6)
    np.testing.assert_array_equal(labels.reshape(n), truth)
    np.testing.assert_array_equal(labels.reshape(n), model.labels_)
    with pytest.raises(ValueError, match=r"\(N, h, w, C\)"):
        cluster_features(X, 3)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_two_stage_fit_matches_sklearn(backend, monkeypatch):
    # shrink the warm-start sample so the two-stage path (sample, then all tokens) is exercised
    monkeypatch.setattr("atlas.clustering.kmeans._WARM_START_TOKENS", 2_000)
    X, k = overlapping_mixture()
    km = JointKMeans(k, backend=backend).fit(X)
    ref = JointKMeans(k, backend="sklearn").fit(X)
    assert km.inertia_ <= ref.inertia_ * 1.01, (km.inertia_, ref.inertia_)
    again = JointKMeans(k, backend=backend).fit(X)
    np.testing.assert_array_equal(km.cluster_centers_, again.cluster_centers_)


def test_torch_reseeds_empty_cluster_with_farthest_point():
    from atlas.clustering.kmeans import _lloyd_torch

    rng = np.random.default_rng(0)
    means = np.array([[0, 0], [10, 0], [0, 10]], dtype=np.float32)
    truth = np.repeat([0, 1, 2], 50)
    X = (means[truth] + 0.1 * rng.normal(size=(150, 2))).astype(np.float32)
    init = np.array([[0, 0], [10, 0], [1000, 1000]], dtype=np.float32)  # third centre attracts nothing
    centers, n_iter, _ = _lloyd_torch(X, init, 30, 0.0, "cpu", 64)
    labels = ((X[:, None] - centers[None]) ** 2).sum(-1).argmin(1)
    assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)
    np.testing.assert_allclose(centers[2], X[truth == 2].mean(0), atol=1e-5)


def test_torch_onehot_sums_used_on_cuda_match_index_add():
    # the CUDA code path (one-hot matmul sums) run on CPU must give the same Lloyd result
    from atlas.clustering.kmeans import _lloyd_torch

    X, k = overlapping_mixture(n=4000)
    init = X[:k].copy()
    a, na, _ = _lloyd_torch(X, init, 30, 0.0, "cpu", 500, onehot_sums=False)
    b, nb, _ = _lloyd_torch(X, init, 30, 0.0, "cpu", 500, onehot_sums=True)
    assert na == nb
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_cosine_assignment_matches_explicit_normalisation():
    """predict() scales the product of the raw rows instead of normalising a copy: same labels and
    squared distances as assigning the normalised rows, and a zero row sits at |c|^2 from every c."""
    from atlas.clustering.kmeans import _assign

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 24)).astype(np.float32) * rng.uniform(0.1, 50, size=(20_000, 1)).astype(np.float32)
    X[7] = 0.0
    centers = normalized(rng.normal(size=(5, 24))) * np.float32([[0.9], [0.5], [0.7], [0.3], [0.8]])  # means of unit rows
    lab, sqd = _assign(X, centers, chunk=65_536, normalize=True)
    Xn = normalized(X[np.arange(len(X)) != 7])
    ref_lab, ref_sqd = _assign(Xn, centers, chunk=65_536, normalize=False)
    keep = np.arange(len(X)) != 7
    np.testing.assert_array_equal(lab[keep], ref_lab)
    np.testing.assert_allclose(sqd[keep], ref_sqd, atol=1e-5)
    c_sq = (centers.astype(np.float64) ** 2).sum(1)
    assert lab[7] == np.argmin(c_sq) and sqd[7] == pytest.approx(c_sq.min(), abs=1e-5)
    np.testing.assert_array_equal(X[7], 0.0)  # the caller's array is untouched
