"""DatUS²-inspired pseudo-masks (Kumar et al. 2024): per-image segments -> dataset pseudo-classes.

The outline is DatUS²'s (segments from the last block's key affinity, then k-means over the segments
of the whole dataset); the steps are simpler, and the Methods page lists each difference from the
authors' code (github.com/SonalKumar95/DatUS): Louvain on a 0/1 graph of positive key dot products
there, spectral clustering of a kNN cosine graph here; 8- vs 4-connected components, > 5 vs >= 3
patches; the CLS token of the re-encoded segment crop there, pooled patch tokens here (no second
forward pass); PCA before k-means there; unassigned pixels left out of the score there, counted as
wrong here (coverage reported). Scores are not comparable with the paper's.

Definitions (quoted on the Methods page):

1. **Affinity** (per image): cosine similarity of the last block's patch keys, negatives set to
   0, sparsified to a symmetric k-nearest-neighbour graph (each patch keeps its
   ``n_neighbors`` most similar patches; an edge is kept when either end keeps it).
2. **Segments**: spectral clustering of that graph into ``n_segments`` groups
   (``sklearn.cluster.SpectralClustering``, precomputed affinity), then 4-connected components of
   each group on the patch grid (``scipy.ndimage.label``); components smaller than ``min_size``
   patches are dropped (their patches stay *unassigned*, -1).
3. **Segment features**: the mean of the chosen tokens (default: the keys) over the segment's
   patches, L2-normalised.
4. **Pseudo-classes**: k-means (``sklearn.cluster.KMeans``) over the segment features of all
   images into ``n_pseudo`` classes; every patch takes its segment's pseudo-class.
5. **Score** (:func:`score_pseudo_masks`): STEGO protocol over *all* non-ignored pixels — one
   Hungarian matching on the dataset confusion matrix; unassigned pixels form a separate row that
   is never matched, so they count as wrong; coverage = fraction of pixels that were assigned.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> grid = np.repeat(np.arange(2), 4)[None, :].repeat(8, 0)            # two halves
>>> keys = np.eye(4)[grid] + 0.05 * rng.normal(size=(8, 8, 4))
>>> int(segment_image(keys, n_segments=2, min_size=2).max())
1
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.exceptions import ConvergenceWarning

from ..inputs.datasets import IGNORE_INDEX
from .segmentation import evaluate_label_maps


def key_affinity(keys: np.ndarray, n_neighbors: int | None = 10) -> np.ndarray:
    """Symmetric (h*w, h*w) affinity: clipped cosine similarity of keys, kNN-sparsified."""
    keys = np.asarray(keys, dtype=np.float64)
    X = keys.reshape(-1, keys.shape[-1])
    X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    A = np.clip(X @ X.T, 0.0, 1.0)
    if n_neighbors is not None:
        if n_neighbors < 1:
            raise ValueError(f"n_neighbors must be >= 1 or None, got {n_neighbors}")
        n = len(A)
        k = min(n_neighbors + 1, n)  # +1: each patch is its own nearest neighbour
        idx = np.argpartition(-A, k - 1, axis=1)[:, :k]
        keep = np.zeros_like(A, dtype=bool)
        keep[np.arange(n)[:, None], idx] = True
        A = np.where(keep | keep.T, A, 0.0)
    return A


def segment_image(
    keys: np.ndarray,
    n_segments: int = 5,
    n_neighbors: int | None = 10,
    min_size: int = 3,
    seed: int = 0,
) -> np.ndarray:
    """Segments of one image from its patch keys ``(h, w, C)``: (h, w) ids ``0..S-1``, -1 = dropped."""
    keys = np.asarray(keys)
    if keys.ndim != 3:
        raise ValueError(f"keys must be (h, w, C) for one image, got shape {keys.shape}")
    h, w, _ = keys.shape
    if not 2 <= n_segments < h * w:
        raise ValueError(f"n_segments must be in 2..{h * w - 1}, got {n_segments}")
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1 patch, got {min_size}")
    A = key_affinity(keys, n_neighbors)
    with warnings.catch_warnings():
        # a kNN graph of well-separated regions is disconnected: exactly the easy case
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        groups = SpectralClustering(
            n_clusters=n_segments, affinity="precomputed", assign_labels="cluster_qr", random_state=seed
        ).fit_predict(A).reshape(h, w)
    segments = np.full((h, w), -1, dtype=np.int64)
    next_id = 0
    for g in range(n_segments):
        comp, n_comp = ndimage.label(groups == g)  # 4-connectivity
        for c in range(1, n_comp + 1):
            where = comp == c
            if where.sum() >= min_size:
                segments[where] = next_id
                next_id += 1
    return segments


@dataclass
class PseudoMasks:
    """Pseudo-masks of a dataset (patch grid), with the segments they were built from."""

    labels: np.ndarray  # (N, h, w) pseudo-class per patch, -1 = unassigned
    segments: np.ndarray  # (N, h, w) per-image segment id, -1 = dropped
    segment_image: np.ndarray  # (S,) image index of each segment
    segment_class: np.ndarray  # (S,) pseudo-class of each segment
    segment_features: np.ndarray  # (S, C) L2-normalised mean features

    @property
    def coverage(self) -> float:
        """Fraction of patches that received a pseudo-class."""
        return float((self.labels >= 0).mean())


def pseudo_masks(
    keys: np.ndarray,
    n_pseudo: int,
    features: np.ndarray | None = None,
    n_segments: int = 5,
    n_neighbors: int | None = 10,
    min_size: int = 3,
    seed: int = 0,
) -> PseudoMasks:
    """Segment every image from its keys, pool a feature per segment, k-means into pseudo-classes.

    Parameters
    ----------
    keys : (N, h, w, Ck) float array
        Last-block patch keys.
    n_pseudo : int
        Number of pseudo-classes K.
    features : (N, h, w, C) float array, optional
        Tokens pooled per segment (default: ``keys``).
    """
    keys = np.asarray(keys)
    if keys.ndim != 4:
        raise ValueError(f"keys must be (N, h, w, C), got shape {keys.shape}")
    feats = keys if features is None else np.asarray(features)
    if feats.shape[:3] != keys.shape[:3]:
        raise ValueError(f"features {feats.shape} must share (N, h, w) with keys {keys.shape}")
    if n_pseudo < 1:
        raise ValueError(f"n_pseudo must be >= 1, got {n_pseudo}")
    segs = np.stack([segment_image(k, n_segments, n_neighbors, min_size, seed) for k in keys])
    seg_img, seg_feat = [], []
    for i, s in enumerate(segs):
        for sid in range(int(s.max()) + 1):
            seg_img.append(i)
            seg_feat.append(feats[i][s == sid].astype(np.float64).mean(0))
    if len(seg_feat) < n_pseudo:
        raise ValueError(f"only {len(seg_feat)} segments for n_pseudo={n_pseudo}; lower n_pseudo or min_size")
    F = np.asarray(seg_feat)
    F /= np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)
    with warnings.catch_warnings():
        # fewer distinct segments than K (the position baseline: the same segments in every
        # image): each distinct segment is its own pseudo-class and the others stay empty
        warnings.filterwarnings("ignore", message="Number of distinct clusters", category=ConvergenceWarning)
        seg_cls = KMeans(n_clusters=n_pseudo, n_init=10, random_state=seed).fit_predict(F)
    labels = np.full(segs.shape, -1, dtype=np.int64)
    offset = 0
    for i, s in enumerate(segs):
        n_i = int(s.max()) + 1
        lut = np.append(seg_cls[offset:offset + n_i], -1)  # index -1 -> last entry -> unassigned
        labels[i] = lut[s]
        offset += n_i
    return PseudoMasks(labels, segs, np.asarray(seg_img, dtype=np.int64), seg_cls.astype(np.int64), F)


def score_pseudo_masks(
    labels: Sequence[np.ndarray] | np.ndarray,
    gt_list: Sequence[np.ndarray],
    n_pseudo: int,
    n_classes: int,
    ignore_index: int = IGNORE_INDEX,
    *,
    counts=None,
) -> dict:
    """STEGO-protocol scores of patch pseudo-masks against masks (any resolution); ``counts``: the
    masks' :class:`~atlas.measures.segmentation.MaskCounts` at the pseudo-masks' grid, if made.

    Returns :func:`~atlas.measures.segmentation.evaluate_label_maps`' dict: ``hungarian`` and
    ``majority`` scores (each with ``coverage``) and the confusion matrix.
    """
    return evaluate_label_maps(list(labels), list(gt_list), n_pseudo, n_classes, ignore_index, counts=counts)
