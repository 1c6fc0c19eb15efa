"""The pictures beside the cluster maps: joint PCA-RGB maps of every gallery (block,
representation), in both recipes (:mod:`atlas.measures.pca`), aligned across blocks and
representations the way the cluster colours are; stored as uint8 in ``ModelResult.pictures``;
and the prefix tokens' attention maps of a block (:mod:`atlas.measures.attention`), from the
queries and keys (kept on the device or cached), with the numbers read from them.

Example::

    fitted = {}
    for b, r in pairs:
        fitted.update(fit_pictures(patches_of(b, r), b, r))
    pictures = align_pictures(fitted, gallery_blocks, representations)
    pictures[picture_key(11, "keys", "pca")].shape   # (N, h, w, 3) uint8
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..clustering.align import colour_chains
from ..measures.attention import (NoPrefixTokens, attention_bias, attention_entropy, high_norm_attention,
                                  prefix_attention, ring_attention)
from ..measures.pca import align_components, apply_alignment, joint_pca_rgb
from ..records import PCA_VIEWS, attention_key, picture_key

#: Images whose every head is kept (the attention grid under the gallery); the head mean is kept for all.
ATTENTION_IMAGES = 4
#: What the attention measures need of a block's features.
ATTENTION_INPUTS = ("queries", "keys", "tokens")

_MODES = {"pca": "all", "pca-fg": "foreground"}


def fit_pictures(patches: Any, block: int, representation: str, device: Any = None) -> dict[str, dict]:
    """Both PCA recipes of one (block, representation)'s patch features (N, h, w, C), unaligned."""
    return {picture_key(block, representation, view): joint_pca_rgb(patches, mode=_MODES[view], device=device)
            for view in PCA_VIEWS}


def _aligned_to(reference: dict, result: dict) -> dict:
    """``result`` reordered and flipped to follow ``reference`` over the patches both fitted (in
    the foreground recipe: foreground in both); unchanged when fewer than 3 such patches."""
    both = np.ones(result["scores"].shape[:3], dtype=bool)
    for r in (reference, result):
        if r["foreground"] is not None:
            both &= r["foreground"]
    if both.sum() < 3:
        return result
    return apply_alignment(result, *align_components(reference["scores"][both], result["scores"][both]))


def align_pictures(fitted: dict[str, dict], blocks: list[int], representations: list[str]) -> dict[str, np.ndarray]:
    """RGB pictures whose colours follow their neighbours: per recipe, in the order of
    :func:`atlas.clustering.align.colour_chains` (as the cluster colours), each picture aligned to
    the (aligned) one before it in its chain."""
    out: dict[str, np.ndarray] = {}
    for view in PCA_VIEWS:
        aligned: dict[str, dict] = {}
        for rep, anchor, deep_first in colour_chains(blocks, representations):
            previous = aligned.get(picture_key(*anchor, view)) if anchor else None
            for b in deep_first:
                key = picture_key(b, rep, view)
                if key not in fitted:
                    continue
                aligned[key] = fitted[key] if previous is None else _aligned_to(previous, fitted[key])
                previous = aligned[key]
        out.update({key: result["rgb"] for key, result in aligned.items()})
    return out


def block_attention(run, block: int, q_prefix: Any, device: Any = None):
    """The prefix tokens' attention of one block over the run's images, from their prefix queries
    ``q_prefix`` (N, P, C) and the block's keys (and the block's additive bias, if its attention has
    one); None without prefix tokens."""
    k_patches, k_prefix = run.features(run.images, block, "keys")
    try:
        return prefix_attention(None, q_prefix, k_patches, k_prefix, run.loaded.card.num_heads,
                                bias=attention_bias(run.loaded.model, block), device=device)
    except NoPrefixTokens:
        return None


def attention_pictures(attn, block: int) -> dict[str, np.ndarray]:
    """``ModelResult.pictures`` entries of one block: every image's head mean, and every head of
    the first :data:`ATTENTION_IMAGES` images (float16 attention mass per patch)."""
    return {attention_key(block, "mean"): attn.head_mean.astype(np.float16),
            attention_key(block, "heads"): attn.maps[:ATTENTION_IMAGES].astype(np.float16)}


def attention_measures(attn, tokens: Any, weights: np.ndarray | None = None) -> tuple[dict[str, float], dict]:
    """Values and resampling replicates of the CLS (first prefix token) attention measures:
    entropy, share on the outer patch ring, share on high-norm tokens (registry names)."""
    found = {"attention_entropy": (attention_entropy(attn, weights=weights), "entropy"),
             "cls_ring_enrichment": (ring_attention(attn, weights=weights), "enrichment"),
             "cls_high_norm_enrichment": (high_norm_attention(attn, tokens, weights=weights), "enrichment")}
    values = {name: float(res[key]) for name, (res, key) in found.items()}
    reps = {name: np.asarray(res["replicates"][key]) for name, (res, key) in found.items() if "replicates" in res}
    return values, reps
