"""Reference feature sets: what colour and layout alone reach under the same protocol as a model.

A score against human masks means little without them: street scenes put sky at the top and road
at the bottom, so a feature that only knows where a patch is, or its colour, already segments
them. Every reference here is a patch-grid feature set (or label map) that the evaluation runs
through exactly the protocol of the model's features (same images, crop, grid, K, matching,
splits):

* ``colour``: mean colour of the patch (3 values) in RGB or CIELAB, z-scored over the dataset
  (:data:`COLOUR_VARIANTS`; the evaluation reports the space that scores best on its selection
  images);
* ``position``: Gaussian bumps of width ``sigma`` patches centred on every grid position, so
  nearby patches are similar and a patch is most similar to itself in other images;
* ``colour + position``: the strongest of its simple variants (:data:`COLOUR_POSITION_VARIANTS`,
  chosen on the selection images): colour space RGB or CIELAB x coordinates ``plain`` (the patch
  colour in its nominal range next to the patch centre's (y, x) as fractions of the grid, five
  values) or ``normalised`` (the z-scored colour and the position bumps, each block
  L2-normalised: equal weight under cosine similarity);
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
>>> photo = np.zeros((6, 8, 3), np.uint8); photo[:, 4:] = 255  # black left half, white right half
>>> v = colour_position_variants([photo], (3, 4))
>>> sorted(v), v["rgb+plain"][0, 1, 3].round(3).tolist()
(['lab+normalised', 'lab+plain', 'rgb+normalised', 'rgb+plain'], [1.0, 1.0, 1.0, 0.5, 0.875])
"""

from __future__ import annotations

import numpy as np

from ..inputs.datasets import IGNORE_INDEX

__all__ = ["POSITION_SIGMA", "POSITION_FLOOR", "COLOUR_VARIANTS", "COLOUR_POSITION_VARIANTS", "patch_colours", "colour_features",
           "zscore", "position_features", "plain_coordinates", "combined_features",
           "colour_position_variants", "random_labels", "patch_majority"]

#: Width (patches) of the Gaussian bumps of the position features.
POSITION_SIGMA = 1.5

#: Position-bump values below this are zero: tails beyond ~8 sigma (12.5 patches), far under float32's
#: resolution next to a bump's peak of 1, whose products would fall below its normal range, where CPU
#: arithmetic is many times slower (a 23 x 23 grid's k-NN probe took 46x as long as on random features).
POSITION_FLOOR = 1e-15

#: Variant ids of the colour baseline: the colour space.
COLOUR_VARIANTS = ("rgb", "lab")

#: Variant ids of the colour + position baseline: ``<colour space>+<coordinates>``.
COLOUR_POSITION_VARIANTS = ("rgb+plain", "lab+plain", "rgb+normalised", "lab+normalised")


def patch_colours(photos: list[np.ndarray], grid: tuple[int, int], space: str = "lab") -> np.ndarray:
    """``(N, h, w, 3)`` mean colour of every patch in its nominal range: RGB in [0, 1]; CIELAB as
    L / 100 in [0, 1] and a / 100, b / 100 (about [-1, 1]). CIELAB is converted per pixel, then averaged.

    ``photos``: uint8 (H, W, 3) images at the model's input size (H, W multiples of the grid).
    """
    if space not in COLOUR_VARIANTS:
        raise ValueError(f"colour space must be one of {COLOUR_VARIANTS}, got {space!r}")
    h, w = grid
    out = []
    for photo in photos:
        H, W = photo.shape[:2]
        pix = photo.astype(np.float64)[..., :3] / 255.0
        if space == "lab":
            from skimage.color import rgb2lab

            pix = rgb2lab(pix) / 100.0
        out.append(pix.reshape(h, H // h, w, W // w, 3).mean(axis=(1, 3)))
    return np.stack(out)


def zscore(feats: np.ndarray) -> np.ndarray:
    """``feats`` z-scored per channel (last axis) over all patches, as float32."""
    flat = feats.reshape(-1, feats.shape[-1])
    mu, sd = flat.mean(0), flat.std(0)
    return ((feats - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


def colour_features(photos: list[np.ndarray], grid: tuple[int, int], space: str = "lab") -> np.ndarray:
    """``(N, h, w, 3)`` mean colour (``space``: ``"lab"`` CIELAB or ``"rgb"``) of every patch,
    z-scored per channel over all patches.

    ``photos``: uint8 (H, W, 3) images at the model's input size (H, W multiples of the grid).
    """
    return zscore(patch_colours(photos, grid, space))


def position_features(n: int, grid: tuple[int, int], sigma: float = POSITION_SIGMA) -> np.ndarray:
    """``(n, h, w, h * w)``: at every patch, a Gaussian of its grid distance to each position
    (values below :data:`POSITION_FLOOR` are 0)."""
    h, w = grid
    rr, cc = np.divmod(np.arange(h * w), w)
    d2 = (rr[:, None] - rr[None, :]) ** 2 + (cc[:, None] - cc[None, :]) ** 2
    bumps = np.exp(-d2 / (2.0 * sigma**2))
    bumps[bumps < POSITION_FLOOR] = 0.0
    bumps = bumps.astype(np.float32).reshape(h, w, h * w)
    return np.broadcast_to(bumps, (n, h, w, h * w)).copy()


def plain_coordinates(n: int, grid: tuple[int, int]) -> np.ndarray:
    """``(n, h, w, 2)``: the (y, x) of every patch centre as a fraction of the grid, in (0, 1)."""
    h, w = grid
    yy, xx = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
    return np.broadcast_to(np.stack([yy, xx], -1), (n, h, w, 2)).astype(np.float32)


def colour_position_variants(photos: list[np.ndarray], grid: tuple[int, int],
                             raw: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The colour + position baseline's feature set of every variant id of
    :data:`COLOUR_POSITION_VARIANTS`: ``<space>+plain`` is the patch colour in its nominal range
    (:func:`patch_colours`) next to :func:`plain_coordinates` (5 values, no data-dependent scaling);
    ``<space>+normalised`` is :func:`combined_features` of the z-scored colour and the position
    bumps of :func:`position_features`. ``raw``: ``{space: patch_colours(photos, grid, space)}``
    when already computed."""
    n = len(photos)
    raw = raw or {space: patch_colours(photos, grid, space) for space in COLOUR_VARIANTS}
    coords, position = plain_coordinates(n, grid), position_features(n, grid)
    out = {}
    for space in COLOUR_VARIANTS:
        out[f"{space}+plain"] = np.concatenate([raw[space].astype(np.float32), coords], axis=-1)
        out[f"{space}+normalised"] = combined_features(zscore(raw[space]), position)
    return {v: out[v] for v in COLOUR_POSITION_VARIANTS}


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
