"""Features in memory while their analyses run: one forward pass per chunk of blocks.

A model's analyses need, for every (block, representation) pair, the features of every image of
several image sets: the atlas images, the blank probes, the shift windows, the evaluation images.
Stored, they are the bulk of a build (the zoo at native resolution: about 1 TB); computed, they cost
a forward pass. So they live only while their analyses run:

* :func:`plan_chunks` splits the pairs, in block order, into chunks whose features fit a byte
  budget (``[features] memory_gb``);
* :meth:`FeatureStream.fill` runs each image set once through the model, stopping after the
  chunk's last block, and keeps the chunk's pairs as float16 -- the values the feature cache stores,
  so results depend neither on the chunking nor on the cache;
* the analyses read them (:meth:`FeatureStream.get`); :meth:`FeatureStream.release` frees them.

A pair asked for outside its chunk (or of an image set that was not announced) is computed on
demand, by a pass for that pair alone, and counted (:attr:`FeatureStream.on_demand`). With the
opt-in feature cache (``[features] cache = true``) passes write there, and a later build reads
what it holds instead of running the model.

Example
-------
>>> plan_chunks([(0, "keys"), (0, "values"), (1, "keys")], {(0, "keys"): 4, (0, "values"): 4, (1, "keys"): 4},
...             budget=8)
[[(0, 'keys'), (0, 'values')], [(1, 'keys')]]
>>> plan_chunks([(0, "keys")], {(0, "keys"): 10}, budget=8)
Traceback (most recent call last):
...
atlas.features.stream.FeatureBudgetError: [features] memory_gb = 8e-09 holds no (block, representation) pair: block 0 keys of all image sets takes 1e-08 GB; set memory_gb to at least 1e-08
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ..config import block_representations
from ..inputs.images import AtlasImage
from ..measures.tensors import resolve_device
from .backbones import LoadedBackbone
from .cache import GB, FeatureCache, NonFiniteFeatures
from .extract import NotCached, extract_to_cache, forward_batches, load_block
from .extractor import TokenExtractor

log = logging.getLogger(__name__)

__all__ = ["FeatureBudgetError", "FeatureStream", "image_set_key", "plan_chunks"]

Pair = tuple[int, str]


class FeatureBudgetError(ValueError):
    """A feature budget that holds no single (block, representation) pair; one line naming the
    smallest budget that works."""


def image_set_key(images: list[AtlasImage]) -> tuple:
    """What names an image set among the kept features: its images' names and contents."""
    return tuple((img.name, img.content_hash) for img in images)


def _gb(n: float) -> str:
    return f"{n / GB:.3g}"


def plan_chunks(pairs: Iterable[Pair], sizes: Mapping[Pair, int], budget: float | None) -> list[list[Pair]]:
    """``pairs`` (in block order) split into consecutive chunks whose ``sizes`` (bytes of features
    kept per pair) add up to at most ``budget`` bytes; one chunk when ``budget`` is None.

    A block's pairs stay in one chunk whenever the block fits the budget (the attention of a block
    reads its queries, keys and tokens together); a block larger than the budget is split.
    Raises :class:`FeatureBudgetError` when a single pair does not fit.
    """
    pairs = list(pairs)
    if budget is None:
        return [pairs] if pairs else []
    too_big = [p for p in pairs if sizes[p] > budget]
    if too_big:
        b, r = too_big[0]
        raise FeatureBudgetError(
            f"[features] memory_gb = {_gb(budget)} holds no (block, representation) pair: block {b} {r} of all "
            f"image sets takes {_gb(sizes[too_big[0]])} GB; set memory_gb to at least {_gb(max(sizes.values()))}")
    blocks: dict[int, list[Pair]] = {}
    for pair in pairs:
        blocks.setdefault(pair[0], []).append(pair)
    chunks: list[list[Pair]] = []
    used = 0.0
    for group in blocks.values():
        size = sum(sizes[p] for p in group)
        parts = [group] if size <= budget else [[p] for p in group]
        for i, part in enumerate(parts):
            part_size = sum(sizes[p] for p in part)
            # a split block starts a chunk of its own, and its pairs are packed greedily
            if not chunks or used + part_size > budget or (len(parts) > 1 and i == 0):
                chunks.append([])
                used = 0.0
            chunks[-1] += part
            used += part_size
    return chunks


@dataclass
class ImageSet:
    """Images that go through the model together, and the pairs they are needed for (None: all)."""

    name: str
    images: list[AtlasImage]
    pairs: frozenset | None = None

    def needs(self, pair: Pair) -> bool:
        return self.pairs is None or pair in self.pairs


class FeatureStream:
    """The features of one model's image sets, a chunk of (block, representation) pairs at a time.

    Parameters
    ----------
    loaded : the model.
    device : where the model runs.
    keep_device : where kept features live (the analysis device: a GPU, else the CPU).
    batch_size, precision : of the forward passes (``[features]``).
    cache : the opt-in feature cache (None: features are never written).
    progress : progress bars of the passes.
    """

    def __init__(self, loaded: LoadedBackbone, *, device: torch.device, keep_device: torch.device | None = None,
                 batch_size: int = 8, precision: str = "fp32", cache: FeatureCache | None = None,
                 progress: bool = False):
        self.loaded, self.device = loaded, torch.device(device)
        self.keep_device = resolve_device(keep_device)  # None: the CPU
        self.batch_size, self.precision, self.cache, self.progress = batch_size, precision, cache, progress
        self.sets: dict[str, ImageSet] = {}
        self._names: dict[tuple, list[str]] = {}  # one image list may be several sets (same images)
        self._kept: dict[tuple, torch.Tensor] = {}
        self._shapes: dict[Pair, tuple[int, int]] = {}
        # one forward pass at a time: extraction hooks the model's modules
        self._lock = threading.RLock()
        self.passes = 0  # chunk passes (fill)
        self.on_demand: list[str] = []  # pairs computed outside their chunk
        self._cache_short = False

    # ------------------------------------------------------------------ announcing and planning

    def add(self, name: str, images: list[AtlasImage], pairs: Iterable[Pair] | None = None) -> None:
        """Announce an image set, needed for ``pairs`` (None: every pair the model run analyses)."""
        if not images:
            return
        self.sets[name] = ImageSet(name, list(images), frozenset(pairs) if pairs is not None else None)
        names = self._names.setdefault(image_set_key(images), [])
        if name not in names:
            names.append(name)

    def shapes(self, pairs: Iterable[Pair]) -> dict[Pair, tuple[int, int]]:
        """(tokens, channels) per image of every pair, from one blank image through the model."""
        missing = sorted(set(pairs) - set(self._shapes))
        if missing:
            blocks = sorted({b for b, _ in missing})
            reps = sorted({r for _, r in missing})
            h, w = self.loaded.card.input_size
            model = self.loaded.model.to(self.device)
            with self._lock:
                out = TokenExtractor(model, blocks, reps)(torch.zeros(1, 3, h, w, device=self.device))
            self._shapes.update({p: tuple(out[p].shape[1:]) for p in out if isinstance(p, tuple) and p[1] in reps})
        return {p: self._shapes[p] for p in pairs}

    def pair_bytes(self, pairs: Iterable[Pair]) -> dict[Pair, int]:
        """float16 bytes each pair keeps: the images of every set that needs it x tokens x channels x 2."""
        pairs = list(pairs)
        shapes = self.shapes(pairs)
        return {p: 2 * shapes[p][0] * shapes[p][1] * sum(len(s.images) for s in self.sets.values() if s.needs(p))
                for p in pairs}

    # ------------------------------------------------------------------ passes

    def fill(self, chunk: list[Pair], desc: str = "") -> None:
        """One pass of every announced image set for the pairs of ``chunk`` it needs; kept until
        :meth:`release` (which runs first)."""
        self.release()
        with self._lock:
            for s in self.sets.values():
                siblings = self._names[image_set_key(s.images)]  # the same images announced twice
                want = []
                for p in chunk:
                    if not s.needs(p):
                        continue
                    same = self._kept_of(siblings, p)
                    if same is not None:
                        self._kept[(s.name, *p)] = same
                    else:
                        want.append(p)
                if want:
                    got = self._compute(s.images, want, f"{desc} {s.name}".strip())
                    self._kept.update({(s.name, *p): t for p, t in got.items()})
            self.passes += 1

    def get(self, images: list[AtlasImage], block: int, rep: str) -> torch.Tensor:
        """The float16 tokens (N, T, C) of ``images`` at ``(block, rep)`` on :attr:`keep_device`:
        kept by :meth:`fill`, else computed now (counted in :attr:`on_demand`)."""
        names = self._names.get(image_set_key(images), [])
        kept = self._kept_of(names, (block, rep))
        if kept is not None:
            return kept
        name = names[0] if names else None
        with self._lock:
            self.on_demand.append(f"{name or f'{len(images)} images'}: block {block} {rep}")
            return self._compute(images, [(block, rep)], f"block {block} {rep} of {name or 'images'}")[(block, rep)]

    def extract(self, images: list[AtlasImage], pairs: list[Pair], desc: str = "") -> dict[Pair, torch.Tensor]:
        """The float16 tokens (N, T, C) of ``images`` at every pair of ``pairs``, from one pass (or
        the opt-in cache), not kept: for an analysis that walks its own images piece by piece
        (label propagation, a sequence at a time)."""
        with self._lock:
            return self._compute(list(images), list(pairs), desc)

    def _kept_of(self, names: list[str], pair: Pair) -> torch.Tensor | None:
        """The kept tokens of ``pair`` under any of ``names`` (sets of the same images), else None."""
        return next((self._kept[(n, *pair)] for n in names if (n, *pair) in self._kept), None)

    def release(self) -> None:
        """Free the kept features (on a GPU, also the allocator's cache of them, so that the free
        memory the next budget is taken from counts them)."""
        self._kept.clear()
        if self.keep_device.type == "cuda":
            torch.cuda.empty_cache()

    def kept_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in {id(t): t for t in self._kept.values()}.values())

    def _compute(self, images: list[AtlasImage], pairs: list[Pair], desc: str) -> dict[Pair, torch.Tensor]:
        blocks = sorted({b for b, _ in pairs})
        reps = sorted({r for _, r in pairs})
        label = f"{self.loaded.card.display_name}: {desc}"
        if self.cache is not None and not self._cache_short:
            got = self._through_cache(images, pairs, blocks, reps, label)
            if got is not None:
                return got
        return self._forward(images, pairs, blocks, reps, label)

    def _forward(self, images, pairs, blocks, reps, label) -> dict[Pair, torch.Tensor]:
        out: dict[Pair, torch.Tensor] = {}
        for start, batch, feats in forward_batches(self.loaded, images, blocks, reps, device=self.device,
                                                   batch_size=self.batch_size, progress=self.progress, desc=label,
                                                   precision=self.precision):
            for pair in pairs:
                t = feats[pair]
                if not bool(torch.isfinite(t).all()):  # as the cache refuses them: they would break every analysis
                    bad = next(img.name for j, img in enumerate(batch) if not bool(torch.isfinite(t[j]).all()))
                    raise NonFiniteFeatures(f"{self.loaded.spec.display_name}: {bad}: block {pair[0]} {pair[1]} "
                                            "holds NaN or infinite values as float16, in which features are kept "
                                            "(NaN from the weights, or values beyond +-65504); check the weights")
                if pair not in out:
                    out[pair] = torch.empty((len(images), *t.shape[1:]), dtype=torch.float16, device=self.keep_device)
                out[pair][start:start + len(batch)].copy_(t)
        return out

    def _through_cache(self, images, pairs, blocks, reps, label) -> dict[Pair, torch.Tensor] | None:
        """Extract what the cache lacks (written there), then read every image from it; entries
        found damaged on reading (moved aside by the cache) are extracted again, once. None when
        the cache cannot hold the images of one pass (its bound evicts them before they are read):
        then the pass runs without it."""
        extract = dict(device=self.device, batch_size=self.batch_size, progress=self.progress,
                       precision=self.precision)
        extract_to_cache(self.loaded, images, blocks, reps, self.cache, desc=label, **extract)
        try:
            return self._read(images, pairs)
        except NotCached as exc:
            every = block_representations(blocks, reps, self.loaded.card.depth)
            extract_to_cache(self.loaded, exc.images, sorted({b for b, _ in every}), reps, self.cache,
                             desc=f"{label} (again)", **extract)
        try:
            return self._read(images, pairs)
        except NotCached:
            if not self._cache_short:
                log.warning("feature cache: %s: the images of one pass do not fit [features] cache_gb (the oldest "
                            "were evicted before they were read); such passes run without the cache",
                            self.loaded.card.display_name)
            self._cache_short = True
            return None

    def _read(self, images, pairs) -> dict[Pair, torch.Tensor]:
        """Every pair of ``images`` from the cache (:func:`atlas.features.extract.load_block`, which
        raises NotCached naming the images it lacks), as the float16 tokens a pass keeps."""
        out = {}
        for pair in pairs:
            patches, prefix = load_block(self.loaded, images, *pair, self.cache, dtype=np.float16,
                                         precision=self.precision)
            tokens = np.concatenate([prefix, patches.reshape(len(images), -1, patches.shape[-1])], axis=1)
            out[pair] = torch.from_numpy(tokens).to(self.keep_device)
        return out


def default_budget(stream_device: torch.device, *, reserved: int, available: Callable[[], int | None]) -> int | None:
    """Bytes of features to keep when ``[features] memory_gb`` is not set: on a GPU what its free
    memory leaves after ``reserved`` (the model, the analyses running at once) and a tenth of the
    card (extraction batches), at most half the free memory; on the CPU half of what ``available()``
    says is free after ``reserved``. None when nothing can be measured (no limit)."""
    if stream_device.type == "cuda":
        free, total = torch.cuda.mem_get_info(stream_device)
        return int(max(0, min(free // 2, free - reserved - total // 10)))
    free = available()
    if free is None:
        return None
    return int(max(0, (free - reserved) // 2))
