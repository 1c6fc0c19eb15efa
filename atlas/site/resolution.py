"""The resolution axis on the site (``[images] resolutions``): how each model's positions were
handled at each input size (model card, gallery selector) and the *Resolution* comparison page:
every model's positional, boundary, high-norm and evaluation measures against input size, with
intervals and references, and a summary of each change from the main resolution.

Every number on the page is taken by one fixed rule, the same at every resolution and chosen on no
data: the model's deepest block that has the measure, representation ``tokens`` (a change of block
or representation with resolution would be a change of what is measured).
"""

from __future__ import annotations

import posixpath
from typing import Any

from jinja2 import Environment

from ..config import slugify
from ..formatting import level_percent, with_interval
from ..measures.uncertainty import bonferroni
from ..records import AtlasResults, ModelCard, ModelResult, deepest_tokens_row
from .data import csv_text, dumps, num
from .figures import against_size_figure, figure
from .honesty import simple_baselines
from .leaderboard import cell, kept_uncertainty, paired_gap, signed, widened
from .citation import versioned_cite_key
from .paths import html_url, model_page, rel
from .wording import measure_title

RESOLUTION_PAGE = "compare/resolution.md"
RESOLUTION_TITLE = "Resolution"
RESOLUTION_BLURB = ("each model's positional, boundary, high-norm and evaluation measures at every input size of the "
                    "build, with intervals and references, and whether each change is told apart from no change.")
#: The measures the page follows across resolution, by what they show.
MEASURES = (("positional", ("positional_nce", "position_r2", "positional_effect")),
            ("boundary", ("border_ami", "border_norm_ratio")),
            ("high-norm tokens", ("outlier_fraction", "outlier_fraction_border")),
            ("evaluation", ("seg_miou", "knn_miou_k10")))  # pseudo-masks: keys of the last block only
REPRESENTATION = "tokens"  # the rule's representation (atlas.records.deepest_tokens_row), for the captions
#: How timm resamples learned absolute position embeddings when it loads weights for another grid.
RESAMPLING = "bicubic interpolation with antialiasing (timm's resample_abs_pos_embed, as it loads pretrained weights)"


def resolution_words(card: ModelCard) -> str:
    """The gallery's label of one resolution: ``native · 518 × 518 px · 37 × 37 patches``; a size
    rounded to whole patches says what was asked for.

    >>> from types import SimpleNamespace as S
    >>> resolution_words(S(input_size=[322, 322], patch_size=14, resolution="320"))
    '322 × 322 px · 23 × 23 patches (320 px asked)'
    """
    h, w = card.input_size
    size = f"{h} × {w} px · {h // card.patch_size} × {w // card.patch_size} patches"
    label = card.resolution
    if not label or label in (str(h), f"{h}x{w}"):
        return size
    return f"native · {size}" if label == "native" else f"{size} ({label.replace('x', ' × ')} px asked)"


def position_handling(card: ModelCard) -> str:
    """How the model's positions, grid and tokens are at this input size, in words.

    >>> from types import SimpleNamespace as S
    >>> position_handling(S(input_size=[320, 320], requested_size=[330, 330], patch_size=16, num_prefix_tokens=1,
    ...                     pos_encoding="learned absolute", position_grid_from=[14, 14]))  # doctest: +ELLIPSIS
    "learned absolute embeddings resampled from 14 × 14 to 20 × 20 by bicubic ...; patch grid 20 × 20, 401 tokens (1 prefix); 330 × 330 px asked for, rounded to whole 16 px patches"
    """
    h, w = card.input_size
    gh, gw = h // card.patch_size, w // card.patch_size
    parts = []
    if "learned absolute" in card.pos_encoding:
        if card.position_grid_from:
            fh, fw = card.position_grid_from
            parts.append(f"learned absolute embeddings resampled from {fh} × {fw} to {gh} × {gw} by {RESAMPLING}")
        else:
            parts.append(f"learned absolute embeddings used at their own {gh} × {gw} grid (not resampled)")
    if "RoPE" in card.pos_encoding:
        parts.append(f"RoPE evaluated at the {gh} × {gw} grid (nothing to resample)")
    if "relative position bias" in card.pos_encoding:
        parts.append(f"relative position bias as timm builds it for the {gh} × {gw} grid")
    if not parts:
        parts.append("no position encoding")
    text = f"{'; '.join(parts)}; patch grid {gh} × {gw}, {gh * gw + card.num_prefix_tokens} tokens " \
           f"({card.num_prefix_tokens} prefix)"
    asked = list(card.requested_size or card.input_size)
    if asked != list(card.input_size):
        text += f"; {asked[0]} × {asked[1]} px asked for, rounded to whole {card.patch_size} px patches"
    return text


def resolution_rows(results: AtlasResults, slug: str) -> list[tuple[str, str]]:
    """Model-card rows, one per resolution the model ran at (none without a resolution axis)."""
    runs = results.runs_of(slug)
    if len(runs) < 2:
        return []
    return [(f"positions at {resolution_words(m.card)}" + (" (main)" if i == 0 else ""), position_handling(m.card))
            for i, (_, m) in enumerate(runs)]


def reference_of(m: ModelResult, row) -> tuple[str, Any] | None:
    """The reference a number stands beside: for a positional measure, the same measure on
    position-only tokens of the same grid; for an evaluation, its best simple baseline."""
    if row is None:
        return None
    ref = next((r for r in m.references if r.measure == row.measure and r.reference == "position-only"
                and r.block == row.block and r.representation == row.representation and r.k == row.k), None)
    if ref is not None:
        return "position-only tokens", ref
    simple = simple_baselines(m.baselines, row.measure)
    if simple:
        best = max(simple, key=lambda b: b.value)
        return f"{best.name} baseline", best
    return None


def reference_text(ref) -> str:
    """A reference's value with its interval, ``0.210 [0.180, 0.240]``, or ``0.330 (no interval)``
    where its record holds none."""
    text = with_interval(ref.value, getattr(ref, "lo", None), getattr(ref, "hi", None), digits=3, missing="—")
    return text if "[" in text or text == "—" else f"{text} (no interval)"


def size_change(main: ModelResult, a, other: ModelResult, b, level: float | None = None,
                row_level: float = 0.95) -> dict[str, Any]:
    """Row ``b`` (at another input size) minus row ``a`` (at the main one): ``{"value", "lo", "hi",
    "apart", "paired"}``, told apart at ``level`` (None: the rows' own ``row_level``). Paired where
    both records keep the rows' replicates (the same images and halves at both sizes,
    :func:`.leaderboard.paired_gap`): the difference's interval at ``level``, apart when it does not
    reach 0. Otherwise apart when the two intervals, each widened to ``level``
    (:func:`.leaderboard.widened`), do not overlap (``lo`` / ``hi`` None; ``apart`` None where one
    has no interval).

    >>> from types import SimpleNamespace as S
    >>> m = S(uncertainties={})
    >>> row = lambda v, lo, hi: S(measure="x", block=1, representation="tokens", k=None, value=v, lo=lo, hi=hi,
    ...                           se=0.05, df=None)
    >>> size_change(m, row(0.5, 0.4, 0.6), m, row(0.8, 0.7, 0.9))
    {'value': 0.30000000000000004, 'lo': None, 'hi': None, 'apart': True, 'paired': False}
    >>> size_change(m, row(0.5, 0.4, 0.6), m, row(0.8, 0.7, 0.9), level=0.9999)["apart"]  # each at ±3.9 se
    False
    """
    ua, ub = kept_uncertainty(main, a), kept_uncertainty(other, b)
    gap = paired_gap(ub, ua, level)
    if gap is not None:
        return {**gap, "apart": gap["lo"] > 0 or gap["hi"] < 0, "paired": True}
    if None in (a.lo, a.hi, b.lo, b.hi):
        apart = None
    else:
        (a_lo, a_hi), (b_lo, b_hi) = (
            (r.lo, r.hi) if level is None else
            widened((r.value, r.lo, r.hi, r.se, r.df), u, row_level, level)
            for r, u in ((a, ua), (b, ub)))
        apart = a_hi < b_lo or b_hi < a_lo
    return {"value": b.value - a.value, "lo": None, "hi": None, "apart": apart, "paired": False}


def resolution_page(results: AtlasResults, taken: set[str] = frozenset()) -> str:
    """Docs path of the page, or "" when no model ran at more than one resolution."""
    if not results.resolution_runs:
        return ""
    return RESOLUTION_PAGE if RESOLUTION_PAGE not in taken else RESOLUTION_PAGE[:-3] + "-axis.md"


def size_label(card: ModelCard) -> str:
    """``96 px``; ``native, 224 px``; ``322 px (320 asked)`` where the size was rounded to whole patches."""
    h, w = card.input_size
    px = f"{h} px" if h == w else f"{h} × {w} px"
    if card.resolution in ("", str(h), f"{h}x{w}"):
        return px
    return f"native, {px}" if card.resolution == "native" else f"{px} ({card.resolution.replace('x', ' × ')} asked)"


def resolution_files(results: AtlasResults, page: str, labels: dict[str, str], env: Environment,
                     common: dict[str, Any]) -> dict[str, str]:
    """The page, its CSV (every number at every size) and its JSON (the summary of changes as
    shown), ``{docs-dir path: text}``."""
    info = results.measure_info
    stem = posixpath.splitext(page)[0]
    names = [n for _, group in MEASURES for n in group
             if any(r.measure == n for m in results.models for r in m.measures)]
    models, summary, csv_rows, change_rows = [], [], [], []
    for main in results.models:
        runs = [m for _, m in results.runs_of(main.card.slug)]
        if len(runs) < 2:
            continue
        rows, changes = [], []
        for name in names:
            picked = [deepest_tokens_row(m, name) for m in runs]
            if all(p is None for p in picked):
                continue
            refs = [reference_of(m, p) for m, p in zip(runs, picked)]
            cells = []
            for p, ref in zip(picked, refs):
                c = cell(p)
                if ref is not None:
                    c["where"] = f"{ref[0]}: {reference_text(ref[1])}"
                cells.append(c)
            rows.append({"title": measure_title(info, name), "cells": cells})
            for m, p, ref in zip(runs, picked, refs):
                if p is not None:
                    csv_rows.append([main.card.slug, labels[main.card.slug], m.card.resolution, *m.card.input_size,
                                     name, p.block, p.representation, p.k, num(p.value), num(p.lo), num(p.hi),
                                     ref[0] if ref else "", num(ref[1].value) if ref else None,
                                     num(ref[1].lo) if ref else None, num(ref[1].hi) if ref else None])
            changes += [(name, picked[0], m, p) for m, p in zip(runs[1:], picked[1:])
                        if p is not None and picked[0] is not None]
        # the model's changes are one family: each is told apart at the Bonferroni level over them,
        # so that "yes" anywhere in the model's rows holds at the page's level
        each = bonferroni(results.interval_level, len(changes))
        for name, a, m, p in changes:
            d = size_change(runs[0], a, m, p, each, results.interval_level)
            delta = d["value"]
            interval = f" [{signed(d['lo'], plus='')}, {signed(d['hi'], plus='')}]" if d["paired"] else ""
            at = f"at {level_percent(round(each, 6))}" + (
                f", Bonferroni over {len(changes)} changes" if len(changes) > 1 else "")
            change_rows.append({"model": main.card.slug, "measure": name, "from": runs[0].card.resolution or "main",
                                "to": m.card.resolution, "from_size": list(runs[0].card.input_size),
                                "to_size": list(m.card.input_size), "delta": delta, "lo": d["lo"], "hi": d["hi"],
                                "level": each, "paired": d["paired"], "told_apart": d["apart"]})
            summary.append({"model": labels[main.card.slug], "href": rel(html_url(model_page(main)), page),
                            "measure": measure_title(info, name), "change": f"{size_label(runs[0].card)} → {size_label(m.card)}",
                            "delta": f"{signed(delta)}{interval}", "sign": "↑" if round(delta, 3) > 0 else "↓" if round(delta, 3) < 0 else "≈",
                            "apart": "no interval" if d["apart"] is None else
                                     f"{'yes' if d['apart'] else 'no'} ({'paired' if d['paired'] else 'by overlap'}, {at})",
                            "title": f"{'paired difference, ' if d['paired'] else 'each interval at '}"
                                     f"{level_percent(round(each, 6))}: Bonferroni over this model's "
                                     f"{len(changes)} change{'s' if len(changes) != 1 else ''}",
                            "value": repr(float(delta))})
        heads = [resolution_words(m.card) for m in runs]
        models.append({"label": labels[main.card.slug], "md_href": rel(model_page(main), page),
                       "heads": heads, "rows": rows,
                       "positions": [(resolution_words(m.card), position_handling(m.card)) for m in runs],
                       "random": main.card.is_random_init})
    figs = [f for f in (_measure_figure(results, name, labels, stem) for name in names) if f]
    base = posixpath.basename(stem)
    return {
        f"{stem}.csv": csv_text(["model", "label", "resolution", "height", "width", "measure", "block",
                                 "representation", "k", "value", "lo", "hi", "reference", "reference_value",
                                 "reference_lo", "reference_hi"],
                                csv_rows),
        f"{stem}.json": dumps({"atlas_version": results.atlas_version, "config_hash": results.config_hash,
                               "interval_level": results.interval_level, "changes": change_rows}),
        page: env.get_template("resolution.md.j2").render(
            **common, page=page, title=RESOLUTION_TITLE, cite_key=versioned_cite_key(results, page), models=models, summary=summary,
            figs=figs, level=results.interval_level, resolutions=results.resolutions,
            random_models=[m["label"] for m in models if m["random"]], data={"csv": f"{base}.csv", "json": f"{base}.json"}),
    }


def _measure_figure(results: AtlasResults, name: str, labels: dict[str, str], stem: str) -> dict | None:
    """One measure against input size: one line per model, intervals as error bars."""
    info = results.measure_info
    series = {}
    for main in results.models:
        runs = sorted((m for _, m in results.runs_of(main.card.slug)), key=lambda m: m.card.input_size[0])
        pts = [(m.card.input_size[0], m.card.input_size[0] // m.card.patch_size, deepest_tokens_row(m, name)) for m in runs]
        pts = [p for p in pts if p[2] is not None]
        if len(pts) >= 2:
            series[labels[main.card.slug]] = pts
    if not series:
        return None
    title = measure_title(info, name)
    fig = against_size_figure(series, title, (info.get(name) or {}).get("bounds"))
    return figure(fig, slugify(stem), f"fig-{slugify(name)}", title,
                  f"Representation {REPRESENTATION}, each model's deepest block with this measure; error bars: "
                  f"{level_percent(results.interval_level)} intervals.")
