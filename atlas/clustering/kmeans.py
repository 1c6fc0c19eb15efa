"""Joint k-means over the patch tokens of all images.

One fit over the tokens of *every* image (not one fit per image), so that cluster ``j`` means the
same thing in every image of the atlas. Rows are L2-normalised first by default: ViT token norms
vary a lot (high-norm "artifact" tokens, per-block scale) and cosine geometry is what the
literature clusters in.

Three interchangeable backends compute the Lloyd iterations; whatever the backend, the result is
put into one canonical order (largest cluster first) so downstream colours never depend on
backend internals:

* ``"faiss"``: ``faiss.Kmeans`` Lloyd iterations on CPU over every token (faiss's default
  subsampling to 256 tokens per cluster is switched off), warm-started by greedy k-means++ and
  Lloyd on a 100k-token sample (fast; the default on CPU).
* ``"torch"``: the same two stages with plain chunked Lloyd in torch, on CUDA when available.
* ``"sklearn"``: :class:`sklearn.cluster.KMeans` (the reference the others are tested against).
"""

from __future__ import annotations

import math
import numbers
import warnings
from functools import partial

import numpy as np

from ..measures.tensors import as_tensor, is_tensor, resolve_device, to_numpy

__all__ = ["JointKMeans", "cluster_features", "predict_features", "TOL"]

#: Lloyd stops once an iteration lowers the objective by less than this share (the atlas's setting).
TOL = 1e-4

_BACKENDS = ("auto", "faiss", "torch", "sklearn")


class JointKMeans:
    """K-means over a token matrix, in cosine geometry by default, with a canonical cluster order.

    Parameters
    ----------
    n_clusters : int
        Number of clusters K (>= 1). Must not exceed the number of tokens. If the tokens hold fewer
        than K distinct points some clusters end up empty; they are kept (size 0, at the end of the
        canonical order) and a ``UserWarning`` is raised, as in scikit-learn.
    normalize : bool, default True
        L2-normalise every token before clustering (and before predicting). Centroids, ``inertia_``
        and distances all live in that normalised space.
    seed : int, default 0
        Seed of the k-means++ initialisation (and of the training subsample). Same seed, same input,
        same backend and device -> identical centroids and labels.
    n_iter : int, default 30
        Maximum number of Lloyd iterations (per stage, see Notes).
    tol : float, default 1e-4
        Stop Lloyd once an iteration lowers the objective by less than ``tol`` (relative); 0 runs
        until the objective stops decreasing. Ignored by ``backend="sklearn"``, which keeps
        scikit-learn's own criterion.
    n_init : int, default 3
        Seedings tried in the warm-start stage (seeds ``seed * n_init + r`` for ``r < n_init``, so two
        seeds share no seeding); the one with the
        lowest objective on the sample goes on to the full-data stage. Cheap, as the sample is small
        (when all tokens fit in the sample it is a plain best-of-``n_init``). Ignored by
        ``backend="sklearn"`` (one initialisation, as the reference).
    backend : {"auto", "faiss", "torch", "sklearn"}, default "auto"
        ``"auto"`` is ``"torch"`` when the device (below) is a CUDA device, else ``"faiss"``.
    max_train_tokens : int or None, default None
        Fit the centroids on a seeded random subsample of this many tokens (all tokens when None);
        labels, sizes and ``inertia_`` are still computed over all tokens given to :meth:`fit`.
    device : str, torch.device or None, default None
        Torch device of ``backend="torch"`` and of the label assignment; None: the device of a
        tensor ``X``, else ``"cuda"`` when available, else ``"cpu"``. ``X`` may be a numpy array
        or a torch tensor on any device (the features of a pair stay where they are); the faiss
        and sklearn backends fit on the CPU and assign there.
    chunk_size : int, default 65536
        Rows processed at a time when converting, normalising and predicting (bounds memory).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, C), float32
        Centroids in canonical order: descending cluster size, ties broken by the centroid
        coordinates (lexicographic).
    labels_ : ndarray of shape (M,), int32
        Cluster of every token given to :meth:`fit`.
    cluster_sizes_ : ndarray of shape (n_clusters,), int64
        Tokens per cluster (non-increasing).
    inertia_ : float
        Sum over all fitted tokens of the squared Euclidean distance to their centroid, measured in
        the clustered space (after L2-normalisation when ``normalize=True``).
    n_iter_ : int
        Lloyd iterations the backend ran over all training tokens.

    Notes
    -----
    The faiss and torch backends fit in two stages: greedy k-means++ seeding (as scikit-learn) and
    Lloyd to convergence on a seeded sample of 100k training tokens (best of ``n_init``), then
    Lloyd on all training tokens from those centroids. The full-data stage starts near a local
    optimum, so it needs a few passes instead of ~30; the end point is still a Lloyd fixed point of
    the full data (up to ``tol``), measured within 1% of scikit-learn's inertia in
    ``bench/bench_kmeans.py``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(m, 0.05, (50, 8)) for m in (-1.0, 1.0)]).astype(np.float32)
    >>> km = JointKMeans(2, normalize=False, backend="faiss").fit(X)
    >>> km.cluster_sizes_.tolist()
    [50, 50]
    >>> bool((km.predict(X) == km.labels_).all())
    True
    """

    def __init__(
        self,
        n_clusters: int,
        *,
        normalize: bool = True,
        seed: int = 0,
        n_iter: int = 30,
        tol: float = TOL,
        n_init: int = 3,
        backend: str = "auto",
        max_train_tokens: int | None = None,
        device: str | None = None,
        chunk_size: int = 65_536,
    ) -> None:
        self.n_clusters = n_clusters
        self.normalize = normalize
        self.seed = seed
        self.n_iter = n_iter
        self.tol = tol
        self.n_init = n_init
        self.backend = backend
        self.max_train_tokens = max_train_tokens
        self.device = device
        self.chunk_size = chunk_size

    # ------------------------------------------------------------------ parameters

    def _check_params(self) -> None:
        if not _is_int(self.n_clusters) or self.n_clusters < 1:
            raise ValueError(f"n_clusters must be an int >= 1, got {self.n_clusters!r}")
        if not _is_int(self.n_iter) or self.n_iter < 1:
            raise ValueError(f"n_iter must be an int >= 1, got {self.n_iter!r}")
        if not isinstance(self.tol, numbers.Real) or not 0 <= self.tol < 1:
            raise ValueError(f"tol must be a float in [0, 1), got {self.tol!r}")
        if not _is_int(self.n_init) or self.n_init < 1:
            raise ValueError(f"n_init must be an int >= 1, got {self.n_init!r}")
        # faiss stores the seed in a C int
        if not _is_int(self.seed) or not 0 <= self.seed < 2**31:
            raise ValueError(f"seed must be an int in [0, 2**31), got {self.seed!r}")
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {self.backend!r}")
        if self.max_train_tokens is not None and (
            not _is_int(self.max_train_tokens) or self.max_train_tokens < self.n_clusters
        ):
            raise ValueError(
                f"max_train_tokens must be None or an int >= n_clusters ({self.n_clusters}), "
                f"got {self.max_train_tokens!r}"
            )
        if not _is_int(self.chunk_size) or self.chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {self.chunk_size!r}")

    def _resolved_device(self, X=None):
        return resolve_device(self.device, X, default="auto")  # no device, numpy X: CUDA if available (never MPS)

    def _resolved_backend(self, X=None) -> str:
        if self.backend != "auto":
            return self.backend
        return "torch" if self._resolved_device(X).type == "cuda" else "faiss"

    # ------------------------------------------------------------------ fit / predict

    def fit(self, X) -> JointKMeans:
        """Fit the centroids on ``X`` of shape (M, C) (float16/float32/float64); returns self."""
        self._check_params()
        X = _check_X(X)
        m = X.shape[0]
        k = self.n_clusters
        if m < k:
            raise ValueError(f"n_clusters={k} exceeds the number of tokens ({m}); lower n_clusters")

        subset = None
        if self.max_train_tokens is not None and m > self.max_train_tokens:
            rng = np.random.default_rng(self.seed)
            subset = np.sort(rng.choice(m, size=self.max_train_tokens, replace=False))
        backend = self._resolved_backend(X)
        # the torch backend fits and assigns on its device; faiss and sklearn on the CPU
        device = self._resolved_device(X) if backend == "torch" else resolve_device("cpu")
        Xt = _as_float32_rows(X, subset, self.normalize, self.chunk_size, device)
        if backend == "sklearn":
            centers, n_iter = _fit_sklearn(Xt.numpy(), k, self.n_iter, self.seed)
        else:
            if backend == "faiss":
                lloyd, Xt = partial(_lloyd_faiss, seed=self.seed), Xt.numpy()
            else:
                lloyd = partial(_lloyd_torch, device=device, chunk=self.chunk_size)
            centers, n_iter = _fit_two_stage(
                Xt, k, self.n_iter, self.n_init, self.seed, self.tol, lloyd, self.chunk_size, device
            )
        centers = np.ascontiguousarray(centers, dtype=np.float32)

        # Final assignment over *all* tokens (reuse the prepared copy when it is all of them).
        if subset is None:
            labels, sqd = _assign(Xt, centers, self.chunk_size, normalize=False, device=device)
        else:
            del Xt
            labels, sqd = _assign(X, centers, self.chunk_size, normalize=self.normalize, device=device)
        sizes = np.bincount(labels, minlength=k).astype(np.int64)

        # Canonical order: descending size, ties by centroid coordinates (np.lexsort: last key first).
        keys = [centers[:, j] for j in range(centers.shape[1] - 1, -1, -1)] + [-sizes]
        order = np.lexsort(keys)
        rank = np.empty(k, dtype=np.int32)
        rank[order] = np.arange(k, dtype=np.int32)

        self.cluster_centers_ = centers[order]
        self.cluster_sizes_ = sizes[order]
        self.labels_ = rank[labels]
        self.inertia_ = float(sqd.sum(dtype=np.float64))
        self.n_iter_ = int(n_iter)
        self.n_features_in_ = X.shape[1]
        self.backend_ = backend
        self.device_ = device
        n_found = int((sizes > 0).sum())
        if n_found < k:
            warnings.warn(
                f"only {n_found} distinct clusters found for n_clusters={k} (duplicate tokens?); "
                "empty clusters are kept at the end of the order",
                UserWarning,
                stacklevel=2,
            )
        return self

    def predict(self, X) -> np.ndarray:
        """Nearest centroid of each row of ``X`` (M, C), computed in chunks; int32 (M,). On the
        device of a tensor ``X``, else on the device the model was fitted on."""
        if not hasattr(self, "cluster_centers_"):
            raise ValueError("this JointKMeans is not fitted yet; call fit(X) first")
        X = _check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {self.n_features_in_}")
        device = None if is_tensor(X) else getattr(self, "device_", None)
        labels, _ = _assign(X, self.cluster_centers_, self.chunk_size, normalize=self.normalize, device=device)
        return labels

    def fit_predict(self, X) -> np.ndarray:
        """Fit on ``X`` and return the labels of its rows (``labels_``)."""
        return self.fit(X).labels_


def cluster_features(features, k: int, **kwargs) -> tuple[np.ndarray, JointKMeans]:
    """Jointly cluster patch features of shape (N, h, w, C) into ``k`` clusters.

    Parameters
    ----------
    features : ndarray or torch tensor of shape (N, h, w, C)
        Patch features of N images on one fixed h x w grid (float16 or float32); a tensor is
        clustered on its device (with ``backend="auto"``: torch on CUDA).
    k : int
        Number of clusters.
    **kwargs
        Passed to :class:`JointKMeans` (``normalize``, ``seed``, ``backend``, ...).

    Returns
    -------
    labels : ndarray of shape (N, h, w), int32
    model : JointKMeans

    Examples
    --------
    >>> import numpy as np
    >>> f = np.random.default_rng(0).normal(size=(2, 4, 4, 8)).astype(np.float16)
    >>> labels, model = cluster_features(f, 3, backend="faiss")
    >>> labels.shape, model.cluster_centers_.shape
    ((2, 4, 4), (3, 8))
    """
    features = features if is_tensor(features) else np.asarray(features)
    if features.ndim != 4:
        raise ValueError(f"features must have shape (N, h, w, C), got shape {tuple(features.shape)}")
    n, h, w, c = features.shape
    model = JointKMeans(k, **kwargs)
    labels = model.fit_predict(features.reshape(n * h * w, c))  # a view for contiguous input
    return labels.reshape(n, h, w), model


def predict_features(model: JointKMeans, features) -> np.ndarray:
    """Cluster maps of patch features (N, h, w, C) under fitted joint centroids: (N, h, w) int32.

    How the blank-input probes and the shift-test windows are clustered: with the centroids
    fitted on the atlas images, so a cluster id means the same as in the gallery.

    Examples
    --------
    >>> import numpy as np
    >>> f = np.random.default_rng(0).normal(size=(2, 4, 4, 8)).astype(np.float32)
    >>> labels, model = cluster_features(f, 3, backend="faiss")
    >>> bool((predict_features(model, f) == labels).all())
    True
    """
    features = features if is_tensor(features) else np.asarray(features)
    if features.ndim != 4:
        raise ValueError(f"features must have shape (N, h, w, C), got shape {tuple(features.shape)}")
    n, h, w, c = features.shape
    return model.predict(features.reshape(n * h * w, c)).reshape(n, h, w)


# ---------------------------------------------------------------------- helpers


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_X(X):
    """``X`` as a validated 2-D float array: a numpy array, or a torch tensor left on its device."""
    X = X if is_tensor(X) else np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D (tokens, features) array, got shape {tuple(X.shape)}")
    if not (X.is_floating_point() if is_tensor(X) else np.issubdtype(X.dtype, np.floating)):
        raise ValueError(f"X must be a floating-point array, got dtype {X.dtype}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must be non-empty, got shape {tuple(X.shape)}")
    return X


def _as_float32_rows(X, rows, normalize: bool, chunk: int, device=None):
    """One C-contiguous float32 tensor copy of ``X[rows]`` (normalised) on ``device`` (None: where
    ``X`` is), built chunk by chunk.

    Float16 input is converted chunk-wise, so at most one float32 copy of the data ever exists;
    float32 input that needs no normalisation, subsetting or move is used as is (no copy; a numpy
    array is wrapped, ``.numpy()`` gives it back).
    """
    import torch

    dev = resolve_device(device, X)
    x = as_tensor(X)  # where it is (numpy: a CPU view)
    if rows is None and not normalize and x.dtype == torch.float32 and x.is_contiguous() and x.device == dev:
        if not bool(torch.isfinite(x).all()):
            raise ValueError("X contains NaN or inf; clean the features first")
        return x
    idx = None if rows is None else torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(x.device)
    m = x.shape[0] if rows is None else len(idx)
    out = torch.empty((m, x.shape[1]), dtype=torch.float32, device=dev)
    for s in range(0, m, chunk):
        e = min(s + chunk, m)
        block = out[s:e]
        block.copy_(x[s:e] if idx is None else x.index_select(0, idx[s:e]))
        if not bool(torch.isfinite(block).all()):
            raise ValueError("X contains NaN or inf (or float32 overflow); clean the features first")
        if normalize:  # in place; all-zero rows stay zero
            block /= torch.linalg.vector_norm(block, dim=1, keepdim=True).clamp_(min=np.finfo(np.float32).tiny)
    return out


def _assign(X, centers, chunk: int, normalize: bool, device=None):
    """Nearest centroid and squared distance for every row, chunked, in torch on ``device`` (None:
    where ``X`` is; a numpy ``X`` is moved there a chunk at a time). Returns numpy int32 labels
    and float32 squared distances.

    With ``normalize`` the rows are not copied and normalised: for a unit row ``x / |x|`` the
    squared distance is ``1 - 2 (x . c) / |x| + |c|^2``, so one product of the raw rows serves.
    Chunks of at most 8192 rows keep the working set in cache. Ties go to the lowest centroid id.
    """
    import torch

    dev = resolve_device(device, X)
    x = as_tensor(X)
    m = x.shape[0]
    chunk = min(chunk, 8192)
    c = as_tensor(np.asarray(centers, dtype=np.float32), dev)
    c_sq = (c * c).sum(1)
    labels = torch.empty(m, dtype=torch.int64, device=dev)
    sqd = torch.empty(m, dtype=torch.float32, device=dev)
    finite = torch.ones((), dtype=torch.bool, device=dev)
    for s in range(0, m, chunk):
        e = min(s + chunk, m)
        xb = x[s:e].to(device=dev, dtype=torch.float32)  # a view for float32 input on dev
        norm = torch.linalg.vector_norm(xb, dim=1)
        d = xb @ c.T
        if normalize:
            d *= (-2.0 / norm.clamp(min=np.finfo(np.float32).tiny))[:, None]
            x_sq = (norm > 0).to(torch.float32)  # unit rows; all-zero rows stay zero
        else:
            d *= -2.0
            x_sq = norm * norm
        d += c_sq[None, :]
        lab = torch.argmin(d, dim=1)  # first minimum on ties
        finite &= torch.isfinite(norm).all()  # rows outside the fitting sample are checked here
        labels[s:e] = lab
        # rounding can make it slightly negative
        sqd[s:e] = (d.gather(1, lab[:, None])[:, 0] + x_sq).clamp_(min=0.0)
    if not bool(finite):  # one check at the end: no host round trip per chunk
        raise ValueError("the features hold NaN or infinite values (a row outside the centroids' fitting sample)")
    return to_numpy(labels).astype(np.int32), to_numpy(sqd)


def _fit_sklearn(X: np.ndarray, k: int, n_iter: int, seed: int):
    from sklearn.cluster import KMeans

    # scikit-learn's tol is on the centre shift, not on the objective; keep its default (the
    # reference the other backends are compared against).
    km = KMeans(n_clusters=k, n_init=1, max_iter=n_iter, init="k-means++", random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # our own warning for duplicate points is raised in fit
        km.fit(X)
    return km.cluster_centers_, km.n_iter_


# Tokens of the warm-start stage (greedy k-means++ seeding, then Lloyd to convergence on this
# seeded sample) before Lloyd runs on every token: the full-data stage then starts close to a
# local optimum and needs a handful of passes instead of ~30. 100k tokens is ~3.7k per cluster at
# K=27, plenty to place centroids; the seeding costs a few seconds at 384 dims on 2 CPU cores.
_WARM_START_TOKENS = 100_000


def _fit_two_stage(X, k: int, n_iter: int, n_init: int, seed: int, tol: float, lloyd,
                   chunk: int, device=None):
    """Best of ``n_init`` (greedy k-means++ + Lloyd) on a sample, then Lloyd on all rows of ``X``
    (a float32 numpy array, or a tensor for the torch backend)."""
    import torch

    m = X.shape[0]
    sample = None
    if m > _WARM_START_TOKENS:
        sample = np.sort(np.random.default_rng(seed).choice(m, _WARM_START_TOKENS, replace=False))
    if sample is None:
        Xs = X
    else:
        Xs = X[torch.from_numpy(sample).to(X.device)] if is_tensor(X) else X[sample]
    dev = resolve_device(device)  # None: the CPU (the warm start's own default)
    xs = as_tensor(Xs, dev)
    best = None
    for r in range(n_init):
        # restart r of seed s: s * n_init + r, so seeds s and s + 1 share no restart (with s + r
        # they shared n_init - 1 and often returned the same clustering: no seed spread)
        init = _greedy_kmeanspp(xs, k, (seed * n_init + r) % 2**31, chunk).cpu().numpy()
        fit = lloyd(Xs, init, n_iter, tol)
        if best is None or fit[2] < best[2]:  # strict: ties keep the earlier restart
            best = fit
    del xs
    if sample is None:
        return best[:2]
    del Xs
    return lloyd(X, best[0], n_iter, tol)[:2]


def _lloyd_faiss(X: np.ndarray, init: np.ndarray, n_iter: int, tol: float, seed: int):
    import faiss

    m, d = X.shape
    k = init.shape[0]
    km = faiss.Kmeans(
        d,
        k,
        niter=n_iter,
        seed=seed,
        early_stop_threshold=tol,  # relative objective decrease
        # faiss silently subsamples to 256 points per centroid by default; use every token.
        max_points_per_centroid=max(256, math.ceil(m / k) + 1),
        min_points_per_centroid=1,
        verbose=False,
    )
    # faiss's OpenMP threads fight the BLAS threads of its distance GEMM (4-5x slower search on
    # 2 cores); one OpenMP thread leaves the cores to BLAS. Results do not depend on it.
    n_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            km.train(X, init_centroids=np.ascontiguousarray(init, dtype=np.float32))
    finally:
        faiss.omp_set_num_threads(n_threads)
    return km.centroids, len(km.obj), float(km.obj[-1])


def _row_sq_norms(x, chunk: int):
    import torch

    return torch.cat([(x[s : s + chunk] ** 2).sum(1) for s in range(0, x.shape[0], chunk)])


def _greedy_kmeanspp(x, k: int, seed: int, chunk: int, x_sq=None):
    """Greedy k-means++ seeding (as scikit-learn): 2 + log(k) candidates per step, keep the best.

    ``x`` is a float32 torch tensor (m, d) on any device; returns (k, d) centres on that device.
    Random numbers come from a CPU generator so the draw sequence does not depend on the device.
    """
    import torch

    m, d = x.shape
    dev = x.device
    if x_sq is None:
        x_sq = _row_sq_norms(x, chunk)

    def sq_dists(cands):
        """(m, len(cands)) squared distances, chunked over rows."""
        c_sq = (cands**2).sum(1)
        out = torch.empty((m, cands.shape[0]), dtype=torch.float32, device=dev)
        for s in range(0, m, chunk):
            base = x_sq[s : s + chunk, None] + c_sq[None, :]
            out[s : s + chunk] = torch.addmm(base, x[s : s + chunk], cands.T, alpha=-2.0).clamp_(min=0)
        return out

    gen = torch.Generator().manual_seed(seed)
    n_trials = 2 + int(math.log(k))
    first = int(torch.randint(m, (1,), generator=gen))
    centers = torch.empty((k, d), dtype=torch.float32, device=dev)
    centers[0] = x[first]
    closest = sq_dists(x[first : first + 1])[:, 0].double()
    for i in range(1, k):
        cum = torch.cumsum(closest, 0)
        pot = float(cum[-1])
        if pot <= 0:  # fewer distinct points than clusters: duplicate an existing centre
            centers[i:] = centers[0]
            break
        r = (torch.rand(n_trials, generator=gen, dtype=torch.float64) * pot).to(dev)
        cand = torch.searchsorted(cum, r).clamp_(max=m - 1)
        new_closest = torch.minimum(closest[:, None], sq_dists(x[cand]).double())
        best = int(torch.argmin(new_closest.sum(0)))
        centers[i] = x[cand[best]]
        closest = new_closest[:, best].contiguous()
    return centers


def _lloyd_torch(X, init: np.ndarray, n_iter: int, tol: float, device, chunk: int, onehot_sums=None):
    """Plain Lloyd iterations in torch, chunked; deterministic on CPU and CUDA.

    ``onehot_sums`` (default: on CUDA) computes the centroid sums as a one-hot matmul instead of
    ``index_add_`` (whose CUDA atomics are non-deterministic); settable so CPU tests cover it.
    """
    import torch

    dev = resolve_device(device, default="auto")  # None: CUDA if available (never MPS)
    x = as_tensor(X, dev)  # CPU: shares memory with a numpy X, no copy
    m, d = x.shape
    k = init.shape[0]
    x_sq = _row_sq_norms(x, chunk)
    centers = torch.as_tensor(init, dtype=torch.float32).to(dev)
    if onehot_sums is None:
        onehot_sums = dev.type == "cuda"
    prev_obj = math.inf
    it = 0
    for it in range(1, n_iter + 1):
        mind = torch.empty(m, dtype=torch.float32, device=dev)
        counts = torch.zeros(k, dtype=torch.long, device=dev)
        sums = torch.zeros((k, d), dtype=torch.float64, device=dev)
        c_sq = (centers**2).sum(1)
        for s in range(0, m, chunk):
            xb = x[s : s + chunk]
            dist = torch.addmm(x_sq[s : s + chunk, None] + c_sq[None, :], xb, centers.T, alpha=-2.0)
            mv, lab = dist.min(1)
            mind[s : s + chunk] = mv.clamp_(min=0)
            counts += torch.bincount(lab, minlength=k)
            if onehot_sums:
                # float64 so a global TF32 matmul setting cannot degrade the sums
                onehot = torch.nn.functional.one_hot(lab, k).to(torch.float64)
                sums += onehot.T @ xb.double()
            else:
                # float32 partial sums per chunk, accumulated in float64 across chunks
                sums += torch.zeros((k, d), dtype=torch.float32, device=dev).index_add_(0, lab, xb).double()
        obj = float(mind.sum(dtype=torch.float64))
        new_centers = (sums / counts.clamp(min=1)[:, None].double()).float()
        empty = torch.nonzero(counts == 0).flatten()
        if len(empty):
            # Re-seed empty clusters with the points farthest from their centroid (stable order).
            far = torch.sort(-mind, stable=True).indices[: len(empty)]
            new_centers[empty] = x[far]
        centers = new_centers
        if len(empty) == 0 and prev_obj - obj <= tol * obj:
            break  # objective no longer decreasing by more than tol (relative): converged
        prev_obj = obj
    return centers.cpu().numpy(), it, obj
