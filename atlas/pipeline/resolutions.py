"""The resolution axis: the input sizes each model runs at (``[images] resolutions``).

Every entry is resolved per model: a side or ``[height, width]`` in pixels, or ``"native"`` (the
model's pretrained input size from its timm config), then rounded to whole patches
(:func:`atlas.inputs.geometry.snap_to_patch_multiple`). The first entry is the atlas's main
resolution (leaderboard, comparisons, the model page's default); each other one is a run of its
own with the same images, weights, measures and pictures, stored beside it
(:func:`run_id`). An entry a model cannot take is skipped for that model with its reason on the
build report: fewer than 3 patches a side, or an input size already run under another entry.

Example
-------
>>> runs, skipped = model_resolutions([224, 330, "native", 20], "ViT-S/16", "vit-s", patch=16, native=(224, 224))
>>> [(r.label, r.size, r.run_id) for r in runs]
[('224', (224, 224), 'vit-s'), ('330', (336, 336), 'vit-s--336x336')]
>>> [s.reason for s in skipped]  # doctest: +NORMALIZE_WHITESPACE
['native is 224 x 224 px for 16 px patches, the input size of resolution 224: run once',
 '20 px rounds to 16 x 16 px: fewer than 3 patches of 16 px a side']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..clustering.align import align_to_reference, apply_mapping, colour_chains, resample_labels
from ..config import resolution_label, resolution_size
from ..inputs.geometry import snap_to_patch_multiple
from ..measures.pca import align_components
from ..records import PCA_VIEWS, ModelResult, SkippedItem, map_key, picture_key, recount_sizes, run_id
from .payloads import renumber_cluster_ids

MIN_PATCHES = 3  # the border measures compare a grid's outer ring with its interior, which 2 x 2 lacks


@dataclass(frozen=True)
class ResolutionRun:
    """One input size of one model: ``label`` as the config names it, ``requested`` (before
    rounding to whole patches), ``size`` (fed to the model), ``run_id`` (where its results are
    stored: the model's slug for the main resolution)."""

    label: str
    requested: tuple[int, int]
    size: tuple[int, int]
    run_id: str
    main: bool


def model_resolutions(entries: list, name: str, slug: str, *, patch: int,
                      native: tuple[int, int]) -> tuple[list[ResolutionRun], list[SkippedItem]]:
    """The runs of one model (``name``: its display name, for the build report) over the
    resolution ``entries`` (``[images] requested_resolutions()``), and the entries it skips."""
    runs: list[ResolutionRun] = []
    skipped: list[SkippedItem] = []
    for i, entry in enumerate(entries):
        label = resolution_label(entry)
        requested = resolution_size(entry) or tuple(native)
        size = snap_to_patch_multiple(requested, patch)
        what = f"resolution {label} of {name}"
        if min(size) < MIN_PATCHES * patch:
            skipped.append(SkippedItem(what, f"{label} px rounds to {size[0]} x {size[1]} px: fewer than "
                                             f"{MIN_PATCHES} patches of {patch} px a side"))
            continue
        same = next((r for r in runs if r.size == size), None)
        if same is not None:
            named = f"{label} is {size[0]} x {size[1]} px" if entry == "native" else \
                f"{label} px rounds to {size[0]} x {size[1]} px"
            skipped.append(SkippedItem(what, f"{named} for {patch} px patches, the input size of resolution "
                                             f"{same.label}: run once"))
            continue
        runs.append(ResolutionRun(label, requested, size, run_id(slug, size, i == 0), main=i == 0))
    return runs, skipped


def align_to_main(result: ModelResult, main: ModelResult) -> bool:
    """Same colour = same region across input sizes too: per K, every label map of ``result`` (a run
    at another size) renumbered by one mapping, the one that gives its colour chain's root (the
    tokens' deepest gallery block, :func:`atlas.clustering.align.colour_chains`) the ids of the main
    run's clusters it overlaps most (counted on the two grids' common grid). One mapping per K keeps
    the run's own alignment across blocks and representations. The clusters' sizes follow, and so do
    the maps of cluster ids beside the gallery (dominant cluster, blank probes, shift pairs). The
    PCA pictures likewise: per view, one reordering and flipping of the colour channels for all of
    the run's pictures (:func:`align_picture_channels`).

    Only between sizes of one aspect ratio: images are resized to cover the size and centre-cropped,
    so another aspect ratio shows another part of each image, and a patch of one grid is not the
    same region in the other (such a size keeps its own colours; Methods says so). Returns whether
    anything changed (an aligned run realigned changes nothing)."""
    chains = colour_chains(result.blocks, result.representations)
    if not chains or not chains[0][2]:
        return False
    root_rep, _, deep_first = chains[0]
    changed = False
    for view in PCA_VIEWS:
        root = picture_key(deep_first[0], root_rep, view)
        if root in result.pictures and root in main.pictures \
                and same_view(main.pictures[root].shape[1:3], result.pictures[root].shape[1:3]):
            order, flip = align_picture_channels(main.pictures[root], result.pictures[root])
            changed |= bool(flip.any() or (order != np.arange(len(order))).any())
            for b in result.blocks:
                for r in result.representations:
                    key = picture_key(b, r, view)
                    if key in result.pictures:
                        result.pictures[key] = recoloured(result.pictures[key], order, flip)
    for k in result.ks:
        root = map_key(deep_first[0], root_rep, k)
        if root not in result.label_maps or root not in main.label_maps \
                or not same_view(main.label_maps[root].shape[1:], result.label_maps[root].shape[1:]):
            continue
        mapping = align_to_reference(main.label_maps[root], result.label_maps[root], k, k)
        changed |= bool((mapping != np.arange(len(mapping))).any())
        for b in result.blocks:
            for r in result.representations:
                key = map_key(b, r, k)
                if key in result.label_maps:
                    result.label_maps[key] = apply_mapping(result.label_maps[key], mapping).astype(np.int16)
        renumber_cluster_ids(result.figures.get("heatmaps", []),
                             {(b, r, k): mapping for b in result.blocks for r in result.representations})
        recount_sizes([run for run in result.runs if run.k == k], result.label_maps)
    return changed


def same_view(grid: tuple[int, int], other: tuple[int, int], tolerance: float = 0.02) -> bool:
    """Whether two patch grids ``(rows, columns)`` show the same part of an image: the same aspect
    ratio, up to the rounding of sizes to whole patches.

    >>> same_view((14, 14), (20, 20)), same_view((14, 19), (20, 27)), same_view((14, 14), (14, 20))
    (True, True, False)
    """
    return abs(grid[0] * other[1] / (grid[1] * other[0]) - 1.0) <= tolerance


def align_picture_channels(reference: np.ndarray, pictures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The channel order and flips that make PCA pictures ``(N, h, w, 3)`` (uint8) follow the same
    images' ``reference`` pictures on another grid (:func:`atlas.measures.pca.align_components` on
    the colours, ``pictures`` resampled to the reference's grid, over patches coloured in both: the
    foreground recipe leaves background black). A flipped component's colour is 255 minus it, as
    :func:`atlas.measures.pca.apply_alignment` scales it. Returns ``(order, flip)``.

    >>> rng = np.random.default_rng(0)
    >>> ref = rng.integers(1, 256, size=(2, 4, 4, 3)).astype(np.uint8)
    >>> other = np.repeat(np.repeat(255 - ref[..., [2, 0, 1]], 2, axis=1), 2, axis=2)  # twice the grid
    >>> order, flip = align_picture_channels(ref, other)
    >>> order.tolist(), flip.tolist()
    ([1, 2, 0], [True, True, True])
    """
    grid = reference.shape[1:3]
    moved = resample_labels(np.moveaxis(pictures, -1, 1), grid)  # (N, 3, H, W), nearest
    moved = np.moveaxis(moved, 1, -1)
    both = (reference.max(axis=-1) > 0) & (moved.max(axis=-1) > 0)
    if both.sum() < 3:
        return np.arange(3), np.zeros(3, dtype=bool)
    order, signs = align_components(reference[both].astype(np.float64), moved[both].astype(np.float64))
    return order, signs < 0


def recoloured(pictures: np.ndarray, order: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """PCA pictures with their channels reordered and flipped (:func:`align_picture_channels`);
    black (background) patches stay black."""
    out = pictures[..., order].copy()
    coloured = pictures.max(axis=-1) > 0
    for c in np.flatnonzero(flip):
        out[..., c] = np.where(coloured, 255 - out[..., c], 0)
    return out
