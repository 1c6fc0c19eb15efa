"""Gallery manifests: which view file, and which map in it, every cell of a gallery shows, for every
(block, representation, K, picture) view of a model page, every head grid of its attention section
and every matched depth of a comparison page. ``atlas.js`` lays the cells out (paged, filtered by
image group, sorted by a per-image number of the view) and draws them from the view files
(:mod:`atlas.site.maps`).

A manifest holds: ``axes`` (the view's controls, their URL values and labels); ``images`` (rows:
``[atlas index, name, group index, {aspect: photo URL}]``); ``sprites`` (view files: ``src``,
``n``, ``h``, ``w``, ``kind``, ``a`` (aspect key of their photos), legend and sort numbers);
``views`` (``"<axis indices>"`` -> ``{"cells": [[sprite, stride, offset] per column], "caps":
[...]}``: row ``r`` of column ``j`` is map ``atlas index * stride + offset`` of its sprite);
``columns`` (headers of a table gallery), ``palette``, ``lut`` (the attention colour bar) and
``sorts``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ..records import (RANDOM_INIT_LABEL, AtlasResults, ComparisonResult, ImageInfo, ModelResult, attention_key,
                       map_key, picture_key)
from .maps import OTHER_SIZES_PCA
from .palette import palette_hex
from .paths import rel
from .resolution import resolution_words

#: Cells per gallery page.
PAGE_SIZE = 24

#: The gallery's "picture" axis: value, label (cluster maps first: the atlas's own picture).
PICTURES = (("clusters", "cluster map (joint k-means)"), ("pca", "PCA → RGB (joint, all patches)"),
            ("pca-fg", "PCA → RGB, foreground (DINOv2 recipe)"), ("attention", "attention of the first prefix token (head mean)"))

#: Orders a gallery offers (id, label); a view without an order's numbers falls back to the atlas order.
SORTS = (("order", "atlas order", "the order of the atlas image set"), ("name", "name", "image name"),
         ("largest", "largest cluster's share", "share of the image covered by its largest cluster, most first"),
         ("border", "share on the border", "cluster maps: share of the image in border-enriched clusters (at least "
          "twice the border ring's share of their tokens on the ring); attention: share of the attention on the "
          "border ring; most first"),
         ("count", "clusters in the image", "number of clusters the image holds, most first"),
         ("cluster", "selected cluster's share", "share of the image covered by the cluster you selected, most first"))


def image_order(results: AtlasResults, names: Iterable[str]) -> list[str]:
    """Image names in the order of the atlas image set."""
    order = {img.name: i for i, img in enumerate(results.images)}
    return sorted(set(names), key=lambda n: (order.get(n, len(order)), n))


def image_group(img: ImageInfo) -> str:
    """The group an image is filtered by: its folder (``<group>/<name>`` of a manifest or an image
    folder), else the package an embedded photo comes from, the host of its URL, or the kind of its
    source.

    >>> image_group(ImageInfo("street/a.jpg", "https://x/a.jpg", "CC0"))
    'street'
    >>> image_group(ImageInfo("astronaut", "skimage.data.astronaut()", "CC0"))
    'skimage.data'
    >>> image_group(ImageInfo("china", 'sklearn.datasets.load_sample_image("china.jpg")', "CC0"))
    'sklearn.datasets'
    >>> image_group(ImageInfo("a.jpg", "https://example.org/a.jpg", "CC0")), image_group(ImageInfo("b.png", "image folder: b.png", "CC0"))
    ('example.org', 'image folder')
    """
    if "/" in img.name:
        return posixpath.dirname(img.name)
    found = re.fullmatch(r"([\w.]+?)\.\w+\(.*\)", img.source)
    if found:
        return found.group(1)
    if "://" in img.source:
        return urlsplit(img.source).netloc or img.source
    return img.source.split(":", 1)[0]


def _prefix_names(card) -> list[str]:
    """Names of a model's prefix tokens in token order: CLS first, then the registers."""
    names = ["CLS"] if card.has_cls else []
    names += [f"register {i + 1}" for i in range(card.num_registers)]
    return names + [f"prefix {i + 1}" for i in range(len(names), card.num_prefix_tokens)]


class _Manifest:
    """Collects the sprites and rows of one gallery manifest."""

    def __init__(self, results: AtlasResults, maps: dict, page: str):
        self.results, self.maps, self.page = results, maps, page
        self.sprites: list[dict[str, Any]] = []
        self.index: dict[tuple[str, str], int] = {}
        self.aspects: dict[str, tuple[int, int]] = {}  # aspect key -> an input size (H, W) of that aspect
        self.max_k = 1

    def sprite(self, owner: str, key: str, size) -> int | None:
        """Index of the view file ``(owner, key)`` (None: not written), its photos of input ``size``."""
        view = self.maps["views"].get((owner, key))
        if view is None:
            return None
        if (owner, key) not in self.index:
            h, w = (list(size) + [0, 0])[:2]
            aspect = str(round(1000 * h / w)) if w else "0"
            self.aspects.setdefault(aspect, (h, w))
            entry = {k: v for k, v in view.items() if k != "src"}
            entry.update(src=rel(view["src"], self.page), a=aspect)
            if view["kind"] == "labels":
                self.max_k = max(self.max_k, len(view.get("legend", [])))
            self.index[(owner, key)] = len(self.sprites)
            self.sprites.append(entry)
        return self.index[(owner, key)]

    def finish(self, axes: list[dict[str, Any]], views: dict[str, dict], rows: int | None = None,
               columns: list[str] | None = None) -> dict[str, Any]:
        images = self.results.images
        n = max((self.sprites[c[0]]["n"] // c[1] for v in views.values() for c in v["cells"] if c), default=0)
        n = min(n if rows is None else rows, len(images))
        groups = sorted({image_group(img) for img in images[:n]})
        photos = self.maps.get("photos", {})
        table = []
        for i, img in enumerate(images[:n]):
            urls = {a: rel(photos[(img.name, size)], self.page) for a, size in self.aspects.items()
                    if (img.name, size) in photos}
            table.append([i, img.name, groups.index(image_group(img)), urls])
        from .maps import _lut  # the attention scale the view files index

        lut = _lut("Inferno")
        return {
            "axes": [{"name": a["name"], "labels": a["labels"], "values": a["values"]} for a in axes],
            "images": table, "groups": groups, "sprites": self.sprites, "views": views,
            "columns": columns or [], "palette": palette_hex(self.max_k),
            "lut": ["#%02x%02x%02x" % tuple(int(x) for x in lut[i]) for i in range(0, 256, 51)],
            "sorts": [list(s) for s in SORTS], "pageSize": PAGE_SIZE,
        }


def model_gallery(results: AtlasResults, m: ModelResult, page: str, maps: dict) -> dict[str, Any] | None:
    """Manifest of a model page's gallery; ``maps``: :func:`atlas.site.maps.write_maps`' output."""
    slug = m.card.slug
    runs = [r for r in m.runs if (slug, map_key(r.block, r.representation, r.k)) in maps["views"]]
    if not runs:
        return None
    blocks = sorted({r.block for r in runs})
    reps = [r for r in m.representations if any(x.representation == r for x in runs)]
    reps += sorted({r.representation for r in runs} - set(reps))
    ks = sorted({r.k for r in runs})
    first_token = (_prefix_names(m.card) or ["?"])[0]
    kinds = [(v, label.replace("first prefix token", first_token)) for v, label in PICTURES
             if v == "clusters" or any(o == slug and _picture_of(k) == v for o, k in maps["views"])]

    def key_of(block: int, rep: str, k: int, kind: str) -> str:
        if kind == "clusters":
            return map_key(block, rep, k)
        if kind == "attention":  # from queries and keys: the same for every representation and K
            return f"{attention_key(block, 'mean')}-t0"
        return picture_key(block, rep, kind)

    man = _Manifest(results, maps, page)
    views: dict[str, dict] = {}
    # the resolution axis comes last, so that links made before it still name the same view
    sizes = results.runs_of(slug) or [(slug, m)]
    for zi, (owner, at) in enumerate(sizes):
        for bi, b in enumerate(blocks):
            for ri, r in enumerate(reps):
                for ki, k in enumerate(ks):
                    for vi, (kind, _) in enumerate(kinds):
                        s = man.sprite(owner, key_of(b, r, k, kind), at.card.input_size)
                        if s is not None:
                            key = (bi, ri, ki) + ((vi,) if len(kinds) > 1 else ()) + ((zi,) if len(sizes) > 1 else ())
                            views["|".join(map(str, key))] = {"cells": [[s, 1, 0]]}
    start = [len(blocks) // 2, 0, len(ks) // 2] + ([0] if len(kinds) > 1 else []) + ([0] if len(sizes) > 1 else [])
    if "|".join(map(str, start)) not in views:
        start = [int(v) for v in sorted(views)[0].split("|")]
    depth = {r.block: r.rel_depth for r in runs}
    # "values" name a view in its URL: ?block=5&representation=keys&k=8&picture=pca#gallery
    axes = [
        {"name": "block", "label": "Block", "kind": "range", "values": [str(b) for b in blocks],
         "labels": [f"block {b} · rel. depth {depth[b]:.2f}" for b in blocks]},
        {"name": "representation", "label": "Representation", "kind": "select", "values": reps, "labels": reps},
        {"name": "k", "label": "K", "kind": "select", "values": [str(k) for k in ks], "labels": [str(k) for k in ks]},
        {"name": "picture", "label": "Picture", "kind": "select", "values": [v for v, _ in kinds],
         "labels": [label for _, label in kinds]},
    ][: 4 if len(kinds) > 1 else 3]
    if len(sizes) > 1:
        axes.append({"name": "resolution", "label": "Resolution", "kind": "select",
                     "values": [at.card.resolution or "x".join(map(str, at.card.input_size)) for _, at in sizes],
                     "labels": [resolution_words(at.card) for _, at in sizes]})
    for ax, idx in zip(axes, start):
        ax["start"] = idx
    manifest = man.finish(axes, views)
    missing = (f"Not in this build for this selection: at sizes other than the main one "
               f"({resolution_words(m.card)}), the PCA pictures are of {OTHER_SIZES_PCA} only (Methods)."
               if len(sizes) > 1 else "")
    return {"id": "gallery", "anchor": "gallery", "axes": axes, "columns": [], "manifest": manifest,
            "what": "cluster maps", "groups": manifest["groups"], "rows": len(manifest["images"]), "missing": missing}


def _picture_of(key: str) -> str:
    """The picture axis value of a view key (:func:`atlas.site.maps.write_maps`)."""
    if "-attention-mean-" in key:
        return "attention"
    return "pca-fg" if key.endswith("-pca-fg") else "pca" if key.endswith("-pca") else ""


def attention_gallery(results: AtlasResults, m: ModelResult, page: str, maps: dict) -> dict[str, Any] | None:
    """Manifest of a model page's attention grid: for a gallery block and prefix token, one row per
    image kept with every head (:data:`atlas.pipeline.pictures.ATTENTION_IMAGES`), one column for the
    head mean and one per head."""
    slug = m.card.slug
    tokens = _prefix_names(m.card)
    heads_keys = {k: v for (o, k), v in maps["views"].items() if o == slug and "-attention-heads-" in k}
    blocks = sorted({int(k.split("-")[0][1:]) for k in heads_keys})
    if not blocks or not tokens:
        return None
    man = _Manifest(results, maps, page)
    views: dict[str, dict] = {}
    rows = 0
    for bi, b in enumerate(blocks):
        for p in range(len(tokens)):
            key = f"{attention_key(b, 'heads')}-t{p}"
            s = man.sprite(slug, key, m.card.input_size)
            if s is None:
                continue
            v = heads_keys[key]
            per_image = (m.card.num_heads + 1 if m.card.num_heads and v["n"] % (m.card.num_heads + 1) == 0
                         else _per_image(v["n"], len(results.images)))
            rows = max(rows, v["n"] // per_image)
            views[f"{bi}|{p}"] = {"cells": [[s, per_image, j] for j in range(per_image)]}
    if not views:
        return None
    ncol = len(next(iter(views.values()))["cells"])
    columns = ["head mean"] + [f"head {j + 1}" for j in range(ncol - 1)]
    start = [len(blocks) - 1, 0]
    if "|".join(map(str, start)) not in views:
        start = [int(v) for v in sorted(views)[0].split("|")]
    depth = {r.block: r.rel_depth for r in m.runs}
    axes = [
        {"name": "attention_block", "label": "Block", "kind": "range", "values": [str(b) for b in blocks],
         "labels": [f"block {b} · rel. depth {depth.get(b, 0.0):.2f}" for b in blocks]},
        {"name": "token", "label": "Prefix token", "kind": "select", "values": [t.replace(" ", "") for t in tokens],
         "labels": tokens},
    ]
    for ax, idx in zip(axes, start):
        ax["start"] = idx
    manifest = man.finish(axes, views, rows=rows, columns=columns)
    return {"id": "attention-grid", "anchor": "attention", "axes": axes, "columns": columns, "manifest": manifest,
            "what": "attention maps", "groups": manifest["groups"], "rows": len(manifest["images"])}


def _per_image(n: int, images: int) -> int:
    """Maps per image of a head grid of ``n`` maps when the card does not give the head count."""
    for rows in range(min(images, n), 0, -1):
        if n % rows == 0:
            return n // rows
    return 1


def column_heads(c: ComparisonResult, labels: dict[str, str]) -> list[str]:
    """Column headers of a comparison (random-init models carry their label)."""
    panels = [p for p in c.panels if p.get("columns")]
    heads = []
    for col in panels[0]["columns"] if panels else []:
        head = col.get("label") or labels.get(col.get("model", ""), col.get("model", ""))
        if not col.get("label") and c.kind != "models" and col.get("representation"):
            head = f"{head} · {col['representation']}"
        random_model = labels.get(col.get("model", ""), "").endswith(f"({RANDOM_INIT_LABEL})")
        if random_model and RANDOM_INIT_LABEL not in head:
            head = f"{head} ({RANDOM_INIT_LABEL})"
        heads.append(head)
    return heads


def comparison_gallery(results: AtlasResults, c: ComparisonResult, page: str, labels: dict[str, str],
                       maps: dict) -> dict[str, Any] | None:
    """Manifest of a comparison page's gallery; ``maps``: :func:`atlas.site.maps.write_maps`' output."""
    panels = [p for p in c.panels if p.get("columns")]
    if not panels:
        return None
    ncol = len(panels[0]["columns"])
    heads = column_heads(c, labels)
    sizes = {m.card.slug: m.card.input_size for m in results.models}
    man = _Manifest(results, maps, page)
    views: dict[str, dict] = {}
    axis_labels, axis_values = [], []
    for pi, p in enumerate(panels):
        label = f"rel. depth {float(p.get('rel_depth', 0.0)):.2f}"
        value = f"{float(p.get('rel_depth', 0.0)):.2f}"
        if p.get("representation"):
            label += f" · {p['representation']}"
            value += f"-{p['representation']}"
        axis_labels.append(label)
        axis_values.append(value)
        cells, caps = [], []
        for col in p["columns"][:ncol]:
            s = man.sprite(f"compare/{c.slug}", col["maps"], sizes.get(col.get("model"), [0, 0]))
            cells.append([s, 1, 0] if s is not None else None)
            caps.append(f"block {col['block']}" if col.get("block") is not None else "")
        if any(cells):
            views[str(pi)] = {"cells": cells, "caps": caps}
    if not views:
        return None
    start = int(sorted(views, key=int)[0])
    axes = [{"name": "depth", "label": "Matched depth", "kind": "range", "labels": axis_labels, "values": axis_values,
             "start": start}]
    manifest = man.finish(axes, views, columns=heads)
    return {"id": "gallery", "anchor": "gallery", "axes": axes, "columns": heads, "manifest": manifest,
            "what": "cluster maps", "groups": manifest["groups"], "rows": len(manifest["images"])}
