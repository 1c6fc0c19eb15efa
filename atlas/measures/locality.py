"""Positional effect vs locality: cosine-similarity structure of patch tokens over the grid.

Two questions with one computation:

* *positional effect* — are tokens at the same grid position in different images more alike
  than tokens at different positions? (a shared per-position component)
* *locality beyond position* — are nearby tokens of the same image more alike than tokens at
  the same offset in two different images? The across-image curve carries everything the
  grid position explains, so the difference is what the image content adds.

Features are **mean-centred over the whole dataset** (one mean vector over all N * h * w tokens)
and then L2-normalised before taking cosines. ViT tokens share a large common direction (and
often a few massive channels); without centring every cosine is close to 1 and differences
vanish. A single dataset mean keeps every per-position and per-image component intact, so both
the positional effect and the locality remain measurable; unrelated tokens get cosine ~0.

Everything is computed exactly (no pair subsampling) from two P x P matrices (``P = h * w``)::

    G[p, q]  = sum_i u(i, p) . u(i, q)            (pairs inside one image)
    SS[p, q] = S_p . S_q,  S_p = sum_i u(i, p)     (all image pairs)

so ``SS - G`` sums the pairs of *different* images. Cost: one ``P x (N*C) x P`` product.

Computed in torch on ``device`` (:mod:`.tensors`; None: where the features are): the centred unit
tokens, the Gram matrix (on the CPU numpy's BLAS, which runs ``v @ v.T`` as a symmetric rank-k
update, half a general product's work) and the per-image products of the leave-one-out
replicates. Only the (P, P) matrices and (N, D) sums come back to the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .positional import _as_features
from .tensors import as_tensor, gram, resolve_device, to_numpy

__all__ = ["similarity_structure"]

_METRICS = ("chebyshev", "euclidean")


def _unit_tokens(features, device=None) -> torch.Tensor:
    """Dataset-mean-centred, L2-normalised tokens, position-major: shape (P, N, C); zero vectors
    stay zero. Position-major so that one product of the (P, N * C) matrix with its transpose
    sums the pairs inside every image (one pass over the features writes it, no transposed copy).

    torch rather than numpy: its float32 reductions are blocked (the mean agrees with a float64
    accumulation to ~1e-7; the measures move by < 1e-8) and faster (the whole similarity structure
    of 100 x 196 x 384 tokens: 28 vs 35 ms on one core). On ``device`` (None: where the features
    are; float32 features already there are not copied before the one pass that writes ``u``).
    """
    n, h, w, c = features.shape
    dev = resolve_device(device, features)
    x = as_tensor(features, dev, torch.float32).reshape(n, h * w, c)
    mean = x.sum(dim=(0, 1)) / (n * h * w)
    u = torch.empty((h * w, n, c), dtype=torch.float32, device=dev)
    torch.sub(x.transpose(0, 1), mean, out=u)
    u /= torch.linalg.vector_norm(u, dim=-1, keepdim=True).clamp_(min=1e-12)
    return u


def _grid_distance(h: int, w: int, metric: str) -> np.ndarray:
    """(P, P) integer distance between grid positions, in patches (Euclidean rounded)."""
    rr, cc = np.divmod(np.arange(h * w), w)
    dr = np.abs(rr[:, None] - rr[None, :])
    dc = np.abs(cc[:, None] - cc[None, :])
    if metric == "chebyshev":
        return np.maximum(dr, dc)
    return np.rint(np.hypot(dr, dc)).astype(np.int64)


class _DistanceBins:
    """Sums of (B, P * P) values over the position pairs at each grid distance. On the CPU one
    ``index_add_``; elsewhere the pairs are sorted by distance once and each distance is one
    contiguous slice sum, since ``index_add_`` on CUDA adds with atomics, in no fixed order
    (``segments`` forces either way, so CPU tests cover the CUDA one)."""

    def __init__(self, dist: np.ndarray, device, segments: bool | None = None):
        flat = dist.ravel()
        self.n_bins = int(flat.max()) + 1
        self.device = resolve_device(device)
        self.segments = self.device.type != "cpu" if segments is None else segments
        if not self.segments:
            self.flat = as_tensor(flat.astype(np.int64), self.device)
        else:
            self.order = as_tensor(np.argsort(flat, kind="stable"), self.device)
            self.bounds = np.concatenate([[0], np.cumsum(np.bincount(flat, minlength=self.n_bins))]).tolist()

    def sums(self, values: torch.Tensor) -> torch.Tensor:
        if not self.segments:
            out = torch.zeros((len(values), self.n_bins), dtype=values.dtype, device=values.device)
            return out.index_add_(1, self.flat, values)
        v = values.index_select(1, self.order)
        return torch.stack([v[:, a:b].sum(dim=1) for a, b in zip(self.bounds[:-1], self.bounds[1:])], dim=1)


def similarity_structure(
    features: Any, *, max_distance: int | None = None, metric: str = "chebyshev", slope_distance: int = 4,
    jackknife: bool = False, device: Any = None,
) -> dict[str, Any]:
    """Positional effect and locality curves of dataset-centred cosine similarities.

    Parameters
    ----------
    features : float array (N, h, w, C)
        Patch features of N >= 2 images.
    max_distance : int, optional
        Largest distance of the curves (default: the largest distance on the grid).
    metric : {"chebyshev", "euclidean"}, default "chebyshev"
        Grid distance in patch units; "euclidean" is rounded to the nearest integer.
        With "chebyshev", d = 1 is the 8-neighbourhood.
    slope_distance : int, default 4
        ``locality_slope`` is fitted over d = 1 .. min(slope_distance, max_distance).
    jackknife : bool, default False
        Also return ``replicates = {"positional_effect", "locality_d1", "locality_slope"}``, each
        an (N,) array of the measure without image ``i`` (leave-one-out; needs N >= 3), with the
        dataset mean used for centring held fixed. The statistics are means over *pairs* of
        images, so the jackknife is what stays linear in N: every replicate comes from the totals
        minus image ``i``'s own sums.
    device : torch device or str, optional
        Where the products are computed (None: where ``features`` is; numpy: the CPU).

    Returns
    -------
    dict
        Scalars ``positional_effect``, ``same_position``, ``different_position``,
        ``locality_d1``, ``locality_slope``; curves ``distances`` (D,), ``within`` (D,),
        ``across`` (D,), ``beyond`` (D,) (NaN where a distance has no pair); map
        ``same_position_map`` (h, w).

    Notes
    -----
    With ``u(i, p)`` the centred, unit-normalised token of image ``i`` at position ``p``:

    * ``same_position = mean_p mean_{i != j} u(i, p) . u(j, p)``
    * ``different_position = mean_{p != q} mean_{i != j} u(i, p) . u(j, q)``
    * ``positional_effect = same_position - different_position`` (~0 without a shared
      per-position component, up to ~1 when position dominates the token).
    * ``within(d) = mean_{(p, q): dist(p, q) = d} mean_i u(i, p) . u(i, q)`` (same image)
    * ``across(d) = mean_{(p, q): dist(p, q) = d} mean_{i != j} u(i, p) . u(j, q)``
      (same offsets, different images: what the positions alone explain)
    * ``beyond(d) = within(d) - across(d)``, the locality beyond position;
      ``locality_d1 = beyond(1)`` and ``locality_slope`` = least-squares slope of ``beyond(d)``
      against ``d`` over ``d = 1 .. slope_distance`` (negative when similarity decays with
      distance; ~0 for spatially unstructured tokens). A positive plateau of ``beyond`` at large
      ``d`` is image-level similarity (all tokens of one image share something).
    * ``same_position_map[p] = mean_{i != j} u(i, p) . u(j, p)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> pos = rng.normal(size=(1, 5, 5, 32))
    >>> out = similarity_structure(rng.normal(size=(20, 5, 5, 32)) + 2 * pos)
    >>> out["positional_effect"] > 0.5, abs(out["locality_d1"]) < 0.05
    (True, True)
    """
    return _similarity_structure(_as_features(features, min_images=2), max_distance=max_distance, metric=metric,
                                 slope_distance=slope_distance, jackknife=jackknife, device=device)


def _similarity_structure(feats: Any, *, max_distance: int | None = None, metric: str = "chebyshev",
                          slope_distance: int = 4, jackknife: bool = False, device: Any = None) -> dict[str, Any]:
    """:func:`similarity_structure` of already validated float32 features."""
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}; got {metric!r}")
    if slope_distance < 2:
        raise ValueError(f"slope_distance must be >= 2 (a slope needs two distances); got {slope_distance}")
    n, h, w, c = feats.shape
    n_pos = h * w
    if n_pos < 2:
        raise ValueError(f"similarity_structure needs at least 2 grid positions; got {h} x {w}")
    dist = _grid_distance(h, w, metric)
    d_max = int(dist.max())
    if max_distance is None:
        max_distance = d_max
    if max_distance < 1:
        raise ValueError(f"max_distance must be >= 1; got {max_distance}")

    u = _unit_tokens(feats, device)  # (P, N, C)
    g = to_numpy(gram(u.reshape(n_pos, n * c)))  # same-image pair sums (on the CPU: numpy's syrk)
    s = to_numpy(u.sum(dim=1).double())  # sums of N unit vectors: float32 (blocked) summation suffices
    across_sum = s @ s.T - g  # different-image pair sums
    n_pairs = n * (n - 1)

    diag = np.eye(n_pos, dtype=bool)
    same_map = np.diag(across_sum) / n_pairs
    same = float(same_map.mean())
    different = float(across_sum[~diag].sum() / (n_pairs * n_pos * (n_pos - 1)))

    distances = np.arange(1, max_distance + 1)
    within = np.full(len(distances), np.nan)
    across = np.full(len(distances), np.nan)
    flat_d = dist.ravel()
    # one bincount per matrix instead of a mask per distance
    n_at = np.bincount(flat_d, minlength=max_distance + 1)
    g_at = np.bincount(flat_d, weights=g.ravel(), minlength=max_distance + 1)
    a_at = np.bincount(flat_d, weights=across_sum.ravel(), minlength=max_distance + 1)
    for j, d in enumerate(distances):
        if d <= d_max and n_at[d] > 0:
            within[j] = g_at[d] / (n_at[d] * n)
            across[j] = a_at[d] / (n_at[d] * n_pairs)
    beyond = within - across

    m = min(slope_distance, max_distance, d_max)
    if m >= 2:
        slope = float(np.polyfit(distances[:m].astype(np.float64), beyond[:m], 1)[0])
    else:
        slope = float("nan")  # a grid too small for two distances
    out = {
        "positional_effect": same - different,
        "same_position": same,
        "different_position": different,
        "locality_d1": float(beyond[0]),
        "locality_slope": slope,
        "distances": distances,
        "within": within,
        "across": across,
        "beyond": beyond,
        "same_position_map": same_map.reshape(h, w),
    }
    if jackknife and n >= 3:
        out["replicates"] = _leave_one_out(u, s, g, across_sum, dist, max(m, 1))
    return out


def _leave_one_out(u: torch.Tensor, s: np.ndarray, g: np.ndarray, across_sum: np.ndarray, dist: np.ndarray,
                   m: int) -> dict[str, np.ndarray]:
    """Positional effect and locality without image ``i``, for every ``i``.

    Per image: ``g_i(d) = sum_{dist(p,q)=d} u(i,p).u(i,q)`` and ``x_i(d) = sum_{dist(p,q)=d}
    S_p.u(i,q)`` with ``S_p = sum_j u(j,p)``. Without image i the same-image sums lose g_i and the
    sums over image pairs lose ``2 x_i - 2 g_i`` (all pairs that involve image i).
    """
    n_pos, n, c = u.shape
    n_bins = int(dist.max()) + 1
    bins = _DistanceBins(dist, u.device)
    st = as_tensor(s.astype(np.float32), u.device)
    g_i = torch.zeros((n, n_bins), dtype=torch.float64, device=u.device)
    x_i = torch.zeros((n, n_bins), dtype=torch.float64, device=u.device)
    for start in range(0, n, 16):  # (chunk, P, P) products, binned by distance at once
        uc = u[:, start:start + 16].transpose(0, 1)  # (chunk, P, C)
        g_i[start:start + 16] = bins.sums((uc @ uc.transpose(1, 2)).reshape(len(uc), -1).double())
        x_i[start:start + 16] = bins.sums((st @ uc.transpose(1, 2)).reshape(len(uc), -1).double())
    g_i, x_i = to_numpy(g_i), to_numpy(x_i)
    total_u = to_numpy(u.sum(dim=0).double())  # (N, C): sum over positions of each image
    g_all, x_all = (total_u ** 2).sum(1), total_u @ s.sum(0)
    n_at = np.bincount(dist.ravel(), minlength=n_bins).astype(np.float64)
    g_bin = np.bincount(dist.ravel(), weights=g.ravel(), minlength=n_bins)
    a_bin = np.bincount(dist.ravel(), weights=across_sum.ravel(), minlength=n_bins)
    pairs = (n - 1) * (n - 2)
    across = a_bin[None, :] - 2 * x_i + 2 * g_i  # (N, D): sums over pairs of different images
    within = g_bin[None, :] - g_i
    same = across[:, 0] / (n_pos * pairs)
    across_all = across_sum.sum() - 2 * x_all + 2 * g_all
    different = (across_all - across[:, 0]) / (pairs * n_pos * (n_pos - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        beyond = within / (n_at * (n - 1)) - across / (n_at * pairs)
    d = np.arange(1, m + 1, dtype=np.float64)
    y = beyond[:, 1:m + 1]
    slope = ((d - d.mean()) * (y - y.mean(axis=1, keepdims=True))).sum(1) / ((d - d.mean()) ** 2).sum() \
        if m >= 2 else np.full(n, np.nan)
    return {"positional_effect": same - different, "locality_d1": beyond[:, 1], "locality_slope": slope}
