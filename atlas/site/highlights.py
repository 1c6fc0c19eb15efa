"""Highlight sentences: each model's most extreme (block, representation) on the measures the
registry marks for highlights, written by the site from the stored numbers at every render
(never hand-written, never stored: rewording one recomputes nothing).

A model is called "highest in this atlas" only when its interval lies entirely above the interval
of every other model's highest value (intervals that overlap call for no ranking). The value is
chosen as the largest of the model's values, on the numbers it reports: the sentence says how many
it was chosen from (the interval is that value's own, not widened for the choice) and gives the
positional references at that block beside it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import slugify
from ..formatting import level_percent, with_interval
from ..records import RANDOM_INIT_LABEL, MeasureRow, ModelResult


@dataclass
class Highlight:
    """One auto-generated sentence that links to the figure backing it.

    ``model`` (a model slug) or ``comparison`` (a comparison slug) names the page; leave both
    empty for the home page. ``anchor`` is a figure id on that page: ``gallery``,
    ``fig-sizes``, ``fig-measure-<slug of measure name>``, or ``fig-<payload id>`` for
    ``ModelResult.figures`` payloads; comparison pages use ``gallery`` and
    ``fig-measure-<slug>``, scaling comparisons also ``family-summary`` and
    ``fig-scaling-<slug>``. The text is plain text (escaped on the site).
    """

    text: str
    model: str = ""
    comparison: str = ""
    anchor: str = ""


def _with_interval(row: MeasureRow) -> str:
    return with_interval(row.value, row.lo, row.hi)


def _chosen(n: int) -> str:
    return f"; the largest of its {n} values in this model (the interval not widened for that choice)" if n > 1 else ""


def _references(m: ModelResult, row: MeasureRow) -> str:
    """The positional references (content-only, position-only tokens) of ``row``'s cell, if stored."""
    refs = sorted((r for r in m.references if (r.measure, r.block, r.representation, r.k)
                   == (row.measure, row.block, row.representation, row.k) and np.isfinite(r.value)),
                  key=lambda r: r.reference)
    return "; references: " + ", ".join(f"{r.reference} {_with_interval(r)}" for r in refs) if refs else ""


def make_highlights(models: list[ModelResult], info: dict[str, dict], level: float = 0.95,
                    ) -> tuple[list[Highlight], dict[str, list[Highlight]]]:
    """Atlas-wide highlights (the highest model per measure, when its interval clears the others)
    and each model's own, by model slug, on the measures ``info`` (``AtlasResults.measure_info``,
    from the measure registry) marks for highlights, in its order."""
    per_model: dict[str, list[Highlight]] = {}
    atlas_wide: list[Highlight] = []
    marked = [k for k, v in info.items() if (v or {}).get("highlight")]
    for measure in sorted(marked, key=lambda k: info[k]["highlight"]):
        text = info[measure].get("title") or measure
        best, counts = {}, {}
        for m in models:
            rows = [r for r in m.measures if r.measure == measure and np.isfinite(r.value)]
            if rows:
                best[m.card.slug] = (max(rows, key=lambda r: (r.value, -r.block)), m)
                counts[m.card.slug] = len(rows)
        if not best:
            continue
        top_slug = max(best, key=lambda s: best[s][0].value)
        top = best[top_slug][0]
        others = [row for slug, (row, _) in best.items() if slug != top_slug]
        clear = bool(others) and top.lo is not None and all(r.hi is not None and top.lo > r.hi for r in others)
        for slug, (row, m) in best.items():
            tag = f" ({RANDOM_INIT_LABEL})" if m.card.is_random_init else ""  # the label, verbatim
            flag = ", highest in this atlas" if slug == top_slug and clear else ""
            sentence = (f"Block {row.block} {row.representation}: {text} {_with_interval(row)}{flag}{tag}"
                        f"{_chosen(counts[slug])}{_references(m, row)}.")
            anchor = f"fig-measure-{slugify(measure)}"
            per_model.setdefault(slug, []).append(Highlight(text=sentence, model=slug, anchor=anchor))
            if flag:
                atlas_wide.append(Highlight(text=f"{m.card.display_name}, block {row.block} {row.representation}: "
                                                 f"{text} {_with_interval(row)}, highest in this atlas, its "
                                                 f"{level_percent(level)} interval above every other model's largest"
                                                 f"{tag}.",
                                            model=slug, anchor=anchor))
    return atlas_wide, per_model
