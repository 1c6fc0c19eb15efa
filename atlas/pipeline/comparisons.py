"""Comparison pages' label maps: the same images across models (or representations) at matched
relative depth, with cluster colours aligned across the columns.

Models with different patch grids (16 vs 14 px patches) are compared on their least common grid
(:func:`atlas.clustering.align.common_grid`), counted without building it
(:func:`atlas.clustering.align.grid_contingency`); every model is aligned to the first one.
"""

from __future__ import annotations

import logging

import numpy as np

from ..clustering.align import align_to_reference, apply_mapping
from ..config import AtlasConfig, Comparison, rel_depth, resolve_layers
from ..records import ComparisonResult, ModelResult, map_key

log = logging.getLogger(__name__)


def comparison_models(cfg: AtlasConfig, comp: Comparison, built: dict[str, ModelResult]) -> list[str]:
    """Slugs of the comparison's models that are in this build, in config order (none named = all)."""
    wanted = cfg.model_slugs(comp.models) if comp.models else [b.slug for b in cfg.backbones]
    return [s for s in wanted if s in built]


def comparison_k(cfg: AtlasConfig) -> int:
    """The one K comparison pages show: the measures' K when the gallery has it, else the largest."""
    return cfg.analyses.k if cfg.analyses.k in cfg.clustering.ks else max(cfg.clustering.ks)


def build_comparison(cfg: AtlasConfig, comp: Comparison, built: dict[str, ModelResult], k: int) -> ComparisonResult | None:
    """The comparison's panels and aligned label maps, or None when it has too few models."""
    slugs = comparison_models(cfg, comp, built)
    if comp.kind == "representations":
        return _representations(comp, built[slugs[0]], k) if slugs else None
    if len(slugs) < 2:
        log.warning("comparison %r skipped: fewer than 2 of its models are in this build", comp.title)
        return None
    rep = comp.representation
    fracs = cfg.features.gallery_layers
    if isinstance(fracs, list) and all(isinstance(x, float) for x in fracs):
        depths = list(fracs)
    else:  # block indices or "all": every relative depth some model shows
        depths = sorted({r.rel_depth for s in slugs for r in built[s].runs})
    panels, label_maps = [], {}
    for d in depths:
        maps = []
        for s in slugs:
            m = built[s]
            b = resolve_layers([float(d)], m.card.depth)[0]
            key = map_key(b, rep, k)
            if key in m.label_maps:
                maps.append((s, b, m.label_maps[key].astype(np.int64)))
        if len(maps) < 2:
            continue
        ref = maps[0][2]
        cols = []
        for j, (s, b, mp) in enumerate(maps):
            if j:  # overlap counted on the grids' common grid, never built (grid_contingency)
                mp = apply_mapping(mp, align_to_reference(ref, mp, k, k))
            key = f"d{int(round(d * 100)):03d}-{s}"
            label_maps[key] = mp.astype(np.int16)
            cols.append({"model": s, "representation": rep, "block": b, "maps": key})
        panels.append({"rel_depth": float(d), "representation": rep, "columns": cols})
    return ComparisonResult(slug=comp.slug, title=comp.title, kind=comp.kind, description=comp.description,
                            models=slugs, rel_depths=[p["rel_depth"] for p in panels], representations=[rep], k=k,
                            panels=panels, label_maps=label_maps)


def _representations(comp: Comparison, m: ModelResult, k: int) -> ComparisonResult:
    """One model's representations side by side, block by block (colours are already shared:
    every representation is aligned to the tokens in the model run)."""
    panels, label_maps = [], {}
    for b in m.blocks:
        cols = []
        for rep in m.representations:
            key = map_key(b, rep, k)
            if key in m.label_maps:
                label_maps[key] = m.label_maps[key]
                cols.append({"model": m.card.slug, "representation": rep, "block": b, "label": rep, "maps": key})
        panels.append({"rel_depth": rel_depth(b, m.card.depth), "columns": cols})
    return ComparisonResult(slug=comp.slug, title=comp.title, kind=comp.kind, description=comp.description,
                            models=[m.card.slug], rel_depths=[p["rel_depth"] for p in panels],
                            representations=list(m.representations), k=k, panels=panels, label_maps=label_maps)
