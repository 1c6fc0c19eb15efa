"""The Home overview: one image, every model, a few relative depths: a models × depth matrix of
cluster maps, each linking to that model page's gallery at that block.

Which maps it shows is decided here from the records alone (:func:`overview_cells`); the small
thumbnails are drawn by :func:`atlas.site.maps.write_maps`; the Home page lays them out
(:func:`overview_matrix`).
"""

from __future__ import annotations

from typing import Any

from ..records import AtlasResults, ImageInfo, ModelResult, map_key
from .gallery import view_query
from .paths import html_url, model_page, rel

#: Relative depths of the matrix columns ((block + 1) / depth of the nearest gallery block).
OVERVIEW_DEPTHS = (0.25, 0.5, 0.75, 1.0)
#: Longer side of an overview thumbnail, in pixels.
OVERVIEW_SIZE = 128


def overview_image(results: AtlasResults) -> ImageInfo | None:
    """The image of the matrix: ``[atlas] overview_image``, else the atlas's first image."""
    for img in results.images:
        if img.name == results.overview_image:
            return img
    return results.images[0] if results.images else None


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


def overview_cells(results: AtlasResults) -> dict[str, list[dict[str, Any]]]:
    """Per model slug, one cell per :data:`OVERVIEW_DEPTHS`: the gallery block nearest that
    relative depth (ties: the deeper one), its representation, K and label-map key."""
    out: dict[str, list[dict[str, Any]]] = {}
    for m in results.models:
        default = gallery_default(m)
        if default is None:
            out[m.card.slug] = []
            continue
        rep, k = default
        runs = [r for r in m.runs if r.representation == rep and r.k == k
                and map_key(r.block, rep, k) in m.label_maps]
        cells = []
        for target in OVERVIEW_DEPTHS:
            run = min(runs, key=lambda r: (abs(r.rel_depth - target), -r.block))
            cells.append({"target": target, "block": run.block, "rel_depth": run.rel_depth,
                          "representation": rep, "k": k, "key": map_key(run.block, rep, k)})
        out[m.card.slug] = cells
    return out


def overview_matrix(results: AtlasResults, page: str, labels: dict[str, str], maps: dict) -> dict[str, Any] | None:
    """The matrix as the Home template lays it out; ``maps``: :func:`write_maps`' output."""
    img = overview_image(results)
    if img is None or not maps.get("overview"):
        return None
    cells = overview_cells(results)
    rows = []
    for m in results.models:
        href = html_url(rel(model_page(m), page))
        row = []
        for c in cells.get(m.card.slug, []):
            src = maps["overview"].get((m.card.slug, c["key"]))
            row.append({
                "src": rel(src, page) if src else "",
                "href": f"{href}{view_query(c['block'], c['representation'], c['k'])}#gallery",
                "caption": f"block {c['block']}",
                "alt": f"{labels[m.card.slug]}: cluster map of {img.name} at block {c['block']} "
                       f"({c['representation']}, K = {c['k']})",
            })
        what = f"{cells[m.card.slug][0]['representation']}, K = {cells[m.card.slug][0]['k']}" if row else ""
        rows.append({"label": labels[m.card.slug], "href": href, "random": m.card.is_random_init, "what": what,
                     "cells": row})
    thumb = maps.get("thumbnails", {}).get(img.name)
    return {"image": img.name, "photo": rel(thumb, page) if thumb else "",
            "columns": [f"rel. depth {d:.2f}" for d in OVERVIEW_DEPTHS], "rows": rows}
