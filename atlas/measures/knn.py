"""k-NN patch probe and high-variance channel removal (Vanyan et al. 2024).

Definitions (quoted on the Methods page):

* **Patch labels** (:func:`patch_labels`): the mask (at the model's input resolution) is cut
  into the ``h x w`` patch grid; pixel ``(y, x)`` belongs to cell
  ``(floor(y * h / H), floor(x * w / W))``. A cell takes the majority class of its non-ignored
  pixels (ties -> lowest class id); a cell whose non-ignored fraction is below ``min_valid`` is
  ``-1`` and left out of the probe.
* **k-NN probe** (:func:`knn_probe`): features are L2-normalised; each query patch takes the
  ``k`` support patches of highest cosine similarity and the class with most votes among them
  (ties -> larger summed similarity, then lowest class id). Neighbours tied at the ``k``-th
  similarity (within :data:`TIE_TOL`) share the votes left after the closer ones equally, however
  many there are, so the result does not depend on the order of the support set (position-only
  features are identical across images: dozens of support patches tie). Score: mIoU over query patches
  = mean over classes with non-empty union of ``TP / (TP + FP + FN)``.
* **Channel removal** (:func:`channel_removal_curve`): channels are ranked by their variance on
  the support patches; the top ``m`` are dropped, then the remaining channels are transformed by
  a *control* fitted on the support set — ``none`` (raw), ``zscore`` (each channel to zero mean
  and unit variance) or ``pca_whiten`` (PCA rotation and unit variance per component) — and the
  k-NN probe is run. ``zscore`` and ``pca_whiten`` are invariant to per-channel rescaling (and
  ``pca_whiten`` to any invertible linear map), so they show how much of the effect of removal is
  a matter of scale rather than of which channels are kept.

The probe (normalisation, similarities, top-k, votes) runs in torch on ``device``
(:mod:`.tensors`; None: where the features are, numpy on the CPU), and so do the channel removal's
variances and its controls' fits (float64, on the support set); labels and confusion counts stay
on the host.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 3, 200); X = np.eye(3)[y] + 0.05 * rng.normal(size=(200, 3))
>>> knn_probe(X[:100], y[:100], X[100:], y[100:], ks=(1,), n_classes=3)[1]
1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..inputs.datasets import IGNORE_INDEX
from .tensors import as_tensor, is_tensor, resolve_device, to_numpy

DEFAULT_KS = (1, 5, 10, 20)
DEFAULT_MS = (0, 1, 2, 5, 10, 20, 50, 100, 200)
CONTROLS = ("none", "zscore", "pca_whiten")
#: Cosine similarities this close to the k-th one count as tied with it (float32 rounding of equal
#: features computed in different matmul tiles is far below it).
TIE_TOL = 1e-5


def patch_labels(
    mask: np.ndarray,
    grid: tuple[int, int],
    ignore_index: int = IGNORE_INDEX,
    min_valid: float = 0.5,
) -> np.ndarray:
    """Majority class of each patch cell of ``mask`` on a ``grid = (h, w)``; ``-1`` = skipped.

    >>> patch_labels(np.array([[0, 0, 1, 1], [0, 255, 1, 255]]), (1, 2)).tolist()
    [[0, 1]]
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    h, w = (int(g) for g in grid)
    H, W = mask.shape
    if not (1 <= h <= H and 1 <= w <= W):
        raise ValueError(f"grid {grid} must be positive and no finer than the mask {mask.shape}")
    if not 0.0 <= min_valid <= 1.0:
        raise ValueError(f"min_valid must be in [0, 1], got {min_valid}")
    valid = mask != ignore_index
    labels = mask[valid].astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError("mask ids must be >= 0 (or the ignore index)")
    n_cls = int(labels.max()) + 1 if labels.size else 1
    # not resample_labels: every pixel votes for its cell (majority), no nearest-neighbour sampling
    cell = ((np.arange(H) * h // H)[:, None] * w + (np.arange(W) * w // W)[None, :])
    counts = np.bincount(cell[valid] * n_cls + labels, minlength=h * w * n_cls).reshape(h * w, n_cls)
    cell_size = np.bincount(cell.ravel(), minlength=h * w)
    out = counts.argmax(axis=1)  # argmax -> lowest id on ties
    n_valid = counts.sum(axis=1)
    out[(n_valid == 0) | (n_valid < min_valid * cell_size)] = -1
    return out.reshape(h, w)


def _flat(feats, labels: np.ndarray, what: str):
    """Labelled rows of (..., C) features (a tensor stays on its device) and their labels."""
    feats = feats if is_tensor(feats) else np.asarray(feats, dtype=np.float32)
    labels = to_numpy(labels)
    if feats.ndim < 2 or tuple(feats.shape[:-1]) != labels.shape:
        raise ValueError(f"{what} features {tuple(feats.shape)} must be labels {labels.shape} + (C,)")
    feats = feats.reshape(-1, feats.shape[-1])
    labels = labels.reshape(-1).astype(np.int64)
    keep = labels >= 0
    return feats[as_tensor(keep, feats.device) if is_tensor(feats) else keep], labels[keep]


def _l2n(x: torch.Tensor) -> torch.Tensor:
    return x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp(min=1e-12)


def knn_predict(
    support_feats: np.ndarray,
    support_labels: np.ndarray,
    query_feats: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
    n_classes: int | None = None,
    chunk: int = 1024,
    device=None,
) -> dict[int, np.ndarray]:
    """Cosine k-NN class votes for each query row; ``{k: (n_query,) predicted class}``.

    ``support_feats`` (n_s, C) and ``query_feats`` (n_q, C) are plain 2-D arrays or tensors here
    (labels already filtered); see :func:`knn_probe` for patch-grid inputs. Queries are processed
    in chunks of ``chunk`` rows (memory ~ 12 bytes x chunk x n_s), on ``device`` (None: where the
    features are; numpy: the CPU).
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive ints, got {ks}")
    if len(support_feats) < ks[-1]:
        raise ValueError(f"need at least max(ks)={ks[-1]} support patches, got {len(support_feats)}")
    support_labels = to_numpy(support_labels).astype(np.int64, copy=False)
    if n_classes is None:
        n_classes = int(support_labels.max()) + 1
    dev = resolve_device(device, support_feats, query_feats)
    S = _l2n(as_tensor(support_feats, dev, torch.float32))
    Q = _l2n(as_tensor(query_feats, dev, torch.float32))
    ys = as_tensor(support_labels, dev)
    kmax = ks[-1]
    kq = min(kmax + 1, len(S))  # one more than k: does a tie cross the k-th neighbour?
    out = {k: np.empty(len(Q), dtype=np.int64) for k in ks}
    St = S.T  # torch's matmul uses its own threads (the build limits numpy's BLAS to one)
    onehot_s = None
    for start in range(0, len(Q), chunk):
        sim = Q[start:start + chunk] @ St
        # neighbours by decreasing similarity (torch's top-k: ~7x numpy's argpartition of these
        # rows, measured on 1024 x 9800 similarities)
        top, idx = torch.topk(sim, kq, dim=1, largest=True, sorted=True)
        # (query, neighbour, class) one-hot: plain sums over neighbours, no atomics (deterministic
        # on CUDA too)
        onehot = torch.nn.functional.one_hot(ys[idx], n_classes).double()
        top64 = top.double()
        counted = None  # (rows, their tie level, tied counts) of the last whole-support count
        for k in ks:
            t = top64[:, k - 1]  # the k-th similarity: the tie level
            above = (top64[:, :k] > t[:, None] + TIE_TOL).double()  # full votes
            tied_in = onehot[:, :k] * (1.0 - above)[:, :, None]
            votes = (onehot[:, :k] * above[:, :, None]).sum(dim=1)
            simsum = (onehot[:, :k] * (above * top64[:, :k])[:, :, None]).sum(dim=1)
            tied = tied_in.sum(dim=1)  # per-class count of the neighbours tied at the k-th similarity
            if kq > k:
                cross = torch.nonzero(top64[:, k] >= t - TIE_TOL).ravel()
                if len(cross):  # the tie goes past the k-th neighbour: count it over the whole support
                    level = t[cross]
                    # a larger k inside the same tie (position features: every support image ties)
                    # has the same rows at the same level: the same counts, not another scan
                    if counted is None or not (torch.equal(counted[0], cross) and torch.equal(counted[1], level)):
                        if onehot_s is None:
                            onehot_s = torch.nn.functional.one_hot(ys, n_classes).to(sim.dtype)
                        near = ((sim[cross].double() - level[:, None]).abs() <= TIE_TOL).to(sim.dtype)
                        counted = (cross, level, (near @ onehot_s).double())
                    tied[cross] = counted[2]
            share = (k - above.sum(dim=1)) / tied.sum(dim=1).clamp(min=1.0)  # votes per tied neighbour
            votes = votes + tied * share[:, None]
            simsum = simsum + tied * (share * t)[:, None]
            # votes first (exact comparison up to rounding), then summed similarity, then lowest id
            best = votes >= votes.max(dim=1, keepdim=True).values - 1e-9
            score = torch.where(best, simsum, torch.full_like(simsum, -torch.inf))
            out[k][start:start + chunk] = to_numpy(torch.argmax(score, dim=1))  # first maximum on ties
    return out


def miou_from_confusion(conf: np.ndarray) -> np.ndarray | float:
    """Mean IoU over classes with non-empty union of ``conf[..., true, pred]`` (supervised labels,
    no matching); vectorised over leading axes (NaN where no class has a union)."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    union = conf.sum(-1) + conf.sum(-2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.where(union > 0, union, 1.0), 0.0)
    n = (union > 0).sum(-1)
    out = np.where(n > 0, iou.sum(-1) / np.maximum(n, 1), np.nan)
    return float(out) if out.ndim == 0 else out


def miou_from_labels(pred: np.ndarray, true: np.ndarray, n_classes: int) -> float:
    """Mean IoU over classes with non-empty union (supervised labels, no matching)."""
    conf = np.bincount(true * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    return miou_from_confusion(conf)


def knn_probe(
    support_feats: np.ndarray,
    support_labels: np.ndarray,
    query_feats: np.ndarray,
    query_labels: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
    n_classes: int | None = None,
    weights: np.ndarray | None = None,
    device=None,
) -> dict[int, float] | tuple[dict[int, float], dict[int, np.ndarray]]:
    """k-NN patch probe mIoU for each ``k``.

    Parameters
    ----------
    support_feats, query_feats : (..., C) float arrays or tensors
        E.g. (N, h, w, C) patch features.
    support_labels, query_labels : (...) int arrays
        Patch labels from :func:`patch_labels`; ``-1`` entries are left out.
    n_classes : int, optional
        Defaults to 1 + the largest label seen.
    weights : (B, n_query_images) array, optional
        Weights of the query images (first axis of the query arrays) in resampling
        replicates; the predictions stay those of the full support set.
    device : torch device or str, optional
        Where the neighbours are searched (None: where the features are; numpy: the CPU).

    Returns
    -------
    dict
        ``{k: mIoU over the labelled query patches}``; with ``weights`` also the replicates,
        ``{k: (B,) array}``.
    """
    S, ys = _flat(support_feats, support_labels, "support")
    Q, yq = _flat(query_feats, query_labels, "query")
    if S.shape[1] != Q.shape[1]:
        raise ValueError(f"support has {S.shape[1]} channels but query has {Q.shape[1]}")
    if len(Q) == 0:
        raise ValueError("no labelled query patches (all -1)")
    if n_classes is None:
        n_classes = int(max(ys.max(), yq.max())) + 1
    if max(ys.max(), yq.max()) >= n_classes:
        raise ValueError(f"labels must be < n_classes={n_classes}")
    preds = knn_predict(S, ys, Q, ks, n_classes, device=device)
    scores = {k: miou_from_labels(p, yq, n_classes) for k, p in preds.items()}
    if weights is None:
        return scores
    return scores, {k: replicate_miou(p, yq, query_labels, weights, n_classes) for k, p in preds.items()}


def replicate_miou(pred: np.ndarray, true: np.ndarray, query_labels: np.ndarray, weights: np.ndarray,
                   n_classes: int) -> np.ndarray:
    """mIoU of each resampling replicate: the per-image confusion matrices of the labelled query
    patches (``pred``, ``true``: in the order :func:`_flat` keeps them from ``query_labels``, whose
    first axis is the image), weighted by ``weights`` (B, n_query_images). With all weights 1 this
    is :func:`miou_from_labels` of the same predictions.

    >>> labels = np.array([[0, 1], [1, -1]])
    >>> replicate_miou(np.array([0, 1, 0]), np.array([0, 1, 1]), labels, np.array([[1, 0], [1, 1]]), 2).tolist()
    [1.0, 0.5]
    """
    labels = to_numpy(query_labels)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != len(labels):
        raise ValueError(f"weights {weights.shape} must be (replicates, {len(labels)} query images)")
    image = np.broadcast_to(np.arange(len(labels)).reshape(-1, *([1] * (labels.ndim - 1))), labels.shape)
    image = image.reshape(-1)[labels.reshape(-1) >= 0]  # the image of every labelled query patch
    per_image = np.bincount((image * n_classes + true) * n_classes + pred, minlength=len(labels) * n_classes ** 2)
    per_image = per_image.reshape(len(labels), n_classes, n_classes).astype(np.float64)
    return miou_from_confusion(np.tensordot(weights, per_image, axes=(1, 0)))


def variance_spectrum(features, labels: np.ndarray | None = None) -> np.ndarray:
    """Per-channel variances of ``(..., C)`` features (with ``labels``: of the labelled rows only,
    as :func:`knn_probe` keeps them), sorted in decreasing order. In float64, where the features
    are (a tensor on a GPU stays there; the C values come back).

    >>> variance_spectrum(np.array([[0.0, 1.0], [2.0, 1.0]])).tolist()
    [1.0, 0.0]
    """
    x = as_tensor(_flat(features, labels, "features")[0] if labels is not None else features)
    x = x.reshape(-1, x.shape[-1])
    _, var, _ = _moments(x, covariance=False)
    return np.sort(to_numpy(var))[::-1]


def _moments(x: torch.Tensor, covariance: bool = True, chunk: int = 8192
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Mean, variance (ddof 0) and covariance (None without ``covariance``) of the rows of ``x``
    (n, C), in float64 on ``x``'s device; centred before the products, ``chunk`` rows of float64 at a
    time (no float64 copy of the whole set)."""
    n, c = x.shape
    mean = x.sum(dim=0, dtype=torch.float64) / max(n, 1)
    cov = torch.zeros((c, c) if covariance else (c,), dtype=torch.float64, device=x.device)
    for start in range(0, n, chunk):
        centred = x[start:start + chunk].double() - mean
        cov += centred.T @ centred if covariance else (centred * centred).sum(dim=0)
    cov /= max(n, 1)
    return mean, (torch.diagonal(cov) if covariance else cov).clone(), (cov if covariance else None)


def _control(S: torch.Tensor, Q: torch.Tensor, keep: torch.Tensor, control: str, mean: torch.Tensor,
             var: torch.Tensor, cov: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Support and query rows on the ``keep`` channels under ``control``, fitted on the support set
    (its float64 ``mean``, ``var`` and ``cov``, :func:`_moments`): float32, on their device."""
    if control == "none":
        return S[:, keep], Q[:, keep]
    mu = mean[keep]
    if control == "zscore":
        sd = var[keep].sqrt()
        sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
        scale = lambda X: ((X[:, keep].double() - mu) / sd).float()  # noqa: E731
        return scale(S), scale(Q)
    # pca_whiten: the eigenvectors of the support covariance, numerically empty directions dropped
    # (there may be fewer rows than channels), each component to unit variance. The cosine k-NN on
    # the result does not depend on the eigenvectors' signs or on a rotation within a tied eigenvalue
    lam, vec = torch.linalg.eigh(cov[keep][:, keep])
    lam, vec = lam.flip(0), vec.flip(1)
    kept = lam > 1e-9 * lam[0]
    whiten = vec[:, kept] / lam[kept].sqrt()

    def project(X: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        out = torch.empty((len(X), whiten.shape[1]), dtype=torch.float32, device=X.device)
        for start in range(0, len(X), chunk):
            out[start:start + chunk] = ((X[start:start + chunk][:, keep].double() - mu) @ whiten).float()
        return out
    return project(S), project(Q)


def channel_removal_curve(
    support_feats: np.ndarray,
    support_labels: np.ndarray,
    query_feats: np.ndarray,
    query_labels: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
    ms: Sequence[int] = DEFAULT_MS,
    controls: Sequence[str] = CONTROLS,
    n_classes: int | None = None,
    device=None,
    weights: np.ndarray | None = None,
) -> dict[str, dict[int, dict[int, float]]] | tuple[dict, dict]:
    """k-NN mIoU after dropping the top-``m`` variance channels, under each control.

    Variances are computed on the labelled support patches only. ``m`` values that would leave
    no channel are skipped. The variances and the controls' fits (mean, variance, covariance and
    its eigendecomposition) are float64, and they and every k-NN probe run on ``device`` (None:
    where the features are; numpy: the CPU): nothing but labels and predictions goes to the host.
    ``weights`` (B, n_query_images): resampling replicates of the query images, as in
    :func:`knn_probe` (the support set, the variance ranking and the controls' fits stay those of
    the full support set).

    Returns
    -------
    dict
        ``{control: {m: {k: mIoU}}}``; with ``weights`` also the replicates,
        ``{control: {m: {k: (B,) array}}}``.
    """
    bad = [c for c in controls if c not in CONTROLS]
    if bad:
        raise ValueError(f"unknown controls {bad}; choose from {CONTROLS}")
    if any(int(m) < 0 for m in ms):
        raise ValueError(f"ms must be >= 0, got {list(ms)}")
    dev = resolve_device(device, support_feats, query_feats)
    S, ys = _flat(support_feats, support_labels, "support")
    Q, yq = _flat(query_feats, query_labels, "query")
    S, Q = as_tensor(S, dev, torch.float32), as_tensor(Q, dev, torch.float32)
    if n_classes is None:
        n_classes = int(max(ys.max(), yq.max())) + 1
    mean, var, cov = _moments(S, covariance="pca_whiten" in controls)
    order = torch.sort(-var, stable=True).indices  # the highest-variance channel first
    out: dict[str, dict[int, dict[int, float]]] = {}
    reps: dict[str, dict[int, dict[int, np.ndarray]]] = {}
    for control in controls:
        out[control], reps[control] = {}, {}
        for m in sorted({int(m) for m in ms}):
            if m >= S.shape[1]:
                continue
            keep = torch.sort(order[m:]).values
            s, q = _control(S, Q, keep, control, mean, var, cov)
            preds = knn_predict(s, ys, q, ks, n_classes, device=dev)
            out[control][m] = {k: miou_from_labels(p, yq, n_classes) for k, p in preds.items()}
            if weights is not None:
                reps[control][m] = {k: replicate_miou(p, yq, query_labels, weights, n_classes)
                                    for k, p in preds.items()}
    return out if weights is None else (out, reps)
