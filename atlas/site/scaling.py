"""Scaling pages: each measure at matched relative depths against parameter count, and the family
summary table (the measures :mod:`.measure_words` marks for it, at relative depth 1.0)."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from ..config import slugify
from ..formatting import level_percent
from ..records import AtlasResults, ComparisonResult, MeasureRow, ModelResult
from .data import num
from .figures import baseline_groups, has_values, measure_figure, scaling_figure, undefined_measure
from .honesty import FLAG_RULE, baseline_flag, comparison_baseline_note
from .honesty import legend as flag_legend
from .leaderboard import cell, taken_at
from .markup import breakable
from .paths import html_url, model_page, rel
from .wording import measure_title

#: Matched relative depths of the size plots.
SCALING_DEPTHS = (0.25, 0.5, 0.75, 1.0)


def measure_series(m: ModelResult, name: str, reps: Iterable[str], k: int | None) -> list[MeasureRow]:
    """Rows of one measure of one model for a single representation and K: the first of
    ``reps`` (then of the model's own) that has the measure; K = ``k`` where rows carry several."""
    rows = [r for r in m.measures if r.measure == name]
    for rep in [*reps, *m.representations, *sorted({r.representation for r in rows})]:
        sel = [r for r in rows if r.representation == rep]
        if sel:
            break
    else:
        return []
    ks = {r.k for r in sel}
    if len(ks) > 1:
        want = k if k in ks else max(ks, key=lambda v: (v is not None, v or 0))
        sel = [r for r in sel if r.k == want]
    return sel


def nearest(rows: list[MeasureRow], target: float) -> MeasureRow | None:
    """The row whose relative depth is closest to ``target`` (ties: the shallower block)."""
    return min(rows, key=lambda r: (abs(r.rel_depth - target), r.block)) if rows else None


def point_references(m: ModelResult, r: MeasureRow) -> dict[str, dict[str, Any]]:
    """The positional references (content-only, position-only tokens) of row ``r``: the same
    measure at the same block, representation and K, ``{reference: {"value", "lo", "hi"}}``."""
    out = {}
    for ref in m.references:
        if (ref.measure == r.measure and ref.block == r.block and ref.representation == r.representation
                and ref.k == r.k and ref.reference and ref.reference not in out):
            out[ref.reference] = {"value": num(ref.value), "lo": num(ref.lo), "hi": num(ref.hi)}
    return out


def scaling_note(points: list[dict[str, Any]], groups: list[dict[str, Any]], level: float) -> str:
    """The caption of one size plot: how its points were taken, what its error bars, thin lines
    and grey lines are, and which points have no interval."""
    words = ["Each point is the model's block nearest to the matched relative depth."]
    banded = [p for p in points if p.get("lo") is not None and p.get("hi") is not None]
    if banded:
        words.append(f"Error bars: {level_percent(level)} intervals.")
    if not banded:
        words.append("These values have no interval (the records hold none).")
    elif len(banded) < len(points):
        words.append("Points without error bars have no interval.")
    if any(p.get("references") for p in points):
        kinds = sorted({k for p in points for k in (p.get("references") or {})})
        words.append(f"Thin lines: the positional references, the same measure on {' and '.join(kinds)} tokens "
                     "at the same block.")
    models = list(dict.fromkeys(p["model"] for p in points))
    if sum(any(s in models for s in g["models"]) for g in groups) > 1:  # grey here: colour tells the depths apart
        words.append("The models have different patch grids, so each grid has its own baselines: grey lines across "
                     "the sizes of its models, named by the grid in the legend; hover for their intervals and models.")
    elif note := comparison_baseline_note(groups, models):
        words.append(note)
    return " ".join(words)


def scaling(results: AtlasResults, c: ComparisonResult, labels: dict[str, str]) -> dict[str, Any] | None:
    """Data of a scaling page: each measure at matched relative depths against parameter
    count (``points``), and the family summary at relative depth 1.0 (``summary``)."""
    by_slug = {m.card.slug: m for m in results.models}
    members = sorted((by_slug[s] for s in c.models if s in by_slug),
                     key=lambda m: (m.card.params, c.models.index(m.card.slug)))
    if not members:
        return None
    points = []
    for name in sorted({r.measure for m in members for r in m.measures}):
        series = {m.card.slug: measure_series(m, name, c.representations, c.k) for m in members}
        if sum(bool(v) for v in series.values()) < min(2, len(members)):
            continue  # a size trend needs two sizes
        for m in members:
            for target in SCALING_DEPTHS:
                r = nearest(series[m.card.slug], target)
                if r is not None:
                    points.append({"measure": name, "target": target, "model": m.card.slug,
                                   "label": labels[m.card.slug], "params": m.card.params, "block": r.block,
                                   "rel_depth": r.rel_depth, "representation": r.representation, "k": r.k,
                                   "value": num(r.value), "lo": num(r.lo), "hi": num(r.hi),
                                   "references": point_references(m, r)})
    present = {r.measure for m in members for r in m.measures}
    info = results.measure_info
    columns = sorted((n for n in present if (info.get(n) or {}).get("summary")), key=lambda n: info[n]["summary"])
    summary = []
    for m in members:
        values, intervals, flags, differences, taken = {}, {}, {}, {}, {}
        for name in columns:
            r = nearest(measure_series(m, name, c.representations, c.k), 1.0)
            taken[name] = {"block": r.block, "representation": r.representation} if r is not None else None
            values[name] = num(r.value) if r is not None else None
            intervals[name] = [num(r.lo), num(r.hi)] if r is not None else [None, None]
            differences[name] = r.versus if r is not None else None
            flag = baseline_flag(r, m.baselines, info, results.interval_level)  # as on the model pages and the leaderboard
            flags[name] = flag and flag["kind"]
        summary.append({"model": m.card.slug, "label": labels[m.card.slug], "params": m.card.params,
                        "depth": m.card.depth, "patch_size": m.card.patch_size, "values": values,
                        "intervals": intervals, "flags": flags, "versus": differences, "taken": taken})
    return {"depths": list(SCALING_DEPTHS), "measures": list(dict.fromkeys(p["measure"] for p in points)),
            "summary_measures": columns, "summary": summary, "points": points}


def summary_flag(results: AtlasResults, model: str, name: str, value: Any, interval: list[Any],
                 versus: dict | None = None) -> dict | None:
    """The mark of a family-summary number against its model's simple baselines
    (:func:`.honesty.baseline_flag`, the rule of the model pages and the leaderboard; ``versus``:
    the row's paired differences)."""
    m = next((m for m in results.models if m.card.slug == model), None)
    if m is None or value is None:
        return None
    lo, hi = (list(interval or []) + [None, None])[:2]
    row = SimpleNamespace(measure=name, value=value, lo=lo, hi=hi, versus=versus)
    return baseline_flag(row, m.baselines, results.measure_info, results.interval_level)


def scaling_view(data: dict[str, Any], results: AtlasResults, page: str, page_slug: str,
                  c: ComparisonResult) -> dict[str, Any]:
    info = results.measure_info
    pages = {m.card.slug: model_page(m) for m in results.models}
    by_slug = {m.card.slug: m for m in results.models}
    figs = []
    for name in data["measures"]:
        points = [p for p in data["points"] if p["measure"] == name]
        if not has_values([p.get("value") for p in points]):
            figs.append(undefined_measure(f"fig-scaling-{slugify(name)}", name, info,
                                          "at every depth of every model of this family"))
            continue
        drawn = [by_slug[s] for s in dict.fromkeys(p["model"] for p in points) if s in by_slug]
        groups = baseline_groups(drawn, name)
        fig = scaling_figure(points, measure_title(info, name), c.title,
                             bounds=(info.get(name) or {}).get("bounds"), baselines=groups)
        figs.append(measure_figure(fig, page_slug, f"fig-scaling-{slugify(name)}", name, info,
                                    scaling_note(points, groups, results.interval_level)))
    rows = [{"label": s["label"], "href": rel(html_url(pages[s["model"]]), page), "params": s["params"],
             "params_text": f"{s['params'] / 1e6:.1f} M", "depth": s["depth"], "patch": s["patch_size"],
             "cells": [cell(SimpleNamespace(value=v, lo=s["intervals"][n][0], hi=s["intervals"][n][1]),
                            taken_at(SimpleNamespace(**t) if t else None),
                            summary_flag(results, s["model"], n, v, s["intervals"][n], (s.get("versus") or {}).get(n)))
                       for n, v, t in ((n, s["values"][n], (s.get("taken") or {}).get(n))
                                       for n in data["summary_measures"])]}
            for s in data["summary"]]
    flagged = any(cell["flag"] for r in rows for cell in r["cells"])
    return {"head": [breakable(measure_title(info, n)) for n in data["summary_measures"]], "rows": rows,
            "figs": figs, "legend": flag_legend() if flagged else [], "rule": FLAG_RULE if flagged else ""}
