"""Highlight sentences: each model's most extreme (block, representation) on the measures the
registry marks for highlights, computed from the numbers, never hand-written."""

from __future__ import annotations

import numpy as np

from ..config import slugify
from ..measures.registry import REGISTRY
from ..records import Highlight, ModelResult


def make_highlights(models: list[ModelResult]) -> tuple[list[Highlight], dict[str, list[Highlight]]]:
    """Atlas-wide highlights (the highest model per measure, when there are several) and each
    model's own, by model slug."""
    per_model: dict[str, list[Highlight]] = {}
    atlas_wide: list[Highlight] = []
    for measure in sorted((k for k, m in REGISTRY.items() if m.highlight), key=lambda k: REGISTRY[k].highlight):
        text = REGISTRY[measure].title
        best = {}
        for m in models:
            rows = [r for r in m.measures if r.measure == measure and np.isfinite(r.value)]
            if rows:
                best[m.card.slug] = (max(rows, key=lambda r: (r.value, -r.block)), m)
        if not best:
            continue
        top_slug = max(best, key=lambda s: best[s][0].value)
        for slug, (row, m) in best.items():
            tag = " — random init, architecture baseline" if m.card.is_random_init else ""
            flag = ", highest in this atlas" if slug == top_slug and len(best) > 1 else ""
            sentence = f"Block {row.block} {row.representation}: {text} {row.value:.2f}{flag}{tag}."
            anchor = f"fig-measure-{slugify(measure)}"
            per_model.setdefault(slug, []).append(Highlight(text=sentence, model=slug, anchor=anchor))
            if flag:
                atlas_wide.append(Highlight(text=f"{m.card.display_name}, block {row.block} {row.representation}: "
                                                 f"{text} {row.value:.2f}, highest in this atlas{tag}.",
                                            model=slug, anchor=anchor))
    return atlas_wide, per_model
