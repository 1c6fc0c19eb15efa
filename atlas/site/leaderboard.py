"""The segmentation-quality leaderboard: every model's best score on each measure the registry
puts on it, over blocks and representations, with every model's curve across depth."""

from __future__ import annotations

import math
import posixpath
from typing import Any

from jinja2 import Environment

from ..config import slugify
from ..records import AtlasResults, MeasureRow
from .data import LEADERBOARD_TITLE, csv_text, dumps, num
from .figures import comparison_measure_figure, measure_figure
from .markup import breakable
from .paths import LEADERBOARD_PAGE, cite_key, comparison_page, html_url, model_page, rel
from .scaling import fmt3
from .wording import measure_definition, measure_title

#: One sentence for the home page's list of comparisons.
LEADERBOARD_BLURB = "every model's best score on each evaluation measure, over blocks and representations."


def leaderboard_measures(results: AtlasResults) -> list[str]:
    """Measures of this build with a leaderboard column (``measure_info[...]["leaderboard"]``), in
    column order."""
    info = results.measure_info
    names = {r.measure for m in results.models for r in m.measures if (info.get(r.measure) or {}).get("leaderboard")}
    return sorted(names, key=lambda n: (info[n]["leaderboard"], n))


def leaderboard_page(results: AtlasResults) -> str:
    """Docs path of the segmentation-quality page, or "" when no model has evaluation measures."""
    if not leaderboard_measures(results):
        return ""
    taken = {comparison_page(c) for c in results.comparisons}
    return LEADERBOARD_PAGE if LEADERBOARD_PAGE not in taken else LEADERBOARD_PAGE[:-3] + "-leaderboard.md"


def best(rows: list[MeasureRow]) -> MeasureRow | None:
    """Best finite row (highest value); ties: shallowest block."""
    rows = [r for r in rows if isinstance(num(r.value), float) and math.isfinite(num(r.value))]
    return min(rows, key=lambda r: (-float(r.value), r.block, r.representation, r.k is None, r.k or 0), default=None)


def leaderboard_files(results: AtlasResults, page: str, labels: dict[str, str], env: Environment,
                      common: dict[str, Any]) -> dict[str, str]:
    """The leaderboard page and its CSV / JSON, ``{docs-dir path: text}``."""
    info = results.measure_info
    names = leaderboard_measures(results)
    stem = posixpath.splitext(page)[0]
    rows, csv_rows, best_json = [], [], {}
    for m in results.models:
        slug = m.card.slug
        cells, best_json[slug] = [], {}
        for name in names:
            mine = [r for r in m.measures if r.measure == name]
            b = best(mine)
            best_json[slug][name] = b and {"value": num(b.value), "block": b.block, "rel_depth": b.rel_depth,
                                           "representation": b.representation, "k": b.k}
            if b is None:
                cells.append({"text": "—", "where": "", "value": None})
                continue
            where = f"b{b.block} {b.representation}"
            if len({r.k for r in mine}) > 1 and b.k is not None:
                where += f" K={b.k}"
            cells.append({"text": fmt3(b.value), "where": f"({where})", "value": repr(float(b.value))})
            csv_rows.append([slug, labels[slug], m.card.family, m.card.training, m.card.params, name,
                             num(b.value), b.block, b.rel_depth, b.representation, b.k])
        rows.append({"label": labels[slug], "href": rel(html_url(model_page(m)), page),
                     "family": m.card.family, "training": m.card.training, "params": m.card.params,
                     "params_text": f"{m.card.params / 1e6:.1f} M", "cells": cells})
    # Ranked by the first measure, best first (models without it last, in atlas order).
    rows.sort(key=lambda r: (r["cells"][0]["value"] is None, -float(r["cells"][0]["value"] or 0.0)))

    figs = []
    for name in names:
        mine = [r for m in results.models for r in m.measures if r.measure == name]
        reps = list(dict.fromkeys(r.representation for r in mine))
        rep = "tokens" if "tokens" in reps else reps[0]
        fig_rows = []
        for m in results.models:
            sel = [r for r in m.measures if r.measure == name and r.representation == rep]
            b = best(sel)
            fig_rows += [{"model": m.card.slug, "representation": rep, "measure": name, "rel_depth": r.rel_depth,
                          "block": r.block, "value": r.value} for r in sel if b is None or r.k == b.k]
        fig = comparison_measure_figure(fig_rows, measure_title(info, name), labels, f"all models · {rep}")
        figs.append(measure_figure(fig, slugify(stem), f"fig-measure-{slugify(name)}", name, info,
                                    f"Representation: {rep}."))

    base = posixpath.basename(stem)
    files = {}
    files[f"{stem}.csv"] = csv_text(["model", "label", "family", "training", "params", "measure", "best_value",
                                     "block", "rel_depth", "representation", "k"], csv_rows)
    files[f"{stem}.json"] = dumps({
        "atlas_version": results.atlas_version, "config_hash": results.config_hash,
        "measures": [{"name": n, "title": measure_title(info, n), "definition": measure_definition(info, n),
                      "better": "higher"} for n in names],
        "models": [{"slug": m.card.slug, "label": labels[m.card.slug], "family": m.card.family,
                    "training": m.card.training, "params": m.card.params, "page": html_url(model_page(m)),
                    "best": best_json[m.card.slug]} for m in results.models],
    })
    files[page] = env.get_template("leaderboard.md.j2").render(
        **common,
        page=page,
        title=LEADERBOARD_TITLE,
        cite_key=cite_key(page),
        measures=[{"name": n, "title": measure_title(info, n), "description": measure_definition(info, n),
                   "head": breakable(measure_title(info, n))} for n in names],
        rows=rows,
        figs=figs,
        random_models=[labels[m.card.slug] for m in results.models if m.card.is_random_init],
        data={"csv": f"{base}.csv", "json": f"{base}.json"},
    )
    return files
