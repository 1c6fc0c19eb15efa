"""Consistent cluster colours across blocks, representations and models.

Two k-means runs number their clusters independently, so "cluster 3" of block 6 has nothing to do
with "cluster 3" of block 7. Before colouring, each labelling is renumbered so that its clusters
take the ids (hence the colours) of the reference clusters they overlap most: the co-occurrence
(contingency) matrix of the two label maps over the same images and patch positions is fed to the
Hungarian solver (:func:`scipy.optimize.linear_sum_assignment`), maximising the total overlap.

Label maps on different patch grids (patch 14 vs 16 -> 16x16 vs 14x14 tokens at 224 px) are first
brought to one grid with :func:`resample_labels` (nearest neighbour; use the least common multiple,
e.g. 112x112, to make every cell overlap exact).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "align_to_reference",
    "apply_mapping",
    "align_chain",
    "colour_chains",
    "resample_labels",
    "common_grid",
    "grid_contingency",
    "contingency",
]


def contingency(ref_labels, labels, n_ref: int, n: int) -> np.ndarray:
    """Co-occurrence counts ``C[i, j]`` = #positions with reference id ``i`` and id ``j``.

    Parameters
    ----------
    ref_labels, labels : int arrays of the same shape
        Two labellings of the same images and positions.
    n_ref, n : int
        Number of clusters of each labelling (ids must lie in ``[0, n_ref)`` and ``[0, n)``).

    Returns
    -------
    ndarray of shape (n_ref, n), int64

    Examples
    --------
    >>> contingency([0, 0, 1], [1, 1, 0], 2, 2).tolist()
    [[0, 2], [1, 0]]
    """
    a, b = _check_pair(ref_labels, labels, n_ref, n)
    # np.bincount over a joint index: same result as sklearn's contingency_matrix, but with the
    # full (n_ref, n) shape even when some ids are absent.
    return np.bincount(a * n + b, minlength=n_ref * n).reshape(n_ref, n)


def align_to_reference(ref_labels, labels, n_ref: int, n: int) -> np.ndarray:
    """Renumber ``labels`` so its clusters take the ids of the reference clusters they overlap most.

    Parameters
    ----------
    ref_labels : int array
        Reference labelling (already aligned / coloured), ids in ``[0, n_ref)``.
    labels : int array, same shape as ``ref_labels``
        Labelling to renumber, ids in ``[0, n)``. Both must cover the same images and positions;
        maps ``(N, h, w)`` on different patch grids are compared on their common grid
        (:func:`grid_contingency`).
    n_ref, n : int
        Number of clusters of each labelling.

    Returns
    -------
    mapping : ndarray of shape (n,), int64
        A one-to-one map, ``new_id = mapping[old_id]``. The ``min(n_ref, n)`` pairs chosen by the
        assignment maximise the total overlap. When ``n > n_ref`` the clusters left unmatched get the
        free ids ``n_ref, n_ref + 1, ...`` in ascending order of their old id. All new ids are
        ``< max(n_ref, n)``.

    Examples
    --------
    >>> ref = np.array([0, 0, 1, 1, 2])
    >>> lab = np.array([2, 2, 0, 0, 1])  # the same partition, other numbering
    >>> mapping = align_to_reference(ref, lab, 3, 3)
    >>> mapping.tolist(), apply_mapping(lab, mapping).tolist()
    ([1, 2, 0], [0, 0, 1, 1, 2])
    """
    ref_labels, labels = np.asarray(ref_labels), np.asarray(labels)
    other_grid = (ref_labels.shape != labels.shape and min(ref_labels.ndim, labels.ndim) >= 3
                  and ref_labels.shape[:-2] == labels.shape[:-2])  # the same images on other patch grids
    cont = grid_contingency(ref_labels, labels, n_ref, n) if other_grid else contingency(ref_labels, labels, n_ref, n)
    rows, cols = linear_sum_assignment(cont, maximize=True)
    mapping = np.full(n, -1, dtype=np.int64)
    mapping[cols] = rows
    unmatched = np.flatnonzero(mapping < 0)  # only when n > n_ref
    mapping[unmatched] = n_ref + np.arange(len(unmatched))
    return mapping


def apply_mapping(labels, mapping) -> np.ndarray:
    """Renumber a labelling: ``out = mapping[labels]`` (any shape).

    Examples
    --------
    >>> apply_mapping(np.array([[0, 1], [1, 2]]), np.array([2, 0, 1])).tolist()
    [[2, 0], [0, 1]]
    """
    labels = np.asarray(labels)
    mapping = np.asarray(mapping)
    if mapping.ndim != 1:
        raise ValueError(f"mapping must be 1-D (new_id = mapping[old_id]), got shape {mapping.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= len(mapping)):
        raise ValueError(f"labels must lie in [0, {len(mapping)}) to apply a mapping of length {len(mapping)}")
    return mapping[labels]


def align_chain(labelings, n_clusters=None) -> list[np.ndarray]:
    """Align a sequence of labellings (e.g. blocks 0..L-1), each to the aligned previous one.

    Why a chain and not all-to-one: neighbouring blocks partition the tokens most similarly, so
    each step has a strong, unambiguous overlap, and a reader stepping through the blocks sees a
    cluster keep its colour for as long as it persists. Matching every block to one fixed reference
    (say the last block) forces early, very different blocks onto that reference through weak
    overlaps, where the assignment is close to arbitrary. The price of the chain is drift: after
    many steps a colour may have moved to a region that shares little with the first block. Use
    :func:`align_to_reference` directly for all-to-one (e.g. models against one reference model).

    Parameters
    ----------
    labelings : sequence of int arrays, all of the same shape
        The first one is kept as is (the colour reference).
    n_clusters : sequence of int, optional
        Number of clusters of each labelling; defaults to ``max id + 1`` of each.

    Returns
    -------
    list of mappings (ndarray of int64)
        ``mappings[i][old_id] = new_id`` for labelling ``i``; ``mappings[0]`` is the identity.
        Apply with :func:`apply_mapping`.

    Examples
    --------
    >>> a = np.array([0, 0, 1, 1]); b = np.array([1, 1, 0, 0]); c = np.array([0, 0, 1, 1])
    >>> [m.tolist() for m in align_chain([a, b, c])]
    [[0, 1], [1, 0], [0, 1]]
    """
    labelings = [np.asarray(lab) for lab in labelings]
    if not labelings:
        return []
    if n_clusters is None:
        n_clusters = [int(lab.max()) + 1 if lab.size else 0 for lab in labelings]
    if len(n_clusters) != len(labelings):
        raise ValueError(f"n_clusters has {len(n_clusters)} entries for {len(labelings)} labelings")
    mappings = [np.arange(n_clusters[0], dtype=np.int64)]
    prev, n_prev = labelings[0], n_clusters[0]
    for lab, k in zip(labelings[1:], n_clusters[1:]):
        mapping = align_to_reference(prev, lab, n_prev, k)
        mappings.append(mapping)
        # ids of an aligned labelling may be sparse up to max(n_prev, k) - 1
        prev, n_prev = mapping[lab], max(n_prev, k)
    return mappings


def colour_chains(blocks, representations) -> list[tuple[str, tuple[int, str] | None, list[int]]]:
    """The order in which a model's colours are aligned, for cluster maps and PCA pictures alike:
    per representation, its blocks from deep to shallow, each following the deeper one; every
    representation but the reference (``tokens``, else the first) starts from the reference's
    deepest block, so representations share colours too. Returns ``(representation, anchor,
    blocks)`` with ``anchor`` the (block, representation) the chain starts from, or None.

    >>> colour_chains([3, 11], ["keys", "tokens"])
    [('tokens', None, [11, 3]), ('keys', (11, 'tokens'), [11, 3])]
    """
    deep_first = sorted(blocks, reverse=True)
    ref = "tokens" if "tokens" in representations else representations[0]
    return [(rep, None if rep == ref or not deep_first else (deep_first[0], ref), deep_first)
            for rep in [ref] + [r for r in representations if r != ref]]


def resample_labels(labels, size) -> np.ndarray:
    """Nearest-neighbour resampling of label maps to an ``(H, W)`` grid.

    Works on one map (h, w) or a stack (..., h, w). Output cell (i, j) takes the input cell whose
    area contains the output cell's centre, so an integer upscale factor replicates every patch
    exactly into an f x f block.

    Parameters
    ----------
    labels : int array of shape (..., h, w)
    size : (H, W)

    Returns
    -------
    ndarray of shape (..., H, W), same dtype

    Examples
    --------
    >>> resample_labels(np.array([[0, 1], [2, 3]]), (4, 4))[0].tolist()
    [0, 0, 1, 1]
    """
    labels = np.asarray(labels)
    if labels.ndim < 2:
        raise ValueError(f"labels must have shape (..., h, w), got shape {labels.shape}")
    H, W = _check_size(size)
    h, w = labels.shape[-2:]
    # integer arithmetic for floor((i + 0.5) * h / H): no float rounding at cell borders
    rows = ((2 * np.arange(H) + 1) * h) // (2 * H)
    cols = ((2 * np.arange(W) + 1) * w) // (2 * W)
    return labels[..., rows[:, None], cols[None, :]]


def _overlap(a: int, b: int) -> np.ndarray:
    """(a, b) lengths by which cell i of an a-cell axis and cell j of a b-cell axis overlap, on the
    lcm(a, b) fine axis onto which both upsample exactly."""
    fine = math.lcm(a, b)
    starts_a, starts_b = np.arange(a) * (fine // a), np.arange(b) * (fine // b)
    ends = np.minimum(starts_a[:, None] + fine // a, starts_b[None, :] + fine // b)
    return np.maximum(0, ends - np.maximum(starts_a[:, None], starts_b[None, :]))


def grid_contingency(ref_labels, labels, n_ref: int, n: int) -> np.ndarray:
    """:func:`contingency` of two labellings ``(..., h1, w1)`` and ``(..., h2, w2)`` of the same images
    on different grids, as if both were upsampled to :func:`common_grid` (exactly the same counts),
    without building that grid: 14, 16 and 37 patches give a 4144 x 4144 grid, 41 GB for 300 images
    as int64; here memory is one-hot maps at patch resolution.

    Examples
    --------
    >>> a, b = np.array([[[0, 1]]]), np.array([[[0, 0, 1]]])  # 1 x 2 and 1 x 3 grids
    >>> grid_contingency(a, b, 2, 2).tolist()  # on the common 1 x 6 grid: 000111 against 000011
    [[3, 0], [1, 2]]
    """
    ref_labels, labels = np.asarray(ref_labels), np.asarray(labels)
    if ref_labels.ndim < 2 or ref_labels.shape[:-2] != labels.shape[:-2]:
        raise ValueError(f"labellings must be (..., h, w) maps of the same images, got {ref_labels.shape} and "
                         f"{labels.shape}")
    _check_pair(ref_labels, labels, n_ref, n, same_shape=False)
    (h1, w1), (h2, w2) = ref_labels.shape[-2:], labels.shape[-2:]
    rows, cols = _overlap(h1, h2).astype(np.float64), _overlap(w1, w2).astype(np.float64)
    a = np.eye(n_ref)[ref_labels.reshape(-1, h1, w1)]  # (N, h1, w1, n_ref)
    b = np.eye(n)[labels.reshape(-1, h2, w2)]
    a = np.einsum("nija,ik->nkja", a, rows)  # onto the other grid's rows, weighted by overlap
    a = np.einsum("nkja,jl->nkla", a, cols)
    return np.rint(np.einsum("nkla,nklb->ab", a, b)).astype(np.int64)


def common_grid(*grids) -> tuple[int, int]:
    """Smallest grid onto which all ``(h, w)`` grids upsample exactly (least common multiples).

    Examples
    --------
    >>> common_grid((16, 16), (14, 14))
    (112, 112)
    """
    if not grids:
        raise ValueError("common_grid needs at least one (h, w) grid")
    sizes = [_check_size(g) for g in grids]
    return math.lcm(*(s[0] for s in sizes)), math.lcm(*(s[1] for s in sizes))


def _check_size(size) -> tuple[int, int]:
    try:
        H, W = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be a pair (H, W) of positive ints, got {size!r}") from None
    if H < 1 or W < 1:
        raise ValueError(f"size must be a pair (H, W) of positive ints, got {size!r}")
    return H, W


def _check_pair(ref_labels, labels, n_ref, n, same_shape: bool = True):
    a = np.asarray(ref_labels)
    b = np.asarray(labels)
    if same_shape and a.shape != b.shape:
        raise ValueError(
            f"label maps differ in shape {a.shape} vs {b.shape}; resample both to one grid "
            "with resample_labels first"
        )
    for name, arr, k in (("ref_labels", a, n_ref), ("labels", b, n)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must be an integer array, got dtype {arr.dtype}")
        if int(k) < 1:
            raise ValueError(f"number of clusters for {name} must be >= 1, got {k}")
        if arr.size and (arr.min() < 0 or arr.max() >= k):
            raise ValueError(f"{name} ids must lie in [0, {k}); got range [{arr.min()}, {arr.max()}]")
    return a.ravel().astype(np.int64), b.ravel().astype(np.int64)
