"""The gallery's pictures: one file per view, drawn by the browser; plus the photos every gallery
shares and the Images page thumbnails.

A *view* is one (model, block, representation, K) clustering, one PCA-RGB or attention picture
kind, one comparison column or one attention head grid. All of its maps, at patch resolution, go
into one PNG sprite sheet (:func:`encode_view`): a few KB to a few hundred KB for 300 images, where
one WebP per image and view gave millions of files at zoo scale. ``atlas.js`` draws a map by
copying its patch cell onto a canvas that CSS scales with nearest-neighbour upscaling, over the
photo (shared by every page, one per image and aspect ratio) with the overlay's opacity.

Cluster views are indexed PNGs whose palette is the site palette, so a map is drawn without any
script colouring and its ids read back through the palette (drill-down); attention views index
the Inferno scale. The legend and sort numbers of every view come from the label maps here
(:func:`label_view_numbers`), so they are tested in Python and shown even from ``file://``.

Files are written atomically (:mod:`atlas.files`); zlib and libwebp are deterministic for a given
input and settings, so rebuilding gives byte-identical files (checked in tests/test_render.py). A
view whose maps are unchanged since the last render is not encoded again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from ..files import atomic_path, atomic_write
from ..records import AtlasResults, map_key, photo_key, run_id, thumbnail_key
from . import paths
from .overview import overview_stack
from .palette import palette as site_palette

__all__ = [
    "label_map_to_rgb",
    "save_webp",
    "attention_to_rgb",
    "attention_levels",
    "sprite_layout",
    "pack_sprite",
    "encode_view",
    "decode_view",
    "label_view_numbers",
    "attention_view_numbers",
    "write_maps",
    "OTHER_SIZES_PCA",
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



# ---------------------------------------------------------------------------------- view packs

VIEWS_VERSION = "3"  # bump when the packing or encoding changes: every view file is written again
MANIFEST = "generated/.views.json"  # dot-file: MkDocs does not publish it
#: Images per row of a view file: keeps its sides near each other (300 images of a 37 x 37 grid:
#: 592 x 703 px), far inside every browser's canvas and image limits.
SPRITE_COLUMNS = 16
#: Longer side of the shared gallery photos, in pixels (a cell is drawn at up to ~240 CSS px).
PHOTO_SIZE = 256
#: Images a cluster legend names as "covers most" per cluster.
TOP_IMAGES = 5


def sprite_layout(n: int, h: int, w: int) -> tuple[int, int]:
    """(columns, rows) of the sprite sheet of ``n`` maps of ``h x w`` patches.

    >>> sprite_layout(300, 37, 37), sprite_layout(3, 14, 14)
    ((16, 19), (3, 1))
    """
    cols = max(1, min(int(n), SPRITE_COLUMNS))
    return cols, -(-int(n) // cols)


def pack_sprite(stack: np.ndarray) -> np.ndarray:
    """(N, h, w[, 3]) -> one sheet: map ``i`` at row ``i // cols``, column ``i % cols``
    (:func:`sprite_layout`); cells past N stay 0.

    >>> pack_sprite(np.arange(3)[:, None, None] * np.ones((3, 1, 2), int)).tolist()
    [[0, 0, 1, 1, 2, 2]]
    """
    n, h, w = stack.shape[:3]
    cols, rows = sprite_layout(n, h, w)
    sheet = np.zeros((rows * h, cols * w) + stack.shape[3:], dtype=stack.dtype)
    for i in range(n):
        r, c = divmod(i, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = stack[i]
    return sheet


def attention_levels(maps) -> np.ndarray:
    """Attention maps (..., h, w) -> uint8 levels 0..255, each map divided by its own largest patch
    value: the index into the colour scale that :func:`attention_to_rgb` applies.

    >>> attention_levels(np.array([[0.0, 0.5], [0.25, 0.5]])).tolist()
    [[0, 255], [128, 255]]
    """
    a = np.asarray(maps, dtype=np.float32)
    peak = a.max(axis=(-2, -1), keepdims=True)
    unit = np.divide(a, peak, out=np.zeros_like(a), where=peak > 0)
    return np.clip(np.rint(unit * 255), 0, 255).astype(np.uint8)


#: The zlib settings a view's PNG is encoded with, (strategy, level); the smaller file is kept.
#: Neither wins everywhere (``bench/bench_views.py --encoders``): run-length is the smaller on noisy
#: maps (random fields, random-init models' clusters), the default strategy on clean ones (human
#: masks) and on attention. Both together take 1/9 to 9/10 of the time of Pillow's level 9 (the
#: encoder before 2026-12-07, most of a zoo site's render) for files at most 4 % larger.
PNG_ENCODINGS = ((zlib.Z_RLE, 9), (zlib.Z_DEFAULT_STRATEGY, 6))


def png_bytes(img: Image.Image, level: int, strategy: int | None = None) -> bytes:
    """``img`` as PNG bytes at zlib ``level`` with zlib ``strategy`` (None: Pillow's choice)."""
    buf = BytesIO()
    img.save(buf, format="PNG", compress_level=level, **({} if strategy is None else {"compress_type": strategy}))
    return buf.getvalue()


def smallest_png(img: Image.Image) -> bytes:
    """``img`` as PNG bytes: the smaller of the :data:`PNG_ENCODINGS` (the first on a tie).

    >>> im = Image.fromarray(np.zeros((4, 8), np.uint8), "L")
    >>> data = smallest_png(im)
    >>> data[:8] == b"\\x89PNG\\r\\n\\x1a\\n", np.asarray(Image.open(BytesIO(data))).shape
    (True, (4, 8))
    """
    return min((png_bytes(img, level, strategy) for strategy, level in PNG_ENCODINGS), key=len)


def encode_view(stack: np.ndarray, kind: str) -> bytes:
    """One view's maps as a PNG sprite sheet (:func:`pack_sprite`).

    ``kind``:
    - ``"labels"``: (N, h, w) cluster ids, an indexed PNG whose palette is the site palette, so the
      browser draws the colours itself and the ids read back through the palette;
    - ``"attention"``: (N, h, w) attention, an indexed PNG of :func:`attention_levels` whose palette
      is the Inferno scale;
    - ``"rgb"``: (N, h, w, 3) uint8 pictures (PCA colours), a true-colour PNG.

    PNG (:func:`smallest_png`) is lossless and byte-identical for the same input; the choice
    against WebP-lossless and raw arrays is measured in ``bench/bench_views.py``.

    >>> from io import BytesIO
    >>> im = Image.open(BytesIO(encode_view(np.array([[[0, 1], [1, 2]]]), "labels")))
    >>> im.mode, im.size, np.asarray(im).tolist()
    ('P', (2, 2), [[0, 1], [1, 2]])
    """
    stack = np.asarray(stack)
    if kind == "labels":
        if stack.ndim != 3 or not np.issubdtype(stack.dtype, np.integer) or stack.size == 0:
            raise ValueError(f"a labels view needs (N, h, w) integer labels, got {stack.shape} {stack.dtype}")
        if stack.min() < 0 or stack.max() > 255:
            raise ValueError(f"cluster ids must lie in [0, 255] for an indexed PNG, got [{stack.min()}, {stack.max()}]")
        img = Image.fromarray(pack_sprite(stack.astype(np.uint8)), "P")
        img.putpalette(site_palette(int(stack.max()) + 1).reshape(-1).tolist())
    elif kind == "attention":
        img = Image.fromarray(pack_sprite(attention_levels(stack)), "P")
        img.putpalette(_lut("Inferno").reshape(-1).tolist())
    elif kind == "rgb":
        if stack.ndim != 4 or stack.shape[3] != 3 or stack.dtype != np.uint8:
            raise ValueError(f"an rgb view needs (N, h, w, 3) uint8, got {stack.shape} {stack.dtype}")
        img = Image.fromarray(pack_sprite(stack), "RGB")
    else:
        raise ValueError(f"unknown view kind {kind!r}: use 'labels', 'attention' or 'rgb'")
    return smallest_png(img)


def decode_view(data: bytes, n: int, h: int, w: int) -> np.ndarray:
    """The maps of a view file back: (N, h, w) ids or levels, or (N, h, w, 3) colours.

    >>> stack = np.arange(24).reshape(2, 3, 4) % 5
    >>> bool((decode_view(encode_view(stack, "labels"), 2, 3, 4) == stack).all())
    True
    """
    sheet = np.asarray(Image.open(BytesIO(data)))
    cols, _ = sprite_layout(n, h, w)
    return np.stack([sheet[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w] for i in range(n)])


def label_view_numbers(stack: np.ndarray, ring: int = 1) -> dict:
    """What a cluster view's legend and sort controls show, from its labels (N, h, w).

    Returns ``{"legend": [[share, border share, [top images]] per cluster id], "numbers":
    {"largest": [...], "border": [...], "count": [...]}}``, shares in per mille (ints):
    - *share*: the cluster's share of all tokens of the view;
    - *border share*: the share of the cluster's tokens on the grid's outer ``ring``;
    - *top images*: the (up to :data:`TOP_IMAGES`) images where it covers most, most first;
    - per image: its largest cluster's share, the share of its patches in *border-enriched*
      clusters (border share at least twice the ring's share of the grid), and how many clusters
      it holds.

    >>> s = np.zeros((2, 4, 4), int); s[0, 1:3, 1:3] = 1
    >>> out = label_view_numbers(s)
    >>> out["legend"][1], out["numbers"]["count"]
    ([125, 0, [0]], [2, 1])
    """
    from ..measures.boundary import border_mask

    stack = np.asarray(stack)
    n, h, w = stack.shape
    k = int(stack.max()) + 1
    counts = np.stack([np.bincount(stack[i].ravel(), minlength=k) for i in range(n)])  # (N, K)
    total = counts.sum(axis=0)
    if min(h, w) > 2 * ring:
        ring_mask = border_mask(h, w, ring)
        on_ring = np.bincount(stack[:, ring_mask].ravel(), minlength=k)
        border = np.divide(on_ring, total, out=np.zeros(k), where=total > 0)
        enriched = border >= 2 * ring_mask.mean()
    else:  # no interior: no border
        border, enriched = np.zeros(k), np.zeros(k, bool)
    cover = counts / float(h * w)
    legend = []
    for c in range(k):
        order = [int(i) for i in np.argsort(-cover[:, c], kind="stable")[:TOP_IMAGES] if cover[i, c] > 0]
        legend.append([_permille(total[c] / counts.sum()), _permille(border[c]), order])
    return {"legend": legend, "numbers": {
        "largest": [_permille(v) for v in cover.max(axis=1)],
        "border": [_permille(v) for v in cover[:, enriched].sum(axis=1)],
        "count": [int(v) for v in (counts > 0).sum(axis=1)]}}


def attention_view_numbers(stack: np.ndarray, ring: int = 1) -> dict:
    """Per image of an attention view (N, h, w): its attention's share on the grid's outer ring
    (per mille of the patch attention).

    >>> a = np.zeros((1, 4, 4)); a[0, 0, 0] = 3; a[0, 1, 1] = 1
    >>> attention_view_numbers(a)
    {'numbers': {'border': [750]}}
    """
    from ..measures.boundary import border_mask

    a = np.asarray(stack, dtype=np.float64)
    n, h, w = a.shape
    if min(h, w) <= 2 * ring:
        return {"numbers": {}}
    mass = a.reshape(n, -1).sum(axis=1)
    on_ring = a[:, border_mask(h, w, ring)].sum(axis=1)
    return {"numbers": {"border": [_permille(v) for v in np.divide(on_ring, mass, out=np.zeros(n), where=mass > 0)]}}


def _permille(x: float) -> int:
    return int(round(1000 * float(x)))


def _view_digest(stack: np.ndarray, kind: str) -> str:
    h = hashlib.sha256(f"{VIEWS_VERSION}|{kind}|{stack.shape}|{stack.dtype}|".encode())
    h.update(np.ascontiguousarray(stack).tobytes())
    return h.hexdigest()[:24]


def _photo_stem(image: str, content_hash: str, size: tuple[int, int]) -> str:
    """Shared gallery photo of an image as models of input ``size`` see it: one per aspect ratio
    (every model crops the centre at its own aspect ratio, :class:`atlas.inputs.geometry.ResizePolicy`)."""
    h, w = size
    return f"{paths.photo(image, content_hash)}-a{round(1000 * h / w)}"


def write_maps(results: AtlasResults, docs_dir: str | os.PathLike, workers: int | None = None) -> dict:
    """Write every view file, shared photo and thumbnail of ``results`` into ``docs_dir``.

    Returns ``{"views": {(owner, key): view}, "photos": {(image name, (H, W)): path}, "thumbnails":
    {image name: path}}``. ``owner`` is a model slug, ``"compare/<slug>"`` or ``"overview"`` (key: the
    model slug, :func:`atlas.site.overview.overview_stack`); ``key`` a label-map or picture key (``<attention key>-t<p>`` for a prefix
    token's head mean, ``<heads key>-t<p>`` for its head grid: per image the mean, then each head);
    ``view`` is ``{"src", "n", "h", "w", "kind", "bytes", "sha256"}`` (the file's size and SHA-256, which
    the browser checks before drawing) plus the numbers of :func:`label_view_numbers` /
    :func:`attention_view_numbers`. Paths are docs-dir relative. Files under ``generated/`` that no
    record names any more are removed, so the folder always mirrors the records.
    """
    docs_dir = Path(docs_dir)
    images = results.images
    try:
        before = json.loads((docs_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        before = {}
    manifest: dict[str, str] = {}
    jobs: list[tuple[str, np.ndarray, str]] = []
    out: dict = {"views": {}, "photos": {}, "thumbnails": {}}

    def add(owner: str, key: str, stack: np.ndarray, kind: str, path: str) -> None:
        stack = np.asarray(stack)
        if kind == "labels":
            stack = stack.astype(np.int16 if stack.max() > 255 else np.uint8)
        n, h, w = stack.shape[:3]
        view = {"src": path, "n": n, "h": h, "w": w, "kind": kind}
        view.update(label_view_numbers(stack) if kind == "labels" else
                    attention_view_numbers(stack) if kind == "attention" else {})
        out["views"][(owner, key)] = view
        digest = _view_digest(stack, kind)
        old = before.get(path, "").split("|")
        if old[0] == digest and len(old) == 3 and (docs_dir / path).is_file():
            manifest[path] = before[path]
        else:
            manifest[path] = digest
            jobs.append((path, stack, kind))

    for m in results.models:
        _add_model(results, m, m.card.slug, add, out)
        overview = overview_stack(results, m)
        if overview is not None:
            add("overview", m.card.slug, overview, "labels", paths.overview_view(m.card.slug))
    for m in results.resolution_runs:  # the other resolutions of the axis: views of their own
        _add_model(results, m, run_id(m.card.slug, m.card.input_size, False), add, out, other_size=True)
    for c in results.comparisons:
        for p in c.panels:
            for col in p.get("columns", []):
                key = col["maps"]
                if key in c.label_maps and (f"compare/{c.slug}", key) not in out["views"]:
                    add(f"compare/{c.slug}", key, c.label_maps[key], "labels", paths.comparison_view(c.slug, key))

    # the shared photos: one per image and aspect ratio, from the largest copy the records hold
    photo_jobs: dict[str, str] = {}
    for (name, size), path in out["photos"].items():
        img = next(i for i in images if i.name == name)
        src = photo_key(img.content_hash, size)
        best = photo_jobs.get(path)
        if best is None or results.photos[src].size > results.photos[best].size:
            photo_jobs[path] = src
    for path, src in photo_jobs.items():
        manifest[path] = f"{VIEWS_VERSION}|{src}|{PHOTO_SIZE}"
    photo_todo = [(p, s) for p, s in photo_jobs.items()
                  if before.get(p) != manifest[p] or not (docs_dir / p).is_file()]

    thumbs = []
    for img in images:
        path = paths.thumbnail(img.name, img.content_hash)
        out["thumbnails"][img.name] = path
        manifest[path] = f"{VIEWS_VERSION}|{img.content_hash}"
        if before.get(path) != manifest[path] or not (docs_dir / path).is_file():
            thumbs.append((path, thumbnail_key(img.content_hash)))

    def write_view(job) -> None:
        path, stack, kind = job
        data = encode_view(stack, kind)
        atomic_write(docs_dir / path, data)
        manifest[path] += f"|{len(data)}|{hashlib.sha256(data).hexdigest()}"

    def write_photo(job) -> None:
        path, key = job
        photo = Image.fromarray(results.photos[key])
        photo.thumbnail((PHOTO_SIZE, PHOTO_SIZE), Image.Resampling.BOX)
        save_webp(photo, docs_dir / path, quality=80)

    # zlib, libwebp and the PIL codecs release the GIL: one encoder per core
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(write_view, jobs))
        list(pool.map(write_photo, photo_todo))
        list(pool.map(lambda t: save_webp(results.photos[t[1]], docs_dir / t[0], quality=80), thumbs))
    for view in out["views"].values():  # what the browser checks before drawing a view
        _, size, sha = manifest[view["src"]].split("|")
        view.update(bytes=int(size), sha256=sha)
    _prune(docs_dir / "generated", {docs_dir / p for p in manifest})
    atomic_write(docs_dir / MANIFEST, json.dumps(manifest, sort_keys=True, indent=0), skip_unchanged=True)
    return out


#: The representation whose PCA pictures the gallery shows at the other sizes of the resolution
#: axis (every representation's at the main size). Every representation's would take the zoo's site
#: to 1.20 GB against the 1 GB budget (README, Benchmarks: PCA-RGB is 85 % of a size's bytes).
OTHER_SIZES_PCA = "tokens"


def _shown_at_other_sizes(key: str, kind: str) -> bool:
    """What a gallery shows of a model at a size other than the main one: every cluster map, the PCA
    pictures of :data:`OTHER_SIZES_PCA` and the first prefix token's attention (the head grid and
    the other prefix tokens are on the model page at the main size)."""
    if kind == "attention":
        return key.endswith("-attention-mean-t0")
    return kind != "rgb" or key.split("-")[1] == OTHER_SIZES_PCA


def _add_model(results: AtlasResults, m, owner: str, add, out: dict, other_size: bool = False) -> None:
    """The view files of one model at one resolution (``owner``: its run id) and its photos;
    ``other_size``: a size other than the main one, which shows less (:func:`_shown_at_other_sizes`)."""
    for run in m.runs:
        key = map_key(run.block, run.representation, run.k)
        if key in m.label_maps and (owner, key) not in out["views"]:
            add(owner, key, m.label_maps[key], "labels", paths.model_view(owner, key))
    for key, stack, kind in _picture_stacks(m):
        if other_size and not _shown_at_other_sizes(key, kind):
            continue
        add(owner, key, stack, kind, paths.model_view(owner, key))
    size = tuple(m.card.input_size)
    for img in results.images:
        if photo_key(img.content_hash, size) in results.photos:
            out["photos"][(img.name, size)] = _photo_stem(img.name, img.content_hash, size) + ".webp"


def _picture_stacks(m) -> list[tuple[str, np.ndarray, str]]:
    """Every picture view of a model as (key, stack, kind): its PCA-RGB maps as stored (``rgb``);
    each prefix token's head-mean attention over every image (``<attention key>-t<p>``); and each
    prefix token's head grid over the first images (``<heads key>-t<p>``: per image the head mean,
    then every head)."""
    out = []
    means = {key: stack for key, stack in m.pictures.items() if key.endswith("-attention-mean")}
    for key, stack in sorted(m.pictures.items()):
        if key.endswith("-attention-mean"):  # (N, P, h, w)
            out += [(f"{key}-t{p}", stack[:, p], "attention") for p in range(stack.shape[1])]
        elif key.endswith("-attention-heads"):  # (n, P, heads, h, w)
            mean = means.get(key[: -len("-heads")] + "-mean")
            n, prefix, heads = stack.shape[:3]
            for p in range(prefix):
                cols = [mean[:n, p][:, None]] if mean is not None else [stack[:, p].mean(axis=1, keepdims=True)]
                grid = np.concatenate(cols + [stack[:, p]], axis=1)  # (n, 1 + heads, h, w)
                out.append((f"{key}-t{p}", grid.reshape((-1,) + grid.shape[2:]), "attention"))
        else:
            out.append((key, stack, "rgb"))
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
