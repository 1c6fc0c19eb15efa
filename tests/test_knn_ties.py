"""k-NN ties (issue 26, item 5b): neighbours tied at the k-th similarity share the remaining votes,
so the probe does not depend on the order of the support set (position-only features are identical
across images, so dozens of support patches tie); without ties nothing changes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from atlas.clustering.kmeans import cluster_features
from atlas.measures.baselines import POSITION_FLOOR, POSITION_SIGMA, position_features
from atlas.measures.knn import knn_predict, knn_probe

GRID = (6, 6)


def test_position_only_knn_does_not_depend_on_the_order_of_the_support_set():
    rng = np.random.default_rng(0)
    n_s, n_q, n_cls = 12, 6, 4
    feats = position_features(n_s + n_q, GRID).astype(np.float32)  # identical for every image
    labels = rng.integers(0, n_cls, (n_s + n_q, *GRID))
    s_f, s_y, q_f, q_y = feats[:n_s], labels[:n_s], feats[n_s:], labels[n_s:]
    ref = knn_probe(s_f, s_y, q_f, q_y, (1, 5, 10, 20), n_cls)
    for seed in range(5):
        perm = np.random.default_rng(seed + 1).permutation(n_s)
        assert knn_probe(s_f[perm], s_y[perm], q_f, q_y, (1, 5, 10, 20), n_cls) == pytest.approx(ref, abs=1e-12)
    # and the position baseline's votes are the class frequencies at each position: k-NN at any k
    # predicts the majority class of the support set at the query's position
    counts = np.stack([(s_y == c).sum(axis=0) for c in range(n_cls)])  # (classes, h, w)
    best = counts == counts.max(axis=0)
    pred = knn_predict(s_f.reshape(-1, s_f.shape[-1]), s_y.reshape(-1), q_f.reshape(-1, q_f.shape[-1]), (5,), n_cls)[5]
    assert best.reshape(n_cls, -1)[pred.reshape(n_q, -1), np.arange(GRID[0] * GRID[1])].all()


def test_a_hand_computed_tie():
    """Query (1, 0); support a = (1, 0) class 0 (similarity 1) and three at (0, 1) (similarity 0):
    classes 1, 2, 2. k = 3: a gets one vote, the three tied neighbours share the other two (2/3
    each): class 0 has 1, class 1 2/3, class 2 4/3 -> class 2, in every order of the support set
    (taking the first two tied neighbours would give class 0 or 2 depending on the order)."""
    feats = np.array([[1, 0], [0, 1], [0, 1], [0, 1]], dtype=np.float32)
    labels = np.array([0, 1, 2, 2])
    query = np.array([[1.0, 0.0]], dtype=np.float32)
    for order in ([0, 1, 2, 3], [0, 2, 3, 1], [3, 2, 1, 0], [1, 0, 3, 2]):
        out = knn_predict(feats[order], labels[order], query, (1, 2, 3), 3)
        assert (out[1][0], out[3][0]) == (0, 2), order
        # k = 2: a's vote (1) beats the three tied (1/3, 2/3): class 0
        assert out[2][0] == 0


@pytest.mark.parametrize("k", [1, 5, 9])
def test_without_ties_the_probe_is_plain_cosine_knn(k):
    rng = np.random.default_rng(k)
    support, query = rng.normal(size=(300, 8)), rng.normal(size=(120, 8))
    ys = (support[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(int)  # two classes, odd k: no vote ties
    ours = knn_predict(support.astype(np.float32), ys, query.astype(np.float32), (k,), 2)[k]
    ref = KNeighborsClassifier(k, metric="cosine", algorithm="brute").fit(support, ys).predict(query)
    assert np.array_equal(ours, ref)


def test_a_larger_k_tied_at_another_level_is_counted_again():
    """One query, two ks whose ties both cross the k-th neighbour at different levels. k = 1: the
    two support patches at similarity 1 (classes 0, 1) tie. k = 3: those two vote, and the last
    vote is shared by the three at similarity 0.5 (classes 1, 2, 2): class 1 has 4/3 -> class 1.
    Reusing the k = 1 tie's counts (level 1) would share it between classes 0 and 1 -> class 0."""
    half = [0.5, np.sqrt(0.75)]
    feats = np.array([[1, 0], [1, 0], half, half, half, [0, 1], [0, 1], [0, 1]], dtype=np.float32)
    labels = np.array([0, 1, 1, 2, 2, 0, 0, 0])
    query = np.array([[1.0, 0.0]], dtype=np.float32)
    for order in ([0, 1, 2, 3, 4, 5, 6, 7], [4, 3, 2, 1, 0, 7, 6, 5]):
        out = knn_predict(feats[order], labels[order], query, (1, 3), 3)
        assert (out[1][0], out[3][0]) == (0, 1), order


def _gaussian_bumps(grid):
    """The position features' Gaussian bumps without their floor, as they were made before it."""
    h, w = grid
    rr, cc = np.divmod(np.arange(h * w), w)
    d2 = (rr[:, None] - rr[None, :]) ** 2 + (cc[:, None] - cc[None, :]) ** 2
    return np.exp(-d2 / (2.0 * POSITION_SIGMA**2)).astype(np.float32).reshape(h, w, h * w)


def test_position_features_have_no_subnormal_products_and_the_same_neighbours():
    """The floor drops the bumps' far tails, whose products (on unit vectors too) fell below
    float32's normal range, where CPU arithmetic crawls; the k-NN probe and k-means see the same
    neighbours and clusters as with the whole Gaussian."""
    grid, n_s, n_q, n_cls = (20, 20), 4, 2, 5
    feats = position_features(n_s + n_q, grid)
    nonzero = feats[feats > 0]
    assert nonzero.min() >= POSITION_FLOOR
    norm = np.linalg.norm(feats, axis=-1).max()
    assert (nonzero.min() / norm) ** 2 >= np.finfo(np.float32).tiny  # products of unit vectors stay normal
    whole = np.broadcast_to(_gaussian_bumps(grid), feats.shape)
    assert ((whole > 0) & (whole < np.finfo(np.float32).tiny)).any()  # the grid is large enough to need it
    labels = np.random.default_rng(0).integers(0, n_cls, (n_s + n_q, *grid))
    flat = lambda f: f.reshape(-1, f.shape[-1])  # noqa: E731
    for f in (feats, whole):
        pred = knn_predict(flat(f[:n_s]), labels[:n_s].ravel(), flat(f[n_s:]), (1, 10), n_cls)
        if f is feats:
            ref = pred
    assert all(np.array_equal(pred[k], ref[k]) for k in (1, 10))
    ours = cluster_features(feats[:2], 6, seed=0)[0]
    theirs = cluster_features(np.ascontiguousarray(whole[:2]), 6, seed=0)[0]
    assert np.array_equal(ours, theirs)
