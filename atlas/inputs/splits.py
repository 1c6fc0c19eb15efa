"""Leak-free splits of a labelled image set into folds (selection, k-NN support, queries).

Driving and video datasets hold near-duplicate frames: a random split puts neighbouring frames on
both sides and a probe then scores near-copies of its support. Images are therefore split by
*group* (a capture group of ``group_regex`` on the image name, e.g. CamVid's sequence prefix
``0016E5``):

* with at least :data:`MIN_GROUPS_PER_FOLD` groups per fold, whole groups go to one fold each
  (groups shuffled with the seed, folds filled in order up to their share of images);
* otherwise the images, ordered by group and then by name (frame order), are cut into contiguous
  blocks in fold order, so only the frames at the block boundaries are neighbours across folds.

Without a group key every image is its own group (many groups: random whole-image split).

Example
-------
>>> names = [f"seq{s}_{f:03d}" for s in "AB" for f in range(6)]
>>> split = grouped_split(names, {"selection": 0.25, "support": 0.375, "query": 0.375}, r"^(seq\\w)_")
>>> split.kind, split.n_groups, split.fold_groups["selection"], split.fold_groups["query"]
('contiguous blocks', 2, ['seqA'], ['seqB'])
>>> [names[i] for i in split.folds["selection"]]
['seqA_000', 'seqA_001', 'seqA_002']
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["MIN_GROUPS_PER_FOLD", "SPLIT_KINDS", "Split", "frame_order", "grouped_split"]

#: Groups per fold needed to assign whole groups (fewer: contiguous blocks within groups).
MIN_GROUPS_PER_FOLD = 3

#: :attr:`Split.kind`: whole groups per fold, or the fallback (folds may share a group at a boundary).
SPLIT_KINDS = ("groups", "contiguous blocks")

_DIGITS = re.compile(r"(\d+)")


def frame_order(name: str) -> tuple:
    """Sort key of an image name in frame order: digit runs compare as numbers, so names without
    zero padding keep their order (``clip_2`` before ``clip_10``, which a plain string sort reverses).

    >>> sorted(["clip_10", "clip_2", "clip_1"], key=frame_order)
    ['clip_1', 'clip_2', 'clip_10']
    """
    return tuple((1, int(part), part) if part.isdigit() else (0, 0, part) for part in _DIGITS.split(str(name)))


@dataclass(frozen=True)
class Split:
    """Image indices of every fold (sorted) and the rule that made them, as ids and numbers (the
    site words them: :mod:`atlas.site.methods`).

    ``kind`` is ``"groups"`` (every group whole in one fold, groups shuffled with ``seed``) or
    ``"contiguous blocks"`` (too few groups: frame blocks, so a group may lie on both sides of a
    fold boundary); ``n_groups`` is the number of distinct groups.
    """

    folds: dict[str, np.ndarray]
    groups: list[str]  # group of every image
    kind: str = "groups"
    n_groups: int = 0
    seed: int = 0

    @property
    def fold_groups(self) -> dict[str, list[str]]:
        """The groups each fold holds (sorted; with contiguous blocks a group can be in two folds)."""
        return {f: sorted({self.groups[i] for i in idx}) for f, idx in self.folds.items()}


log = logging.getLogger(__name__)


def _groups(names: list[str], group_regex: str | None) -> list[str]:
    if not group_regex:
        return list(names)
    pattern = re.compile(group_regex)
    out, unmatched = [], 0
    for name in names:
        m = pattern.search(name)
        out.append(m.group(1) if m else name)
        unmatched += m is None
    if unmatched:  # frames taken for independent images: folds and intervals would trust them too much
        log.warning("group_regex %r matches %d of the %d image names (e.g. %r): each of the others is a group "
                    "of its own, split and resampled as an independent image; fix [evaluation] group_regex if "
                    "they are frames of a sequence", group_regex, len(names) - unmatched, len(names),
                    next(n for n in names if not pattern.search(n)))
    return out


def grouped_split(names: list[str], fractions: dict[str, float], group_regex: str | None = None,
                  seed: int = 0) -> Split:
    """Split images into folds of the given shares without splitting a group where possible.

    Parameters
    ----------
    names : list of str
        Image names (unique).
    fractions : dict fold -> share
        Positive shares summing to 1; fold order is the dict order (for contiguous blocks).
    group_regex : str, optional
        Regular expression with one capture group giving an image's group (no match: the image
        is its own group).
    seed : int
        Seed of the group shuffle.

    Returns
    -------
    Split
        Every fold gets at least one image.
    """
    n = len(names)
    if n < len(fractions):
        raise ValueError(f"{n} images cannot fill {len(fractions)} folds")
    shares = np.asarray(list(fractions.values()), dtype=np.float64)
    if (shares <= 0).any() or abs(shares.sum() - 1.0) > 1e-9:
        raise ValueError(f"fold shares must be positive and sum to 1, got {fractions}")
    groups = _groups(names, group_regex)
    distinct = sorted(set(groups))
    members = {g: sorted((i for i in range(n) if groups[i] == g), key=lambda i: frame_order(names[i]))
               for g in distinct}
    folds: dict[str, list[int]] = {f: [] for f in fractions}
    if len(distinct) >= MIN_GROUPS_PER_FOLD * len(fractions):
        order = [distinct[i] for i in np.random.default_rng([int(seed), 104729]).permutation(len(distinct))]
        targets = np.cumsum(shares) * n
        fold_names = list(fractions)
        f = 0
        for g in order:
            while f < len(fold_names) - 1 and len(sum(folds.values(), [])) >= targets[f] - 1e-9:
                f += 1
            folds[fold_names[f]] += members[g]
        kind = "groups"
    else:
        order = [i for g in distinct for i in members[g]]
        cuts = np.round(np.concatenate([[0.0], np.cumsum(shares)]) * n).astype(int)
        for f, fold in enumerate(fractions):
            folds[fold] += order[cuts[f]:cuts[f + 1]]
        kind = "contiguous blocks"
    empty = [f for f, idx in folds.items() if not idx]
    if empty:
        raise ValueError(f"fold {empty[0]!r} got no image ({n} images in {len(distinct)} groups); "
                         "use more images or other fractions")
    return Split({f: np.array(sorted(idx), dtype=np.int64) for f, idx in folds.items()}, groups, kind,
                 len(distinct), int(seed))
