"""Positional bias: how much of a token's cluster (or features) is explained by *where* it sits.

Three views, from cheapest to most direct:

* :func:`positional_clustering` — does the patch position predict the joint-k-means cluster?
* :func:`position_decodability` — can a linear probe read the (row, col) back out of a token?
* :func:`blank_input_structure` — on inputs with no content (constant colour, noise), any
  spatial structure of the cluster maps can only come from position.

Notation: ``c(i, p)`` is the cluster of image ``i`` at patch position ``p`` on the ``h x w``
grid (``N`` images, ``K`` clusters, ``P = h * w`` positions); ``f(i, p)`` its feature vector.
All measures are deterministic for a fixed ``seed``.

The heavy parts take ``device`` (:mod:`.tensors`): the replicates' contingency counts and their
entropies and mutual information, and the whole position probe (token sample, Gram matrices,
eigendecompositions, predictions) and the expected mutual information (a sum over distinct margin
values) run in torch there; labels and permutations stay on the host.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import GroupKFold

from .tensors import as_tensor, column_sums, gram, is_tensor, resolve_device, to_numpy, upload_features

__all__ = ["positional_clustering", "position_decodability", "blank_input_structure"]


# --------------------------------------------------------------------------- input checks
# (shared by the sibling analysis modules; private on purpose)


def _as_labels(labels: Any, name: str = "labels", min_images: int = 1) -> np.ndarray:
    """Validate a ``(N, h, w)`` array of non-negative integer cluster ids (a tensor is brought to
    the host: labels are small, and permutations and maps are drawn there)."""
    arr = to_numpy(labels)
    if arr.ndim != 3:
        raise ValueError(f"{name} must have shape (N, h, w); got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array of cluster ids; got dtype {arr.dtype}")
    if arr.shape[0] < min_images or arr.shape[1] < 1 or arr.shape[2] < 1:
        raise ValueError(f"{name} needs at least {min_images} image(s) and a non-empty grid; got {arr.shape}")
    if arr.min() < 0:
        raise ValueError(f"{name} must be non-negative cluster ids; found {arr.min()}")
    return arr.astype(np.int64, copy=False)


def _as_features(features: Any, name: str = "features", min_images: int = 1, device: Any = None):
    """Validate a finite ``(N, h, w, C)`` float feature array (returned as float32): a numpy array
    when ``features`` is one and ``device`` is None, else a float32 tensor on ``device`` (None: the
    tensor's own device), copied there at most once."""
    arr = features if is_tensor(features) else np.asarray(features)
    if arr.ndim != 4:
        raise ValueError(f"{name} must have shape (N, h, w, C); got shape {tuple(arr.shape)}")
    if arr.shape[0] < min_images or min(arr.shape[1:]) < 1:
        raise ValueError(f"{name} needs at least {min_images} image(s), a non-empty grid and C >= 1; "
                         f"got {tuple(arr.shape)}")
    if device is not None or is_tensor(arr):
        x = upload_features(arr, resolve_device(device, arr))
        # a few images at a time: no full-size boolean mask on the device
        if not all(bool(torch.isfinite(x[s:s + 16]).all()) for s in range(0, len(x), 16)):
            raise ValueError(f"{name} contains NaN or inf; drop or repair those tokens first")
        return x
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf; drop or repair those tokens first")
    return arr


def _entropy(counts: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of a count matrix (last axis = categories)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    p = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    logp = np.log(p, out=np.zeros_like(p), where=p > 0)
    return -(p * logp).sum(axis=-1)


_EMI_CHUNK = 1 << 22  # (pair, n_ij) cells per step: ~32 MB of float64 per intermediate


def _emi_pair_terms(A: Any, B: Any, n: float) -> torch.Tensor:
    """Expected-MI contribution of one cell with row sum ``A`` and column sum ``B`` under the
    permutation (hypergeometric) model, for every (A, B) pair of the equal-length arrays (float64,
    in torch where ``A`` is: the replicates' margins stay on the device)."""
    A = as_tensor(A, dtype=torch.float64).reshape(-1)
    B = as_tensor(B, A.device, torch.float64).reshape(-1)
    # Only n_ij within d of the hypergeometric mean A B / n matter: by Chvatal's tail bound
    # P(|n_ij - A B / n| >= d) <= 2 exp(-2 d^2 / min(A, B)), and d^2 = 40 min(A, B) makes that
    # < 1e-34 (each term is at most ~log n), far below float64 resolution of the sum.
    # This keeps ~13 sqrt(min(A, B)) terms per pair instead of min(A, B).
    d = torch.ceil(torch.sqrt(40.0 * torch.minimum(A, B))) + 1
    lo = torch.maximum(torch.clamp(A + B - n, min=1.0), torch.floor(A * B / n - d))
    hi = torch.minimum(torch.minimum(A, B), torch.ceil(A * B / n + d))
    length = torch.clamp(hi - lo + 1, min=0.0)
    out = torch.zeros_like(A)
    if len(A) == 0:
        return out
    # each pair's n_ij laid out along a row of a (pairs, longest) grid, padding masked: a plain
    # row sum, the same on every device and run (no atomic scatter)
    longest = int(length.max())
    if longest == 0:
        return out
    step = torch.arange(longest, dtype=torch.float64, device=A.device)
    const = torch.lgamma(A + 1) + torch.lgamma(B + 1) + torch.lgamma(n - A + 1) + torch.lgamma(n - B + 1) - math.lgamma(n + 1)
    log_n = math.log(n)
    rows = max(1, _EMI_CHUNK // longest)
    for s in range(0, len(A), rows):
        a, b, c = A[s:s + rows, None], B[s:s + rows, None], const[s:s + rows, None]
        nij = lo[s:s + rows, None] + step
        valid = step < length[s:s + rows, None]
        nij = torch.where(valid, nij, 1.0)  # padding: any value the formulas accept
        log_p = (c - torch.lgamma(nij + 1) - torch.lgamma(torch.clamp(a - nij, min=0.0) + 1)
                 - torch.lgamma(torch.clamp(b - nij, min=0.0) + 1) - torch.lgamma(torch.clamp(n - a - b + nij, min=0.0) + 1))
        term = nij / n * (log_n + torch.log(nij) - torch.log(a) - torch.log(b)) * torch.exp(log_p)
        out[s:s + rows] = torch.where(valid, term, 0.0).sum(dim=1)
    return out


def _expected_mutual_information(a: np.ndarray, b: np.ndarray, n: int) -> float:
    """E[MI] of two labelings with row sums ``a`` and column sums ``b`` under the permutation
    (hypergeometric) model, as scikit-learn's ``expected_mutual_information``, vectorised over the
    *distinct* (a_i, b_j) pairs: a position's count is the number of images, so all rows share one
    value and the sum has K x N terms instead of P x K x N."""
    ua, ca = np.unique(a, return_counts=True)
    ub, cb = np.unique(b, return_counts=True)
    A, B = (x.ravel().astype(np.float64) for x in np.meshgrid(ua, ub, indexing="ij"))
    weight = np.outer(ca, cb).ravel().astype(np.float64)
    return float((weight * to_numpy(_emi_pair_terms(A, B, n))).sum())


def _ami_replicates(counts: Any) -> np.ndarray:
    """:func:`_ami_from_counts` of every table of a stack ``(B, R, C)`` of contingency tables
    (resampling replicates; a numpy array, or a tensor on its device): tables with one total share
    their margins' distinct values, so the expected MI costs one term per distinct (row sum,
    column sum) pair of each such group. The cell-wise mutual information, margins and entropies
    are computed in torch (float64) where ``counts`` is; the expected MI on the host."""
    counts = as_tensor(counts, dtype=torch.float64)
    totals = to_numpy(counts.sum(dim=(1, 2)))
    out = np.empty(len(counts))
    for total in np.unique(totals):
        group = totals == total
        out[group] = _ami_one_total(counts[torch.from_numpy(group).to(counts.device)], float(total))
    return out


def _ami_one_total(counts: torch.Tensor, n0: float) -> np.ndarray:
    a, b = counts.sum(dim=2), counts.sum(dim=1)
    cell = counts / n0 * (torch.log(counts) + np.log(n0) - torch.log(a)[:, :, None] - torch.log(b)[:, None, :])
    mi = torch.where(counts > 0, cell, 0.0).sum(dim=(1, 2))
    hist = []
    for m in (a, b):
        values, inverse = torch.unique(m, return_inverse=True)
        # counts of integer values: exact in float64 whatever the order of the additions
        h = torch.zeros((len(m), len(values)), dtype=torch.float64, device=m.device)
        h.scatter_add_(1, inverse, torch.ones_like(m))
        hist.append((values, h))
    (ua, ha), (ub, hb) = hist
    A, B = torch.meshgrid(ua, ub, indexing="ij")
    terms = _emi_pair_terms(A, B, n0).reshape(A.shape)
    emi = to_numpy(torch.einsum("bu,uv,bv->b", ha, terms, hb))
    normalizer = (_entropy_of_counts(a) + _entropy_of_counts(b)) / 2
    eps = np.finfo(np.float64).eps
    denominator = normalizer - emi
    denominator = np.where(denominator < 0, np.minimum(denominator, -eps), np.maximum(denominator, eps))
    ami = (to_numpy(mi) - emi) / denominator
    trivial = to_numpy(((a > 0).sum(dim=1) == 1) & ((b > 0).sum(dim=1) == 1))
    return np.where(trivial, 1.0, ami)  # sklearn: identical trivial labelings


def _ami_from_counts(counts: np.ndarray) -> float:
    """Adjusted mutual information (arithmetic normalisation) of a contingency table: the value
    :func:`sklearn.metrics.adjusted_mutual_info_score` gives for the labelings behind it (tested
    against it), computed from counts the measures already have, without re-reading every token."""
    counts = np.asarray(counts, dtype=np.int64)
    counts = counts[counts.sum(axis=1) > 0][:, counts.sum(axis=0) > 0]
    rows, cols = counts.shape
    if rows == cols == 1 or rows == cols == 0:
        return 1.0  # sklearn: identical trivial labelings
    n = int(counts.sum())
    a, b = counts.sum(axis=1), counts.sum(axis=0)
    nz = counts > 0
    nij = counts[nz].astype(np.float64)
    outer = np.outer(a, b).astype(np.float64)[nz]
    mi = float((nij / n * (np.log(nij) + np.log(n) - np.log(outer))).sum())
    emi = _expected_mutual_information(a, b, n)
    normalizer = (float(_entropy(a)) + float(_entropy(b))) / 2
    denominator = normalizer - emi
    eps = np.finfo(np.float64).eps
    denominator = min(denominator, -eps) if denominator < 0 else max(denominator, eps)
    return (mi - emi) / denominator


def _position_counts(flat: np.ndarray, k: int) -> np.ndarray:
    """``(P, K)`` counts of cluster ``k`` at position ``p`` over images; ``flat`` is ``(N, P)``."""
    n_pos = flat.shape[1]
    idx = np.arange(n_pos)[None, :] * k + flat
    return np.bincount(idx.ravel(), minlength=n_pos * k).reshape(n_pos, k)


def _permuted_within_images(flat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shuffle each image's labels over its positions (keeps every image's cluster composition)."""
    return rng.permuted(flat, axis=1)


def _adjusted(raw: float, chance: float) -> float:
    """Chance correction ``(raw - chance) / (1 - chance)``; 0 when chance already reaches 1."""
    return 0.0 if chance >= 1.0 - 1e-12 else float((raw - chance) / (1.0 - chance))


# --------------------------------------------------------------------------- clustering vs position


def positional_clustering(labels: Any, *, n_permutations: int = 8, seed: int = 0,
                          weights: np.ndarray | None = None, device: Any = None) -> dict[str, Any]:
    """How strongly the patch position determines the joint cluster.

    Parameters
    ----------
    labels : int array (N, h, w)
        Joint cluster ids ``c(i, p)`` (the same id means the same cluster in every image).
    n_permutations : int, default 8
        Number of within-image position shuffles used for the chance level of the entropy score.
    seed : int, default 0
        Seed of those shuffles.
    weights : float array (B, N), optional
        Image weights of resampling replicates (:func:`atlas.measures.uncertainty.half_samples`):
        adds ``replicates = {"nce": (B,), "ami": (B,)}``, the same scores with image ``i`` counted
        ``weights[b, i]`` times (with the same shuffles); all-ones weights give the point estimate.
    device : torch device or str, optional
        Where the replicates' (B, P, K) contingency counts, entropies and AMI are computed (None:
        the CPU); the point estimates come from small host-side counts.

    Returns
    -------
    dict
        ``nce`` (chance-corrected normalised conditional entropy, the headline score),
        ``nce_raw``, ``nce_chance``, ``ami``, ``dominant`` (h, w) int and
        ``dominant_freq`` (h, w) float.

    Notes
    -----
    * Normalised conditional entropy, ``nce_raw = 1 - mean_p H(c | p) / H(c)``, where ``H(c)`` is
      the entropy of the cluster distribution over all ``N * P`` tokens and ``H(c | p)`` the
      entropy of the clusters seen at position ``p`` across the ``N`` images (plug-in estimates,
      natural log). 0 when the cluster is independent of position, 1 when position fixes it.
    * With few images the plug-in ``H(c | p)`` is biased low (about ``(K - 1) / 2N`` nats), so
      ``nce_raw`` is positive even without any positional effect. ``nce_chance`` is the mean
      ``nce_raw`` after shuffling each image's labels over its own positions (``n_permutations``
      times); ``nce = (nce_raw - nce_chance) / (1 - nce_chance)``, which is ~0 for
      position-independent labels and 1 when position determines the cluster.
    * ``ami`` is the value of :func:`sklearn.metrics.adjusted_mutual_info_score` (computed from
      the counts, tested equal to it) between the flattened cluster
      ids and the flattened position index ``p`` (already chance-adjusted, arithmetic-mean
      normalisation). It is symmetric, so with ``K`` clusters and ``P`` positions it saturates
      at about ``ln K / ((ln K + ln P) / 2)`` even when position fixes the cluster; its null is a
      permutation of all tokens, under which image-level clusters come out slightly negative.
      Since ``mean_p H(c | p) = H(c | p)`` (every position holds N tokens), ``nce_raw`` equals
      ``MI(c; p) / H(c)``; ``nce`` is its chance correction under the within-image null.
    * ``dominant[p]`` is the most frequent cluster at ``p`` (ties -> lowest id) and
      ``dominant_freq[p]`` the fraction of images in which it is the cluster at ``p``.
    * Both ``nce`` and ``ami`` are 0 when ``H(c) = 0`` (a single cluster: nothing to explain).
    * Content that is laid out consistently across the image set (sky at the top) also scores
      here; :func:`blank_input_structure` and the shift test separate that from model bias.

    Examples
    --------
    >>> import numpy as np
    >>> grid = np.arange(16).reshape(1, 4, 4) % 3           # the cluster depends only on position
    >>> labels = np.repeat(grid, 20, axis=0)
    >>> round(positional_clustering(labels)["nce"], 3)
    1.0
    >>> rng = np.random.default_rng(0)
    >>> abs(positional_clustering(rng.integers(0, 3, (20, 4, 4)))["nce"]) < 0.05
    True
    """
    labels = _as_labels(labels)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    n, h, w = labels.shape
    flat = labels.reshape(n, h * w)
    k = int(flat.max()) + 1
    counts = _position_counts(flat, k)
    dominant = counts.argmax(axis=1)
    dominant_freq = counts.max(axis=1) / n
    out: dict[str, Any] = {
        "dominant": dominant.reshape(h, w),
        "dominant_freq": dominant_freq.reshape(h, w),
    }
    h_c = float(_entropy(counts.sum(axis=0)))
    if h_c <= 1e-12:
        out.update(nce=0.0, nce_raw=0.0, nce_chance=0.0, ami=0.0)
        if weights is not None:
            out["replicates"] = {"nce": np.zeros(len(weights)), "ami": np.zeros(len(weights))}
        return out

    def score(cnt: np.ndarray) -> float:
        return float(1.0 - _entropy(cnt).mean() / h_c)

    rng = np.random.default_rng(seed)
    raw = score(counts)
    shuffled = [_permuted_within_images(flat, rng) for _ in range(n_permutations)]
    chance = float(np.mean([score(_position_counts(s, k)) for s in shuffled]))
    ami = _ami_from_counts(counts)  # = adjusted_mutual_info_score(flat.ravel(), position index)
    out.update(nce=_adjusted(raw, chance), nce_raw=raw, nce_chance=chance, ami=ami)
    if weights is not None:
        out["replicates"] = _clustering_replicates(flat, shuffled, k, weights, device)
    return out


def _weighted_position_counts(flat: np.ndarray, k: int, weights: np.ndarray, device: Any = None) -> torch.Tensor:
    """``(B, P, K)`` float32 position x cluster counts with image ``i`` counted ``weights[b, i]``
    times, on ``device`` (None: the CPU): a one-hot (N, P * K) scatter and one matrix product."""
    dev = resolve_device(device)
    n, n_pos = flat.shape
    idx = as_tensor(np.arange(n_pos)[None, :] * k + flat, dev)
    # one 1 per (image, position): a plain scatter, no accumulation, deterministic on every device
    onehot = torch.zeros((n, n_pos * k), dtype=torch.float32, device=dev).scatter_(1, idx, 1.0)
    # float32 products of small integer counts are exact (below 2^24, also under TF32: 0/1 inputs
    # and integer weights are exact in its 10-bit mantissa); torch's BLAS releases the GIL
    out = as_tensor(np.ascontiguousarray(weights, dtype=np.float32), dev) @ onehot
    return out.reshape(len(weights), n_pos, k)


def _entropy_of_counts(counts: torch.Tensor) -> np.ndarray:
    """:func:`_entropy` over the last axis, as ``log T - sum n log n / T`` in torch (float64): the
    replicates' entropies are over (B, P, K) arrays, where numpy's small-axis reductions are slow."""
    n = counts.double()
    total = n.sum(dim=-1)
    h = torch.log(total) - torch.special.xlogy(n, n).sum(dim=-1) / total
    return to_numpy(torch.where(total > 0, h, torch.zeros_like(h)))


def _clustering_replicates(flat: np.ndarray, shuffled: list[np.ndarray], k: int, weights: np.ndarray,
                           device: Any = None) -> dict:
    counts = _weighted_position_counts(flat, k, weights, device)
    h_c = _entropy_of_counts(counts.sum(dim=1))  # (B,)
    safe = np.where(h_c > 1e-12, h_c, 1.0)
    raw = 1.0 - _entropy_of_counts(counts).mean(axis=1) / safe
    chance = np.mean([1.0 - _entropy_of_counts(_weighted_position_counts(s, k, weights, device)).mean(axis=1) / safe
                      for s in shuffled], axis=0)
    nce = _adjusted_replicates(raw, chance)
    ami = _ami_replicates(counts)
    one_cluster = h_c <= 1e-12
    return {"nce": np.where(one_cluster, 0.0, nce), "ami": np.where(one_cluster, 0.0, ami)}


# --------------------------------------------------------------------------- linear position probe


_CHOLESKY_BYTES = 1 << 30  # the (penalties, C, C) systems of one batched Cholesky call at most


def _ridge_coefficients(grams: torch.Tensor, xys: torch.Tensor, alphas: torch.Tensor,
                        method: str | None = None) -> torch.Tensor:
    """Ridge coefficients of every fold and penalty, ``(F, C, A * T)`` (column ``a * T + t``), from
    the folds' centred ``X^T X`` (F, C, C) and ``X^T y`` (F, C, T) (float64 tensors on one device).

    ``method`` (None: ``"cholesky"`` on a GPU, ``"eigh"`` elsewhere):

    * ``"eigh"``: one eigenbasis per fold; the coefficients of penalty ``a`` are
      ``vec @ (r / (lam + a))`` with ``r = vec^T X^T y``, so every penalty costs O(C T). Float32
      divide-and-conquer: ~2x faster than float64 and far more precise than a probe needs. torch's
      rather than scipy's: scipy's LAPACK wrappers hold the GIL, which serialises the analyses that
      run several (block, representation) pairs at a time.
    * ``"cholesky"``: every (fold, penalty) system ``X^T X + a I`` factored in batched float64
      calls. More work, but on a GPU an ``eigh`` costs ~10 ms whatever its size and torch runs a
      batch of them one by one, while a batch of Cholesky solves is one call
      (``bench/bench_linalg.py``, H200: 165 systems of C = 384 in 2.2 ms vs 43 ms for 5 ``eigh``).
    """
    f, c, t = xys.shape
    if method is None:
        method = "cholesky" if grams.device.type == "cuda" else "eigh"
    if method == "eigh":
        lam, vec = torch.linalg.eigh(grams.float())
        lam, vec = lam.double().clamp_(min=0.0), vec.double()
        r = vec.transpose(1, 2) @ xys  # (F, C, T)
        scaled = r[:, None] / (lam[:, None, :, None] + alphas[None, :, None, None])  # (F, A, C, T)
        return vec @ scaled.permute(0, 2, 1, 3).reshape(f, c, -1)  # back in the channel basis
    if method != "cholesky":
        raise ValueError(f"method must be 'eigh' or 'cholesky'; got {method!r}")
    eye = torch.eye(c, dtype=torch.float64, device=grams.device)
    step = max(1, _CHOLESKY_BYTES // (len(alphas) * c * c * 8))  # folds per call
    out = []
    for s in range(0, f, step):
        systems = grams[s:s + step, None] + alphas[None, :, None, None] * eye  # (folds, A, C, C)
        factor, info = torch.linalg.cholesky_ex(systems)
        if bool((info != 0).any()):  # not positive definite in float64 (cannot happen for a > 0 in exact terms)
            return _ridge_coefficients(grams, xys, alphas, "eigh")
        rhs = xys[s:s + step, None].expand(-1, len(alphas), -1, -1)
        out.append(torch.cholesky_solve(rhs, factor).permute(0, 2, 1, 3).reshape(-1, c, len(alphas) * t))
    return torch.cat(out)


def position_decodability(
    features: Any, *, n_splits: int = 5, seed: int = 0, max_tokens: int = 4000, weights: np.ndarray | None = None,
    device: Any = None,
) -> dict[str, Any]:
    """Cross-validated R^2 of a linear (ridge) probe that reads a token's grid position.

    Parameters
    ----------
    features : float array (N, h, w, C)
        Patch features ``f(i, p)`` of N >= 2 images on an h x w grid (h, w >= 2).
    n_splits : int, default 5
        Folds of :class:`sklearn.model_selection.GroupKFold` over *images* (capped at N).
    seed : int, default 0
        Seed of the token subsample.
    max_tokens : int, default 4000
        Tokens used in total: ``max(1, max_tokens // N)`` random positions per image (at most
        all ``h * w``), so every image contributes equally.
    weights : float array (B, N), optional
        Image weights of resampling replicates (0 or 1 for a subset; counts work too): adds ``replicates = {"r2": (B,)}``, the R^2
        of the same out-of-fold predictions with image ``i`` counted ``weights[b, i]`` times (a
        resampling of the test images; the probes are not refitted).
    device : torch device or str, optional
        Where the probe is computed (None: where ``features`` is, numpy on the CPU). Only the
        sampled tokens are gathered there when ``features`` is a host array.

    Returns
    -------
    dict
        ``r2_row``, ``r2_col``, ``r2`` (their mean), ``n_tokens``, ``n_splits``.

    Notes
    -----
    * Targets: ``row / (h - 1)`` and ``col / (w - 1)`` in [0, 1].
    * Features are z-scored per channel with the mean / std of the sampled tokens (no targets
      involved); a ridge regression with intercept is fitted on the training images of each
      fold. Its penalty is chosen per target from ``trace(X^T X) / C * 10^[-4 .. 4]`` (33 values)
      by the pooled error of the same image-grouped folds; choosing one of 33 values on the
      folds adds well under 0.01 to R^2 when features carry no position (tested).
    * Tokens of one image are never split between training and test (GroupKFold over images),
      so image-specific content cannot leak the position of its neighbours.
    * ``R^2 = 1 - sum (y - y_hat)^2 / sum (y - mean y)^2`` over the pooled out-of-fold
      predictions. ~0 (slightly negative) when features carry no position, 1 when a linear
      read-out recovers it exactly. Being linear, the probe fully decodes an arbitrary
      (non-smooth) position code only when ``C >= h * w``; smooth codes need far fewer channels.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> pos = rng.normal(size=(1, 6, 6, 64))                    # one fixed vector per position
    >>> feats = rng.normal(size=(30, 6, 6, 64)) + 3 * pos
    >>> position_decodability(feats)["r2"] > 0.8
    True
    >>> abs(position_decodability(rng.normal(size=(30, 6, 6, 64)))["r2"]) < 0.05
    True
    """
    return _position_probe(_as_features(features, min_images=2), n_splits=n_splits, seed=seed, max_tokens=max_tokens,
                           weights=weights, device=device)


def _position_probe(feats: Any, *, n_splits: int = 5, seed: int = 0, max_tokens: int = 4000,
                    weights: np.ndarray | None = None, device: Any = None) -> dict[str, Any]:
    """:func:`position_decodability` of already validated float32 features (numpy or a tensor)."""
    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2; got {n_splits}")
    if max_tokens < 2:
        raise ValueError(f"max_tokens must be >= 2; got {max_tokens}")
    n, h, w, c = feats.shape
    if h < 2 or w < 2:
        raise ValueError(f"position_decodability needs a grid of at least 2 x 2 patches; got {h} x {w}")
    dev = resolve_device(device, feats)
    n_pos = h * w
    per_image = int(min(n_pos, max(1, max_tokens // n)))
    rng = np.random.default_rng(seed)
    pos_idx = np.argsort(rng.random((n, n_pos)), axis=1)[:, :per_image]  # (N, k) random positions per image
    # the sampled tokens only (a copy), gathered where the features are, then moved to dev
    src = as_tensor(feats)
    rows = np.repeat(np.arange(n), per_image) * n_pos + pos_idx.ravel()
    if src.is_contiguous():  # torch's fast row gather
        x = src.reshape(n * n_pos, c).index_select(0, as_tensor(rows, src.device))
    else:  # e.g. a broadcast (position-only) set: index it as it is, without a full copy
        x = src.reshape(n, n_pos, c)[as_tensor(rows // n_pos, src.device), as_tensor(rows % n_pos, src.device)]
    x = x.to(device=dev, dtype=torch.float32)
    y_np = np.stack([(pos_idx // w) / (h - 1), (pos_idx % w) / (w - 1)], axis=-1).reshape(-1, 2)
    y = as_tensor(y_np, dev)
    groups = np.repeat(np.arange(n), per_image)

    # z-score in place (x is already a copy): moments accumulated in float64
    x -= (column_sums(x) / len(x)).float()
    std = torch.sqrt(column_sums(x, squared=True) / len(x))
    x /= torch.where(std > 0, std, 1.0).float()
    folds = list(GroupKFold(n_splits=min(n_splits, n)).split(np.zeros((len(groups), 1)), y_np, groups))
    tests = [as_tensor(te, dev) for _, te in folds]  # (index_select: torch's fast row gather)
    # per-fold sufficient statistics: a training fold is "all minus the test fold"
    # (float32 products of z-scored data, accumulated in float64)
    stats = []
    for te in tests:
        xt, yt = x.index_select(0, te), y.index_select(0, te)
        stats.append((gram(xt, transpose=True), column_sums(xt), (yt.T @ xt.double()).T, yt.sum(dim=0),
                      (yt ** 2).sum(dim=0), len(te)))
    tot = [sum(st[j] for st in stats) for j in range(6)]
    scale = float(torch.trace(tot[0] - torch.outer(tot[1], tot[1]) / tot[5])) / c
    scale = scale if scale > 0 else 1.0  # constant features: any penalty gives the intercept alone (R^2 ~ 0)
    alphas = as_tensor(scale * np.logspace(-4, 4, 33), dev)
    # out-of-fold predictions for every penalty; the penalty is then chosen per target on these
    # image-grouped folds. (Leave-one-token-out criteria such as GCV pick far too small penalties
    # here: tokens of one image are correlated, the probe learns image identity and R^2 on unseen
    # images goes well below 0.)
    pred = torch.empty((len(alphas), *y.shape), dtype=torch.float64, device=dev)
    # the training folds' centred statistics ("all minus the test fold"), decomposed in one call
    centred_grams, centred_xys, means = [], [], []
    for st in stats:
        xx, sx, xy, sy, _, m = (tot[j] - st[j] for j in range(6))
        mx, my = sx / m, sy / m
        centred_grams.append(xx - m * torch.outer(mx, mx))
        centred_xys.append(xy - m * torch.outer(mx, my))
        means.append((mx, my))
    coefs = _ridge_coefficients(torch.stack(centred_grams), torch.stack(centred_xys), alphas)
    for te, (mx, my), coef in zip(tests, means, coefs):
        # out-of-fold predictions of every penalty at once
        out = (x.index_select(0, te) - mx.float()) @ coef.float()  # (test tokens, A * T)
        pred[:, te] = out.reshape(len(te), len(alphas), -1).permute(1, 0, 2).double() + my
    err = ((y[None] - pred) ** 2).sum(dim=1)  # (A, T)
    best = torch.argmin(err, dim=0)  # first minimum on ties
    pred = torch.stack([pred[best[t], :, t] for t in range(y.shape[1])], dim=1)
    ss_res = ((y - pred) ** 2).sum(dim=0)
    ss_tot = ((y - y.mean(dim=0)) ** 2).sum(dim=0)
    r2 = to_numpy(1.0 - ss_res / ss_tot)
    out: dict[str, Any] = {
        "r2_row": float(r2[0]),
        "r2_col": float(r2[1]),
        "r2": float(r2.mean()),
        "n_tokens": int(len(y)),
        "n_splits": len(folds),
    }
    if weights is not None:  # per-image sums of the pooled out-of-fold predictions (images are contiguous)
        per = lambda v: v.reshape(n, per_image, v.shape[-1]).sum(dim=1)  # noqa: E731
        wt = as_tensor(weights, dev, torch.float64)
        res, sy, syy = wt @ per((y - pred) ** 2), wt @ per(y), wt @ per(y ** 2)
        cnt = (wt.sum(dim=1) * per_image)[:, None]
        out["replicates"] = {"r2": to_numpy((1.0 - res / (syy - sy ** 2 / cnt)).mean(dim=1))}
    return out


# --------------------------------------------------------------------------- blank-input probe


def blank_input_structure(labels: Any, *, n_permutations: int = 8, seed: int = 0,
                          weights: np.ndarray | None = None, device: Any = None) -> dict[str, Any]:
    """Spatial structure of the cluster maps of content-free inputs (constant colour, noise).

    Such inputs carry no layout, so any structure in their cluster maps comes from the model's
    position handling. Cluster them with the same joint centroids as the real images.

    Parameters
    ----------
    labels : int array (M, h, w)
        Cluster ids of M >= 2 blank images.
    n_permutations : int, default 8
        Within-image position shuffles for the chance level of the majority agreement.
    seed : int, default 0
        Seed of those shuffles.
    weights : float array (B, M), optional
        Weights of the blank images in resampling replicates: adds ``replicates =
        {"position_score": (B,), "autocorrelation": (B,)}`` (all-ones weights give the point estimate).
    device : torch device or str, optional
        Where the replicates' weighted contingency counts are computed (None: the CPU).

    Returns
    -------
    dict
        ``position_score`` (headline), ``position_agreement``, ``position_agreement_chance``,
        ``autocorrelation``, ``neighbour_agreement``, ``neighbour_chance``,
        ``majority`` (h, w) int, ``majority_freq`` (h, w) float.

    Notes
    -----
    * Majority agreement: ``A = mean_p max_k #{i : c(i, p) = k} / M``, the fraction of blank images
      that share the per-position majority cluster. Its chance level ``A0`` is the mean ``A``
      after shuffling each image's labels over its own positions; ``position_score =
      (A - A0) / (1 - A0)``: 1 when every blank image shows the same map, ~0 when the maps do not
      repeat across images (and 0 for constant maps, which carry no position).
    * Neighbour agreement: ``B`` = fraction of 4-neighbour pairs (horizontal and vertical) with
      equal labels, pooled over images; expected under a shuffle of image ``i``'s labels:
      ``B0_i = sum_k n_ik (n_ik - 1) / (P (P - 1))`` (``n_ik`` tokens of cluster ``k``, ``P``
      positions), ``B0 = mean_i B0_i``. ``autocorrelation = (B - B0) / (1 - B0)`` (0 when
      ``B0 = 1``): ~0 for spatially random maps, near 1 for maps made of a few large regions.

    Examples
    --------
    >>> import numpy as np
    >>> stripes = np.repeat((np.arange(8) // 4)[None, None, :], 8, axis=1)  # left/right halves
    >>> out = blank_input_structure(np.repeat(stripes, 5, axis=0))
    >>> round(out["position_score"], 3), out["autocorrelation"] > 0.8
    (1.0, True)
    """
    labels = _as_labels(labels, min_images=2)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    m, h, w = labels.shape
    flat = labels.reshape(m, h * w)
    k = int(flat.max()) + 1
    counts = _position_counts(flat, k)
    agree = float(counts.max(axis=1).mean() / m)
    rng = np.random.default_rng(seed)
    shuffled = [_permuted_within_images(flat, rng) for _ in range(n_permutations)]
    agree0 = float(np.mean([_position_counts(s, k).max(axis=1).mean() / m for s in shuffled]))

    horizontal = (labels[:, :, 1:] == labels[:, :, :-1]).reshape(m, -1)
    vertical = (labels[:, 1:, :] == labels[:, :-1, :]).reshape(m, -1)
    same = np.concatenate([horizontal, vertical], axis=1)
    n_pos = h * w
    if same.shape[1] == 0 or n_pos < 2:
        nb, nb0 = 1.0, 1.0  # a 1 x 1 grid has no neighbours: no measurable structure
        same_i, chance_i = np.ones(m), np.ones(m)
    else:
        per_image = np.stack([np.bincount(row, minlength=k) for row in flat]).astype(np.float64)
        nb = float(same.mean())
        chance_i = (per_image * (per_image - 1)).sum(1) / (n_pos * (n_pos - 1))
        nb0 = float(chance_i.mean())
        same_i = same.mean(axis=1)  # every image has the same number of neighbour pairs
    out = {
        "position_score": _adjusted(agree, agree0),
        "position_agreement": agree,
        "position_agreement_chance": agree0,
        "autocorrelation": _adjusted(nb, nb0),
        "neighbour_agreement": nb,
        "neighbour_chance": nb0,
        "majority": counts.argmax(axis=1).reshape(h, w),
        "majority_freq": (counts.max(axis=1) / m).reshape(h, w),
    }
    if weights is not None:
        total = weights.sum(axis=1)
        majority = lambda f: to_numpy(  # noqa: E731
            _weighted_position_counts(f, k, weights, device).amax(dim=2).double().mean(dim=1))
        agree_b = majority(flat) / total
        agree0_b = np.mean([majority(s) / total for s in shuffled], axis=0)
        nb_b, nb0_b = weights @ same_i / total, weights @ chance_i / total
        out["replicates"] = {"position_score": _adjusted_replicates(agree_b, agree0_b),
                             "autocorrelation": _adjusted_replicates(nb_b, nb0_b)}
    return out


def _adjusted_replicates(raw: np.ndarray, chance: np.ndarray) -> np.ndarray:
    """:func:`_adjusted` elementwise."""
    return np.where(chance >= 1.0 - 1e-12, 0.0, (raw - chance) / np.where(chance < 1.0, 1.0 - chance, 1.0))
