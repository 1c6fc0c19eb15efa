"""The Home overview: every model, four relative depths, a choice of image and representation: a
models x depth matrix of cluster maps, grouped by family with sizes in order, each cell linking to
that model page's gallery at that block.

Which maps it shows is decided here from the records alone (:func:`overview_cells`); each model's
maps go into one view file (:func:`atlas.site.maps.write_maps`, ``("overview", slug)``: per
representation, depth and overview image); ``atlas.js`` draws the cells for the chosen image and
representation; the Home page lays the matrix out (:func:`overview_matrix`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..records import AtlasResults, ImageInfo, ModelResult, map_key
from .palette import palette_hex
from .paths import html_url, model_page, rel, view_query

#: Relative depths of the matrix columns ((block + 1) / depth of the nearest gallery block).
OVERVIEW_DEPTHS = (0.25, 0.5, 0.75, 1.0)
#: Images the overview offers (the overview image first, then the atlas's first images).
OVERVIEW_IMAGES = 8
#: A cell shows the nearest gallery block only within this distance of its relative depth.
OVERVIEW_TOLERANCE = 0.2


def overview_image(results: AtlasResults) -> ImageInfo | None:
    """The image the matrix opens with: ``[atlas] overview_image``, else the atlas's first image."""
    for img in results.images:
        if img.name == results.overview_image:
            return img
    return results.images[0] if results.images else None


def overview_images(results: AtlasResults) -> list[int]:
    """Atlas indices of the images the matrix offers: the overview image first, then the first others."""
    first = overview_image(results)
    if first is None:
        return []
    start = [img.name for img in results.images].index(first.name)
    return [start] + [i for i in range(len(results.images)) if i != start][: OVERVIEW_IMAGES - 1]


def gallery_default(m: ModelResult) -> tuple[str, int] | None:
    """(representation, K) of a model's overview row: tokens (else its first representation with
    maps) at the middle K, as the gallery opens."""
    with_maps = [r for r in m.runs if map_key(r.block, r.representation, r.k) in m.label_maps]
    if not with_maps:
        return None
    reps = [r for r in [*m.representations] if any(x.representation == r for x in with_maps)]
    rep = "tokens" if "tokens" in reps else (reps or [with_maps[0].representation])[0]
    ks = sorted({r.k for r in with_maps if r.representation == rep})
    return rep, ks[len(ks) // 2]


def overview_cells(results: AtlasResults) -> dict[str, dict[str, list[dict[str, Any] | None]]]:
    """Per model slug and representation (with maps at the model's overview K), one cell per
    :data:`OVERVIEW_DEPTHS`: the gallery block nearest that relative depth (ties: the deeper one),
    or None when no gallery block lies within :data:`OVERVIEW_TOLERANCE` of it (``tokens_normed``
    exists at the last block only)."""
    out: dict[str, dict[str, list[dict[str, Any] | None]]] = {}
    for m in results.models:
        default = gallery_default(m)
        out[m.card.slug] = {}
        if default is None:
            continue
        _, k = default
        reps = [r for r in m.representations if any(x.representation == r and x.k == k for x in m.runs)]
        for rep in reps:
            runs = [r for r in m.runs if r.representation == rep and r.k == k
                    and map_key(r.block, rep, k) in m.label_maps]
            if not runs:
                continue
            cells: list[dict[str, Any] | None] = []
            for target in OVERVIEW_DEPTHS:
                run = min(runs, key=lambda r: (abs(r.rel_depth - target), -r.block))
                cells.append({"target": target, "block": run.block, "rel_depth": run.rel_depth,
                              "representation": rep, "k": k, "key": map_key(run.block, rep, k)}
                             if abs(run.rel_depth - target) <= OVERVIEW_TOLERANCE else None)
            out[m.card.slug][rep] = cells
    return out


def overview_stack(results: AtlasResults, m: ModelResult) -> np.ndarray | None:
    """The maps of a model's overview file: (representations x depths x images, h, w), in the order
    of :func:`overview_cells` and :func:`overview_images` (cells without a block: zeros)."""
    cells = overview_cells(results)[m.card.slug]
    images = overview_images(results)
    maps = [m.label_maps[c["key"]] for rep in cells.values() for c in rep if c]
    if not maps or not images:
        return None
    h, w = maps[0].shape[1:]
    out = np.zeros((len(cells) * len(OVERVIEW_DEPTHS) * len(images), h, w), dtype=maps[0].dtype)
    i = 0
    for rep in cells.values():
        for c in rep:
            for img in images:
                if c and img < len(m.label_maps[c["key"]]):
                    out[i] = m.label_maps[c["key"]][img]
                i += 1
    return out


def family_order(results: AtlasResults) -> list[ModelResult]:
    """Models grouped by family (families in the order they first appear), smallest first within one."""
    families: list[str] = []
    for m in results.models:
        if m.card.family not in families:
            families.append(m.card.family)
    return sorted(results.models, key=lambda m: (families.index(m.card.family), m.card.params, m.card.display_name))


def overview_matrix(results: AtlasResults, page: str, labels: dict[str, str], maps: dict) -> dict[str, Any] | None:
    """The matrix as the Home template lays it out, and the manifest ``atlas.js`` draws it from;
    ``maps``: :func:`write_maps`' output."""
    first = overview_image(results)
    if first is None:
        return None
    images = overview_images(results)
    cells = overview_cells(results)
    reps = [r for m in results.models for r in cells[m.card.slug]]
    reps = list(dict.fromkeys(["tokens"] * ("tokens" in reps) + reps))
    photos = maps.get("photos", {})
    groups: list[dict[str, Any]] = []
    rows_manifest = []
    for m in family_order(results):
        slug = m.card.slug
        href = html_url(rel(model_page(m), page))
        view = maps["views"].get(("overview", slug))
        size = tuple(m.card.input_size)
        aspect = str(round(1000 * size[0] / size[1])) if size[1] else "0"
        rep = reps[0] if reps and reps[0] in cells[slug] else next(iter(cells[slug]), None)
        row_cells = []
        for d, target in enumerate(OVERVIEW_DEPTHS):
            c = cells[slug][rep][d] if rep else None
            row_cells.append({
                "href": f"{href}{view_query(c['block'], c['representation'], c['k'])}#gallery" if c else href,
                "caption": f"block {c['block']}" if c else "—",
                "alt": f"{labels[slug]}: cluster map at block {c['block']} ({c['representation']}, K = {c['k']})"
                       if c else f"{labels[slug]}: no gallery block near rel. depth {target:.2f}",
            })
        row = {"index": len(rows_manifest), "label": labels[slug], "href": href, "random": m.card.is_random_init, "cells": row_cells if view else [],
               "what": f"{m.card.params / 1e6:.1f} M params · K = {next(c for r in cells[slug].values() for c in r if c)['k']}"
               if cells[slug] else ""}
        if not groups or groups[-1]["family"] != m.card.family:
            groups.append({"family": m.card.family, "rows": []})
        groups[-1]["rows"].append(row)
        rows_manifest.append({
            "href": href, "label": labels[slug],
            "sprite": dict({k: v for k, v in view.items() if k in ("n", "h", "w", "bytes", "sha256", "kind")},
                           src=rel(view["src"], page), a=aspect) if view else None,
            # the order of the view file's maps (a JSON object's keys would be sorted)
            "reps": list(cells[slug]),
            "cells": {r: [[c["block"], c["k"]] if c else None for c in cs] for r, cs in cells[slug].items()},
        })
    image_rows = []
    for i in images:
        img = results.images[i]
        urls = {}
        for m in results.models:
            size = tuple(m.card.input_size)
            if (img.name, size) in photos and size[1]:
                urls[str(round(1000 * size[0] / size[1]))] = rel(photos[(img.name, size)], page)
        image_rows.append([img.name, urls])
    manifest = {"images": image_rows, "reps": reps, "depths": len(OVERVIEW_DEPTHS), "rows": rows_manifest,
                "palette": palette_hex(max((len(v.get("legend", [])) for (o, _), v in maps["views"].items()
                                            if o == "overview"), default=1))}
    return {"image": first.name, "images": [r[0] for r in image_rows], "reps": reps,
            "columns": [f"rel. depth {d:.2f}" for d in OVERVIEW_DEPTHS], "groups": groups, "manifest": manifest}
