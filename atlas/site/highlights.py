"""Highlight sentences: each model's most extreme (block, representation) on the measures the
site's words mark for highlights (:mod:`.measure_words`), written by the site from the stored
numbers at every render (never hand-written, never stored: rewording one recomputes nothing).

The value is chosen as the largest of the model's values, on the numbers it reports, so its own
interval would be too narrow for it (the largest of many values is the likeliest to be high by
chance): the sentence says how many it was chosen from and gives the interval widened for that
choice, Bonferroni over the model's values (:func:`widened`; records without the standard error
behind their intervals, stored before it was, give the plain interval and say so), with the
positional references at that block beside it. A model is called "highest in this atlas" only when
that interval, widened over the values of every model, lies entirely above every other model's
values' intervals widened alike. A model's highlight whose widened interval holds no effect (its
content-only reference, the same measure on its tokens shuffled over positions, else the measure's
chance level, ``no_effect`` in :mod:`.measure_words`) is not notable: the page lists it apart, as
no finding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import slugify
from ..formatting import level_percent, with_interval
from ..measures.uncertainty import bonferroni, interval_at
from ..records import RANDOM_INIT_LABEL, MeasureRow, ModelResult


@dataclass
class Highlight:
    """One auto-generated sentence that links to the figure backing it.

    ``model`` (a model slug) or ``comparison`` (a comparison slug) names the page; leave both
    empty for the home page. ``anchor`` is a figure id on that page: ``gallery``,
    ``fig-sizes``, ``fig-measure-<slug of measure name>``, or ``fig-<payload id>`` for
    ``ModelResult.figures`` payloads; comparison pages use ``gallery`` and
    ``fig-measure-<slug>``, scaling comparisons also ``family-summary`` and
    ``fig-scaling-<slug>``. The text is plain text (escaped on the site). ``notable``: a model's
    highlight whose widened interval holds no effect (its content-only reference, what no position
    information scores, else the measure's chance level), or that has no interval, is no finding;
    the page lists it apart.
    """

    text: str
    model: str = ""
    comparison: str = ""
    anchor: str = ""
    notable: bool = True  # False: not told apart from no effect (its content-only reference or chance)


def _with_interval(row: MeasureRow) -> str:
    return with_interval(row.value, row.lo, row.hi)


def widened(row: MeasureRow, level: float, family: int, bounds=None) -> tuple[float | None, float | None]:
    """``row``'s interval at ``1 - (1 - level) / family`` (Bonferroni over ``family`` values), from
    the ``se`` / ``df`` behind it, clipped to ``bounds``; its plain ``(lo, hi)`` where the record
    has no standard error or ``family`` is 1.

    >>> row = MeasureRow(11, 1.0, "tokens", "position_r2", 0.5, lo=0.4, hi=0.6, se=0.051, df=None)
    >>> [round(x, 3) for x in widened(row, 0.95, 10)]
    [0.357, 0.643]
    """
    if family <= 1 or row.se is None or row.lo is None or row.hi is None:
        return row.lo, row.hi
    return interval_at(row.value, row.se, row.df, bonferroni(level, family), tuple(bounds or (None, None)))


def _chosen(n: int, row: MeasureRow, level: float) -> str:
    if n <= 1:
        return ""
    if row.se is None:
        return f"; the largest of its {n} values in this model (the interval not widened for that choice)"
    each = level_percent(round(bonferroni(level, n), 6))
    return f"; the largest of its {n} values in this model, the interval widened for that choice (each at {each})"


def _cell_references(m: ModelResult, row: MeasureRow) -> list[MeasureRow]:
    """The positional references (content-only, position-only tokens) stored for ``row``'s cell."""
    return sorted((r for r in m.references if (r.measure, r.block, r.representation, r.k)
                   == (row.measure, row.block, row.representation, row.k) and np.isfinite(r.value)),
                  key=lambda r: r.reference)


def _references(refs: list[MeasureRow]) -> str:
    """A cell's references (:func:`_cell_references`) in words."""
    return "; references: " + ", ".join(f"{r.reference} {_with_interval(r)}" for r in refs) if refs else ""


def make_highlights(models: list[ModelResult], info: dict[str, dict], level: float = 0.95,
                    ) -> tuple[list[Highlight], dict[str, list[Highlight]]]:
    """Atlas-wide highlights (the highest model per measure, when its interval clears the others)
    and each model's own, by model slug, on the measures ``info`` (``AtlasResults.measure_info``
    with the site's words, :func:`.measure_words.with_words`) marks for highlights, in its order."""
    per_model: dict[str, list[Highlight]] = {}
    atlas_wide: list[Highlight] = []
    marked = [k for k, v in info.items() if (v or {}).get("highlight")]
    for measure in sorted(marked, key=lambda k: info[k]["highlight"]):
        text = info[measure].get("title") or measure
        bounds = info[measure].get("bounds")
        best, values = {}, {}
        for m in models:
            rows = [r for r in m.measures if r.measure == measure and np.isfinite(r.value)]
            if rows:
                best[m.card.slug] = (max(rows, key=lambda r: (r.value, -r.block)), m)
                values[m.card.slug] = rows
        if not best:
            continue
        # "highest in this atlas": the top value, chosen among every model's values, clears all of the
        # others' values, every interval widened for that choice (plain intervals in records without se)
        every = sum(len(rows) for rows in values.values())
        top_slug = max(best, key=lambda s: best[s][0].value)
        top_lo = widened(best[top_slug][0], level, every, bounds)[0]
        others = [widened(r, level, every, bounds)[1] for slug, rows in values.items() if slug != top_slug for r in rows]
        clear = bool(others) and top_lo is not None and all(hi is not None and top_lo > hi for hi in others)
        for slug, (row, m) in best.items():
            tag = f" ({RANDOM_INIT_LABEL})" if m.card.is_random_init else ""  # the label, verbatim
            flag = ", highest in this atlas" if slug == top_slug and clear else ""
            lo, hi = widened(row, level, len(values[slug]), bounds)
            where = f"Block {row.block} {row.representation}" + (f", K = {row.k}" if row.k is not None else "")
            refs = _cell_references(m, row)
            sentence = (f"{where}: {text} {with_interval(row.value, lo, hi)}{flag}{tag}"
                        f"{_chosen(len(values[slug]), row, level)}{_references(refs)}.")
            # no effect: the content-only reference of the cell, else the measure's own (a chance level)
            null = next((r.value for r in refs if r.reference == "content-only"), info[measure].get("no_effect"))
            # no interval (fewer than 3 units): nothing tells the peak apart from no effect either
            notable = lo is not None and hi is not None and (null is None or not lo <= null <= hi)
            anchor = f"fig-measure-{slugify(measure)}"
            per_model.setdefault(slug, []).append(Highlight(text=sentence, model=slug, anchor=anchor, notable=notable))
            if flag:
                interval = with_interval(row.value, *widened(row, level, every, bounds))
                how = (f"all widened for the choice among the atlas's {every} values ({level_percent(level)} together)"
                       if all(r.se is not None for rows in values.values() for r in rows) else
                       f"{level_percent(level)} intervals, not widened for the choice (records stored without the "
                       f"standard errors behind them)")
                atlas_wide.append(Highlight(text=f"{m.card.display_name}, block {row.block} {row.representation}: "
                                                 f"{text} {interval}, highest in this atlas: its interval lies above "
                                                 f"every other model's values' intervals, {how}{tag}.",
                                            model=slug, anchor=anchor))
    return atlas_wide, per_model
