"""Unsupervised segmentation scores (STEGO protocol): one Hungarian matching per dataset.

Definitions (quoted on the Methods page):

* ``confusion[i, j]`` = number of non-ignored pixels predicted as cluster ``i`` whose
  ground-truth class is ``j``, summed over **all images** of the dataset
  (shape ``(n_pred, n_classes)``). Predicted label maps are upsampled to the mask resolution with
  nearest-neighbour sampling first. (Computed without making those pixels: each mask's class counts
  under each patch cell, :class:`MaskCounts`, summed by the cells' predicted ids -- the same counts.)
* **Hungarian** (:func:`matched_scores`): one one-to-one assignment cluster -> class that
  maximises the number of matched pixels, computed once on the dataset-level confusion matrix
  (never per image; ``scipy.optimize.linear_sum_assignment``). With ``n_pred > n_classes`` the
  unmatched clusters count as wrong everywhere; with ``n_pred < n_classes`` some classes receive
  no cluster (IoU 0).
* **Majority / over-clustering** (:func:`majority_scores`): each cluster is mapped to the class
  it overlaps most (ties -> lowest class id); several clusters may share a class.
* Given a cluster -> class assignment: ``TP_j`` = pixels of class ``j`` predicted by a cluster
  assigned to ``j``; ``IoU_j = TP_j / (TP_j + FP_j + FN_j)``, where FP and FN count all
  non-ignored pixels, unmatched clusters included. **mIoU** = mean of ``IoU_j`` over classes with
  a non-empty union (classes absent from both prediction and ground truth are ``nan`` and left
  out). **Pixel accuracy** = ``sum_j TP_j / (all non-ignored pixels)``.
* **Coverage** = fraction of non-ignored pixels that received a prediction. A method that leaves
  pixels unassigned passes them as one extra row ``unassigned``; that row is never matched to a
  class, so those pixels count as wrong and coverage < 1.

Example
-------
>>> import numpy as np
>>> gt = np.array([[0, 0, 1, 1]]); pred = np.array([[1, 1, 0, 0]])
>>> conf = accumulate_confusion([pred], [gt], n_pred=2, n_classes=2)
>>> matched_scores(conf)["miou"]
1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..inputs.datasets import IGNORE_INDEX, mask_for_size


def upsample_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Upsample a patch label map ``(h, w)`` to ``size = (H, W)`` with nearest-neighbour sampling.

    Pixel ``(y, x)`` takes patch ``(floor((y + 0.5) * h / H), floor((x + 0.5) * w / W))``
    (PIL's ``NEAREST`` rule; :func:`atlas.clustering.align.resample_labels` through
    :func:`~atlas.inputs.datasets.mask_for_size`), so each patch covers its own block when ``H, W`` are multiples.

    >>> upsample_labels(np.array([[0, 1]]), (2, 4)).tolist()
    [[0, 0, 1, 1], [0, 0, 1, 1]]
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer array, got dtype {labels.dtype}")
    return mask_for_size(labels, size)


def accumulate_confusion(
    pred_labels_list: Sequence[np.ndarray],
    gt_list: Sequence[np.ndarray],
    n_pred: int,
    n_classes: int,
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """Dataset-level confusion matrix ``(n_pred, n_classes)`` of int64 pixel counts.

    Parameters
    ----------
    pred_labels_list : sequence of (H, W) int arrays
        Predicted cluster ids in ``0 .. n_pred - 1``, already at mask resolution
        (see :func:`upsample_labels`).
    gt_list : sequence of (H, W) int arrays
        Ground-truth class ids in ``0 .. n_classes - 1``; ``ignore_index`` pixels are not counted.
    """
    if n_pred < 1 or n_classes < 1:
        raise ValueError(f"n_pred and n_classes must be >= 1, got {n_pred} and {n_classes}")
    if len(pred_labels_list) != len(gt_list):
        raise ValueError(f"got {len(pred_labels_list)} predictions but {len(gt_list)} masks")
    conf = np.zeros(n_pred * n_classes, dtype=np.int64)
    for i, (pred, gt) in enumerate(zip(pred_labels_list, gt_list)):
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"image {i}: prediction {pred.shape} != mask {gt.shape}; upsample first")
        keep = gt != ignore_index
        p, g = pred[keep].astype(np.int64), gt[keep].astype(np.int64)
        if p.size and (p.min() < 0 or p.max() >= n_pred):
            raise ValueError(f"image {i}: predicted ids must be in 0..{n_pred - 1}")
        if g.size and (g.min() < 0 or g.max() >= n_classes):
            raise ValueError(f"image {i}: mask ids must be in 0..{n_classes - 1} or {ignore_index}")
        conf += np.bincount(p * n_classes + g, minlength=n_pred * n_classes)
    return conf.reshape(n_pred, n_classes)


def scores_from_assignment(confusion: np.ndarray, assignment: np.ndarray) -> dict:
    """mIoU / pixel accuracy / per-class IoU for a given ``assignment[cluster] -> class or -1``."""
    confusion = np.asarray(confusion, dtype=np.int64)
    n_pred, n_classes = confusion.shape
    assignment = np.asarray(assignment, dtype=np.int64)
    if assignment.shape != (n_pred,):
        raise ValueError(f"assignment must have one entry per cluster ({n_pred}), got {assignment.shape}")
    # mapped[j, c]: pixels of class c predicted as class j (row n_classes: unassigned clusters)
    mapped = np.zeros((n_classes + 1, n_classes), dtype=np.int64)
    np.add.at(mapped, np.where(assignment < 0, n_classes, assignment), confusion)
    tp = np.diag(mapped[:n_classes]).astype(np.float64)
    gt_total = confusion.sum(axis=0)
    pred_total = mapped[:n_classes].sum(axis=1)
    union = gt_total + pred_total - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    total = confusion.sum()
    return {
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "per_class_iou": iou,
        "assignment": assignment,
        "n_pixels": int(total),
    }


def _split_unassigned(confusion: np.ndarray, unassigned: int | None):
    confusion = np.asarray(confusion)
    if confusion.ndim != 2:
        raise ValueError(f"confusion must be 2-D (n_pred, n_classes), got shape {confusion.shape}")
    if unassigned is None:
        return np.ones(confusion.shape[0], bool), 1.0
    if not 0 <= unassigned < confusion.shape[0]:
        raise ValueError(f"unassigned must be a row index of confusion, got {unassigned}")
    total = confusion.sum()
    scored = np.ones(confusion.shape[0], bool)
    scored[unassigned] = False
    coverage = float(1.0 - confusion[unassigned].sum() / total) if total else float("nan")
    return scored, coverage


def matched_scores(confusion: np.ndarray, unassigned: int | None = None) -> dict:
    """Scores after ONE Hungarian matching of clusters to classes on the dataset confusion matrix.

    Parameters
    ----------
    confusion : (n_pred, n_classes) array
        From :func:`accumulate_confusion`, summed over the whole dataset.
    unassigned : int, optional
        Row holding pixels that received no prediction; never matched (counts as wrong).

    Returns
    -------
    dict
        ``miou``, ``pixel_accuracy``, ``per_class_iou`` ((n_classes,), nan where the class is
        absent from both), ``assignment`` ((n_pred,), class per cluster, -1 = unmatched),
        ``coverage`` (1.0 unless ``unassigned`` is given) and ``n_pixels``.
    """
    scored, coverage = _split_unassigned(confusion, unassigned)
    confusion = np.asarray(confusion, dtype=np.int64)
    rows = np.flatnonzero(scored)
    r, c = linear_sum_assignment(confusion[rows], maximize=True)
    assignment = np.full(confusion.shape[0], -1, dtype=np.int64)
    assignment[rows[r]] = c
    out = scores_from_assignment(confusion, assignment)
    out["coverage"] = coverage
    return out


def majority_scores(confusion: np.ndarray, unassigned: int | None = None) -> dict:
    """Over-clustering scores: every cluster mapped to its majority class (ties -> lowest id).

    Meant for ``n_pred > n_classes``; reported separately from :func:`matched_scores`. Clusters
    with no labelled pixel stay unassigned (-1). Same keys as :func:`matched_scores`.
    """
    scored, coverage = _split_unassigned(confusion, unassigned)
    confusion = np.asarray(confusion, dtype=np.int64)
    assignment = np.where(confusion.sum(axis=1) > 0, confusion.argmax(axis=1), -1)
    assignment[~scored] = -1
    out = scores_from_assignment(confusion, assignment)
    out["coverage"] = coverage
    return out


RULES = {"hungarian": matched_scores, "majority": majority_scores}


@dataclass(frozen=True)
class MaskCounts:
    """A mask seen from a patch grid: what :func:`upsample_labels` gives each cell of an (h, w)
    label map. ``classes[c, j]``: the non-ignored pixels of class ``j`` that cell ``c`` (row-major)
    covers; ``covers[c]``: whether cell ``c`` covers any pixel at all (a grid finer than its mask
    skips cells). Made once per mask (:func:`mask_counts`), it scores any number of label maps of
    that grid by summing cells instead of pixels."""

    grid: tuple[int, int]
    classes: np.ndarray  # (h * w, n_classes) int64
    covers: np.ndarray  # (h * w,) bool


def mask_counts(gt: np.ndarray, grid: tuple[int, int], n_classes: int,
                ignore_index: int = IGNORE_INDEX) -> MaskCounts:
    """:class:`MaskCounts` of mask ``gt`` (H, W) for label maps on ``grid`` = (h, w).

    >>> mask_counts(np.array([[0, 0, 1, 255]]), (1, 2), n_classes=2).classes.tolist()
    [[2, 0], [0, 1]]
    """
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {gt.shape}")
    h, w = (int(v) for v in grid)
    cell = upsample_labels(np.arange(h * w, dtype=np.int64).reshape(h, w), gt.shape)  # each pixel's cell
    keep = gt != ignore_index
    g = gt[keep].astype(np.int64)
    if g.size and (g.min() < 0 or g.max() >= n_classes):
        raise ValueError(f"mask ids must be in 0..{n_classes - 1} or {ignore_index}")
    classes = np.bincount(cell[keep] * n_classes + g, minlength=h * w * n_classes).reshape(h * w, n_classes)
    return MaskCounts((h, w), classes, np.bincount(cell.ravel(), minlength=h * w) > 0)


def evaluate_label_maps(
    pred_labels_list: Sequence[np.ndarray],
    gt_list: Sequence[np.ndarray],
    n_pred: int,
    n_classes: int,
    ignore_index: int = IGNORE_INDEX,
    *,
    counts: Sequence[MaskCounts] | None = None,
) -> dict:
    """Upsample patch label maps to their masks, accumulate, and score both ways.

    Predicted ids ``< 0`` mean "no prediction" (scored as wrong, reported through coverage).
    ``counts``: the masks' :class:`MaskCounts` at the label maps' grid, when many label maps are
    scored against the same masks (made here otherwise); the confusions are those of the upsampled
    maps' pixels, to the count.

    Returns
    -------
    dict
        ``{"hungarian": matched_scores(...), "majority": majority_scores(...),
        "confusion": (n_pred[+1], n_classes) array, "per_image": (N, n_pred[+1], n_classes)
        array (the confusion of every image; they sum to "confusion"), "unassigned": row or None}``.
    """
    if n_pred < 1 or n_classes < 1:
        raise ValueError(f"n_pred and n_classes must be >= 1, got {n_pred} and {n_classes}")
    preds = [np.asarray(p) for p in pred_labels_list]
    if len(preds) != len(gt_list):
        raise ValueError(f"got {len(preds)} predictions but {len(gt_list)} masks")
    for p in preds:
        if not np.issubdtype(p.dtype, np.integer) or p.ndim != 2:
            raise ValueError(f"label maps must be 2-D integer arrays, got {p.dtype} of shape {p.shape}")
    if counts is None:
        counts = [mask_counts(g, p.shape, n_classes, ignore_index) for p, g in zip(preds, gt_list)]
    flat = [p.ravel().astype(np.int64) for p in preds]
    for i, (p, c) in enumerate(zip(preds, counts)):
        if c.grid != p.shape or c.classes.shape[1] != n_classes:
            raise ValueError(f"image {i}: counts of a {c.grid} grid and {c.classes.shape[1]} classes for a "
                             f"{p.shape} label map and {n_classes} classes")
    has_unassigned = any((f[c.covers] < 0).any() for f, c in zip(flat, counts))
    n_rows = n_pred + int(has_unassigned)
    index, weights = [], []
    for i, (f, c) in enumerate(zip(flat, counts)):
        used = c.classes.any(axis=1)  # cells with a non-ignored pixel
        rows = np.where(f < 0, n_pred, f) if has_unassigned else f
        if used.any() and (rows[used].min() < 0 or rows[used].max() >= n_rows):
            raise ValueError(f"image {i}: predicted ids must be in 0..{n_rows - 1}")
        index.append(((i * n_rows + rows[used, None]) * n_classes + np.arange(n_classes)).ravel())
        weights.append(c.classes[used].ravel())
    # float64 weights hold pixel counts exactly (< 2**53): rounding gives the integer counts back
    per_image = np.rint(np.bincount(np.concatenate(index) if index else np.zeros(0, np.int64),
                                    weights=np.concatenate(weights) if weights else None,
                                    minlength=len(preds) * n_rows * n_classes)).astype(np.int64)
    per_image = per_image.reshape(len(preds), n_rows, n_classes)
    conf = per_image.sum(axis=0)
    una = n_pred if has_unassigned else None
    return {
        "hungarian": matched_scores(conf, unassigned=una),
        "majority": majority_scores(conf, unassigned=una),
        "confusion": conf,
        "per_image": per_image,
        "unassigned": una,
    }


def score_images(per_image: np.ndarray, rule: str, images: np.ndarray | None = None,
                 weights: np.ndarray | None = None, unassigned: int | None = None) -> dict:
    """Scores of a subset of images, and of resampling replicates of it, from per-image confusions.

    Parameters
    ----------
    per_image : (N, n_pred, n_classes) array
        ``evaluate_label_maps(...)["per_image"]``.
    rule : {"hungarian", "majority"}
        :func:`matched_scores` or :func:`majority_scores`; the matching is made on the subset's
        own confusion (and again in every replicate: the protocol includes the matching).
    images : int array, optional
        The images scored (default: all).
    weights : (B, len(images)) array, optional
        Image weights of resampling replicates (0 or 1 for a subset).

    Returns
    -------
    dict
        ``miou``, ``pixel_accuracy``, ``coverage`` of the subset; with ``weights`` also
        ``replicates = {"miou", "pixel_accuracy", "coverage"}`` as (B,) arrays.
    """
    score = RULES[rule]
    per_image = np.asarray(per_image)
    sub = per_image if images is None else per_image[np.asarray(images)]
    point = score(sub.sum(axis=0), unassigned=unassigned)
    out = {k: point[k] for k in ("miou", "pixel_accuracy", "coverage")}
    if weights is not None:
        confs = np.tensordot(weights, sub.astype(np.float64), axes=(1, 0)).round().astype(np.int64)
        out["replicates"] = _replicate_scores(confs, rule, unassigned)
    return out


def _replicate_scores(confs: np.ndarray, rule: str, unassigned: int | None) -> dict[str, np.ndarray]:
    """:func:`matched_scores` / :func:`majority_scores` of a stack (B, n_pred, n_classes) of
    confusions at once (the matching per table, the scoring vectorised)."""
    n_b, n_pred, n_classes = confs.shape
    scored = np.ones(n_pred, bool)
    if unassigned is not None:
        scored[unassigned] = False
    rows = np.flatnonzero(scored)
    assignment = np.full((n_b, n_pred), -1, dtype=np.int64)
    if rule == "hungarian":
        for b in range(n_b):
            r, c = linear_sum_assignment(confs[b][rows], maximize=True)
            assignment[b, rows[r]] = c
    else:
        labelled = confs.sum(axis=2) > 0
        assignment = np.where(labelled, confs.argmax(axis=2), -1)
        assignment[:, ~scored] = -1
    onehot = (assignment[:, :, None] == np.arange(n_classes)[None, None, :]).astype(np.float64)  # (B, n_pred, C)
    mapped = np.einsum("bic,bij->bcj", onehot, confs.astype(np.float64))  # predicted class c, true class j
    tp = np.diagonal(mapped, axis1=1, axis2=2)
    union = confs.sum(axis=1) + mapped.sum(axis=2) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.where(union > 0, union, 1.0), 0.0)
        present = (union > 0).sum(axis=1)
        total = confs.sum(axis=(1, 2)).astype(np.float64)
        miou = np.where(present > 0, iou.sum(axis=1) / np.maximum(present, 1), np.nan)
        accuracy = np.where(total > 0, tp.sum(axis=1) / np.where(total > 0, total, 1.0), np.nan)
        coverage = (np.ones(n_b) if unassigned is None
                    else np.where(total > 0, 1.0 - confs[:, unassigned].sum(axis=1) / np.where(total > 0, total, 1.0),
                                  np.nan))
    return {"miou": miou, "pixel_accuracy": accuracy, "coverage": coverage}
