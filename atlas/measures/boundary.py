"""Boundary artifacts: do tokens on the outer ring of the patch grid behave differently?

Zero padding, the absence of neighbours and register-free "massive activation" tokens give many
ViTs a border that clusters on its own, carries unusual norms or hosts high-norm outlier tokens.
This module measures that with the same joint cluster labels and features as the rest of the
atlas. Norms are taken on the *raw* (uncentred) features, where the artifacts live: in torch on
``device`` (:mod:`.tensors`; None: where the features are), the one pass over all tokens; the
(N, h, w) norms and the label counts are then handled on the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .positional import _ami_from_counts, _ami_replicates, _as_features, _as_labels
from .tensors import as_tensor, to_numpy

__all__ = ["border_mask", "boundary_artifacts"]

_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation


def border_mask(h: int, w: int, ring: int = 1) -> np.ndarray:
    """Boolean (h, w) mask of the outer ``ring`` rows/columns of the patch grid.

    Examples
    --------
    >>> border_mask(4, 5).astype(int)
    array([[1, 1, 1, 1, 1],
           [1, 0, 0, 0, 1],
           [1, 0, 0, 0, 1],
           [1, 1, 1, 1, 1]])
    """
    if ring < 1:
        raise ValueError(f"ring must be >= 1; got {ring}")
    if min(h, w) <= 2 * ring:
        raise ValueError(f"a {h} x {w} grid has no interior with ring={ring}; use a smaller ring")
    mask = np.ones((h, w), dtype=bool)
    mask[ring : h - ring, ring : w - ring] = False
    return mask


def boundary_artifacts(
    labels: Any,
    features: Any,
    prefix: Any = None,
    ring: int = 1,
    *,
    outlier_z: float = 5.0,
    min_cluster_frac: float = 0.01,
    weights: np.ndarray | None = None,
    device: Any = None,
) -> dict[str, Any]:
    """Border-vs-interior statistics of cluster ids, token norms and high-norm outliers.

    Parameters
    ----------
    labels : int array (N, h, w)
        Joint cluster ids of the patch tokens.
    features : float array (N, h, w, C)
        The clustered patch features (raw, uncentred).
    prefix : float array (N, T, C), optional
        Prefix tokens (CLS, registers) of the same block and representation.
    ring : int, default 1
        Width of the border ring in patches (see :func:`border_mask`).
    outlier_z : float, default 5.0
        Robust z-score above which a patch token counts as a high-norm outlier.
    min_cluster_frac : float, default 0.01
        ``max_enrichment`` only considers clusters holding at least this fraction of all tokens
        (tiny clusters give huge but meaningless ratios).
    weights : float array (B, N), optional
        Image weights of resampling replicates (0 or 1 for a subset; counts work too): adds ``replicates`` with (B,) arrays of
        ``ami``, ``max_enrichment``, ``norm_ratio``, ``outlier_fraction``,
        ``outlier_fraction_border`` and (with ``prefix``) ``prefix_norm_ratio`` (its mean over
        prefix tokens). The outlier threshold is the one of all images.
    device : torch device or str, optional
        Where the token norms are computed (None: where ``features`` is; numpy: the CPU).

    Returns
    -------
    dict
        Scalars ``ami``, ``max_enrichment``, ``norm_ratio``, ``outlier_threshold``,
        ``outlier_fraction``, ``outlier_fraction_border``, ``outlier_fraction_interior``;
        arrays ``enrichment`` (K,), ``cluster_sizes`` (K,), ``norm_map`` (h, w),
        ``outlier_count_map`` (h, w) and ``border`` (h, w) bool; with ``prefix`` also
        ``prefix_norms`` (T,) and ``prefix_norm_ratio`` (T,).

    Notes
    -----
    Let ``b(p)`` be 1 on the border ring and 0 inside, ``n_B`` / ``n_I`` the numbers of border /
    interior tokens over all images, ``n_kB`` / ``n_kI`` those of cluster ``k``, ``K`` the number
    of cluster ids and ``||f(i, p)||`` the L2 norm of a raw patch token.

    * ``ami`` = :func:`sklearn.metrics.adjusted_mutual_info_score` between ``c(i, p)`` and
      ``b(p)`` over all tokens, computed from the border / interior counts (0 = the border is not
      its own cluster, 1 = it is exactly).
    * ``enrichment[k] = ((n_kB + 1) / (n_B + K)) / ((n_kI + 1) / (n_I + K))``: how much more
      often cluster ``k`` occurs on the border than inside (add-one smoothed, so always finite);
      ``max_enrichment`` = its maximum over clusters with at least ``min_cluster_frac`` of the
      tokens (~1 without a border effect).
    * ``norm_map[p] = mean_i ||f(i, p)||``;
      ``norm_ratio = mean_{b(p)=1} ||f|| / mean_{b(p)=0} ||f||`` over all tokens.
    * Outliers: ``z = (||f|| - median) / (1.4826 * MAD)`` with median and median absolute
      deviation over all patch-token norms (falls back to the standard deviation if MAD = 0);
      a token is an outlier when ``z > outlier_z``. ``outlier_count_map[p]`` counts images with
      an outlier at ``p``; ``outlier_fraction*`` are outlier shares over all / border /
      interior tokens.
    * ``prefix_norms[t] = mean_i ||prefix(i, t)||``;
      ``prefix_norm_ratio[t] = prefix_norms[t] / mean ||f||`` over all patch tokens.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> feats = rng.normal(size=(10, 6, 6, 8))
    >>> feats[:, border_mask(6, 6)] += 10.0                  # a constant vector on the border
    >>> labels = np.broadcast_to(border_mask(6, 6), (10, 6, 6)).astype(int)
    >>> out = boundary_artifacts(labels, feats)
    >>> round(out["ami"], 3), out["norm_ratio"] > 2
    (1.0, True)
    """
    return _boundary_artifacts(_as_labels(labels), _as_features(features, device=device), prefix, ring,
                               outlier_z=outlier_z, min_cluster_frac=min_cluster_frac, weights=weights)


def _boundary_artifacts(labels: np.ndarray, feats: Any, prefix: Any = None, ring: int = 1, *,
                        outlier_z: float = 5.0, min_cluster_frac: float = 0.01,
                        weights: np.ndarray | None = None, device: Any = None) -> dict[str, Any]:
    """:func:`boundary_artifacts` of already validated labels and float32 features."""
    if tuple(feats.shape[:3]) != labels.shape:
        raise ValueError(f"labels {labels.shape} and features {tuple(feats.shape[:3])} must share (N, h, w)")
    if outlier_z <= 0:
        raise ValueError(f"outlier_z must be > 0; got {outlier_z}")
    if not 0 <= min_cluster_frac < 1:
        raise ValueError(f"min_cluster_frac must be in [0, 1); got {min_cluster_frac}")
    n, h, w = labels.shape
    border = border_mask(h, w, ring)
    border_all = np.broadcast_to(border, labels.shape)

    # clusters vs border indicator
    k = int(labels.max()) + 1
    n_b, n_i = int(border.sum()) * n, int((~border).sum()) * n
    cnt_b = np.bincount(labels[border_all], minlength=k)
    cnt_i = np.bincount(labels[~border_all], minlength=k)
    sizes = cnt_b + cnt_i
    enrichment = ((cnt_b + 1) / (n_b + k)) / ((cnt_i + 1) / (n_i + k))
    big = sizes >= min_cluster_frac * sizes.sum()
    if not big.any():
        big = sizes > 0
    # AMI is 0 by definition when all tokens share one cluster (nothing to explain)
    ami = _ami_from_counts(np.stack([cnt_b, cnt_i])) if sizes.astype(bool).sum() > 1 else 0.0

    # token norms and high-norm outliers
    # (N, h, w) float32 norms (one fused reduction: faster than numpy's einsum), float64 afterwards
    norms = to_numpy(torch.linalg.vector_norm(as_tensor(feats, device, torch.float32), dim=-1).double())
    norm_ratio = float(norms[border_all].mean() / max(norms[~border_all].mean(), 1e-12))
    med = float(np.median(norms))
    scale = _MAD_TO_SIGMA * float(np.median(np.abs(norms - med)))
    if scale <= 0:
        scale = float(norms.std())
    threshold = med + outlier_z * scale if scale > 0 else np.inf
    outlier = norms > threshold
    out: dict[str, Any] = {
        "ami": ami,
        "max_enrichment": float(enrichment[big].max()),
        "norm_ratio": norm_ratio,
        "outlier_threshold": float(threshold),
        "outlier_fraction": float(outlier.mean()),
        "outlier_fraction_border": float(outlier[border_all].mean()),
        "outlier_fraction_interior": float(outlier[~border_all].mean()),
        "enrichment": enrichment,
        "cluster_sizes": sizes,
        "norm_map": norms.mean(axis=0),
        "outlier_count_map": outlier.sum(axis=0),
        "border": border,
    }
    if prefix is not None:
        pre = as_tensor(prefix, dtype=torch.float32)  # small: where it is
        if pre.ndim != 3 or pre.shape[0] != n or pre.shape[2] != feats.shape[3]:
            raise ValueError(f"prefix must have shape (N, T, C) = ({n}, T, {feats.shape[3]}); got {tuple(pre.shape)}")
        pre_norms = to_numpy(torch.linalg.vector_norm(pre, dim=-1))  # (N, T) float32
        prefix_norms = pre_norms.mean(axis=0).astype(np.float64)
        out["prefix_norms"] = prefix_norms
        out["prefix_norm_ratio"] = prefix_norms / max(float(norms.mean()), 1e-12)
    if weights is not None:
        out["replicates"] = _replicates(labels, norms, border, outlier, k, min_cluster_frac, weights,
                                        None if prefix is None else pre_norms)
    return out


def _replicates(labels, norms, border, outlier, k, min_cluster_frac, weights, prefix_norms) -> dict[str, np.ndarray]:
    """The scalars of :func:`boundary_artifacts` with image ``i`` counted ``weights[b, i]`` times."""
    n = len(labels)
    flat, ring = labels.reshape(n, -1), border.ravel()
    per_b = np.stack([np.bincount(row[ring], minlength=k) for row in flat]).astype(np.float64)  # (N, K)
    per_i = np.stack([np.bincount(row[~ring], minlength=k) for row in flat]).astype(np.float64)
    cnt_b, cnt_i = weights @ per_b, weights @ per_i  # (B, K)
    n_b, n_i = ring.sum() * weights.sum(1, keepdims=True), (~ring).sum() * weights.sum(1, keepdims=True)
    enrichment = ((cnt_b + 1) / (n_b + k)) / ((cnt_i + 1) / (n_i + k))
    sizes = cnt_b + cnt_i
    big = sizes >= min_cluster_frac * sizes.sum(1, keepdims=True)
    big = np.where(big.any(1, keepdims=True), big, sizes > 0)
    several = (sizes > 0).sum(1) > 1
    ami = np.where(several, _ami_replicates(np.stack([cnt_b, cnt_i], axis=1)), 0.0)
    norms_flat, out_flat = norms.reshape(n, -1), outlier.reshape(n, -1)
    ratio = lambda num, den: (weights @ num) / np.maximum(weights @ den, 1e-300)  # noqa: E731
    out = {
        "ami": ami,
        "max_enrichment": np.where(big, enrichment, -np.inf).max(1),
        "norm_ratio": ratio(norms_flat[:, ring].sum(1), np.full(n, ring.sum()))
        / np.maximum(ratio(norms_flat[:, ~ring].sum(1), np.full(n, (~ring).sum())), 1e-12),
        "outlier_fraction": ratio(out_flat.sum(1), np.full(n, out_flat.shape[1])),
        "outlier_fraction_border": ratio(out_flat[:, ring].sum(1), np.full(n, ring.sum())),
    }
    if prefix_norms is not None:  # (N, T) -> mean over prefix tokens of mean prefix norm / mean patch norm
        mean_norm = np.maximum(ratio(norms_flat.sum(1), np.full(n, norms_flat.shape[1])), 1e-12)
        out["prefix_norm_ratio"] = (ratio(prefix_norms, np.ones((n, 1))) / mean_norm[:, None]).mean(1)
    return out
