"""Segmentation images: cluster maps coloured with the site palette, bare and over the photo.

Two images per (image, block, representation, K): the *bare* cluster map (flat colour blocks,
stored lossless: a few hundred bytes) and the *overlay* (map blended over the photo, lossy
WebP q=80). Patch cells are upsampled with nearest neighbour so every patch stays one crisp
colour block. Files are written atomically (:mod:`atlas.files`). libwebp is deterministic for a
given input, settings and libwebp version (single-threaded encoder), so rebuilding gives
byte-identical files (checked in tests/test_render.py).

:func:`write_maps` draws every gallery of the records (model runs, comparison columns), the Home
overview and the Images page thumbnails into the docs dir, from the stored label maps and photos
alone; a map whose labels and photo are unchanged since the last render is not encoded again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ..clustering.align import resample_labels
from ..files import atomic_path, atomic_write
from ..records import AtlasResults, map_key, photo_key, thumbnail_key
from . import paths
from .overview import OVERVIEW_SIZE, overview_cells, overview_image
from .palette import palette as site_palette

__all__ = [
    "label_map_to_rgb",
    "upsample_nearest",
    "overlay",
    "save_webp",
    "save_segmentation_pair",
    "save_picture_pair",
    "attention_to_rgb",
    "write_maps",
]


def label_map_to_rgb(labels, palette=None) -> np.ndarray:
    """Colour a label map: (h, w) int -> (h, w, 3) uint8.

    Parameters
    ----------
    labels : int array of shape (h, w)
    palette : (K, 3) uint8 array, optional
        Colour of each id; defaults to the site palette with ``labels.max() + 1`` colours.

    Examples
    --------
    >>> label_map_to_rgb(np.array([[0, 1]]), np.array([[255, 0, 0], [0, 0, 255]], np.uint8)).tolist()
    [[[255, 0, 0], [0, 0, 255]]]
    """
    labels = _check_labels(labels)
    if palette is None:
        palette = site_palette(int(labels.max()) + 1)
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3:
        raise ValueError(f"palette must have shape (K, 3), got {palette.shape}")
    if labels.max() >= len(palette):
        raise ValueError(
            f"label {labels.max()} has no colour: the palette has {len(palette)}; pass a longer palette"
        )
    return palette.astype(np.uint8)[labels]


def upsample_nearest(labels, size) -> np.ndarray:
    """Nearest-neighbour upsampling of a (h, w) label map to ``size = (H, W)``.

    Same rule as :func:`atlas.clustering.align.resample_labels` (an integer factor f turns each
    patch into an exact f x f block).

    Examples
    --------
    >>> upsample_nearest(np.array([[0, 1]]), (2, 4)).tolist()
    [[0, 0, 1, 1], [0, 0, 1, 1]]
    """
    return resample_labels(_check_labels(labels), size)


def overlay(photo, labels, alpha: float = 0.55, *, palette=None, boundaries: bool = True,
            boundary_color=(255, 255, 255)) -> Image.Image:
    """Blend a cluster map over a photo.

    Parameters
    ----------
    photo : (H, W, 3) uint8 array or PIL image
        The photo; the output has its size.
    labels : int array of shape (h, w)
        Patch cluster map, upsampled to (H, W) with nearest neighbour.
    alpha : float in [0, 1], default 0.55
        Weight of the cluster colours (0: photo only, 1: map only).
    palette : (K, 3) uint8 array, optional
        Defaults to the site palette.
    boundaries : bool, default True
        Draw 1-pixel lines where the cluster changes (helps when colours are hard to tell apart).
    boundary_color : RGB triple, default white

    Returns
    -------
    PIL.Image.Image (RGB)

    Examples
    --------
    >>> img = overlay(np.zeros((32, 32, 3), np.uint8), np.array([[0, 1], [1, 0]]))
    >>> img.size
    (32, 32)
    """
    rgb = np.asarray(photo.convert("RGB") if isinstance(photo, Image.Image) else photo)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"photo must be an (H, W, 3) uint8 array or a PIL image, got {rgb.shape} {rgb.dtype}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    H, W = rgb.shape[:2]
    up = upsample_nearest(labels, (H, W))
    colours = label_map_to_rgb(up, palette).astype(np.float32)
    out = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colours
    if boundaries:
        edge = np.zeros((H, W), dtype=bool)
        edge[:, 1:] |= up[:, 1:] != up[:, :-1]
        edge[1:, :] |= up[1:, :] != up[:-1, :]
        out[edge] = np.asarray(boundary_color, dtype=np.float32)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


def save_webp(img, path, quality: int = 80, *, lossless: bool = False) -> Path:
    """Write ``img`` (PIL image or uint8 array) as WebP, atomically; returns the path.

    Examples
    --------
    >>> import tempfile, os
    >>> p = save_webp(np.zeros((4, 4, 3), np.uint8), os.path.join(tempfile.mkdtemp(), "a.webp"), lossless=True)
    >>> p.suffix, p.exists()
    ('.webp', True)
    """
    if not 0 <= int(quality) <= 100:
        raise ValueError(f"quality must lie in [0, 100], got {quality}")
    if not isinstance(img, Image.Image):
        img = Image.fromarray(np.asarray(img))
    path = Path(path)
    with atomic_path(path) as tmp:
        # method=4: within 1% of method 6's size here, at 1/3 of the time (lossy) and
        # 1/500 (lossless, where method 6 with quality 100 takes over a second per image)
        img.save(tmp, format="WEBP", quality=int(quality), lossless=lossless, method=4)
    return path


def save_segmentation_pair(photo, labels, overlay_path, bare_path, *, palette=None, alpha: float = 0.55,
                           boundaries: bool = True, quality: int = 80) -> tuple[Path, Path]:
    """Write the overlay (lossy WebP) and the bare map (lossless WebP) of one labelled image.

    The bare map is upsampled to the photo size too, so both images of a gallery entry line up.

    Returns
    -------
    (overlay_path, bare_path) as :class:`pathlib.Path`

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> o, b = save_segmentation_pair(np.zeros((32, 32, 3), np.uint8), np.array([[0, 1], [1, 0]]),
    ...                               os.path.join(d, "o.webp"), os.path.join(d, "b.webp"))
    >>> Image.open(b).size
    (32, 32)
    """
    rgb = np.asarray(photo.convert("RGB") if isinstance(photo, Image.Image) else photo)
    ov = overlay(rgb, labels, alpha, palette=palette, boundaries=boundaries)
    bare = label_map_to_rgb(upsample_nearest(labels, rgb.shape[:2]), palette)
    return (save_webp(ov, overlay_path, quality=quality),
            save_webp(bare, bare_path, quality=50, lossless=True))


def save_picture_pair(photo, rgb, overlay_path, bare_path, *, alpha: float = 0.65,
                      quality: int = 80) -> tuple[Path, Path]:
    """Write the overlay (lossy WebP) and the bare picture (lossless WebP) of one (h, w, 3) uint8
    patch picture (a PCA-RGB map or a coloured attention map), upsampled with nearest neighbour
    to the photo's size so every patch stays one block of colour."""
    photo = np.asarray(photo.convert("RGB") if isinstance(photo, Image.Image) else photo)
    h, w = photo.shape[:2]
    up = np.asarray(Image.fromarray(np.asarray(rgb, dtype=np.uint8)).resize((w, h), Image.Resampling.NEAREST))
    blend = np.rint((1.0 - alpha) * photo.astype(np.float32) + alpha * up.astype(np.float32)).astype(np.uint8)
    return (save_webp(blend, overlay_path, quality=quality), save_webp(up, bare_path, quality=50, lossless=True))


@functools.lru_cache(maxsize=4)
def _lut(colorscale: str) -> np.ndarray:
    from plotly.colors import sample_colorscale, unlabel_rgb

    return np.array([unlabel_rgb(c) for c in sample_colorscale(colorscale, np.linspace(0.0, 1.0, 256).tolist())],
                    dtype=np.float64).round().astype(np.uint8)


def attention_to_rgb(maps, colorscale: str = "Inferno") -> np.ndarray:
    """Colour attention maps (..., h, w): each map divided by its own largest patch value (0 = no
    attention, 1 = the map's most attended patch), then Plotly's ``colorscale``. Returns uint8
    (..., h, w, 3).

    >>> attention_to_rgb(np.array([[0.0, 0.5], [0.25, 0.5]])).shape
    (2, 2, 3)
    """
    a = np.asarray(maps, dtype=np.float32)
    peak = a.max(axis=(-2, -1), keepdims=True)
    unit = np.divide(a, peak, out=np.zeros_like(a), where=peak > 0)
    return _lut(colorscale)[np.clip(np.rint(unit * 255), 0, 255).astype(np.intp)]


def _check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D (h, w) map, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.size == 0:
        raise ValueError("labels must not be empty")
    if labels.min() < 0:
        raise ValueError(f"labels must be >= 0, got {labels.min()}")
    return labels


# ---------------------------------------------------------------------------------- the galleries

MAPS_VERSION = "1"  # bump when the drawing changes: every map is drawn again
MANIFEST = "generated/.maps.json"  # dot-file: MkDocs does not publish it


def _digest(array: np.ndarray, photo: str) -> str:
    h = hashlib.sha256(f"{MAPS_VERSION}|{photo}|{array.shape}|".encode())
    if np.issubdtype(array.dtype, np.integer) and array.ndim == 2:  # label maps
        h.update(np.ascontiguousarray(array, dtype=np.int16).tobytes())
    else:  # pictures: (h, w, 3) uint8
        h.update(f"{array.dtype}|".encode() + np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:24]


def write_maps(results: AtlasResults, docs_dir: str | os.PathLike, workers: int | None = None) -> dict:
    """Draw every gallery image and thumbnail of ``results`` into ``docs_dir``.

    Returns ``{"models": {(slug, map_key): entries}, "comparisons": {(slug, column key): entries},
    "overview": {(slug, map_key): path}, "thumbnails": {image name: path}}`` with ``entries`` one
    ``{"image", "overlay", "bare"}`` per image (docs-dir relative paths). Files under ``generated/``
    that no record names any more are removed, so the folder always mirrors the records.
    """
    docs_dir = Path(docs_dir)
    images = results.images
    try:
        before = json.loads((docs_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        before = {}
    manifest: dict[str, str] = {}
    jobs = []  # (overlay path, bare path, photo array key, labels (h, w) or picture (h, w, 3) of one image)
    out: dict = {"models": {}, "comparisons": {}, "thumbnails": {}, "pictures": {}}

    def plan(stem_of, stack: np.ndarray, size) -> list[dict[str, str]]:
        entries = []
        for i, img in enumerate(images[: len(stack)]):
            stem = stem_of(img)
            key = photo_key(img.content_hash, size)
            manifest[stem] = _digest(stack[i], key)
            overlay_path, bare_path = f"{stem}-overlay.webp", f"{stem}-map.webp"
            if before.get(stem) != manifest[stem] or not all((docs_dir / p).is_file() for p in (overlay_path, bare_path)):
                jobs.append((overlay_path, bare_path, key, stack[i]))
            entries.append({"image": img.name, "overlay": overlay_path, "bare": bare_path})
        return entries

    for m in results.models:
        size = tuple(m.card.input_size)
        for run in m.runs:
            key = map_key(run.block, run.representation, run.k)
            if key in m.label_maps:
                out["models"][(m.card.slug, key)] = plan(
                    lambda img, r=run: paths.model_map(m.card.slug, r.block, r.representation, r.k, img.name,
                                                       img.content_hash), m.label_maps[key], size)
        for key, stack in _picture_stacks(m):
            out["pictures"][(m.card.slug, key)] = plan(
                lambda img, k=key: paths.model_picture(m.card.slug, k, img.name, img.content_hash), stack, size)
    sizes = {m.card.slug: tuple(m.card.input_size) for m in results.models}
    for c in results.comparisons:
        for p in c.panels:
            for col in p.get("columns", []):
                key = col["maps"]
                if key in c.label_maps and col["model"] in sizes:
                    out["comparisons"][(c.slug, key)] = plan(
                        lambda img, k=key: paths.comparison_map(c.slug, k, img.name, img.content_hash),
                        c.label_maps[key], sizes[col["model"]])
    overview_jobs = []  # (path, photo array key, labels of the overview image)
    out["overview"] = {}
    first = overview_image(results)
    if first is not None:
        index = [img.name for img in images].index(first.name)
        for m in results.models:
            key = photo_key(first.content_hash, tuple(m.card.input_size))
            for cell in overview_cells(results)[m.card.slug]:
                stack = m.label_maps[cell["key"]]
                if index >= len(stack):
                    continue
                path = paths.overview_map(m.card.slug, cell["key"], first.name, first.content_hash)
                out["overview"][(m.card.slug, cell["key"])] = path
                manifest[path[:-5]] = f"{_digest(stack[index], key)}|{OVERVIEW_SIZE}"
                if before.get(path[:-5]) != manifest[path[:-5]] or not (docs_dir / path).is_file():
                    overview_jobs.append((path, key, stack[index]))
    thumbs = []
    for img in images:
        path = paths.thumbnail(img.name, img.content_hash)
        out["thumbnails"][img.name] = path
        stem = path[:-5]
        manifest[stem] = f"{MAPS_VERSION}|{img.content_hash}"
        if before.get(stem) != manifest[stem] or not (docs_dir / path).is_file():
            thumbs.append((path, thumbnail_key(img.content_hash)))

    def draw(job) -> None:
        overlay_path, bare_path, key, array = job
        save = save_segmentation_pair if array.ndim == 2 else save_picture_pair
        save(results.photos[key], array, docs_dir / overlay_path, docs_dir / bare_path)

    def draw_small(job) -> None:
        path, key, labels = job
        photo = Image.fromarray(results.photos[key])
        photo.thumbnail((OVERVIEW_SIZE, OVERVIEW_SIZE), Image.Resampling.BOX)
        save_webp(overlay(photo, labels), docs_dir / path, quality=80)

    # libwebp and the PIL codecs release the GIL: one encoder per core
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(draw, jobs))
        list(pool.map(draw_small, overview_jobs))
        list(pool.map(lambda t: save_webp(results.photos[t[1]], docs_dir / t[0], quality=80), thumbs))
    _prune(docs_dir / "generated", {docs_dir / f"{s}-{x}.webp" for s in manifest for x in ("overlay", "map")}
           | {docs_dir / p for p in out["thumbnails"].values()} | {docs_dir / p for p in out["overview"].values()})
    atomic_write(docs_dir / MANIFEST, json.dumps(manifest, sort_keys=True, indent=0), skip_unchanged=True)
    return out


def _picture_stacks(m) -> list[tuple[str, np.ndarray]]:
    """Every picture stack of a model as (key, uint8 (N, h, w, 3)): its PCA-RGB maps as stored; each
    prefix token's head-mean attention (``<attention key>-t<p>``) and, for the first images, each
    head's (``<attention key>-t<p>-h<head>``), coloured by :func:`attention_to_rgb`."""
    out = []
    for key, stack in sorted(m.pictures.items()):
        if key.endswith("-attention-mean"):  # (N, P, h, w)
            out += [(f"{key}-t{p}", attention_to_rgb(stack[:, p])) for p in range(stack.shape[1])]
        elif key.endswith("-attention-heads"):  # (n, P, heads, h, w)
            out += [(f"{key}-t{p}-h{j}", attention_to_rgb(stack[:, p, j]))
                    for p in range(stack.shape[1]) for j in range(stack.shape[2])]
        else:
            out.append((key, stack))
    return out


def _prune(root: Path, keep: set[Path]) -> None:
    """Remove files under ``root`` that are not in ``keep`` (dot-files aside), then empty folders."""
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file() and not path.name.startswith(".") and path not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
