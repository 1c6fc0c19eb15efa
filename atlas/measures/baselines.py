"""Reference feature sets: what colour and layout alone reach under the same protocol as a model.

A score against human masks means little without them: street scenes put sky at the top and road
at the bottom, so a feature that only knows where a patch is, or its colour, already segments
them. Every reference here is a patch-grid feature set (or label map) that the evaluation runs
through exactly the protocol of the model's features (same images, crop, grid, K, matching,
splits):

* ``colour``: mean CIELAB colour of the patch (3 values), z-scored over the dataset;
* ``position``: Gaussian bumps of width ``sigma`` patches centred on every grid position, so
  nearby patches are similar and a patch is most similar to itself in other images;
* ``colour + position``: both, each block L2-normalised (equal weight under cosine similarity);
* ``chance``: uniformly random cluster ids (or, for the k-NN probe, random Gaussian features);
* ``constant``: one cluster for everything;
* ``ceiling``: the ground truth reduced to the patch grid (majority class per patch): the best
  any patch-level prediction can score against the full-resolution masks.

Example
-------
>>> import numpy as np
>>> pos = position_features(2, (3, 4))
>>> pos.shape, bool(np.argmax(pos[0, 1, 2]) == 1 * 4 + 2)
((2, 3, 4, 12), True)
"""

from __future__ import annotations

import numpy as np

from ..inputs.datasets import IGNORE_INDEX

__all__ = ["POSITION_SIGMA", "colour_features", "position_features", "combined_features", "random_labels",
           "patch_majority"]

#: Width (patches) of the Gaussian bumps of the position features.
POSITION_SIGMA = 1.5


def colour_features(photos: list[np.ndarray], grid: tuple[int, int]) -> np.ndarray:
    """``(N, h, w, 3)`` mean CIELAB colour of every patch, z-scored per channel over all patches.

    ``photos``: uint8 (H, W, 3) images at the model's input size (H, W multiples of the grid).
    """
    from skimage.color import rgb2lab

    h, w = grid
    out = []
    for photo in photos:
        H, W = photo.shape[:2]
        lab = rgb2lab(photo.astype(np.float64) / 255.0)
        out.append(lab.reshape(h, H // h, w, W // w, 3).mean(axis=(1, 3)))
    feats = np.stack(out)
    mu, sd = feats.reshape(-1, 3).mean(0), feats.reshape(-1, 3).std(0)
    return ((feats - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


def position_features(n: int, grid: tuple[int, int], sigma: float = POSITION_SIGMA) -> np.ndarray:
    """``(n, h, w, h * w)``: at every patch, a Gaussian of its grid distance to each position."""
    h, w = grid
    rr, cc = np.divmod(np.arange(h * w), w)
    d2 = (rr[:, None] - rr[None, :]) ** 2 + (cc[:, None] - cc[None, :]) ** 2
    bumps = np.exp(-d2 / (2.0 * sigma**2)).astype(np.float32).reshape(h, w, h * w)
    return np.broadcast_to(bumps, (n, h, w, h * w)).copy()


def combined_features(*blocks: np.ndarray) -> np.ndarray:
    """Feature blocks concatenated after L2-normalising each per patch (equal weight under cosine)."""
    normed = [b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12) for b in blocks]
    return np.concatenate(normed, axis=-1).astype(np.float32)


def random_labels(n: int, grid: tuple[int, int], k: int, seed: int) -> np.ndarray:
    """``(n, h, w)`` uniformly random cluster ids in ``0 .. k - 1``."""
    return np.random.default_rng([int(seed), 3571]).integers(0, k, (n, *grid))


def patch_majority(masks: list[np.ndarray], grid: tuple[int, int], ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """``(N, h, w)`` majority class of every patch (``-1`` where the patch holds no label)."""
    from .knn import patch_labels

    return np.stack([patch_labels(m, grid, ignore_index, min_valid=0.0) for m in masks])
