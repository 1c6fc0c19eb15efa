"""Parity of the analyses' torch device path with reference computations.

The heavy measures run in torch on a device (:mod:`atlas.measures.tensors`). Here every one of them
runs with ``device="cpu"`` -- and again with ``device="cuda"`` where a GPU is visible -- with its
features placed on that device first, as the build does, and is compared with a reference that
shares none of its code: scikit-learn (AMI, ridge, k-means), or a float64 numpy transcription of
the definition (the numpy computations the measures ran before they moved to torch). Each
tolerance is written next to its assert with the reason for it.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from scipy.stats import entropy
from sklearn.cluster import KMeans
from sklearn.linear_model import Ridge
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score
from sklearn.model_selection import GroupKFold

from atlas.clustering.kmeans import JointKMeans, _assign, cluster_features, predict_features
from atlas.measures.knn import channel_removal_curve, knn_probe
from atlas.measures.positional import blank_input_structure
from atlas.measures.registry import REGISTRY
from atlas.measures.similarity import (
    debiased_linear_cka,
    debiased_linear_cka_replicates,
    linear_cka,
    linear_cka_replicates,
    similarity_matrix,
    svcca,
)
from atlas.measures.summary import replicates, summarise
from atlas.measures.uncertainty import half_samples

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                               reason="no CUDA device visible"))]

N, H, W, C, K = 12, 8, 8, 24, 5
SEED = 0

#: Registry measures computed on the host only, with the reason; every other measure's function
#: takes ``device`` and is compared with its reference below.
HOST_ONLY = {
    "shift_curve": "label agreement of small crop windows: integer comparisons, no linear algebra",
    "evaluate_label_maps": "confusion counts at mask resolution and a Hungarian matching (scipy)",
    "score_pseudo_masks": "per-image spectral segmentation of small affinity matrices and a matching",
    "j_and_f": "J and F compare masks at mask resolution (a k-d tree matches boundary pixels); the label "
               "propagation before it runs on the device (tests/test_propagation.py checks it there)",
}
#: Input kinds whose inputs this file does not build, with where they are made.
ELSEWHERE = {"attention": "prefix-token attention rows, computed from a model's queries and keys by "
                          "atlas.measures.attention.prefix_attention (which takes the device)"}


# --------------------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def data():
    """Planted position code, a brighter border and two high-norm outlier tokens; K-means labels."""
    rng = np.random.default_rng(SEED)
    pos = rng.normal(size=(1, H, W, C))
    feats = rng.normal(size=(N, H, W, C)) + 1.2 * pos
    feats[:, [0, -1], :, :3] += 2.0
    feats[:, :, [0, -1], :3] += 2.0
    feats[2, 0, 3] *= 25.0
    feats[5, 4, 4] *= 25.0
    feats = feats.astype(np.float32)
    labels = KMeans(K, n_init=2, random_state=0).fit_predict(feats.reshape(-1, C)).reshape(N, H, W)
    prefix = rng.normal(size=(N, 2, C)).astype(np.float32) * np.float32([[3.0], [0.5]])  # CLS-like, register-like
    weights = half_samples(N, 16, seed=3)  # 0/1 weights: replicate b = the images with weight 1
    blank = np.repeat((np.arange(W) * 3 // W)[None, None, :], H, axis=1).repeat(6, axis=0)
    blank = np.where(rng.random(blank.shape) < 0.2, rng.integers(0, 3, blank.shape), blank)
    return {"feats": feats, "labels": labels, "prefix": prefix, "weights": weights, "blank": blank,
            "blank_weights": half_samples(6, 16, seed=4)}


def on(device, x):
    """Features placed on the device, as the build places them (one float32 copy)."""
    return torch.from_numpy(np.ascontiguousarray(x)).to(device)


def kept(w_row):
    return np.flatnonzero(w_row > 0)


# --------------------------------------------------------------------------- references (float64 numpy / sklearn)


def ref_positional(labels, weights, seed=SEED, n_perm=8):
    n, h, w = labels.shape
    flat = labels.reshape(n, h * w)
    k = int(flat.max()) + 1
    rng = np.random.default_rng(seed)  # the same within-image shuffles as the measure (its definition)
    shuffled = [rng.permuted(flat, axis=1) for _ in range(n_perm)]

    def nce_raw(f):
        cnt = np.eye(k)[f].sum(0)  # (P, K)
        return 1.0 - np.mean([entropy(row) for row in cnt]) / entropy(cnt.sum(0))

    def scores(idx):
        f = flat[idx]
        raw = nce_raw(f)
        chance = np.mean([nce_raw(s[idx]) for s in shuffled])
        pos = np.tile(np.arange(h * w), len(idx))
        return (raw - chance) / (1 - chance), adjusted_mutual_info_score(f.ravel(), pos)

    nce, ami = scores(np.arange(n))
    reps = np.array([scores(kept(wr)) for wr in weights])
    return {"positional_nce": nce, "positional_ami": ami}, {"positional_nce": reps[:, 0], "positional_ami": reps[:, 1]}


def ref_probe(feats, weights, seed=SEED, n_splits=5, max_tokens=4000):
    """The position probe with scikit-learn's Ridge (float64) on the same token sample and folds."""
    n, h, w, c = feats.shape
    n_pos = h * w
    per_image = int(min(n_pos, max(1, max_tokens // n)))
    pos_idx = np.argsort(np.random.default_rng(seed).random((n, n_pos)), axis=1)[:, :per_image]
    x = feats.reshape(n, n_pos, c).astype(np.float64)[np.arange(n)[:, None], pos_idx].reshape(-1, c)
    y = np.stack([(pos_idx // w) / (h - 1), (pos_idx % w) / (w - 1)], axis=-1).reshape(-1, 2)
    groups = np.repeat(np.arange(n), per_image)
    x = (x - x.mean(0)) / x.std(0)
    alphas = ((x - x.mean(0)) ** 2).sum() / c * np.logspace(-4, 4, 33)
    pred = np.empty((len(alphas), *y.shape))
    for tr, te in GroupKFold(n_splits=min(n_splits, n)).split(x, y, groups):
        for a, alpha in enumerate(alphas):
            pred[a, te] = Ridge(alpha=alpha, solver="svd").fit(x[tr], y[tr]).predict(x[te])
    best = ((y[None] - pred) ** 2).sum(1).argmin(0)
    pred = np.stack([pred[best[t], :, t] for t in range(2)], 1)

    def r2(idx):
        rows = np.isin(groups, idx)
        yy, pp = y[rows], pred[rows]
        return float(np.mean(1 - ((yy - pp) ** 2).sum(0) / ((yy - yy.mean(0)) ** 2).sum(0)))

    return {"position_r2": r2(np.arange(n))}, {"position_r2": np.array([r2(kept(wr)) for wr in weights])}


def _chebyshev(h, w):
    r, c = np.divmod(np.arange(h * w), w)
    return np.maximum(np.abs(r[:, None] - r[None]), np.abs(c[:, None] - c[None]))


def ref_locality(feats, slope_distance=4):
    """Every pair of tokens in float64: positional effect and locality at distance 1, the slope,
    and their leave-one-image-out values (the centring mean of all images held fixed)."""
    n, h, w, c = feats.shape
    u = feats.reshape(n, h * w, c).astype(np.float64)
    u = u - u.reshape(-1, c).mean(0)
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    T = np.einsum("ipc,jqc->ipjq", u, u)
    dist = _chebyshev(h, w)
    m = min(slope_distance, int(dist.max()))

    def stats(imgs):
        t = T[np.ix_(imgs, range(h * w), imgs, range(h * w))]
        other = ~np.eye(len(imgs), dtype=bool)[:, None, :, None]  # i != j
        same_img = np.eye(len(imgs), dtype=bool)[:, None, :, None]
        eq = np.eye(h * w, dtype=bool)[None, :, None, :]
        same = t[other & eq].mean()  # the masks broadcast to (n, P, n, P)
        different = t[other & ~eq].mean()
        beyond = []
        for d in range(1, m + 1):
            at = (dist == d)[None, :, None, :]
            beyond.append(t[same_img & at].mean() - t[other & at].mean())
        slope = np.polyfit(np.arange(1, m + 1, dtype=float), beyond, 1)[0]
        return same - different, beyond[0], slope

    names = ("positional_effect", "locality_d1", "locality_slope")
    point = dict(zip(names, stats(np.arange(n))))
    loo = np.array([stats(np.delete(np.arange(n), i)) for i in range(n)])
    return point, {name: loo[:, j] for j, name in enumerate(names)}


def ref_boundary(labels, feats, prefix, weights, z=5.0, min_frac=0.01):
    n, h, w = labels.shape
    border = np.zeros((h, w), bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    norms = np.linalg.norm(feats.astype(np.float64), axis=-1)
    med = np.median(norms)
    threshold = med + z * 1.4826 * np.median(np.abs(norms - med))
    pre = np.linalg.norm(prefix.astype(np.float64), axis=-1)  # (N, T)
    k = int(labels.max()) + 1

    def scores(idx):
        lab, nrm = labels[idx], norms[idx]
        b_all = np.broadcast_to(border, lab.shape)
        cb, ci = np.bincount(lab[b_all], minlength=k), np.bincount(lab[~b_all], minlength=k)
        enrich = ((cb + 1) / (b_all.sum() + k)) / ((ci + 1) / ((~b_all).sum() + k))
        big = (cb + ci) >= min_frac * (cb + ci).sum()
        out = nrm > threshold
        return {"border_ami": adjusted_mutual_info_score(lab.ravel(), b_all.ravel().astype(int)),
                "border_max_enrichment": enrich[big].max(),
                "border_norm_ratio": nrm[b_all].mean() / nrm[~b_all].mean(),
                "outlier_fraction": out.mean(), "outlier_fraction_border": out[b_all].mean(),
                "prefix_norm_ratio": (pre[idx].mean(0) / nrm.mean()).mean()}

    point = scores(np.arange(n))
    reps = [scores(kept(wr)) for wr in weights]
    return point, {name: np.array([r[name] for r in reps]) for name in point}


def ref_blank(labels, weights, seed=SEED, n_perm=8):
    m, h, w = labels.shape
    flat = labels.reshape(m, h * w)
    k = int(flat.max()) + 1
    rng = np.random.default_rng(seed)
    shuffled = [rng.permuted(flat, axis=1) for _ in range(n_perm)]
    same = np.concatenate([(labels[:, :, 1:] == labels[:, :, :-1]).reshape(m, -1),
                           (labels[:, 1:] == labels[:, :-1]).reshape(m, -1)], 1).mean(1)
    per = np.eye(k)[flat].sum(1)
    chance_i = (per * (per - 1)).sum(1) / (h * w * (h * w - 1))

    def scores(idx):
        agree = lambda f: np.eye(k)[f[idx]].sum(0).max(1).mean() / len(idx)  # noqa: E731
        a, a0 = agree(flat), np.mean([agree(s) for s in shuffled])
        b, b0 = same[idx].mean(), chance_i[idx].mean()
        return {"blank_position_score": (a - a0) / (1 - a0), "blank_autocorrelation": (b - b0) / (1 - b0)}

    point = scores(np.arange(m))
    reps = [scores(kept(wr)) for wr in weights]
    return point, {name: np.array([r[name] for r in reps]) for name in point}


def ref_cka(X, Y):
    X, Y = (np.asarray(a, np.float64) - np.asarray(a, np.float64).mean(0) for a in (X, Y))
    return np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))


def ref_debiased_cka(X, Y):
    """Unbiased HSIC (Song et al. 2012) from explicit n x n Gram matrices with zeroed diagonals."""
    X, Y = (np.asarray(a, np.float64) - np.asarray(a, np.float64).mean(0) for a in (X, Y))
    n = len(X)

    def hsic(K, L):
        K, L = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
        one = np.ones(n)
        return (np.trace(K @ L) + one @ K @ one * (one @ L @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))

    K, L = X @ X.T, Y @ Y.T
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def ref_svcca(X, Y, var_kept=0.99):
    X, Y = (np.asarray(a, np.float64) - np.asarray(a, np.float64).mean(0) for a in (X, Y))
    cap = (len(X) - 1) // 2

    def basis(A):
        U, s, _ = np.linalg.svd(A, full_matrices=False)
        d = int(np.searchsorted(np.cumsum(s**2) / (s**2).sum(), var_kept - 1e-12) + 1)
        return U[:, :max(1, min(d, int((s > s[0] * 1e-10).sum()), cap))]

    return np.clip(np.linalg.svd(basis(X).T @ basis(Y), compute_uv=False), 0, 1).mean()


def ref_knn(S, ys, Q, ks, n_classes):
    """Cosine k-NN in float64 with the measure's tie rule (votes, then summed similarity, then
    the lowest class id)."""
    S = S / np.linalg.norm(S, axis=1, keepdims=True)
    Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    sim = Q.astype(np.float64) @ S.astype(np.float64).T
    order = np.argsort(-sim, axis=1, kind="stable")[:, :max(ks)]
    out = {}
    for k in ks:
        votes = np.zeros((len(Q), n_classes))
        simsum = np.zeros((len(Q), n_classes))
        for j in range(k):
            np.add.at(votes, (np.arange(len(Q)), ys[order[:, j]]), 1)
            np.add.at(simsum, (np.arange(len(Q)), ys[order[:, j]]), sim[np.arange(len(Q)), order[:, j]])
        out[k] = np.argmax(votes * (2 * k + 2) + simsum + k, axis=1)
    return out


def ref_miou(pred, true, n_classes):
    conf = np.zeros((n_classes, n_classes))
    np.add.at(conf, (true, pred), 1)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    return float((tp[union > 0] / union[union > 0]).mean())


# --------------------------------------------------------------------------- the registry's measures


@pytest.mark.parametrize("device", DEVICES)
def test_every_registry_measure_on_the_device_equals_its_reference(data, device):
    feats, labels, prefix, weights = data["feats"], data["labels"], data["prefix"], data["weights"]
    values, results = summarise(labels, on(device, feats), prefix, seed=SEED, weights=weights, return_results=True,
                                device=device)
    reps = replicates(results, values)  # by measure name
    blank = blank_input_structure(data["blank"], seed=SEED, weights=data["blank_weights"], device=device)

    refs = {}
    for (point, ref_reps_all), (tol, why) in (
        # measured on the CPU (largest deviation of value or replicate) in brackets
        (ref_positional(labels, weights), (1e-9, "float64 counts and logs on both sides; the expected MI is the same "
                                                 "scipy gammaln sum as scikit-learn's [2e-14]")),
        (ref_boundary(labels, feats, prefix, weights), (2e-6, "float32 token norms (vs float64): ~1e-7 relative per "
                                                             "norm; the outlier tokens are far above the threshold, "
                                                             "so their counts are exact [7e-8]")),
        (ref_probe(feats, weights), (1e-5, "float32 z-scored products and a float32 eigendecomposition of the C x C "
                                           "Gram matrix (vs float64 Ridge), the same penalty chosen [7e-8]")),
        (ref_locality(feats), (1e-6, "float32 unit tokens and products, summed in float64; cosines are O(1) [4e-9]")),
        (ref_blank(data["blank"], data["blank_weights"]), (1e-9, "integer counts, exact in float32; float64 "
                                                                 "means [2e-16]")),
    ):
        for name, v in point.items():
            refs[name] = (v, ref_reps_all[name], tol, why)

    got = dict(values)
    got.update({name: blank[REGISTRY[name].result_key] for name in ("blank_position_score", "blank_autocorrelation")})
    for name, (ref_value, ref_reps, tol, why) in refs.items():
        m = REGISTRY[name]
        assert got[name] == pytest.approx(ref_value, abs=tol), (name, why)
        ours = blank["replicates"][m.result_key] if m.inputs == "blank labels" else reps[name]
        np.testing.assert_allclose(ours, ref_reps, atol=tol, rtol=0, err_msg=f"{name} replicates: {why}")

    # the rest of the registry: the evaluation measures have their own tests below (k-NN, CKA); a
    # measure added later that takes a device and reads patch features gets the generic check
    # (device path vs the default host path); one that does not take a device must say why here
    checked_below = {"knn_miou_k10", "cka_full_vs_foreground", "cka_full_vs_background",
                     "cka_centre_vs_random_occlusion"}
    for name, m in REGISTRY.items():
        if name in refs or name in checked_below or m.inputs in ELSEWHERE:
            continue
        if "device" not in inspect.signature(m.function).parameters:
            assert m.function.__name__ in HOST_ONLY, f"{name}: {m.function.__name__} runs on the host only; say why"
        elif m.inputs == "features":
            host = m.function(feats, weights=weights)
            dev = m.function(on(device, feats), weights=weights, device=device)
            # float32 products on another device or in another order: ~1e-7 relative
            assert np.mean(dev[m.result_key]) == pytest.approx(np.mean(host[m.result_key]), rel=1e-5, abs=1e-7), name
        else:
            pytest.fail(f"{name}: takes a device but has no parity check (inputs {m.inputs!r})")


def test_cpu_device_path_is_the_default_path(data):
    """device="cpu" with the features as a CPU tensor is today's call (numpy, device=None): equal."""
    feats, labels, prefix, weights = data["feats"], data["labels"], data["prefix"], data["weights"]
    a, ra = summarise(labels, feats, prefix, seed=SEED, weights=weights, return_results=True)
    b, rb = summarise(labels, on("cpu", feats), prefix, seed=SEED, weights=weights, return_results=True, device="cpu")
    assert a == b  # exact: the same torch kernels on the same CPU data
    for f in ra:
        for key, v in ra[f].get("replicates", {}).items():
            np.testing.assert_array_equal(v, rb[f]["replicates"][key])


def test_distance_bins_without_atomics_equal_index_add():
    """The locality jackknife bins (B, P * P) products by grid distance: index_add_ on the CPU,
    sorted slice sums on CUDA (no atomics, a fixed order). Both here, on the CPU."""
    from atlas.measures.locality import _DistanceBins, _grid_distance

    dist = _grid_distance(7, 9, "chebyshev")
    values = torch.from_numpy(np.random.default_rng(7).normal(size=(5, dist.size)))
    a = _DistanceBins(dist, "cpu", segments=False).sums(values)
    b = _DistanceBins(dist, "cpu", segments=True).sums(values)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)  # float64 sums of ~60 values in another order


# --------------------------------------------------------------------------- k-means and assignment


@pytest.mark.parametrize("device", DEVICES)
def test_assignment_on_the_device_equals_float64(device):
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(3000, 16)) * rng.uniform(0.2, 5, (3000, 1))).astype(np.float32)
    centers = rng.normal(size=(7, 16)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True) * 1.3
    for normalize in (True, False):
        lab, sqd = _assign(on(device, X), centers, 512, normalize=normalize, device=device)
        Xr = X.astype(np.float64)
        if normalize:
            Xr = Xr / np.linalg.norm(Xr, axis=1, keepdims=True)
        d = ((Xr[:, None] - centers.astype(np.float64)[None]) ** 2).sum(-1)
        part = np.sort(d, axis=1)
        clear = part[:, 1] - part[:, 0] > 1e-4  # float32 distances: ~1e-6 error; ties closer than that may flip
        assert clear.mean() > 0.99
        np.testing.assert_array_equal(lab[clear], d.argmin(1)[clear])
        # float32 distances of O(1..25) values: a few float32 ulps
        np.testing.assert_allclose(sqd, d.min(1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_kmeans_on_the_device_equals_sklearn(device):
    rng = np.random.default_rng(2)
    dirs = np.linalg.qr(rng.normal(size=(16, 6)))[0].T  # 6 orthonormal directions
    truth = rng.integers(0, 6, 2400)
    feats = (dirs[truth] + 0.05 * rng.normal(size=(2400, 16))).astype(np.float32).reshape(24, 10, 10, 16)
    labels, km = cluster_features(on(device, feats), 6, device=device, seed=0)
    assert km.backend_ == ("torch" if device == "cuda" else "faiss")  # "auto": torch on CUDA, faiss on the CPU
    ref = KMeans(6, n_init=3, random_state=0).fit(feats.reshape(-1, 16) / np.linalg.norm(feats.reshape(-1, 16),
                                                                                          axis=1, keepdims=True))
    assert adjusted_rand_score(ref.labels_, labels.ravel()) == 1.0  # separated clusters: the same partition
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-4)  # float32 vs float64 distances summed over 2400 rows
    np.testing.assert_array_equal(predict_features(km, feats), labels)  # numpy input, assigned where it was fitted
    # a training subsample (gathered on the device) and the two-stage fit: torch there vs faiss on the host
    torch_km = JointKMeans(6, backend="torch", device=device, seed=0, max_train_tokens=1200).fit(
        on(device, feats.reshape(-1, 16)))
    faiss_km = JointKMeans(6, backend="faiss", seed=0, max_train_tokens=1200).fit(feats.reshape(-1, 16))
    np.testing.assert_array_equal(torch_km.labels_, faiss_km.labels_)  # canonical order: identical ids
    np.testing.assert_allclose(torch_km.cluster_centers_, faiss_km.cluster_centers_, atol=1e-5)  # float32 means


# --------------------------------------------------------------------------- evaluation measures


@pytest.mark.parametrize("device", DEVICES)
def test_knn_on_the_device_equals_float64(device):
    rng = np.random.default_rng(3)
    n_cls = 4
    proto = rng.normal(size=(n_cls, 12))
    ys, yq = rng.integers(0, n_cls, (10, 6, 6)), rng.integers(0, n_cls, (6, 6, 6))
    ys[0, 0, :3] = -1  # unlabelled patches are left out
    S = (proto[np.maximum(ys, 0)] + 1.5 * rng.normal(size=(*ys.shape, 12))).astype(np.float32)
    Q = (proto[yq] + 1.5 * rng.normal(size=(*yq.shape, 12))).astype(np.float32)
    w = half_samples(6, 8, seed=5)
    scores, reps = knn_probe(on(device, S), ys, on(device, Q), yq, (1, 5, 10, 20), n_cls, weights=w, device=device)
    keep = ys.ravel() >= 0
    ref = ref_knn(S.reshape(-1, 12)[keep], ys.ravel()[keep], Q.reshape(-1, 12), (1, 5, 10, 20), n_cls)
    for k, pred in ref.items():
        # float32 similarities (vs float64) could swap neighbours closer than ~1e-6; these are not
        assert scores[k] == pytest.approx(ref_miou(pred, yq.ravel(), n_cls), abs=1e-12), k
    img = np.repeat(np.arange(6), 36)
    for b, wr in enumerate(w):
        rows = np.isin(img, kept(wr))
        assert reps[10][b] == pytest.approx(ref_miou(ref[10][rows], yq.ravel()[rows], n_cls), abs=1e-12)
    host = channel_removal_curve(S, ys, Q, yq, ks=(10,), ms=(0, 2), n_classes=n_cls)
    dev = channel_removal_curve(on(device, S), ys, on(device, Q), yq, ks=(10,), ms=(0, 2), n_classes=n_cls,
                                device=device)
    assert dev == host  # the controls' float64 fits and the neighbours agree on the device


@pytest.mark.parametrize("device", DEVICES)
def test_cka_and_svcca_on_the_device_equal_float64(device):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(16, 40))
    Y = X @ rng.normal(size=(40, 30)) + 0.5 * rng.normal(size=(16, 30))
    Xd, Yd = on(device, X.astype(np.float32)), on(device, Y.astype(np.float32))
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)  # the references see the same float32 inputs
    # float64 on both sides; SVD- and Gram-based formulas agree to ~1e-13
    assert linear_cka(Xd, Yd, device=device) == pytest.approx(ref_cka(X32, Y32), abs=1e-10)
    assert debiased_linear_cka(Xd, Yd, device=device) == pytest.approx(ref_debiased_cka(X32, Y32), abs=1e-10)
    assert svcca(Xd, Yd, device=device) == pytest.approx(ref_svcca(X32, Y32), abs=1e-10)
    mats = similarity_matrix({"a": X32, "b": Y32, "c": X32[:, ::-1]}, device=device)
    assert mats["linear_cka"][0, 1] == pytest.approx(ref_cka(X32, Y32), abs=1e-10)
    assert mats["svcca"][1, 2] == pytest.approx(ref_svcca(Y32, X32[:, ::-1]), abs=1e-10)
    w = half_samples(16, 10, seed=6)
    reps = linear_cka_replicates(Xd, Yd, w, device=device)
    np.testing.assert_allclose(reps, [ref_cka(X32[kept(r)], Y32[kept(r)]) for r in w], atol=1e-10)
    reps = debiased_linear_cka_replicates(Xd, Yd, w, device=device)  # the stored numbers' intervals
    np.testing.assert_allclose(reps, [ref_debiased_cka(X32[kept(r)], Y32[kept(r)]) for r in w], atol=1e-10)


# --------------------------------------------------------------------------- the pipeline


def test_model_run_tensor_path_equals_the_numpy_path(tmp_path, monkeypatch):
    """ModelRun as on a GPU -- features copied once per (block, representation) to the analysis
    device and shared by k-means and every measure, tensor reference token sets -- here with the CPU
    standing in for the GPU, against the CPU build's numpy path: the same numbers."""
    from atlas.config import parse_config
    from atlas.features.backbones import load_backbone
    from atlas.pipeline.inputs import load_images
    from atlas.pipeline.model_run import ModelRun

    cfg = parse_config("""
[images]
resolution = [112, 112]
[features]
layers = [0, 1]
gallery_layers = [1]
representations = ["tokens", "keys"]
[clustering]
ks = [4]
[analyses]
k = 4
[uncertainty]
resamples = 20
seeds = 2
[[backbones]]
display_name = "tiny"
timm_name = "vit_small_patch16_224"
weights = "random"
training = "random"
overrides = { depth = 2, embed_dim = 32, num_heads = 2 }
""")
    images, _ = load_images(cfg)
    loaded = load_backbone(cfg.backbones[0], (112, 112), seed=0)

    def analysed():
        result = ModelRun(cfg, loaded, images, None, torch.device("cpu")).run()
        return ({(m.block, m.representation, m.measure): (m.value, m.lo, m.hi) for m in result.measures},
                {(m.block, m.representation, m.measure, m.reference): m.value for m in result.references},
                result.label_maps)

    host, host_refs, host_maps = analysed()
    monkeypatch.setattr(ModelRun, "analysis_device", property(lambda self: torch.device("cpu")))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (64 * 2**30, 80 * 2**30))
    dev, dev_refs, dev_maps = analysed()
    assert host.keys() == dev.keys() and host_maps.keys() == dev_maps.keys()
    for key in host_maps:
        np.testing.assert_array_equal(host_maps[key], dev_maps[key])  # the same float32 rows clustered
    for key, (v, lo, hi) in host.items():
        # float32 copies of the same float16 features, the same kernels on the CPU [measured: 0]
        assert dev[key][0] == pytest.approx(v, abs=1e-9), key
        for a, b in zip(dev[key][1:], (lo, hi)):
            assert (a is None and b is None) or a == pytest.approx(b, abs=1e-9), key
    for key, v in host_refs.items():
        # the position-only set is the mean token of every position: in float16 on the host path
        # (numpy's mean of float16 features), in float32 on the device path [measured: 2e-8]
        assert dev_refs[key] == pytest.approx(v, abs=1e-6), key
