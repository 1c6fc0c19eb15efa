"""Video object segmentation by label propagation (DINO's DAVIS protocol), and its metrics.

:func:`propagate_labels` follows DINO's ``eval_video_segmentation.py``: patch features, CLS
dropped, L2-normalised; affinities ``exp(cosine / temperature)`` (temperature 0.1; DINOv3's
notebook uses 0.2) between the frame and its context, the first frame plus the ``n_context`` = 7
most recent frames with their propagated soft labels; each patch keeps its ``top_k`` = 5 largest
affinities within a square neighbourhood of ``radius`` = 12 patches; the weights are normalised
and the context's soft labels averaged with them; the first frame's labels are its mask reduced
to the patch grid (nearest). The soft labels are then upsampled (bilinear) to the mask size, each
label's map rescaled to [0, 1] over the frame (DINO's ``norm_mask``: minus its minimum, over its
new maximum; a map that is zero everywhere is left alone, a constant one becomes 0) and the
argmax taken. The rescaling keeps small or faint objects from losing their pixels to the
background, whose soft labels are larger everywhere.

:func:`region_similarity` (J, region IoU) and :func:`boundary_measure` (F, the boundary
F-measure on DAVIS's boundary map with its tolerance of 0.008 x the image diagonal) score one
object in one frame, as the DAVIS 2017 evaluation does; :func:`j_and_f` averages them over
objects and frames. No maintained implementation is on the package registries
(``davis2017-evaluation`` is not): the tests compare with hand-computed cases and with a port of
its ``_seg2bmap`` and ``f_measure``.

Example: a square that moves right by one patch a frame, with features that name the object.

>>> import numpy as np
>>> T, h, w = 4, 8, 8
>>> masks = np.zeros((T, h, w), int)
>>> for t in range(T):
...     masks[t, 2:5, 1 + t:4 + t] = 1
>>> feats = np.stack([np.eye(2)[m] for m in masks]) + 0.01    # object identity, per patch
>>> pred = propagate_labels(feats, masks[0], mask_size=(h, w))
>>> round(j_and_f(pred[1:], masks[1:])["j_and_f"], 2)
1.0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from ..clustering.align import resample_labels

__all__ = ["propagate_labels", "region_similarity", "boundary_measure", "object_scores", "j_and_f", "PROTOCOL"]

#: DINO's protocol, as the Methods page states it beside every number.
PROTOCOL = {"temperature": 0.1, "top_k": 5, "radius": 12, "n_context": 7}


def _neighbourhood(h: int, w: int, radius: int) -> torch.Tensor:
    """(h w, h w) 0/1: context patch j lies within ``radius`` patches (rows and columns) of patch i."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    near = ((ys[:, None] - ys[None, :]).abs() <= radius) & ((xs[:, None] - xs[None, :]).abs() <= radius)
    return near.float()


def propagate_labels(features: Any, first_mask: np.ndarray, *, mask_size: tuple[int, int] | None = None,
                     temperature: float = PROTOCOL["temperature"], top_k: int = PROTOCOL["top_k"],
                     radius: int = PROTOCOL["radius"], n_context: int = PROTOCOL["n_context"],
                     n_frames: int | None = None, device: torch.device | str | None = None) -> np.ndarray:
    """Labels of every frame (T, H, W) propagated from the first frame's mask.

    Parameters
    ----------
    features : float array (T, h, w, C)
        Patch features of the T frames (CLS and other prefix tokens dropped).
    first_mask : int array (H, W)
        The first frame's indexed mask (0 = background, 1..K objects).
    mask_size : (H, W), optional
        Size of the returned label maps (default: ``first_mask``'s).
    temperature, top_k, radius, n_context
        DINO's protocol (:data:`PROTOCOL`).
    n_frames : int, optional
        With ``features`` of one frame (1, h, w, C): the ``n_frames`` frames all have these
        features (a baseline of position alone). The same labels as that map repeated
        ``n_frames`` times, from one (h w, h w) affinity matrix instead of a frame's (h w, M h w)
        per frame: each context frame repeats it, so the k-th largest of a patch's M copies is
        the ceil(k / M)-th largest of one, and the weights average the context's labels.
    device : torch device, optional
        Where the affinities are computed (default: the CPU).

    Returns
    -------
    int array (T, H, W); frame 0 is ``first_mask`` itself (it is given, not predicted).
    """
    if isinstance(features, torch.Tensor):
        x = features.detach().to(device=device, dtype=torch.float32)
    else:  # a copy: broadcast (read-only) input is fine
        x = torch.tensor(np.asarray(features, dtype=np.float32), device=device)
    if n_frames is not None and (x.ndim != 4 or x.shape[0] != 1 or n_frames < 2):
        raise ValueError(f"n_frames needs features of one frame (1, h, w, C) and n_frames >= 2; "
                         f"got {tuple(x.shape)} and {n_frames}")
    if x.ndim != 4 or (x.shape[0] < 2 and n_frames is None):
        raise ValueError(f"features must have shape (T >= 2, h, w, C); got {tuple(x.shape)}")
    first_mask = np.asarray(first_mask)
    if first_mask.ndim != 2 or first_mask.min() < 0:
        raise ValueError("first_mask must be a 2D array of non-negative label ids")
    if not (first_mask > 0).any():
        raise ValueError("the first frame's mask holds no object: nothing to propagate")
    if temperature <= 0 or top_k < 1 or radius < 0 or n_context < 0:
        raise ValueError("temperature must be > 0, top_k >= 1, radius >= 0, n_context >= 0")
    t_count, h, w, c = x.shape
    t_count = n_frames or t_count
    size = tuple(mask_size or first_mask.shape)
    n_labels = int(first_mask.max()) + 1
    x = F.normalize(x.reshape(len(x), h * w, c), dim=-1)
    # the first mask at the patch grid, nearest (DINO reads the first annotation at 1/patch size)
    small = torch.as_tensor(resample_labels(first_mask, (h, w)).reshape(-1), dtype=torch.long, device=x.device)
    first = F.one_hot(small, n_labels).float()  # (P, L)
    near = _neighbourhood(h, w, radius).to(x.device)
    soft = [first]
    shared = None if n_frames is None else torch.exp(x[0] @ x[0].T / temperature) * near  # every frame's
    thresholds = {}  # per number of context frames, for the shared affinities
    for t in range(1, t_count):
        ctx_idx = [0] + list(range(max(1, t - n_context), t))
        if shared is not None:
            m = len(ctx_idx)
            if m not in thresholds:
                thresholds[m] = torch.topk(shared, math.ceil(min(top_k, m * h * w) / m), dim=1).values[:, -1:]
            weights = shared.masked_fill(~(shared >= thresholds[m]), 0.0)
            weights.div_(weights.sum(dim=1, keepdim=True).clamp_min(1e-30))
            soft.append(weights @ torch.stack([soft[i] for i in ctx_idx]).mean(dim=0))
            continue
        ctx_feats = torch.cat([x[i] for i in ctx_idx])  # (M P, C)
        ctx_labels = torch.cat([soft[i] for i in ctx_idx])  # (M P, L)
        # in place: at DAVIS's 480p a /8 model's (P, M P) matrix is 1.3 GB, and each copy costs its writes
        aff = torch.mm(x[t], ctx_feats.T).div_(temperature).exp_()  # (P, M P)
        aff.view(h * w, len(ctx_idx), h * w).mul_(near[:, None, :])
        k = min(top_k, aff.shape[1])
        threshold = torch.topk(aff, k, dim=1).values[:, -1:]
        aff.masked_fill_(~(aff >= threshold), 0.0)
        aff.div_(aff.sum(dim=1, keepdim=True).clamp_min(1e-30))
        soft.append(aff @ ctx_labels)
    out = np.empty((t_count, *size), dtype=np.int64)
    out[0] = resample_labels(first_mask, size)  # given, not predicted (unchanged at its own size)
    grids = torch.stack(soft[1:]).transpose(1, 2).reshape(t_count - 1, n_labels, h, w)
    up = F.interpolate(grids, size=size, mode="bilinear", align_corners=False)
    # DINO's norm_mask, in place (at 480p the maps are the largest array here)
    lo, hi = up.amin(dim=(2, 3), keepdim=True), up.amax(dim=(2, 3), keepdim=True)
    used = hi > 0
    up.sub_(torch.where(used, lo, 0.0)).mul_(torch.where(used, 1.0 / (hi - lo).clamp_min(1e-30), 1.0))
    if up.device.type == "cpu":  # numpy: torch's CPU argmax over a leading axis is ~10x slower here
        out[1:] = up.numpy().argmax(axis=1)
    else:  # on the device: the host gets labels, not every label's score (both take the first maximum)
        out[1:] = up.argmax(dim=1).cpu().numpy()
    return out


def region_similarity(pred: np.ndarray, truth: np.ndarray) -> float:
    """J: intersection over union of two boolean masks (1 when both are empty, as DAVIS)."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """DAVIS's boundary map (``_seg2bmap`` of the davis2017-evaluation code, after the BSDS
    benchmark): the pixels whose east, south or south-east neighbour differs from them, so the
    boundary lies half a pixel towards the origin (outside the mask on its top and left edges,
    inside on its bottom and right ones). The image's own edge is no boundary: the last row
    compares only east, the last column only south."""
    b = np.zeros_like(mask)
    b[:, :-1] |= mask[:, :-1] ^ mask[:, 1:]
    b[:-1, :] |= mask[:-1, :] ^ mask[1:, :]
    b[:-1, :-1] |= mask[:-1, :-1] ^ mask[1:, 1:]
    return b


def _box(a: np.ndarray, b: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding box of ``a | b`` with one pixel of margin (clipped to the image), or None when
    both are empty. Every pixel of either mask lies in it, and so does every boundary pixel (a
    boundary pixel is at most one pixel above or left of a mask pixel); the margin's last row and
    column are outside both masks, so the crop's edge adds none: J and F on the crop equal the
    whole frame's (tested)."""
    union = a | b
    rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
    if not len(rows):
        return None
    return (slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2))


def _boundary_f(pred: np.ndarray, truth: np.ndarray, radius: int) -> float:
    bp, bt = np.argwhere(_boundary(pred)), np.argwhere(_boundary(truth))
    if not len(bp) and not len(bt):
        return 1.0
    if not len(bp) or not len(bt):
        return 0.0
    # distance to the nearest boundary pixel of the other mask, infinite beyond the radius
    precision = (cKDTree(bt).query(bp, distance_upper_bound=radius + 1e-6)[0] <= radius).mean()
    recall = (cKDTree(bp).query(bt, distance_upper_bound=radius + 1e-6)[0] <= radius).mean()
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def _tolerance(shape: tuple[int, ...], bound_th: float) -> int:
    """DAVIS's boundary tolerance in pixels: ``ceil(bound_th x image diagonal)``, at least 1."""
    return max(1, math.ceil(bound_th * math.hypot(*shape)))


def boundary_measure(pred: np.ndarray, truth: np.ndarray, bound_th: float = 0.008) -> float:
    """F: the boundary F-measure of DAVIS (``db_eval_boundary``; the boundary map :func:`_boundary`).
    Boundary pixels of each mask count as matched when a boundary pixel of the other lies within
    ``ceil(bound_th x image diagonal)`` pixels (a disk);
    precision and recall of the matches, and their harmonic mean (1 when both are empty, 0 when
    one is). Matches are found with a k-d tree over the boundary pixels (exactly the disk's rule),
    on the masks' bounding box (:func:`_box`: the same boundaries, a fraction of the pixels)."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    box = _box(pred, truth)
    return 1.0 if box is None else _boundary_f(pred[box], truth[box], _tolerance(truth.shape, bound_th))


def object_scores(pred: np.ndarray, truth: np.ndarray, objects=None, *, ignore: int | None = None,
                  bound_th: float = 0.008) -> tuple[np.ndarray, np.ndarray]:
    """Per object, J and F averaged over the frames (T, H, W), as DAVIS 2017 scores one object.

    ``objects``: the object ids scored (default: the ids > 0 of ``truth``; propagation scores the
    first mask's). ``ignore``: a label of ``truth`` for pixels without one (semantic datasets):
    they count for neither J's intersection nor its union, and take the prediction's label in the
    truth for F, so that no boundary is right or wrong there.

    >>> truth = np.zeros((2, 4, 4), int); truth[:, :2, :2] = 1
    >>> pred = truth.copy(); pred[1, 0, 2] = 1
    >>> j, f = object_scores(pred, truth)
    >>> j.round(3).tolist()
    [0.9]
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"predicted and true masks differ in shape: {pred.shape} vs {truth.shape}")
    if objects is None:
        objects = [o for o in np.unique(truth) if o > 0 and o != ignore]
    if len(objects) == 0:
        raise ValueError("the masks hold no object")
    valid = np.ones(truth.shape, bool) if ignore is None else truth != ignore
    filled = truth if ignore is None else np.where(valid, truth, pred)
    radius = _tolerance(truth.shape[1:], bound_th)
    js, fs = np.ones((len(objects), len(pred))), np.ones((len(objects), len(pred)))
    for t, (p, g, v, fl) in enumerate(zip(pred, truth, valid, filled)):
        for i, o in enumerate(objects):
            mine, true = p == o, g == o
            box = _box(mine, true)  # the filled truth lies in it too (it is the truth or the prediction)
            if box is None:  # neither has the object: J and F are 1, as DAVIS scores an absent object
                continue
            js[i, t] = region_similarity(mine[box] & v[box], true[box])
            fs[i, t] = _boundary_f(mine[box], fl[box] == o, radius)
    return js.mean(axis=1), fs.mean(axis=1)


def j_and_f(pred: np.ndarray, truth: np.ndarray, bound_th: float = 0.008, *, objects=None,
            ignore: int | None = None) -> dict[str, float]:
    """J, F and their mean over the objects of ``truth`` (ids 1..K) and the frames (T, H, W), as
    DAVIS 2017 reports a sequence (an object's J and F averaged over frames, then over objects);
    ``objects`` and ``ignore`` as :func:`object_scores`."""
    js, fs = object_scores(pred, truth, objects, ignore=ignore, bound_th=bound_th)
    j, f = float(np.mean(js)), float(np.mean(fs))
    return {"j": j, "f": f, "j_and_f": (j + f) / 2}
