"""The segmentation-quality leaderboard: every model on each measure the evaluation ranks, at the block
and representation the pipeline chose for it on held-out selection images, with its interval,
beside the baselines of every patch grid in the atlas; the similarity-under-masking numbers (no
better or worse direction) in a table of their own."""

from __future__ import annotations

import math
import posixpath
from collections.abc import Sequence
from typing import Any

from jinja2 import Environment

from ..config import slugify
from ..formatting import fixed, level_percent, with_interval
from ..measures.uncertainty import (MIN_RESAMPLE_GROUPS, Uncertainty, bonferroni, interval_at, paired_difference,
                                    quantile)
from ..records import AtlasResults, MeasureRow, ModelResult, chosen_row, row_id
from .data import LEADERBOARD_TITLE, csv_text, dumps, num
from .figures import baseline_groups, comparison_measure_figure, measure_figure
from .honesty import (FLAG_RULE, baseline_flag, baseline_label, comparison_baseline_note, definition_with_split,
                      grid_words, split_note, variant_words)
from .honesty import legend as flag_legend
from .markup import breakable
from .citation import versioned_cite_key
from .paths import LEADERBOARD_PAGE, comparison_page, html_url, model_page, rel
from .wording import measure_title

#: One sentence for the home page's list of comparisons.
LEADERBOARD_BLURB = ("every model on each evaluation measure, at the block chosen on held-out images, beside "
                     "chance, colour, position and the ceiling.")


def rank_words(level: float, ranked: int) -> str:
    """The legend's sentence on the Rank column (:func:`rank_tiers`) of ``ranked`` numbers.

    >>> rank_words(0.95, 1)
    'one model has this number: nothing to rank it against.'
    """
    if ranked < 2:
        return "one model has this number: nothing to rank it against." if ranked else ""
    pairs = ranked * (ranked - 1) // 2
    each = level_percent(round(pair_level(level, ranked), 6))
    return (f"a row shares the rank of its tier's first row (\"2=\") when this atlas does not tell the two apart "
            f"at {level_percent(level)} family-wise: the interval of their paired difference (the same test images "
            f"and halves) reaches 0, or, where the two cannot be paired, their intervals overlap, each at {each} "
            f"(Bonferroni over the column's {pairs} pair{'s' if pairs != 1 else ''} of models, since the order "
            f"decides which pairs are compared). Under each rank, Δ: this model minus the model it was compared "
            f"with (its tier's first row, or the previous tier's first; hover the cell for its name), paired, with "
            f"its {each} interval.")


BASELINE_ORDER = ("chance", "constant", "zero motion", "colour", "position", "colour + position", "ceiling")


def selection_rule(info: dict[str, dict[str, Any]], pick: dict[str, Any]) -> str:
    """How a leaderboard cell's (block, representation, K) was chosen, in words, from the record's
    ids (``selected_by``: the measure it maximised; ``selection_images``: on how many images;
    ``fixed_by_method``: the method fixes the block); "" for no choice.

    >>> selection_rule({"seg_miou": {"title": "Cluster mIoU"}}, {"selected_by": "seg_miou", "selection_images": 12})
    'best Cluster mIoU on the 12 selection images'
    >>> selection_rule({}, {"block": 11, "representation": "keys", "fixed_by_method": True})
    'block 11 keys, the last gallery block (fixed by the method)'
    """
    if pick.get("fixed_by_method"):
        return f"block {pick['block']} {pick['representation']}, the last gallery block (fixed by the method)"
    if not pick.get("selected_by"):
        return ""
    if "selection_sequences" in pick:  # label propagation chooses on whole video sequences
        return f"best {measure_title(info, pick['selected_by'])} on the {pick['selection_sequences']} selection sequences"
    return f"best {measure_title(info, pick['selected_by'])} on the {pick['selection_images']} selection images"


def baselines_by_grid(models, measures=None) -> dict[str, dict[str, Any]]:
    """The baselines ``models`` carry (of ``measures``; None: all), one group per patch grid, since a
    baseline depends on the grid, not on a model: ``{grid in words: {"models": [slugs], "by":
    {(measure, baseline name): Baseline}}}`` in model order, the first model of a grid giving its
    numbers. Label propagation's baselines are on the grid of its frames, the others on the model's."""
    grids: dict[str, dict[str, Any]] = {}
    for m in models:
        for b in m.baselines:
            if measures is not None and b.measure not in measures:
                continue
            group = grids.setdefault(grid_words(m.card, b.grid), {"models": [], "by": {}})
            group["models"] += [] if m.card.slug in group["models"] else [m.card.slug]
            group["by"].setdefault((b.measure, b.name), b)
    return grids


def baselines_json(grids: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """:func:`baselines_by_grid`'s groups as a page's JSON download gives them: per grid, each
    baseline's measure, name, value and interval."""
    return {grid: [{"measure": b.measure, "name": b.name, "value": b.value, "lo": b.lo, "hi": b.hi}
                   for b in group["by"].values()] for grid, group in grids.items()}


def leaderboard_measures(results: AtlasResults) -> list[str]:
    """Measures of this build with a leaderboard column (``measure_info[...]["leaderboard"]``), in
    column order."""
    info = results.measure_info
    names = {r.measure for m in results.models for r in m.measures if (info.get(r.measure) or {}).get("leaderboard")}
    return sorted(names, key=lambda n: (info[n]["leaderboard"], n))


def unranked_measures(results: AtlasResults) -> list[str]:
    """Evaluation measures with no better or worse direction (similarity under masking)."""
    info = results.measure_info
    return sorted({r.measure for m in results.models for r in m.measures
                   if (info.get(r.measure) or {}).get("section") == "evaluation"
                   and (info.get(r.measure) or {}).get("direction") == "none"
                   and not r.measure.endswith("coverage")})


def leaderboard_page(results: AtlasResults) -> str:
    """Docs path of the segmentation-quality page, or "" when no model has evaluation measures."""
    if not leaderboard_measures(results):
        return ""
    taken = {comparison_page(c) for c in results.comparisons}
    return LEADERBOARD_PAGE if LEADERBOARD_PAGE not in taken else LEADERBOARD_PAGE[:-3] + "-leaderboard.md"


def pair_level(level: float, ranked: int) -> float:
    """The level of each comparison behind a ranking of ``ranked`` numbers, so that its tiers hold
    at ``level`` family-wise: Bonferroni over all ``ranked (ranked - 1) / 2`` pairs. Not over the
    ``ranked - 1`` comparisons made: they are chosen by the sorted numbers (the last compares the
    highest with the lowest). In a simulation of 25 models of equal skill, ``ranked - 1`` still
    split a column in about 1 draw in 4, all pairs in 3 to 4 in 100; ``tests/test_paired_differences.py``
    checks 10 such models.

    >>> round(pair_level(0.95, 4), 5), pair_level(0.95, 2), pair_level(0.95, 1)
    (0.99167, 0.95, 0.95)
    """
    return bonferroni(level, ranked * (ranked - 1) // 2)


def paired_gap(a: Uncertainty | None, b: Uncertainty | None, level: float | None = None) -> dict[str, float] | None:
    """``a - b`` from the replicates both numbers share (:func:`paired_difference`): ``{"value",
    "lo", "hi"}`` at ``level`` (None: their own interval level), or None where they cannot be
    paired (one without replicates, another resampling, no finite interval)."""
    if a is None or b is None:
        return None
    try:
        d = paired_difference(a, b)
    except ValueError:  # not one resampling: no pairing
        return None
    se, df = d.spread()
    lo, hi = interval_at(d.value, se, df, d.level if level is None else level)
    if not (math.isfinite(d.value) and math.isfinite(lo) and math.isfinite(hi)):
        return None
    return {"value": float(d.value), "lo": float(lo), "hi": float(hi)}


def widened(row: Sequence[float | None], u: Uncertainty | None, row_level: float, level: float
            ) -> tuple[float, float]:
    """A ranked row ``(value, lo, hi[, se, df])`` (its interval at ``row_level``) as an interval at
    ``level``: from its kept uncertainty where there is one, else from the ``se`` / ``df`` its
    record keeps (:class:`atlas.records.MeasureRow`), else (records stored before they were) its
    half-widths scaled by the normal quantiles, which widens a Student t interval too little.

    >>> [round(x, 3) for x in widened((0.5, 0.4, 0.6, 0.04, 4.0), None, 0.95, 0.995)]
    [0.276, 0.724]
    """
    if u is not None:
        se, df = u.spread()
        if math.isfinite(se):
            return interval_at(u.value, se, df, level)
    value, lo, hi = (float(x) for x in row[:3])
    se, df = (tuple(row[3:5]) + (None, None))[:2]
    if se is not None and math.isfinite(float(se)):
        return interval_at(value, float(se), df, level)
    scale = quantile(level, None) / quantile(row_level, None)
    return value - (value - lo) * scale, value + (hi - value) * scale


def rank_tiers(rows: Sequence[Sequence[float | None]],
               uncertainties: Sequence[Uncertainty | None] | None = None, level: float = 0.95
               ) -> list[tuple[int, bool] | None]:
    """Ranks as tiers, for ``(value, lo, hi[, se, df])`` rows already sorted best first: ``(tier,
    shared)`` per row, None for a row without a value. A row joins the tier of the tier's first row when the atlas
    does not tell the two apart; any other row starts the next tier. ``shared``: the tier holds more
    than one row.

    Told apart, at ``level`` (the rows' interval level) family-wise over the ranking: where both
    rows have ``uncertainties`` that pair (the same images and halves, :func:`paired_gap`), when the
    interval of their paired difference lies above 0; otherwise when their intervals do not
    overlap; each interval at :func:`pair_level`. A row without an interval starts a tier of its own
    and nothing joins it.

    >>> rank_tiers([(0.41, 0.31, 0.51), (0.40, 0.30, 0.50), (0.39, 0.29, 0.49)])
    [(1, True), (1, True), (1, True)]
    >>> rank_tiers([(0.41, 0.40, 0.42), (0.30, 0.29, 0.31), (0.299, 0.28, 0.30), (0.25, None, None),
    ...             (None, None, None)])
    [(1, False), (2, True), (2, True), (3, False), None]
    """
    def number(x: float | None) -> bool:
        return x is not None and math.isfinite(float(x))

    uncertainties = list(uncertainties) if uncertainties is not None else [None] * len(rows)
    each = pair_level(level, sum(number(r[0]) for r in rows))
    tiers: list[int | None] = []
    tier, first = 0, None  # the current tier and its first row's index (None: it has no interval)
    for i, (value, lo, hi, *_) in enumerate(rows):
        if not number(value):
            tiers.append(None)
            continue
        interval = (float(lo), float(hi)) if number(lo) and number(hi) else None
        joins = False
        if tier and first is not None and interval is not None:
            gap = paired_gap(uncertainties[first], uncertainties[i], each)
            if gap is not None:
                joins = gap["lo"] <= 0.0
            else:
                (f_lo, f_hi), (lo_i, hi_i) = (widened(rows[j], uncertainties[j], level, each) for j in (first, i))
                joins = lo_i <= f_hi and f_lo <= hi_i
        if not joins:
            tier, first = tier + 1, (i if interval is not None else None)
        tiers.append(tier)
    return [None if t is None else (t, tiers.count(t) > 1) for t in tiers]


def tier_gaps(tiers: Sequence[tuple[int, bool] | None], uncertainties: Sequence[Uncertainty | None],
              level: float = 0.95) -> list[tuple[int, dict[str, float]] | None]:
    """What placed each ranked row (:func:`rank_tiers` at ``level``): ``(index of the row it was
    compared with, paired difference this row minus that one)``, its interval at :func:`pair_level`
    (its ``level``).
    A row of a shared tier is compared with its tier's first row, a tier's first row with the
    previous tier's first; None for the top row and where the two do not pair (their intervals were
    compared instead)."""
    each = pair_level(level, sum(t is not None for t in tiers))
    firsts: dict[int, int] = {}
    for i, t in enumerate(tiers):
        if t is not None:
            firsts.setdefault(t[0], i)
    out: list[tuple[int, dict[str, float]] | None] = []
    for i, t in enumerate(tiers):
        j = None if t is None else firsts[t[0]] if firsts[t[0]] != i else firsts.get(t[0] - 1)
        gap = None if j is None else paired_gap(uncertainties[i], uncertainties[j], each)
        if gap is not None:
            gap["level"] = each
        out.append(None if gap is None else (j, gap))
    return out


def rank_cell(tier: tuple[int, bool] | None, gap: tuple[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """The Rank column's cell of a :func:`rank_tiers` entry: ``2=`` for a shared tier, "—" without one;
    ``gap``: ``(label, paired difference this model minus that one)`` (:func:`tier_gaps`), shown
    under the rank, the model named in the cell's title (labels are long).

    >>> cell = rank_cell((2, True), ("DINO S/16", {"value": -0.012, "lo": -0.028, "hi": 0.004}))
    >>> cell["ci"], cell["title"]
    ('Δ −0.012 [−0.028, 0.004]', 'this model minus DINO S/16 (paired)')
    """
    if tier is None:
        return {"text": "—", "ci": "", "where": "", "value": None}
    ci = title = ""
    if gap is not None:
        label, d = gap
        ci = f"Δ {signed(d['value'])} [{signed(d['lo'], plus='')}, {signed(d['hi'], plus='')}]"
        title = f"this model minus {label} (paired" + (
            f"; {level_percent(round(d['level'], 6))} interval)" if "level" in d else ")")
    return {"text": f"{tier[0]}{'=' if tier[1] else ''}", "ci": ci, "where": "", "value": str(tier[0]),
            "title": title}


def signed(x: float, plus: str = "+") -> str:
    """``+0.012`` / ``−0.012`` (a true minus sign; ``plus`` before positives)."""
    text = fixed(x, 3)
    return text.replace("-", "−") if text.startswith("-") else plus + text


def kept_uncertainty(m: ModelResult, row: MeasureRow | None) -> Uncertainty | None:
    """The uncertainty the model's record kept for ``row`` (its replicates, for paired comparisons
    across records: ``ModelResult.uncertainties``), or None where it holds none."""
    state = None if row is None else m.uncertainties.get(row_id(row))
    return Uncertainty.from_state(state) if state else None


def interval_text(row: Any) -> str:
    """``0.412 [0.380, 0.441]`` (or the value alone without an interval; "—" without a value)."""
    return with_interval(row.value, row.lo, row.hi, digits=3, missing="—")


def none_clears(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether no ranked row clears the simple baselines on the ranking measure (every value in the
    first column carries a flag, :func:`.honesty.baseline_flag`): the ranks then only order the
    models among themselves, and the page says so.

    >>> none_clears([{"cells": [{"value": "0.4", "flag": {"kind": "below"}}]}, {"cells": [{"value": None}]}])
    True
    """
    shown = [r["cells"][0] for r in rows if r["cells"] and r["cells"][0].get("value") is not None]
    return bool(shown) and all(c.get("flag") for c in shown)


def cell(row: Any, where: str = "", flag: dict | None = None) -> dict[str, Any]:
    """A table cell: the value, its interval on a line of its own, where it was taken, sort key,
    and its mark against the simple baselines (:func:`.honesty.baseline_flag`; None: unmarked)."""
    if row is None or fixed(row.value, 3, missing="") == "":
        return {"text": "—", "ci": "", "where": "", "value": None, "flag": None}
    ci = f"[{fixed(row.lo, 3)}, {fixed(row.hi, 3)}]" if row.lo is not None and row.hi is not None else ""
    return {"text": fixed(row.value, 3), "ci": ci, "where": where, "value": repr(float(row.value)), "flag": flag}


def taken_at(row: Any) -> str:
    """Where a number was taken, in a cell's words: ``block 11 tokens`` ("" without a row)."""
    return f"block {row.block} {row.representation}" if row is not None else ""


def shared_variant_label(baselines: Sequence[Any]) -> str:
    """The label of one baseline across measures (:func:`.honesty.baseline_label`, its variant
    named) when every measure's has the same variant, so a row or column head can name it; "" when
    the variants differ (each cell then names its own, :func:`baseline_cell`)."""
    named = {baseline_label(b) for b in baselines}
    return named.pop() if len(named) == 1 else ""


def baseline_cell(b: Any, name_variant: bool) -> dict[str, Any]:
    """A baseline's :func:`cell`, its variant in words under the value where ``name_variant`` (its
    row or column head does not name it)."""
    return cell(b, variant_words(getattr(b, "variant", "") or "") if b is not None and name_variant else "")


def leaderboard_files(results: AtlasResults, page: str, labels: dict[str, str], env: Environment,
                      common: dict[str, Any], propagation: str = "") -> dict[str, str]:
    """The leaderboard page and its CSV / JSON, ``{docs-dir path: text}``; ``propagation``: the
    label-propagation page ("" when the build has none)."""
    info = results.measure_info
    names = leaderboard_measures(results)
    stem = posixpath.splitext(page)[0]
    rows, csv_rows, chosen_json, ranked, kept = [], [], {}, {}, {}
    for m in results.models:
        slug = m.card.slug
        cells, chosen_json[slug] = [], {}
        first = chosen_row(m, names[0])
        ranked[slug] = (first.value, first.lo, first.hi, first.se, first.df) if first is not None else (None,) * 5
        kept[slug] = kept_uncertainty(m, first)
        for name in names:
            row = chosen_row(m, name)
            pick = m.selected.get(name, {})
            chosen_json[slug][name] = row and {"value": num(row.value), "lo": num(row.lo), "hi": num(row.hi),
                                               "block": row.block, "rel_depth": row.rel_depth,
                                               "representation": row.representation, "k": row.k,
                                               "rule": selection_rule(info, pick),
                                               "selection_value": num(pick.get("selection_value")),
                                               "minus_baselines": row.versus}
            flag = baseline_flag(row, m.baselines, info, results.interval_level)
            if row is not None:
                chosen_json[slug][name]["flag"] = flag and flag["kind"]
            cells.append(cell(row, taken_at(row), flag))
            if row is None:
                continue
            csv_rows.append([slug, labels[slug], m.card.family, m.card.training, m.card.params, name,
                             num(row.value), num(row.lo), num(row.hi), row.block, row.rel_depth, row.representation,
                             row.k, selection_rule(info, pick), num(pick.get("selection_value")), "", None])
        rows.append({"slug": slug, "label": labels[slug], "href": rel(html_url(model_page(m)), page),
                     "family": m.card.family, "training": m.card.training, "params": m.card.params,
                     "params_text": f"{m.card.params / 1e6:.1f} M", "cells": cells})
    # Ranked by the first measure, best first (models without it last, in atlas order), in tiers of
    # numbers the atlas does not tell apart (:func:`rank_tiers`).
    rows.sort(key=lambda r: (r["cells"][0]["value"] is None, -float(r["cells"][0]["value"] or 0.0)))
    order = [r["slug"] for r in rows]
    level = results.interval_level
    ordered_tiers = rank_tiers([ranked[s] for s in order], [kept[s] for s in order], level)
    gaps = tier_gaps(ordered_tiers, [kept[s] for s in order], level)
    tiers = dict(zip(order, ordered_tiers))
    for r, gap in zip(rows, gaps):
        r["rank"] = rank_cell(tiers[r["slug"]], gap and (labels[order[gap[0]]], gap[1]))
        if gap is not None:
            chosen_json[r["slug"]][names[0]]["minus_compared"] = {"model": order[gap[0]], **gap[1]}
    for line in csv_rows:  # the tier number on each model's row of the ranked measure
        if line[5] == names[0] and tiers.get(line[0]):
            line[-1] = tiers[line[0]][0]

    # baselines: one block of rows per patch grid (a baseline depends on the grid, not on a model)
    baseline_tables, grids = [], baselines_by_grid(results.models)
    for grid, group in grids.items():
        by = group["by"]
        present = [n for n in names if any(k[0] == n for k in by)]  # the measures with baselines on this grid
        table = {"grid": grid, "models": [labels[slug] for slug in group["models"]], "rows": [],
                 "heads": [breakable(measure_title(info, n)) for n in present]}
        for bname in [b for b in BASELINE_ORDER if any(k[1] == b and k[0] in names for k in by)]:
            # its variant (colour + position: colour space, coordinates) in the row label when one
            # variant serves every measure, else under each value
            one = shared_variant_label([by[(n, bname)] for n in present if (n, bname) in by])
            table["rows"].append({"label": one or bname,
                                  "cells": [baseline_cell(by.get((name, bname)), not one) for name in present]})
            for name in present:
                b = by.get((name, bname))
                if b:
                    csv_rows.append(["", f"baseline: {bname}", "", "", "", name, num(b.value), num(b.lo), num(b.hi),
                                     None, None, None, None, grid, None, bname, None])
        baseline_tables.append(table)

    unranked = unranked_measures(results)
    similarity_rows = []
    for m in results.models:
        cells = []
        for name in unranked:
            row = next((r for r in m.measures if r.measure == name), None)
            base = next((b for b in m.baselines if b.measure == name and b.name == "colour"), None)
            cells.append({"model": cell(row), "baseline": cell(base)})
        if any(c["model"]["text"] != "—" for c in cells):
            similarity_rows.append({"label": labels[m.card.slug], "href": rel(html_url(model_page(m)), page),
                                    "cells": cells})

    figs = []
    for name in names:
        mine = [r for m in results.models for r in m.measures if r.measure == name]
        reps = list(dict.fromkeys(r.representation for r in mine))
        rep = "tokens" if "tokens" in reps else reps[0]
        fig_rows = []
        for m in results.models:
            pick_k = m.selected.get(name, {}).get("k")
            fig_rows += [{"model": m.card.slug, "representation": rep, "measure": name, "rel_depth": r.rel_depth,
                          "block": r.block, "value": r.value, "lo": r.lo, "hi": r.hi}
                         for r in m.measures if r.measure == name and r.representation == rep
                         and (pick_k is None or r.k == pick_k)]
        groups = baseline_groups(results.models, name)
        fig = comparison_measure_figure(fig_rows, measure_title(info, name), labels, f"all models · {rep}",
                                        bounds=(info.get(name) or {}).get("bounds"), baselines=groups)
        note = comparison_baseline_note(groups, list(dict.fromkeys(r["model"] for r in fig_rows)))
        figs.append(measure_figure(fig, slugify(stem), f"fig-measure-{slugify(name)}", name, info,
                                   " ".join(t for t in (split_note(results.methods, info, name),
                                                        f"Representation: {rep}; bands: "
                                                        f"{level_percent(results.interval_level)} intervals.", note) if t)))

    base = posixpath.basename(stem)
    rules = {n: sorted({selection_rule(info, m.selected[n]) for m in results.models if n in m.selected})
             for n in names}
    files = {
        f"{stem}.csv": csv_text(["model", "label", "family", "training", "params", "measure", "value", "lo", "hi",
                                 "block", "rel_depth", "representation", "k", "chosen_by", "selection_value",
                                 "baseline", "rank"], csv_rows),
        f"{stem}.json": dumps({
            "atlas_version": results.atlas_version, "config_hash": results.config_hash,
            "interval_level": results.interval_level, "ranked_by": names[0],
            "measures": [{"name": n, "title": measure_title(info, n),
                          "definition": definition_with_split(info, n, results.methods),
                          "better": "higher"} for n in names],
            "models": [{"slug": m.card.slug, "label": labels[m.card.slug], "family": m.card.family,
                        "training": m.card.training, "params": m.card.params, "page": html_url(model_page(m)),
                        "rank": (tiers[m.card.slug] or (None,))[0],
                        "chosen": chosen_json[m.card.slug]} for m in results.models],
            "baselines": baselines_json(grids),
        }),
    }
    files[page] = env.get_template("leaderboard.md.j2").render(
        **common,
        page=page,
        title=LEADERBOARD_TITLE,
        cite_key=versioned_cite_key(results, page),
        measures=[{"name": n, "title": measure_title(info, n),
                   "description": definition_with_split(info, n, results.methods),
                   "head": breakable(measure_title(info, n)), "rule": "; ".join(rules[n])} for n in names],
        rows=rows, none_clears=none_clears(rows),
        rank_words=rank_words(level, sum(t is not None for t in ordered_tiers)),
        test_units=((results.methods.get("evaluation") or {}).get("resampling") or {}).get("test"),
        few_units=MIN_RESAMPLE_GROUPS,
        flag_legend=flag_legend(),
        flag_rule=FLAG_RULE,
        baseline_tables=baseline_tables,
        level=results.interval_level,
        unranked=[{"name": n, "title": measure_title(info, n), "head": breakable(measure_title(info, n))}
                  for n in unranked],
        similarity_rows=similarity_rows,
        figs=figs,
        random_models=[labels[m.card.slug] for m in results.models if m.card.is_random_init],
        data={"csv": f"{base}.csv", "json": f"{base}.json"},
        propagation_href=rel(propagation, page) if propagation else "",
    )
    return files
