"""Joint PCA-RGB maps of patch features, after the pictures of DINOv2's Figure 1 (the recipe differs
from DINOv2's and DINOv3's released notebooks, see :data:`RECIPE`), with every choice fixed and
stated.

**All patches** (``mode="all"``): one PCA fitted jointly on the patch features of every image
(the same joint philosophy as the clusters: a colour means the same direction in every image),
centred on the joint mean, no whitening, no L2 normalisation (features as stored: for DINOv2's
published maps use the ``tokens_normed`` representation). Each image's patches are projected on
the first three components, which become red, green and blue.

**Foreground** (``mode="foreground"``, the DINOv2 recipe as published: "Background is removed by
removing patches with a negative score of the first PCA component"; "we compute a second PCA on
the remaining patches"): a first joint PCA; its first component's sign is set so that the outer
ring of patches scores lower on average than the rest (background touches the border more often
than objects do); patches scoring > 0 are foreground; a second joint PCA on the foreground patches
alone gives the three colours; background patches are black.

**Scaling**: each component is clipped to its 1st-99th percentile over the fitted patches of all
images jointly and mapped linearly to 0-255 (the same scale for every image, so colours compare
across images). **Order and sign**: components are ordered by explained variance; each one's sign
makes its scores' third central moment positive (the long tail, the rarer and usually salient
part, is bright), ties broken by the largest loading; :func:`align_components` then reorders and
flips a block's components to match a reference block's (the deeper neighbour's) score maps, so
colours do not flip between blocks.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> feats = rng.normal(size=(4, 6, 6, 16)).astype(np.float32)
>>> out = joint_pca_rgb(feats)
>>> out["rgb"].shape, out["rgb"].dtype, round(float(out["explained_variance_ratio"].sum()), 2) < 1
((4, 6, 6, 3), dtype('uint8'), True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .boundary import border_mask
from .positional import _as_features
from .tensors import as_tensor

__all__ = ["joint_pca_rgb", "align_components", "apply_alignment", "pca_variance_share", "RECIPE"]

CLIP_PERCENTILES = (1.0, 99.0)
N_COMPONENTS = 3

#: The recipe, as the Methods page prints it.
RECIPE = {
    "features": "the representation's patch tokens as stored (no L2 normalisation); prefix tokens excluded",
    "fitting set": "all patches of all atlas images jointly (one PCA per model, block and representation)",
    "centring": "joint mean over the fitted patches; no whitening",
    "components": "first three by explained variance -> red, green, blue",
    "scaling": "per component: clip to the 1st-99th percentile of the fitted patches' scores (all images "
               "jointly), then linear to 0-255; one scale for every image",
    "sign": "each component's scores get a positive third central moment (the long tail is bright); ties: "
            "largest loading positive",
    "alignment across blocks": "from the deepest gallery block to the shallowest, each block's components are "
                               "reordered (Hungarian matching of |correlation| of score maps over the same "
                               "patches) and flipped (negative correlation) to follow the deeper neighbour",
    "alignment across input sizes": "a size of the main size's aspect ratio (another one crops another part "
                                    "of each image) takes the main size's colours: one reordering and "
                                    "flipping of the colour channels for all of them, matched as above on the "
                                    "colours of the deepest gallery block's tokens (the other size resampled to "
                                    "the main grid, nearest; patches coloured in both)",
    "foreground mode (DINOv2 recipe)": "first joint PCA on all patches; its first component oriented so the outer "
                                       "patch ring scores lower than the rest; patches with a score > 0 are "
                                       "foreground; a second joint PCA on the foreground patches gives the colours; "
                                       "background is black",
    "differences from the published recipes": "DINOv2's paper fits the second PCA on 3-4 images of one category, "
                                              "here on all atlas images; DINOv2's notebook thresholds a fixed, "
                                              "uncentred projection at 0.05 and cleans the mask morphologically, "
                                              "here the centred first component at 0 (at the joint mean: when the "
                                              "foreground is a minority of patches, background patches near the "
                                              "mean pass); DINOv3's notebook separates the foreground with a "
                                              "trained classifier and whitens the three components; none of that "
                                              "is done here",
    "variance share": "explained variance of the first three joint components / total variance (all patches); "
                      "interval: random halves of the images with the components held fixed",
}


_CHUNK = 1 << 15  # rows per step on the device: the centred copy never exceeds a chunk


def _fit(x: torch.Tensor, rows: torch.Tensor | None, n_components: int):
    """Mean (C,), components (n, C), explained variances (n,) and total variance of the rows of
    ``x`` (on its device, chunked; ``rows``: a boolean row mask or None for all). The C x C
    covariance is summed in float32 from float64-centred chunks and decomposed in float64 where
    ``x`` is (exact top components, no randomised solver); only the n components come back."""
    xs = x if rows is None else x[rows]
    n = xs.shape[0]
    mean = xs.sum(dim=0, dtype=torch.float64) / max(n, 1)
    cov = torch.zeros((x.shape[1], x.shape[1]), dtype=torch.float64, device=x.device)
    m32 = mean.to(torch.float32)
    for s in range(0, n, _CHUNK):
        xc = xs[s:s + _CHUNK] - m32
        cov += (xc.T @ xc).to(torch.float64)
    cov /= max(n - 1, 1)
    if cov.device.type == "cpu":  # numpy's LAPACK: faster than torch's there (11 vs 16 ms at C = 384)
        evals, evecs = (torch.from_numpy(a) for a in np.linalg.eigh(cov.numpy()))
    else:  # on the device: no host round trip of the C x C matrix
        evals, evecs = torch.linalg.eigh(cov)
    top = torch.arange(len(evals) - 1, -1, -1, device=cov.device)[:n_components]  # eigh: ascending
    return (mean.cpu().numpy(), evecs[:, top].T.cpu().numpy().copy(), np.clip(evals[top].cpu().numpy(), 0.0, None),
            float(torch.trace(cov)))


def _project(x: torch.Tensor, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Scores (rows, n) of every row of ``x`` on ``components``, as float32 numpy."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device)
    c = torch.as_tensor(components.T, dtype=torch.float32, device=x.device)
    return torch.cat([(x[s:s + _CHUNK] - m) @ c for s in range(0, x.shape[0], _CHUNK)]).cpu().numpy()


def _orient_by_skew(components: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> None:
    """In place: each component (and its score column) signed so that its scores over ``rows``
    (the fitted patches) skew positive."""
    for j in range(components.shape[0]):
        s = scores[rows, j]
        skew = float(np.mean((s - s.mean()) ** 3))
        tie = abs(skew) <= 1e-12 * max(float(np.mean(s**2)) ** 1.5, 1e-30)
        flip = components[j, np.argmax(np.abs(components[j]))] < 0 if tie else skew < 0
        if flip:
            components[j] *= -1
            scores[:, j] *= -1


def _to_rgb(scores: np.ndarray, fitted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores (..., 3) to uint8 with per-component percentile clipping over ``fitted`` rows."""
    lo, hi = np.percentile(fitted, CLIP_PERCENTILES, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    unit = np.clip((scores - lo) / span, 0.0, 1.0)
    return np.round(unit * 255).astype(np.uint8), np.stack([lo, hi])


def joint_pca_rgb(features: Any, *, mode: str = "all", n_components: int = N_COMPONENTS,
                  device: Any = None) -> dict[str, Any]:
    """Joint PCA of patch features (N, h, w, C) and its RGB maps (module docstring: the recipe).
    The covariance and projections run in torch on ``device`` (None: where ``features`` is).

    Returns
    -------
    dict with ``rgb`` (N, h, w, 3) uint8, ``scores`` (N, h, w, n) float32 (background rows 0 in
    foreground mode), ``components`` (n, C), ``mean`` (C,), ``explained_variance_ratio`` (n,) of
    the fitted patches, ``scale`` (2, n) clip bounds, ``foreground`` (N, h, w) bool or None.
    """
    if mode not in ("all", "foreground"):
        raise ValueError(f"mode must be 'all' or 'foreground', got {mode!r}")
    feats = as_tensor(_as_features(features, device=device))
    n, h, w, c = feats.shape
    if n_components < 1 or n_components > c:
        raise ValueError(f"n_components must lie in 1..{c}, got {n_components}")
    x = feats.reshape(-1, c)
    foreground = None
    fit_rows = np.ones(x.shape[0], dtype=bool)
    if mode == "foreground":
        mean1, comp1, _, _ = _fit(x, None, 1)
        first = _project(x, mean1, comp1)[:, 0]
        ring = np.broadcast_to(border_mask(h, w), (n, h, w)).reshape(-1)
        if first[ring].mean() > first[~ring].mean():  # background (the border's side) negative
            first = -first
        fit_rows = first > 0
        foreground = fit_rows.reshape(n, h, w)
        if fit_rows.sum() <= n_components:  # nothing to fit a second PCA on: all background
            return {"rgb": np.zeros((n, h, w, 3), np.uint8), "scores": np.zeros((n, h, w, n_components), np.float32),
                    "components": np.zeros((n_components, c)), "mean": mean1, "scale": np.zeros((2, n_components)),
                    "explained_variance_ratio": np.zeros(n_components), "foreground": foreground}
    rows = None if mode == "all" else torch.from_numpy(fit_rows).to(x.device)
    mean, comps, evals, total = _fit(x, rows, n_components)
    scores = _project(x, mean, comps)
    _orient_by_skew(comps, scores, fit_rows)
    rgb, scale = _to_rgb(scores, scores[fit_rows])
    rgb = _pad_rgb(rgb)
    if mode == "foreground":
        rgb[~fit_rows] = 0
        scores[~fit_rows] = 0
    return {"rgb": rgb.reshape(n, h, w, 3), "scores": scores.reshape(n, h, w, -1), "components": comps, "mean": mean,
            "explained_variance_ratio": evals / total if total > 0 else np.zeros_like(evals), "scale": scale,
            "foreground": foreground}


def _pad_rgb(rgb: np.ndarray) -> np.ndarray:
    """Fewer than three components: the missing colour channels are 0."""
    if rgb.shape[-1] >= 3:
        return rgb[..., :3].copy()
    return np.concatenate([rgb, np.zeros((*rgb.shape[:-1], 3 - rgb.shape[-1]), np.uint8)], axis=-1)


def align_components(reference_scores: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order and signs that make ``scores`` (…, n) follow ``reference_scores`` (…, n) over the same
    patches: Hungarian matching on |correlation|, then a flip where the matched correlation is
    negative. Returns ``(order, signs)`` for :func:`apply_alignment`.

    >>> import numpy as np
    >>> ref = np.random.default_rng(0).normal(size=(50, 3))
    >>> order, signs = align_components(ref, -ref[:, [2, 0, 1]])
    >>> order.tolist(), signs.tolist()
    ([1, 2, 0], [-1.0, -1.0, -1.0])
    """
    a = reference_scores.reshape(-1, reference_scores.shape[-1]).astype(np.float64)
    b = scores.reshape(-1, scores.shape[-1]).astype(np.float64)
    a = a - a.mean(0)
    b = b - b.mean(0)
    denom = np.outer(np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0))
    corr = np.divide(a.T @ b, denom, out=np.zeros((a.shape[1], b.shape[1])), where=denom > 0)
    rows, cols = linear_sum_assignment(-np.abs(corr))
    order = cols[np.argsort(rows)]
    signs = np.where(corr[np.arange(len(order)), order] < 0, -1.0, 1.0)
    return order, signs


def apply_alignment(result: dict[str, Any], order: np.ndarray, signs: np.ndarray) -> dict[str, Any]:
    """``result`` of :func:`joint_pca_rgb` with its components reordered and flipped, and its RGB
    maps recomputed with the same percentile scale (a flip mirrors the clip bounds)."""
    scores = result["scores"][..., order] * signs.astype(np.float32)
    lo, hi = result["scale"][0][order], result["scale"][1][order]
    lo, hi = np.where(signs < 0, -hi, lo), np.where(signs < 0, -lo, hi)
    span = np.where(hi > lo, hi - lo, 1.0)
    rgb = _pad_rgb(np.round(np.clip((scores - lo) / span, 0.0, 1.0) * 255).astype(np.uint8))
    if result["foreground"] is not None:
        rgb[~result["foreground"]] = 0
    return {**result, "scores": scores, "rgb": rgb, "components": result["components"][order] * signs[:, None],
            "explained_variance_ratio": result["explained_variance_ratio"][order], "scale": np.stack([lo, hi])}


def pca_variance_share(features: Any, *, n_components: int = N_COMPONENTS, weights: np.ndarray | None = None,
                       device: Any = None) -> dict[str, Any]:
    """Share of the patch features' variance along the first ``n_components`` joint principal
    components (all patches of all images; 3/C for isotropic features, 1 for features on a plane).

    With ``weights`` (B, N) (random halves of the images), ``replicates`` (B,) recompute the share
    from per-image sums with the components held fixed (the fit is not repeated per half).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> plane = rng.normal(size=(8, 5, 5, 2)) @ rng.normal(size=(2, 32))
    >>> round(pca_variance_share(plane)["share"], 6)
    1.0
    """
    feats = as_tensor(_as_features(features, device=device))
    n, h, w, c = feats.shape
    x = feats.reshape(-1, c)
    mean, comps, evals, total = _fit(x, None, min(n_components, c))
    scores = _project(x, mean, comps).reshape(n, h * w, -1).astype(np.float64)
    captured = (scores**2).sum(axis=(1, 2))  # per image
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device)
    per_image_total = torch.stack([((feats[i] - m) ** 2).sum(dtype=torch.float64) for i in range(n)]).cpu().numpy()
    share = float(captured.sum() / per_image_total.sum()) if per_image_total.sum() > 0 else float("nan")
    out: dict[str, Any] = {"share": share, "explained_variance_ratio": evals / total if total > 0 else evals * 0}
    if weights is not None:
        wts = np.asarray(weights, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["replicates"] = {"share": (wts @ captured) / (wts @ per_image_total)}
    return out
