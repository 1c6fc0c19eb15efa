"""k-NN patch probe and channel removal: known answers, sklearn reference, planted features."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from atlas.measures.knn import (
    channel_removal_curve,
    knn_predict,
    knn_probe,
    miou_from_labels,
    patch_labels,
    variance_spectrum,
)


def _halves(n: int, seed: int):
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


# ---------------------------------------------------------------- patch labels


def test_patch_labels_majority_ignore_and_ties():
    I = 255
    mask = np.array([
        [0, 0, 1, 1, 2, 2],
        [0, 1, 1, I, I, I],
        [3, 3, 0, 1, I, I],
        [3, I, 1, 0, I, 2],
    ])  # fmt: skip
    out = patch_labels(mask, (2, 3), ignore_index=I, min_valid=0.5)
    # cells: [0,0/0,1]->0 ; [1,1/1,I]->1 ; [2,2/I,I]->2 (half valid) ;
    #        [3,3/3,I]->3 ; [0,1/1,0] tie -> 0 ; [I,I/I,2] -> 1/4 valid -> -1
    assert out.tolist() == [[0, 1, 2], [3, 0, -1]]
    assert patch_labels(mask, (2, 3), ignore_index=I, min_valid=0.6)[0, 2] == -1
    assert patch_labels(mask, (2, 3), ignore_index=I, min_valid=0.0)[1, 2] == 2


def test_patch_labels_uneven_cells():
    mask = np.repeat(np.arange(5)[None, :], 3, axis=0)  # 3 x 5, columns 0..4
    # cell of column x = floor(x * 2 / 5): columns 0,1,2 -> cell 0 ; 3,4 -> cell 1
    assert patch_labels(mask, (1, 2)).tolist() == [[0, 3]]
    with pytest.raises(ValueError, match="no finer"):
        patch_labels(mask, (4, 2))


# ---------------------------------------------------------------- k-NN


def test_knn_predict_matches_sklearn_without_ties():
    rng = np.random.default_rng(0)
    S = rng.normal(size=(300, 8)); ys = (S[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(int)
    Q = rng.normal(size=(200, 8))
    ours = knn_predict(S, ys, Q, ks=(1, 5, 11), n_classes=2, chunk=64)
    for k in (1, 5, 11):
        ref = KNeighborsClassifier(k, metric="cosine", algorithm="brute").fit(S, ys).predict(Q)
        np.testing.assert_array_equal(ours[k], ref)


def test_knn_tie_broken_by_summed_similarity():
    S = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    ys = np.array([1, 0, 0])
    q = np.array([[1.0, 0.1]])
    # k=2: one vote each for classes 1 and 0; class 1's neighbour is more similar
    assert knn_predict(S, ys, q, ks=(2,), n_classes=2)[2].tolist() == [1]
    assert knn_predict(S, ys, q, ks=(3,), n_classes=2)[3].tolist() == [0]  # 2 votes beat 1


def test_knn_probe_known_answer_and_skips():
    S = np.array([[[1, 0], [0, 1]]], float)  # one image, 1 x 2 grid
    ys = np.array([[0, 1]])
    Q = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]])
    yq = np.array([[0, 1, 1, -1]])  # last patch unlabelled -> left out
    # k=1 predictions: 0, 1, 0 -> class0 IoU = 1/2, class1 IoU = 1/2
    assert knn_probe(S, ys, Q, yq, ks=(1,))[1] == pytest.approx(0.5)


def test_miou_from_labels():
    assert miou_from_labels(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 4) == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)


def test_variance_spectrum_sorted():
    x = np.random.default_rng(0).normal(size=(2, 50, 50, 3)) * np.array([1.0, 5.0, 0.1])
    v = variance_spectrum(x)
    assert v.shape == (3,) and np.all(np.diff(v) <= 0)
    assert v == pytest.approx([25, 1, 0.01], rel=0.05)


# ---------------------------------------------------------------- planted channel removal


def _planted(seed=0, n_img=8, grid=(6, 6), n_cls=4, d=16, n_noise=3, noise_std=30.0):
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(n_cls, d))
    labels = rng.integers(0, n_cls, (n_img, *grid))
    signal = centroids[labels] + 0.15 * rng.normal(size=(*labels.shape, d))
    noise = noise_std * rng.normal(size=(*labels.shape, n_noise))
    feats = np.concatenate([noise[..., :1], signal, noise[..., 1:]], axis=-1)  # noise not last
    return feats.astype(np.float32), labels


def test_planted_high_variance_channels():
    feats, labels = _planted()
    sup, qry = _halves(len(feats), seed=0)
    curve = channel_removal_curve(feats[sup], labels[sup], feats[qry], labels[qry],
                                  ks=(1, 5), ms=(0, 1, 3, 10, 40), n_classes=4)
    none = curve["none"]
    assert none[0][5] < 0.5  # the three noise channels dominate the cosine
    assert none[3][5] > 0.97 and none[3][1] > 0.97  # removing exactly them restores the probe
    assert none[1][5] < none[3][5]
    assert 40 not in none  # would leave no channel
    assert curve["zscore"][0][5] > none[0][5] + 0.2  # scale control already helps a lot
    assert curve["zscore"][3][5] > 0.97 and curve["pca_whiten"][3][5] > 0.9


def test_controls_are_scale_invariant():
    feats, labels = _planted(seed=1)
    scaled = feats * np.linspace(0.2, 5.0, feats.shape[-1]).astype(np.float32)
    sup, qry = _halves(len(feats), seed=3)
    kw = dict(ks=(5,), ms=(0,), controls=("none", "zscore", "pca_whiten"), n_classes=4)
    a = channel_removal_curve(feats[sup], labels[sup], feats[qry], labels[qry], **kw)
    b = channel_removal_curve(scaled[sup], labels[sup], scaled[qry], labels[qry], **kw)
    assert a["zscore"][0][5] == pytest.approx(b["zscore"][0][5], abs=1e-9)
    assert a["pca_whiten"][0][5] == pytest.approx(b["pca_whiten"][0][5], abs=1e-9)
    assert a["none"][0][5] != pytest.approx(b["none"][0][5], abs=1e-3)  # raw cosine is not


@pytest.mark.parametrize("rows", [30, 400])  # fewer rows than channels (rank-deficient), and more
def test_controls_match_sklearn(rows):
    """The controls are fitted on the device from the support set's float64 moments: ``zscore`` is
    sklearn's StandardScaler, ``pca_whiten`` sklearn's whitened PCA (components of numerically zero
    variance dropped) up to the components' signs and order, which no cosine depends on: the
    cosine similarities of query to support rows agree. The variances rank as numpy's."""
    import torch
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    from atlas.measures.knn import _control, _moments

    rng = np.random.default_rng(rows)
    mix = rng.normal(size=(48, 48)) * np.logspace(0, -3, 48)[:, None]  # correlated, very unequal scales
    S, Q = ((5.0 + rng.normal(size=(n, 48)) @ mix).astype(np.float32) for n in (rows, 50))
    keep = torch.arange(3, 48)  # the top channels dropped, as the curve does

    def cosines(s, q):
        s, q = (np.asarray(x, dtype=np.float64) for x in (s, q))
        s, q = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (s, q))
        return q @ s.T

    mean, var, cov = _moments(torch.from_numpy(S))
    assert np.allclose(var.numpy(), S.astype(np.float64).var(axis=0), rtol=1e-10)
    z = _control(torch.from_numpy(S), torch.from_numpy(Q), keep, "zscore", mean, var, cov)
    scaler = StandardScaler().fit(S[:, 3:].astype(np.float64))
    assert np.allclose(z[1].numpy(), scaler.transform(Q[:, 3:]), atol=1e-5)
    w = _control(torch.from_numpy(S), torch.from_numpy(Q), keep, "pca_whiten", mean, var, cov)
    pca = PCA(svd_solver="full").fit(S[:, 3:].astype(np.float64))
    comps = pca.explained_variance_ > 1e-9 * pca.explained_variance_[0]
    assert w[0].shape[1] == comps.sum() == min(rows - 1, 45)
    proj = lambda X: (X[:, 3:] - pca.mean_) @ pca.components_[comps].T / np.sqrt(pca.explained_variance_[comps])  # noqa: E731
    assert np.abs(cosines(*(x.numpy() for x in w)) - cosines(proj(S), proj(Q))).max() < 1e-4


def test_validation_messages():
    with pytest.raises(ValueError, match="unknown controls"):
        channel_removal_curve(np.zeros((4, 2)), np.zeros(4, int), np.zeros((4, 2)), np.zeros(4, int), controls=("pca",))
    with pytest.raises(ValueError, match="labels"):
        knn_probe(np.zeros((4, 2)), np.zeros(3, int), np.zeros((4, 2)), np.zeros(4, int))
    with pytest.raises(ValueError, match="max\\(ks\\)"):
        knn_probe(np.ones((4, 2)), np.zeros(4, int), np.ones((4, 2)), np.zeros(4, int), ks=(5,))
