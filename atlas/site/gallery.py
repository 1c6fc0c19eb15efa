"""Gallery manifests: which image every (block, representation, K) view of a model page, and every
matched depth of a comparison page, shows; ``atlas.js`` swaps the images from them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..records import RANDOM_INIT_LABEL, AtlasResults, ComparisonResult, ModelResult, map_key
from .paths import rel


def image_order(results: AtlasResults, names: Iterable[str]) -> list[str]:
    """Image names in the order of the atlas image set."""
    order = {img.name: i for i, img in enumerate(results.images)}
    return sorted(set(names), key=lambda n: (order.get(n, len(order)), n))


def model_gallery(results: AtlasResults, m: ModelResult, page: str, maps: dict) -> dict[str, Any] | None:
    """Manifest of a model page's gallery; ``maps``: :func:`atlas.site.maps.write_maps`' ``"models"``."""
    runs = [r for r in m.runs if (m.card.slug, map_key(r.block, r.representation, r.k)) in maps]
    if not runs:
        return None
    blocks = sorted({r.block for r in runs})
    reps = [r for r in m.representations if any(x.representation == r for x in runs)]
    reps += sorted({r.representation for r in runs} - set(reps))
    ks = sorted({r.k for r in runs})
    entries_of = [maps[(m.card.slug, map_key(r.block, r.representation, r.k))] for r in runs]
    images = image_order(results, (e["image"] for es in entries_of for e in es))
    depth = {r.block: r.rel_depth for r in runs}
    views: dict[str, list[Any]] = {}
    for r, entries in zip(runs, entries_of):
        by_image = {e["image"]: e for e in entries}
        key = f"{blocks.index(r.block)}|{reps.index(r.representation)}|{ks.index(r.k)}"
        views[key] = [
            [rel(by_image[n]["overlay"], page), rel(by_image[n]["bare"], page), ""] if n in by_image else None
            for n in images
        ]
    start = [len(blocks) // 2, 0, len(ks) // 2]
    if "|".join(map(str, start)) not in views:
        start = [int(v) for v in sorted(views)[0].split("|")]
    axes = [
        {"name": "block", "label": "Block", "kind": "range",
         "labels": [f"block {b} · rel. depth {depth[b]:.2f}" for b in blocks]},
        {"name": "representation", "label": "Representation", "kind": "select", "labels": reps},
        {"name": "k", "label": "K", "kind": "select", "labels": [str(k) for k in ks]},
    ]
    for ax, idx in zip(axes, start):
        ax["start"] = idx
    first = views["|".join(map(str, start))]
    h, w = (m.card.input_size + [0, 0])[:2]
    cells = [
        {"caption": n, "src": (first[i][0] if first[i] else ""), "alt": f"cluster map of {n}"}
        for i, n in enumerate(images)
    ]
    return {
        "id": "gallery",
        "axes": axes,
        "cells": cells,
        "columns": [],
        "width": w,
        "height": h,
        "manifest": {"axes": [{"name": a["name"], "labels": a["labels"]} for a in axes], "views": views},
    }


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
    axis_labels = []
    for pi, p in enumerate(panels):
        label = f"rel. depth {float(p.get('rel_depth', 0.0)):.2f}"
        if p.get("representation"):
            label += f" · {p['representation']}"
        axis_labels.append(label)
        cells: list[Any] = []
        for name in images:
            for col in p["columns"][:ncol]:
                e = next((e for e in entries[col["maps"]] if e["image"] == name), None)
                cap = f"block {col['block']}" if col.get("block") is not None else ""
                cells.append([rel(e["overlay"], page), rel(e["bare"], page), cap] if e else None)
        views[str(pi)] = cells
    start = 0
    axes = [{"name": "depth", "label": "Matched depth", "kind": "range", "labels": axis_labels, "start": start}]
    first = views[str(start)]
    cells = []
    for i, name in enumerate(images):
        for j in range(ncol):
            v = first[i * ncol + j]
            cells.append({"caption": v[2] if v else "", "src": v[0] if v else "",
                          "alt": f"{name}: {heads[j]}", "row": name if j == 0 else ""})
    return {
        "id": "gallery",
        "axes": axes,
        "cells": cells,
        "columns": heads,
        "width": 0,
        "height": 0,
        "manifest": {"axes": [{"name": a["name"], "labels": a["labels"]} for a in axes], "views": views},
    }
