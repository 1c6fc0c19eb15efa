"""Gallery manifests: which image every (block, representation, K) view of a model page, and every
matched depth of a comparison page, shows; ``atlas.js`` swaps the images from them."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from ..records import RANDOM_INIT_LABEL, AtlasResults, ComparisonResult, ModelResult, attention_key, map_key, picture_key
from .paths import rel


def image_order(results: AtlasResults, names: Iterable[str]) -> list[str]:
    """Image names in the order of the atlas image set."""
    order = {img.name: i for i, img in enumerate(results.images)}
    return sorted(set(names), key=lambda n: (order.get(n, len(order)), n))


#: The gallery's "picture" axis: value, label (cluster maps first: the atlas's own picture).
PICTURES = (("clusters", "cluster map (joint k-means)"), ("pca", "PCA → RGB (joint, all patches)"),
            ("pca-fg", "PCA → RGB, foreground (DINOv2 recipe)"), ("attention", "attention of the first prefix token (head mean)"))


def _prefix_names(card) -> list[str]:
    """Names of a model's prefix tokens in token order: CLS first, then the registers."""
    names = ["CLS"] if card.has_cls else []
    names += [f"register {i + 1}" for i in range(card.num_registers)]
    return names + [f"prefix {i + 1}" for i in range(len(names), card.num_prefix_tokens)]


def model_gallery(results: AtlasResults, m: ModelResult, page: str, maps: dict,
                  pictures: dict | None = None) -> dict[str, Any] | None:
    """Manifest of a model page's gallery; ``maps``: :func:`atlas.site.maps.write_maps`' ``"models"``,
    ``pictures`` its ``"pictures"`` (PCA-RGB and attention views on the gallery's picture axis)."""
    runs = [r for r in m.runs if (m.card.slug, map_key(r.block, r.representation, r.k)) in maps]
    if not runs:
        return None
    pictures = pictures or {}
    slug = m.card.slug
    blocks = sorted({r.block for r in runs})
    reps = [r for r in m.representations if any(x.representation == r for x in runs)]
    reps += sorted({r.representation for r in runs} - set(reps))
    ks = sorted({r.k for r in runs})
    first_token = (_prefix_names(m.card) or ["?"])[0]
    kinds = [(v, label.replace("first prefix token", first_token)) for v, label in PICTURES
             if v == "clusters" or any(k[0] == slug and _picture_of(k[1]) == v for k in pictures)]

    def entries_for(block: int, rep: str, k: int, kind: str) -> list[dict[str, str]] | None:
        if kind == "clusters":
            return maps.get((slug, map_key(block, rep, k)))
        if kind == "attention":  # from queries and keys: the same for every representation and K
            return pictures.get((slug, f"{attention_key(block, 'mean')}-t0"))
        return pictures.get((slug, picture_key(block, rep, kind)))

    grid = [(bi, ri, ki, vi) for bi in range(len(blocks)) for ri in range(len(reps)) for ki in range(len(ks))
            for vi in range(len(kinds))]
    found = {key: entries_for(blocks[key[0]], reps[key[1]], ks[key[2]], kinds[key[3]][0]) for key in grid}
    images = image_order(results, (e["image"] for es in found.values() if es for e in es))
    depth = {r.block: r.rel_depth for r in runs}
    views: dict[str, list[Any]] = {}
    for key, entries in found.items():
        if entries:  # without pictures there is no picture axis (and views keep their 3-part keys)
            by_image = {e["image"]: e for e in entries}
            views["|".join(map(str, key if len(kinds) > 1 else key[:3]))] = [[by_image[n]["overlay"], by_image[n]["bare"], ""] if n in by_image
                                              else None for n in images]
    start = [len(blocks) // 2, 0, len(ks) // 2, 0][: 4 if len(kinds) > 1 else 3]
    if "|".join(map(str, start)) not in views:
        start = [int(v) for v in sorted(views)[0].split("|")]
    # "values" name a view in its URL: ?block=5&representation=keys&k=8&picture=pca#gallery
    axes = [
        {"name": "block", "label": "Block", "kind": "range", "values": [str(b) for b in blocks],
         "labels": [f"block {b} · rel. depth {depth[b]:.2f}" for b in blocks]},
        {"name": "representation", "label": "Representation", "kind": "select", "values": reps, "labels": reps},
        {"name": "k", "label": "K", "kind": "select", "values": [str(k) for k in ks], "labels": [str(k) for k in ks]},
        {"name": "picture", "label": "Picture", "kind": "select", "values": [v for v, _ in kinds],
         "labels": [label for _, label in kinds]},
    ][: 4 if len(kinds) > 1 else 3]
    for ax, idx in zip(axes, start):
        ax["start"] = idx
    first = views["|".join(map(str, start))]
    h, w = (m.card.input_size + [0, 0])[:2]
    cells = [
        {"caption": n, "src": (rel(first[i][0], page) if first[i] else ""), "alt": f"picture of {n}"}
        for i, n in enumerate(images)
    ]
    return {
        "id": "gallery",
        "anchor": "gallery",  # the heading the view's URL points at
        "axes": axes,
        "cells": cells,
        "columns": [],
        "width": w,
        "height": h,
        "manifest": compact_manifest(axes, views, page),
    }


def _picture_of(key: str) -> str:
    """The picture axis value of a ``pictures`` key (:func:`atlas.site.maps.write_maps`)."""
    if "-attention-mean-" in key:
        return "attention"
    return "pca-fg" if key.endswith("-pca-fg") else "pca" if key.endswith("-pca") else ""


def attention_gallery(results: AtlasResults, m: ModelResult, page: str, pictures: dict) -> dict[str, Any] | None:
    """Manifest of a model page's attention grid: for a gallery block and prefix token, one row per
    image kept with every head (:data:`atlas.pipeline.pictures.ATTENTION_IMAGES`), one column for the
    head mean and one per head."""
    slug = m.card.slug
    tokens = _prefix_names(m.card)
    blocks = sorted({int(key.split("-")[0][1:]) for s, key in pictures if s == slug and "-attention-heads-" in key})
    if not blocks or not tokens:
        return None
    heads = 1 + max(int(key.rsplit("-h", 1)[1]) for s, key in pictures if s == slug and "-attention-heads-" in key)
    columns = ["head mean"] + [f"head {j + 1}" for j in range(heads)]
    views: dict[str, list[Any]] = {}
    names: list[str] = []
    for bi, b in enumerate(blocks):
        for p in range(len(tokens)):
            cols = [pictures.get((slug, f"{attention_key(b, 'mean')}-t{p}"))] + [
                pictures.get((slug, f"{attention_key(b, 'heads')}-t{p}-h{j}")) for j in range(heads)]
            if not all(cols):
                continue
            names = names or image_order(results, (e["image"] for e in cols[1]))  # the images kept with every head
            by_col = [{e["image"]: e for e in es} for es in cols]
            views[f"{bi}|{p}"] = [[c[n]["overlay"], c[n]["bare"], ""] if n in c else None
                                  for n in names for c in by_col]
    if not views:
        return None
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
    first = views["|".join(map(str, start))]
    h, w = (m.card.input_size + [0, 0])[:2]
    cells = [{"caption": "", "src": rel(first[i * len(columns) + j][0], page) if first[i * len(columns) + j] else "",
              "alt": f"{n}: {columns[j]}", "row": n if j == 0 else ""}
             for i, n in enumerate(names) for j in range(len(columns))]
    return {"id": "attention-grid", "anchor": "attention", "axes": axes, "cells": cells, "columns": columns,
            "width": w, "height": h, "manifest": compact_manifest(axes, views, page)}


def compact_manifest(axes: list[dict[str, Any]], views: dict[str, list[Any]], page: str) -> dict[str, Any]:
    """The gallery manifest ``atlas.js`` reads, without repeating paths.

    ``views`` hold one ``[overlay, bare, caption]`` (docs-dir paths) or None per cell. In the
    manifest a cell is ``[folder index, stem index, caption]``: the overlay is
    ``base + folders[f] + "/" + stems[s] + "-overlay.webp"``, the bare map ``...-map.webp``
    (every map pair is named so, :func:`atlas.site.paths.model_map`). A model page's manifest
    shrinks from ~150 KB to ~10 KB.
    """
    pairs = {(c[0], c[1]) for cells in views.values() for c in cells if c}
    for overlay, bare in pairs:
        if not (overlay.endswith("-overlay.webp") and bare == overlay[: -len("-overlay.webp")] + "-map.webp"):
            raise ValueError(f"gallery images not named as a pair: {overlay}, {bare}")
    stems = sorted({o[: -len("-overlay.webp")] for o, _ in pairs})
    base = posixpath.commonpath([posixpath.dirname(posixpath.dirname(s)) for s in stems]) if stems else ""
    folders = sorted({posixpath.relpath(posixpath.dirname(s), base) for s in stems})
    names = sorted({posixpath.basename(s) for s in stems})
    fi, ni = {f: i for i, f in enumerate(folders)}, {n: i for i, n in enumerate(names)}

    def cell(c):
        if not c:
            return None
        stem = c[0][: -len("-overlay.webp")]
        return [fi[posixpath.relpath(posixpath.dirname(stem), base)], ni[posixpath.basename(stem)], c[2]]

    return {"axes": [{"name": a["name"], "labels": a["labels"], "values": a["values"]} for a in axes],
            "base": rel(base, page) + "/" if base else "", "folders": folders, "stems": names,
            "views": {k: [cell(c) for c in cells] for k, cells in views.items()}}


def view_query(block: int, representation: str, k: int) -> str:
    """Query string of a model page's gallery view (what ``atlas.js`` reads and writes).

    >>> view_query(5, "keys", 8)
    '?block=5&representation=keys&k=8'
    """
    return "?" + urlencode({"block": block, "representation": representation, "k": k})


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
    """Manifest of a comparison page's gallery; ``maps``: :func:`atlas.site.maps.write_maps`' ``"comparisons"``."""
    panels = [p for p in c.panels if p.get("columns")]
    if not panels:
        return None
    ncol = len(panels[0]["columns"])
    heads = column_heads(c, labels)
    entries = {col["maps"]: maps.get((c.slug, col["maps"]), []) for p in panels for col in p["columns"]}
    images = image_order(results, (e["image"] for es in entries.values() for e in es))
    views: dict[str, list[Any]] = {}
    axis_labels, axis_values = [], []
    for pi, p in enumerate(panels):
        label = f"rel. depth {float(p.get('rel_depth', 0.0)):.2f}"
        value = f"{float(p.get('rel_depth', 0.0)):.2f}"
        if p.get("representation"):
            label += f" · {p['representation']}"
            value += f"-{p['representation']}"
        axis_labels.append(label)
        axis_values.append(value)
        cells: list[Any] = []
        for name in images:
            for col in p["columns"][:ncol]:
                e = next((e for e in entries[col["maps"]] if e["image"] == name), None)
                cap = f"block {col['block']}" if col.get("block") is not None else ""
                cells.append([e["overlay"], e["bare"], cap] if e else None)
        views[str(pi)] = cells
    start = 0
    axes = [{"name": "depth", "label": "Matched depth", "kind": "range", "labels": axis_labels, "values": axis_values,
             "start": start}]
    first = views[str(start)]
    cells = []
    for i, name in enumerate(images):
        for j in range(ncol):
            v = first[i * ncol + j]
            cells.append({"caption": v[2] if v else "", "src": rel(v[0], page) if v else "",
                          "alt": f"{name}: {heads[j]}", "row": name if j == 0 else ""})
    return {
        "id": "gallery",
        "anchor": "gallery",  # the heading the view's URL points at
        "axes": axes,
        "cells": cells,
        "columns": heads,
        "width": 0,
        "height": 0,
        "manifest": compact_manifest(axes, views, page),
    }
