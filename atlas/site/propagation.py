"""The label-propagation comparison page: every model's J&F, J and F at the block and
representation chosen on the selection sequences, beside the baselines of its frame grid; each
representation's curve across depth for all models; and J&F per test sequence."""

from __future__ import annotations

import posixpath
from typing import Any

from jinja2 import Environment

from ..config import slugify
from ..formatting import fixed, level_percent
from ..records import AtlasResults, chosen_row
from .data import csv_text, dumps, num
from .figures import baseline_groups, comparison_measure_figure, measure_figure
from .honesty import FLAG_RULE, baseline_flag, comparison_baseline_note, grid_words
from .honesty import legend as flag_legend
from .leaderboard import (BASELINE_ORDER, baselines_by_grid, baselines_json, cell, kept_uncertainty, none_clears,
                          rank_cell, rank_tiers, rank_words, selection_rule, tier_gaps)
from .methods import one_drive, propagation_words
from .citation import versioned_cite_key
from .paths import html_url, model_page, rel
from .wording import measure_title

PROPAGATION_PAGE = "compare/label-propagation.md"
PROPAGATION_TITLE = "Label propagation"
PROPAGATION_BLURB = ("video object segmentation from the first mask alone (DINO's recipe, made for DAVIS), per block and "
                     "representation, beside zero motion, colour, position and the ceiling.")
MEASURES = ("propagation_jf", "propagation_j", "propagation_f")


def context_words(p: dict[str, Any]) -> str:
    """The frames and neighbours each frame's labels come from, from the propagation's Methods record.

    >>> context_words({"n_context": 7, "top_k": 5, "radius": 12})
    'the first frame and the 7 most recent ones; each patch keeps its top 5 affinities within 12 patches'
    """
    if not {"n_context", "top_k", "radius"} <= set(p):
        return ""
    return (f"the first frame and the {p['n_context']} most recent ones; each patch keeps its top {p['top_k']} "
            f"affinities within {p['radius']} patches")


def propagation_page(results: AtlasResults, taken: set[str] = frozenset()) -> str:
    """Docs path of the page, or "" when no model has label-propagation numbers."""
    if not any(r.measure == MEASURES[0] for m in results.models for r in m.measures):
        return ""
    return PROPAGATION_PAGE if PROPAGATION_PAGE not in taken else PROPAGATION_PAGE[:-3] + "-video.md"


def propagation_files(results: AtlasResults, page: str, labels: dict[str, str], env: Environment,
                      common: dict[str, Any]) -> dict[str, str]:
    """The page, its CSV (per test sequence) and its JSON (the table as shown: each model's chosen
    pair, values, intervals and rank, and the baselines), ``{docs-dir path: text}``."""
    info = results.measure_info
    stem = posixpath.splitext(page)[0]
    models = [m for m in results.models if any(r.measure == MEASURES[0] for r in m.measures)]
    rows = []
    for m in models:
        picked = [chosen_row(m, n) for n in MEASURES]
        where = picked[0] and f"block {picked[0].block} {picked[0].representation}"
        rows.append({"slug": m.card.slug, "picked": picked, "page": html_url(model_page(m)),
                     "label": labels[m.card.slug], "href": rel(html_url(model_page(m)), page),
                     "cells": [cell(r, "", baseline_flag(r, m.baselines, info, results.interval_level)) for r in picked],
                     "where": where or "—",
                     "interval": picked[0] and (picked[0].value, picked[0].lo, picked[0].hi, picked[0].se,
                                                picked[0].df) or (None,) * 5,
                     "uncertainty": kept_uncertainty(m, picked[0])})
    rows.sort(key=lambda r: (r["cells"][0]["value"] is None, -float(r["cells"][0]["value"] or 0.0)))
    kept = [r["uncertainty"] for r in rows]  # J&F, in tiers of numbers the atlas does not tell apart
    tiers = rank_tiers([r["interval"] for r in rows], kept, results.interval_level)
    for r, tier, gap in zip(rows, tiers, tier_gaps(tiers, kept, results.interval_level)):
        r["rank"] = rank_cell(tier, gap and (rows[gap[0]]["label"], gap[1]))
        r["tier"] = tier

    grids = baselines_by_grid(models, MEASURES)
    tables = [{"grid": grid, "models": [labels[slug] for slug in t["models"]],
               "rows": [{"label": name, "cells": [cell(t["by"].get((n, name))) for n in MEASURES]}
                        for name in BASELINE_ORDER if any((n, name) in t["by"] for n in MEASURES)]}
              for grid, t in grids.items()]

    # J&F per test sequence at each model's chosen pair (the model pages' per-sequence figure)
    sequences: list[str] = []
    per_model: dict[str, dict[str, float]] = {}
    sequence_baselines: dict[str, dict[str, dict[str, float]]] = {}
    csv_rows = []
    for m in models:
        payload = next((p for p in m.figures.get("curves", []) if p.get("kind") == "propagation-sequences"), None)
        if payload is None:
            continue
        sequences += [s for s in payload["x"] if s not in sequences]
        series = payload["series"]
        per_model[m.card.slug] = dict(zip(payload["x"], series.get("model", [])))
        grid = next((grid_words(m.card, b.grid) for b in m.baselines if b.measure in MEASURES), "")
        for key, values in series.items():
            if key == "model":
                continue
            sequence_baselines.setdefault(grid, {}).setdefault(key.replace("_", " "), dict(zip(payload["x"], values)))
        csv_rows += [[m.card.slug, labels[m.card.slug], s, num(v), payload["block"], payload["representation"], ""]
                     for s, v in zip(payload["x"], series.get("model", []))]
    for grid, named in sequence_baselines.items():
        csv_rows += [["", "", s, num(v), None, None, f"{name} ({grid})"] for name, values in named.items()
                     for s, v in values.items()]
    def value_cell(v):
        return {"text": fixed(v, 3, missing="—"), "ci": "", "where": "", "value": None if v is None else repr(float(v))}

    sequence_rows = [{"sequence": s, "cells": [value_cell(per_model.get(m.card.slug, {}).get(s)) for m in models]
                      + [value_cell(values.get(s)) for named in sequence_baselines.values() for values in named.values()]}
                     for s in sequences]
    sequence_heads = [labels[m.card.slug] for m in models] + [
        f"{name} ({grid})" if len(sequence_baselines) > 1 else name
        for grid, named in sequence_baselines.items() for name in named]

    figs = []
    reps = list(dict.fromkeys(r.representation for m in models for r in m.measures if r.measure == MEASURES[0]))
    groups = baseline_groups(models, MEASURES[0])
    for rep in reps:
        fig_rows = [{"model": m.card.slug, "representation": rep, "measure": MEASURES[0], "rel_depth": r.rel_depth,
                     "block": r.block, "value": r.value, "lo": r.lo, "hi": r.hi}
                    for m in models for r in m.measures if r.measure == MEASURES[0] and r.representation == rep]
        if len({r["block"] for r in fig_rows}) < 2 and rep == "tokens_normed":
            continue  # a last-block-only representation is on the model pages
        fig = comparison_measure_figure(fig_rows, measure_title(info, MEASURES[0]), labels, f"all models · {rep}",
                                        bounds=(info.get(MEASURES[0]) or {}).get("bounds"), baselines=groups)
        note = comparison_baseline_note(groups, list(dict.fromkeys(r["model"] for r in fig_rows)))
        figs.append(measure_figure(fig, slugify(stem), f"fig-jf-{slugify(rep)}", MEASURES[0], info,
                                   " ".join(t for t in (f"Representation: {rep}; bands: {level_percent(results.interval_level)} "
                                                        "intervals over the test sequences.", note) if t)))
    rules = sorted({selection_rule(info, m.selected[MEASURES[0]]) for m in models if MEASURES[0] in m.selected})
    base = posixpath.basename(stem)
    methods = propagation_words(results.methods["propagation"]) if "propagation" in results.methods else {}
    def numbers(r):
        return r and {"value": r.value, "lo": r.lo, "hi": r.hi, "se": r.se, "df": r.df}

    table = {
        "atlas_version": results.atlas_version, "config_hash": results.config_hash,
        "interval_level": results.interval_level, "ranked_by": MEASURES[0],
        "measures": [{"name": n, "title": measure_title(info, n)} for n in MEASURES],
        "models": [{"slug": r["slug"], "label": r["label"], "page": r["page"],
                    "rank": (r["tier"] or (None,))[0], "rank_shared": bool(r["tier"] and r["tier"][1]),
                    "chosen": r["picked"][0] and {"block": r["picked"][0].block,
                                                  "representation": r["picked"][0].representation},
                    "values": {n: numbers(p) for n, p in zip(MEASURES, r["picked"])}} for r in rows],
        "baselines": baselines_json(grids),
    }
    return {
        f"{stem}.csv": csv_text(["model", "label", "sequence", "j_and_f", "block", "representation", "baseline"],
                                csv_rows),
        f"{stem}.json": dumps(table),
        page: env.get_template("propagation.md.j2").render(
            **common, page=page, title=PROPAGATION_TITLE, cite_key=versioned_cite_key(results, page),
            measures=[{"name": n, "title": measure_title(info, n)} for n in MEASURES],
            rows=rows, none_clears=none_clears(rows),
            rank_words=rank_words(results.interval_level, sum(t is not None for t in tiers)),
            test_sequences=(results.methods.get("propagation") or {}).get("test"),
            one_drive=one_drive(results.methods.get("propagation") or {}),
            tables=tables, figs=figs, rule="; ".join(rules),
            level=results.interval_level,
            flag_legend=flag_legend(), flag_rule=FLAG_RULE,
            sequence_rows=sequence_rows, sequence_heads=sequence_heads,
            dataset=methods.get("dataset", ""), protocol=methods.get("protocol", ""),
            temperature=methods.get("temperature", ""), splits=methods.get("splits", ""),
            context=context_words(results.methods.get("propagation") or {}),
            random_models=[labels[m.card.slug] for m in models if m.card.is_random_init],
            data={"csv": f"{base}.csv", "json": f"{base}.json"}),
    }
