"""Representation similarity under masking (Cadet et al. 2023 style): CKA and SVCCA.

Definitions (quoted on the Methods page); ``X`` (n, p) and ``Y`` (n, q) hold one row per image,
columns centred first:

* **Linear CKA** = ``||Yᵀ X||²_F / (||Xᵀ X||_F ||Yᵀ Y||_F)`` (Kornblith et al. 2019).
* **Debiased linear CKA**: the same ratio with each HSIC replaced by the unbiased estimator of
  Song et al. (2012) / Székely & Rizzo (as used by Nguyen et al. 2021):
  ``HSIC_u(K, L) = [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1 / ((n-1)(n-2)) - 2/(n-2)·1ᵀK̃L̃1] / (n(n-3))`` with
  ``K = XXᵀ``, ``L = YYᵀ`` and zeroed diagonals. Near 0 for independent X, Y even when n < p.
  Needs n >= 4.
* **SVCCA** (Raghu et al. 2017): each of X, Y is reduced by SVD to the fewest leading
  directions explaining ``var_kept`` of its variance, capped at ``max_dims`` (default
  ``(n - 1) // 2`` so that ``dx + dy <= n - 1``; with more directions than that some canonical
  correlations are 1 by construction); the score is the mean of the ``min(dx, dy)`` canonical
  correlations between the two reduced sets.
* **Masking variants** (:func:`make_variants`): ``full`` photo; ``foreground_only`` /
  ``background_only`` (the other region filled); ``centre_occluded`` (a centred rectangle of
  ``occlusion`` of the area, sides scaled by ``sqrt(occlusion)``, filled); ``random_occluded``
  (a rectangle of the same height and width — the same area — at a seeded random position).
  Fill = the photo's mean colour (``fill="mean"``, default) or mid-grey 128 (``fill="grey"``).

The metrics are computed in torch, float64, on ``device`` (:mod:`.tensors`; None: where the
embeddings are, numpy on the CPU).

Example
-------
>>> import numpy as np
>>> X = np.random.default_rng(0).normal(size=(50, 8))
>>> round(linear_cka(X, 3 * X), 6)
1.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from .tensors import as_tensor, resolve_device, to_numpy

VARIANTS = ("full", "foreground_only", "background_only", "centre_occluded", "random_occluded")


def _pair(X, Y, min_n: int = 2, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Column-centred float64 tensors of ``X`` and ``Y`` on ``device`` (None: where a tensor
    argument is, else the CPU)."""
    dev = resolve_device(device, X, Y)
    X = as_tensor(X, dev, torch.float64)
    Y = as_tensor(Y, dev, torch.float64)
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError(f"X and Y must be 2-D (n, features), got {tuple(X.shape)} and {tuple(Y.shape)}")
    if len(X) != len(Y):
        raise ValueError(f"X and Y must have the same rows (images), got {len(X)} and {len(Y)}")
    if len(X) < min_n:
        raise ValueError(f"need at least {min_n} rows, got {len(X)}")
    return X - X.mean(dim=0), Y - Y.mean(dim=0)


def linear_cka(X, Y, device=None) -> float:
    """Linear CKA of (n, p) and (n, q) representations of the same n inputs (in [0, 1])."""
    X, Y = _pair(X, Y, device=device)
    num = torch.linalg.matrix_norm(Y.T @ X) ** 2
    den = float(torch.linalg.matrix_norm(X.T @ X) * torch.linalg.matrix_norm(Y.T @ Y))
    return float(num) / den if den > 0 else float("nan")


def linear_cka_replicates(X, Y, weights: np.ndarray, device=None) -> np.ndarray:
    """:func:`linear_cka` of resampling replicates: row ``i`` weighted ``weights[b, i]`` (0 = left out).

    Computed from the (n, n) Gram matrices: with ``w`` the weights, centring is by the
    weighted mean, and ``||YᵀX||²_F = sum_ij w_i w_j K_ij L_ij`` for the centred Grams ``K, L``
    (all replicates at once, in blocks of replicates that bound the memory).
    """
    X, Y = _pair(X, Y, device=device)
    w_all = as_tensor(weights, X.device, torch.float64)
    n = len(X)
    step = max(1, 2**24 // (n * max(X.shape[1], Y.shape[1], n)))
    out = []
    for s in range(0, len(w_all), step):
        w = w_all[s:s + step]
        sw = w.sum(dim=1, keepdim=True)
        xc, yc = X[None] - (w @ X / sw)[:, None], Y[None] - (w @ Y / sw)[:, None]
        K, L = xc @ xc.transpose(1, 2), yc @ yc.transpose(1, 2)
        ww = w[:, :, None] * w[:, None, :]
        den = torch.sqrt((ww * K * K).sum(dim=(1, 2)) * (ww * L * L).sum(dim=(1, 2)))
        num = (ww * K * L).sum(dim=(1, 2))
        out.append(torch.where(den > 0, num / torch.where(den > 0, den, 1.0), torch.nan))
    return to_numpy(torch.cat(out)) if out else np.empty(0)


def _unbiased_hsic_of_grams(K: torch.Tensor, L: torch.Tensor) -> float:
    """n(n-3) * HSIC_u of two (n, n) Gram matrices (the module docstring's formula)."""
    n = len(K)
    K, L = K - torch.diag(torch.diag(K)), L - torch.diag(torch.diag(L))
    k1, l1 = K.sum(dim=1), L.sum(dim=1)
    return float((K * L).sum() + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (k1 @ l1))


def _debiased_cka_of_grams(K: torch.Tensor, L: torch.Tensor) -> float:
    """Debiased linear CKA of two (n, n) Gram matrices (NaN when either self-HSIC is not positive)."""
    hxx, hyy = _unbiased_hsic_of_grams(K, K), _unbiased_hsic_of_grams(L, L)
    return _unbiased_hsic_of_grams(K, L) / float(np.sqrt(hxx * hyy)) if hxx > 0 and hyy > 0 else float("nan")


def debiased_linear_cka(X, Y, device=None) -> float:
    """Linear CKA with unbiased HSIC estimates (can be slightly negative; needs n >= 4)."""
    X, Y = _pair(X, Y, min_n=4, device=device)
    return _debiased_cka_of_grams(X @ X.T, Y @ Y.T)


def debiased_linear_cka_replicates(X, Y, weights: np.ndarray, device=None) -> np.ndarray:
    """:func:`debiased_linear_cka` of resampling replicates: replicate ``b`` keeps the rows with
    ``weights[b, i] == 1`` (0/1 weights, a subset: repeated rows would bias the unbiased HSIC);
    NaN for a replicate of fewer than 4 rows. From the (n, n) Gram matrices: a replicate's are
    sub-blocks, centred on its own rows (as :func:`debiased_linear_cka` of the subset centres)."""
    w = np.asarray(weights)
    if not np.isin(w, (0, 1)).all():
        raise ValueError("debiased CKA replicates need 0/1 weights (subsets of the rows)")
    X, Y = _pair(X, Y, min_n=4, device=device)
    K, L = X @ X.T, Y @ Y.T
    out = np.full(len(w), np.nan)
    for b, keep in enumerate(w.astype(bool)):
        m = int(keep.sum())
        if m >= 4:
            idx = torch.as_tensor(np.flatnonzero(keep), device=K.device)
            centre = torch.eye(m, dtype=K.dtype, device=K.device) - 1.0 / m
            out[b] = _debiased_cka_of_grams(centre @ K[idx][:, idx] @ centre, centre @ L[idx][:, idx] @ centre)
    return out


def _svd_basis(X: torch.Tensor, var_kept: float, max_dims: int) -> torch.Tensor:
    U, s, _ = torch.linalg.svd(X, full_matrices=False)
    s = to_numpy(s)
    var = s**2
    rank = int((s > s[0] * 1e-10).sum()) if s.size and s[0] > 0 else 0
    if rank == 0:
        raise ValueError("a representation is constant over the inputs; SVCCA is undefined")
    d = int(np.searchsorted(np.cumsum(var) / var.sum(), var_kept - 1e-12) + 1)
    return U[:, : max(1, min(d, rank, max_dims))]


def svcca(X, Y, var_kept: float = 0.99, max_dims: int | None = None, device=None) -> float:
    """SVCCA mean canonical correlation of (n, p) and (n, q) representations (in [0, 1]).

    The reduced data of each side span the leading left singular vectors of the centred matrix,
    so the canonical correlations are the singular values of ``Uxᵀ Uy``.
    """
    X, Y = _pair(X, Y, min_n=3, device=device)
    if not 0.0 < var_kept <= 1.0:
        raise ValueError(f"var_kept must be in (0, 1], got {var_kept}")
    n = len(X)
    cap = (n - 1) // 2 if max_dims is None else int(max_dims)
    if not 1 <= cap <= n - 1:
        raise ValueError(f"max_dims must be in 1..n-1={n - 1}, got {max_dims}")
    Ux = _svd_basis(X, var_kept, cap)
    Uy = _svd_basis(Y, var_kept, cap)
    rho = torch.linalg.svdvals(Ux.T @ Uy)
    return float(rho.clamp(0.0, 1.0).mean())


METRICS: dict[str, Callable[..., float]] = {
    "linear_cka": linear_cka,
    "debiased_cka": debiased_linear_cka,
    "svcca": svcca,
}


def similarity_matrix(
    embeddings: Mapping[str, np.ndarray], metrics: Sequence[str] = tuple(METRICS), device=None
) -> dict[str, np.ndarray]:
    """Pairwise similarity of variants: ``{metric: (V, V) matrix}`` in the order of ``embeddings``.

    ``embeddings[variant]`` is (n, d): one row per image, the same images in the same order.
    ``device``: where the metrics are computed (None: where the embeddings are; numpy: the CPU);
    each embedding is copied there once.
    """
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise ValueError(f"unknown metrics {bad}; choose from {list(METRICS)}")
    names = list(embeddings)
    if not names:
        raise ValueError("embeddings is empty; pass {variant: (n, d) array}")
    dev = resolve_device(device, *embeddings.values())
    emb = {a: as_tensor(embeddings[a], dev, torch.float64) for a in names}
    out = {}
    for metric in metrics:
        fn = METRICS[metric]
        M = np.empty((len(names), len(names)))
        for i, a in enumerate(names):
            for j in range(i, len(names)):
                M[i, j] = M[j, i] = fn(emb[a], emb[names[j]])
        out[metric] = M
    return out


def occlusion_box(size: tuple[int, int], occlusion: float, rng: np.random.Generator | None = None):
    """(top, left, height, width) of the occlusion rectangle: centred, or random when ``rng``."""
    H, W = size
    hh = max(1, int(round(H * np.sqrt(occlusion))))
    ww = max(1, int(round(W * np.sqrt(occlusion))))
    if rng is None:
        return (H - hh) // 2, (W - ww) // 2, hh, ww
    return int(rng.integers(0, H - hh + 1)), int(rng.integers(0, W - ww + 1)), hh, ww


def make_variants(
    img: Image.Image | np.ndarray,
    fg_mask: np.ndarray,
    seed: int = 0,
    occlusion: float = 0.25,
    fill: str = "mean",
) -> dict[str, Image.Image | np.ndarray]:
    """The five masking variants of one photo (same type as ``img``: PIL RGB or uint8 (H, W, 3)).

    Parameters
    ----------
    img : PIL image or uint8 array (H, W, 3)
    fg_mask : bool array (H, W)
        Foreground pixels (e.g. ``LabelledDataset.foreground_mask(mask)``), at the photo's size.
    seed : int
        Position of the random occlusion.
    occlusion : float
        Area fraction of the occluding rectangles, in (0, 1).
    fill : {"mean", "grey"}
        Per-image mean colour, or (128, 128, 128).
    """
    as_pil = isinstance(img, Image.Image)
    arr = np.array(img.convert("RGB")) if as_pil else np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"img must be a PIL image or uint8 (H, W, 3) array, got {arr.dtype} {arr.shape}")
    fg = np.asarray(fg_mask, dtype=bool)
    if fg.shape != arr.shape[:2]:
        raise ValueError(f"fg_mask {fg.shape} must match the image {arr.shape[:2]}; resize it first")
    if not 0.0 < occlusion < 1.0:
        raise ValueError(f"occlusion must be an area fraction in (0, 1), got {occlusion}")
    if fill == "mean":
        colour = np.round(arr.reshape(-1, 3).mean(0)).astype(np.uint8)
    elif fill == "grey":
        colour = np.full(3, 128, np.uint8)
    else:
        raise ValueError(f"fill must be 'mean' or 'grey', got {fill!r}")

    def filled(region: np.ndarray) -> np.ndarray:
        out = arr.copy()
        out[region] = colour
        return out

    def box(b) -> np.ndarray:
        t, l, hh, ww = b
        region = np.zeros(arr.shape[:2], bool)
        region[t:t + hh, l:l + ww] = True
        return region

    rng = np.random.default_rng(seed)
    variants = {
        "full": arr.copy(),
        "foreground_only": filled(~fg),
        "background_only": filled(fg),
        "centre_occluded": filled(box(occlusion_box(arr.shape[:2], occlusion))),
        "random_occluded": filled(box(occlusion_box(arr.shape[:2], occlusion, rng))),
    }
    return {k: Image.fromarray(v) for k, v in variants.items()} if as_pil else variants
