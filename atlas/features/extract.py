"""Running a model over images (:func:`forward_batches`), into the opt-in feature cache, and
reading features back from it.

Extraction streams: images are decoded and preprocessed in a background thread, each batch is
run once for all requested blocks and representations (stopping after the last block), and its
features are handed on (kept for the analyses by :mod:`atlas.features.stream`, or written to the
cache in another thread) before the next batch is run. Anything already cached is not extracted
again.

Example::

    stats = extract_to_cache(loaded, images, blocks=[3, 11],
                             representations=["tokens", "keys"], cache=cache)
    patches, prefix = load_block(loaded, images, 11, "keys", cache)
    patches.shape   # (N, h, w, C)
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import block_representations
from ..fingerprint import source_fingerprint
from ..inputs.geometry import to_tensor
from ..inputs.images import AtlasImage
from ..measures.tensors import resolve_device
from .backbones import LoadedBackbone
from .cache import FeatureCache, NonFiniteFeatures
from .device import autocast, run_with_oom_halving
from .extractor import TokenExtractor

log = logging.getLogger(__name__)

WRITERS = 4


@dataclass
class ExtractionStats:
    images: int = 0
    extracted: int = 0  # images that went through the model
    cached: int = 0  # images whose every entry was already cached
    entries_written: int = 0
    seconds: float = 0.0
    batch_size: int = 0


def preprocessing_key(loaded: LoadedBackbone) -> str:
    """Everything about the input pipeline that changes the pixels the model sees."""
    card = loaded.card
    text = f"{loaded.policy.key}|input={card.input_size}|mean={card.mean}|std={card.std}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: The modules that make the pixels a model sees and run it: decoding (``inputs/images.py``), the
#: resize and normalisation (``inputs/geometry.py``) and this subpackage (loading, hooks, the pass).
_EXTRACTION_SOURCES = ("inputs/images.py", "inputs/geometry.py",
                       *(f"features/{p.name}" for p in Path(__file__).parent.glob("*.py")))


@functools.lru_cache(maxsize=2)
def extraction_fingerprint(package: Path | None = None) -> str:
    """The code and libraries that make a cached entry: :data:`_EXTRACTION_SOURCES` of ``package``
    (this package when None) as what runs (:func:`atlas.fingerprint.source_fingerprint`) and the
    timm and torch versions. A change to any of them gives new keys, so the opt-in cache never
    hands a recomputed model the features of the old code; a reworded docstring or comment keeps
    the cache."""
    import timm

    return source_fingerprint(package or Path(__file__).resolve().parents[1], _EXTRACTION_SOURCES,
                              seed=f"timm={timm.__version__}|torch={torch.__version__}")


def _entry_key(loaded: LoadedBackbone, image: AtlasImage, pre: str, precision: str) -> str:
    numeric = "" if precision == "fp32" else f"|precision={precision}"
    return FeatureCache.key(model=loaded.spec.timm_name + repr(sorted(loaded.spec.overrides.items())),
                            weights=loaded.weights_hash, image=image.content_hash,
                            preprocessing=f"{pre}{numeric}|code={extraction_fingerprint()}")


def extract_to_cache(loaded: LoadedBackbone, images: list[AtlasImage], blocks: list[int],
                     representations: list[str], cache: FeatureCache, *, device: torch.device | None = None,
                     batch_size: int = 8, progress: bool = True, desc: str = "",
                     precision: str = "fp32") -> ExtractionStats:
    """Extract every (block, representation) of every image that is not cached yet (the opt-in
    cache, ``[features] cache = true``; :func:`forward_batches` runs the model).

    Images go through the model's own input policy (``loaded.policy``) and normalisation; the model
    runs in ``precision`` (:func:`atlas.features.device.autocast`: exact fp32 by default).
    """
    device = resolve_device(device)  # None: the CPU
    stats = ExtractionStats(images=len(images), batch_size=batch_size)
    t0 = time.perf_counter()
    pre = preprocessing_key(loaded)
    pairs = block_representations(blocks, representations, loaded.card.depth)
    todo = []
    for img in images:
        key = _entry_key(loaded, img, pre, precision)
        if cache.has(key, pairs):
            stats.cached += 1
        else:
            todo.append((img, key))
    if not todo:
        stats.seconds = time.perf_counter() - t0
        return stats

    n_prefix = loaded.card.num_prefix_tokens
    gh, gw = loaded.grid

    def write_image(item, j, feats):
        img, key = item
        try:
            cache.put(key, {pair: feats[pair][j] for pair in pairs}, n_prefix=n_prefix, grid=(gh, gw))
        except NonFiniteFeatures as exc:
            raise NonFiniteFeatures(f"{loaded.spec.display_name}: {img.name}: {exc}") from None
        return len(pairs)

    pending: list = []
    # One file per image, written in other threads (file-system calls release the GIL) while the
    # next batch runs. At most two batches wait to be written (bounded memory).
    with ThreadPoolExecutor(max_workers=WRITERS) as writer:
        for start, batch, out in forward_batches(loaded, [img for img, _ in todo], blocks, representations,
                                                 device=device, batch_size=batch_size, progress=progress,
                                                 desc=desc or f"extract {loaded.spec.display_name}",
                                                 precision=precision):
            # on the CPU now, so the GPU batch can be freed before the write finishes
            feats = {k: v.cpu().numpy() for k, v in out.items()}
            while len(pending) > 2 * len(batch):
                stats.entries_written += pending.pop(0).result()
            pending += [writer.submit(write_image, todo[start + j], j, feats) for j in range(len(batch))]
            stats.extracted += len(batch)
        for f in pending:
            stats.entries_written += f.result()
    stats.seconds = time.perf_counter() - t0
    return stats


def forward_batches(loaded: LoadedBackbone, images: list[AtlasImage], blocks: list[int], representations: list[str],
                    *, device: torch.device, batch_size: int = 8, progress: bool = False, desc: str = "",
                    precision: str = "fp32"):
    """One forward pass of ``images`` through the model, stopping after the last of ``blocks``:
    yields ``(start, batch images, {(block, representation): float16 tensor (B, T, C) on device})``.

    The one way the atlas runs a model over images (into the cache, or kept for the analyses).
    Images are decoded and preprocessed in a background thread while the previous batch runs;
    a CUDA out-of-memory halves the batch. float16 is what the analyses see either way.
    """
    model = loaded.model.to(device)
    extractor = TokenExtractor(model, blocks, representations)
    model_policy = loaded.policy
    mean, std = loaded.card.mean, loaded.card.std
    position = {id(img): i for i, img in enumerate(images)}
    futures: dict = {}

    def prepare(img):
        return to_tensor(model_policy.apply(img.load()), mean, std)

    def prefetch(start: int, stop: int):
        for i in range(start, min(stop, len(images))):
            if i not in futures:
                futures[i] = loader.submit(prepare, images[i])

    def run(batch):
        start = position[id(batch[0])]
        prefetch(start, start + len(batch))
        # decode the next batch while this one runs through the model
        prefetch(start + len(batch), start + 2 * len(batch))
        x = torch.stack([futures.pop(start + j).result() for j in range(len(batch))]).to(device)
        with autocast(device, precision):
            out = extractor(x)
        return start, {k: v.to(torch.float16) for k, v in out.items()}

    bar = tqdm(total=len(images), desc=desc or f"extract {loaded.spec.display_name}", unit="img",
               disable=not progress, leave=False)
    try:
        with ThreadPoolExecutor(max_workers=2) as loader:
            for batch, (start, out) in run_with_oom_halving(run, images, batch_size, device):
                yield start, batch, out
                bar.update(len(batch))
    finally:
        bar.close()


class NotCached(KeyError):
    """Features that :func:`load_block` did not find (never extracted, or damaged and moved aside)."""

    def __init__(self, message: str, images: list[AtlasImage]):
        super().__init__(message)
        self.images = images


def load_block(loaded: LoadedBackbone, images: list[AtlasImage], block: int, representation: str,
               cache: FeatureCache, dtype=np.float32, precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """Stack cached features of all images: patches (N, h, w, C) and prefix (N, P, C).

    Raises :class:`NotCached` listing every image whose features are absent (or were found
    damaged, reported and moved aside by the cache): extract those again and retry.
    """
    pre = preprocessing_key(loaded)
    patches = prefixes = None
    missing: list[AtlasImage] = []
    for i, img in enumerate(images):
        got = cache.get(_entry_key(loaded, img, pre, precision), block, representation)
        if got is None:
            missing.append(img)
            continue
        if missing:
            continue  # only looking for the other missing images now
        if patches is None:  # converted into place: one copy in ``dtype``, no float16 stack
            patches = np.empty((len(images), *got[0].shape), dtype=dtype)
            prefixes = np.empty((len(images), *got[1].shape), dtype=dtype)
        # torch's vectorised float16 conversion: ~4x numpy's casting assignment
        torch.from_numpy(patches[i]).copy_(torch.from_numpy(got[0]))
        torch.from_numpy(prefixes[i]).copy_(torch.from_numpy(got[1]))
    if missing:
        raise NotCached(f"{loaded.spec.display_name}: block {block} {representation} of {len(missing)} image(s) "
                        f"({missing[0].name}, ...) is not cached; extract first", missing)
    if patches is None:
        raise ValueError("load_block needs at least one image")
    return patches, prefixes
