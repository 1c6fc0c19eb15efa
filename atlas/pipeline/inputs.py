"""What the models are run on: the configured image set, the blank-input probes, the shift-test
windows, and the photos the site draws the cluster maps over.

Example
-------
>>> from atlas.config import parse_config
>>> cfg = parse_config('[images]\\nmax_images = 3\\n[[backbones]]\\ndisplay_name = "m"\\n'
...                    'timm_name = "vit_small_patch16_224"\\nweights = "random"\\ntraining = "random"')
>>> images, skipped = load_images(cfg)
>>> len(images), skipped[-1].reason.startswith("beyond max_images")
(3, True)
"""

from __future__ import annotations

import logging

import numpy as np

from ..config import AtlasConfig, resolution_size
from ..inputs.geometry import ResizePolicy, shift_windows
from ..inputs.images import AtlasImage, load_embedded_set, load_image_folder, memory_image
from ..inputs.manifest import load_manifest_set, parse_manifest
from ..records import SkippedItem, photo_key, thumbnail_key
from . import BuildError

log = logging.getLogger(__name__)

SHIFTS = (1, 2, 3, 4)  # shift-test offsets, in patches
SHIFT_IMAGES = 16  # images used by the shift test (each costs 1 + len(SHIFTS) extra windows per model)
THUMBNAIL_SIZE = 256  # longer side of the Images page thumbnails, in pixels


def load_images(cfg: AtlasConfig) -> tuple[list[AtlasImage], list[SkippedItem]]:
    """The configured image set in order, without duplicate pixels, capped at ``max_images``.

    Every image left out is returned as a :class:`SkippedItem` and logged once.
    """
    images: list[AtlasImage] = []
    skipped: list[SkippedItem] = []
    for s in cfg.images.sets:
        if s == "embedded":
            got, skip = load_embedded_set(max_pixels=cfg.images.max_pixels)
        elif getattr(s, "manifest", None):  # read from the download cache, never downloaded here
            manifest = parse_manifest(cfg.resolve_path(s.manifest), display=s.manifest)
            got, skip = load_manifest_set(
                manifest, cfg.resolve_path(cfg.images.download_dir), max_pixels=cfg.images.max_pixels,
                hint=f"run `python scripts/build_atlas.py --config {cfg.source_path} --download-only`")
        else:
            folder = cfg.resolve_path(s.folder)
            if not folder.is_dir():
                raise BuildError(f"image folder not found: {folder}; fix [images] sets in {cfg.source_path}")
            got, skip = load_image_folder(folder, max_pixels=cfg.images.max_pixels)
        images += got
        skipped += [x.item() for x in skip]  # the loaders have logged these already
    seen, unique = set(), []
    sides = [min(size) for e in cfg.images.requested_resolutions() if (size := resolution_size(e))]
    min_side, target = cfg.images.min_side, min(sides, default=224)  # the smallest size asked for
    for img in images:  # the same pixels twice would count twice in every statistic
        short = min(img.width, img.height)
        if short < min_side:
            item = SkippedItem(f"image {img.name}", f"{img.width}x{img.height} px: shorter side below "
                                                    f"[images] min_side = {min_side}")
            log.warning("skipped %s: %s", item.what, item.reason)
            skipped.append(item)
            continue
        if short < target:
            log.info("image %s (%dx%d px) is upscaled %.1fx to the model input", img.name, img.width, img.height,
                     target / short)
        if img.content_hash in seen:
            item = SkippedItem(f"image {img.name}", "duplicate pixels of an earlier image")
            log.warning("skipped %s: %s", item.what, item.reason)
            skipped.append(item)
            continue
        seen.add(img.content_hash)
        unique.append(img)
    if cfg.images.max_images:
        for img in unique[cfg.images.max_images:]:
            item = SkippedItem(f"image {img.name}", f"beyond max_images = {cfg.images.max_images}")
            log.info("skipped %s: %s", item.what, item.reason)
            skipped.append(item)
        unique = unique[: cfg.images.max_images]
    if len(unique) < 2:
        undownloaded = any(x.reason.startswith("not downloaded yet") for x in skipped)
        raise BuildError("fewer than 2 usable images; joint clustering needs several (check [images] sets"
                         + ("; manifest images are fetched by --download-only" if undownloaded else "") + ")")
    return unique, skipped


def shift_sets(images: list[AtlasImage], policy: ResizePolicy, patch: int) -> dict[int, list[AtlasImage]]:
    """Shift-test windows of the first :data:`SHIFT_IMAGES` images: ``{s: windows}`` for
    ``s`` in ``0`` and :data:`SHIFTS` (window ``s`` lies ``s`` patches right of window 0, see
    :func:`atlas.inputs.geometry.shift_windows`)."""
    out: dict[int, list[AtlasImage]] = {s: [] for s in (0, *SHIFTS)}
    for img in images[:SHIFT_IMAGES]:
        for s, window in shift_windows(img.load(), policy, patch, SHIFTS).items():
            out[s].append(memory_image(f"{img.name}@shift{s}", window, f"shift-test window of {img.name}"))
    return out


def photos(images: list[AtlasImage], sizes: set[tuple[int, int]]) -> dict[str, np.ndarray]:
    """The photos the site draws cluster maps over (every image at every model input size, as the
    model saw it) and the Images page thumbnails: ``{photo_key | thumbnail_key: uint8 (h, w, 3)}``."""
    out: dict[str, np.ndarray] = {}
    for img in images:
        pic = img.load()
        for size in sorted(sizes):
            out[photo_key(img.content_hash, size)] = np.asarray(ResizePolicy(*size).apply(pic))
        thumb = pic.copy()
        thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        out[thumbnail_key(img.content_hash)] = np.asarray(thumb)
    return out
