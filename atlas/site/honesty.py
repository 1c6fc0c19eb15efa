"""What a reader must not miss beside a number, in words: whether it clears the simple baselines,
which colour + position variant a baseline is, and how the k-NN support and query images were split.

The records carry ids (baseline names and variants, the evaluation's methods record); the words
are written here, so that every page says the same thing.

The flag rule (every model-page evaluation cell and every leaderboard cell):

* only the simple baselines count (chance, constant, zero motion, colour, position, colour + position), never
  the ceiling, and only for measures where higher is better;
* each comparison is the interval ``[lo, hi]`` of the model's number *minus* the baseline's:
  the paired difference the record carries (``MeasureRow.versus``: model and baseline are scored on
  the same images and the same replicate halves, so what the images do to both cancels), or, for
  a number without it (no interval on one side), the difference of the two intervals (model
  ``lo`` - baseline ``hi``, model ``hi`` - baseline ``lo``: the overlap rule); without intervals,
  the difference of the values;
* **below a baseline** (▼): a difference lies wholly under 0. A number meets up to five simple
  baselines, so for ▼ a paired difference's interval is widened to level ``1 - (1 - level) / m``
  for the ``m`` baselines (Bonferroni): a model equal to every baseline gets a ▼ in at most
  ``1 - level`` of its numbers, not in ``m`` times that;
* **not above a baseline** (≈): otherwise, a difference reaches 0 (``lo <= 0``): the model does not
  clear that baseline (clearing all of them needs each one cleared: no widening);
* unmarked: every difference is above 0.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Sequence

from ..formatting import level_percent, with_interval
from ..measures.uncertainty import bonferroni, interval_at

#: The baselines a model must clear (the ceiling is an upper reference, not a competitor).
SIMPLE_BASELINES = ("chance", "constant", "zero motion", "colour", "position", "colour + position")
#: Flag kinds, their marks and words.
FLAG_MARKS = {"below": "▼", "not above": "≈"}
FLAG_WORDS = {"below": "below a baseline", "not above": "not above a baseline"}
FLAG_LEGEND = (
    ("below", "below a baseline: the interval of the model's number minus a simple baseline's (chance, "
              "constant, zero motion, colour, position or colour + position) lies wholly under 0, widened for "
              "the number of baselines: the baseline beats it"),
    ("not above", "not above a baseline: the interval of the model's number minus a simple baseline's "
                  "reaches 0, or lies under 0 only until it is widened for the number of baselines as ▼ "
                  "needs, so the number does not clear that baseline"),
)
FLAG_RULE = ("Unmarked numbers clear every simple baseline: the interval of the difference from each baseline "
             "lies above 0. Where both numbers have intervals the difference is paired: model and baseline are "
             "scored on the same images and the same resampling halves, so the images' shared difficulty "
             "cancels (hover a mark for it); otherwise the two intervals must not overlap. The ceiling does "
             "not count.")

#: Words for the parts of a baseline variant id (atlas.measures.baselines: COLOUR_VARIANTS and
#: COLOUR_POSITION_VARIANTS, e.g. "lab+plain").
VARIANT_WORDS = {"lab": "CIELAB", "rgb": "RGB", "plain": "plain coordinates",
                 "normalised": "normalised coordinates"}

#: Measures scored on the k-NN support / query split (by id, and by the registry's function name),
#: and the model-page curves drawn from it.
SPLIT_MEASURES = {"knn_miou_k10"}
SPLIT_FUNCTIONS = {"knn_probe", "channel_removal_curve"}
SPLIT_CURVES = {"knn-k", "channel-removal"}
#: The baseline measure drawn on those curves, and how its lines are labelled.
CURVE_BASELINE_MEASURE = "knn_miou_k10"
CURVE_BASELINE_NOTE = "Grey lines: the simple baselines' k-NN mIoU at k = 10 (the same split)."
#: Said under those curves when they carry their intervals ({level}: "95%"; {fixed}: what the replicates
#: keep from all support images, :data:`CURVE_FIXED`).
CURVE_BAND_NOTE = ("Bands: {level} intervals from random halves of the query images' resampling units, as for "
                   "the k-NN number on the leaderboard ({fixed} of all support images in every replicate).")
CURVE_FIXED = {"knn-k": "the support set",
               "channel-removal": "the support set, its channel ranking and the controls fitted on it"}

SPLIT_SENTENCES = {
    "contiguous": ("Support and query images are contiguous frame blocks of the test images ordered by group "
                   "and name (too few groups to keep each one whole), not whole groups: neighbouring frames may "
                   "meet across the support/query boundary, so a query can have a near-duplicate frame in the "
                   "support set."),
    "group": ("Support and query images are split by group (each group, e.g. a video sequence, whole on one "
              "side), so no query has a frame of its own group in the support set."),
    "image": ("Support and query images are split image by image (no grouping rule): frames of one video may "
              "fall on both sides, so a query can have a near-duplicate frame in the support set."),
}


# --------------------------------------------------------------------------- the split


def split_kind(methods: Any) -> str:
    """How the evaluation split its support and query images, from the Methods record
    (``AtlasResults.methods``, its ``evaluation`` section): "contiguous" (fell back to contiguous
    frame blocks), "group" (whole groups), "image" (no grouping rule: every image its own group),
    or "" when the build ran no evaluation.

    >>> split_kind({"evaluation": {"split_kind": "groups", "group_regex": "^(.*)_"}})
    'group'
    >>> split_kind({"evaluation": {"split_kind": "groups", "group_regex": None}})
    'image'
    >>> split_kind({"evaluation": {"split_kind": "contiguous blocks", "group_regex": "^(.*)_"}})
    'contiguous'
    >>> split_kind({})
    ''
    """
    ev = methods.get("evaluation") if isinstance(methods, dict) else None
    kind = ev.get("split_kind") if isinstance(ev, dict) else None
    if kind == "contiguous blocks":
        return "contiguous"
    if kind == "groups":
        return "group" if ev.get("group_regex") else "image"
    return ""


def split_sentence(methods: Any) -> str:
    """The sentence on the k-NN support / query split this build used ("" when not recorded)."""
    return SPLIT_SENTENCES.get(split_kind(methods), "")


def uses_split(info: dict[str, dict[str, Any]], name: str) -> bool:
    """Whether measure ``name`` is scored on the support / query split."""
    return name in SPLIT_MEASURES or (info.get(name) or {}).get("function") in SPLIT_FUNCTIONS


def split_note(methods: Any, info: dict[str, dict[str, Any]], name: str) -> str:
    """The split sentence for a caption of ``name`` ("" for measures that do not use the split)."""
    return split_sentence(methods) if uses_split(info, name) else ""


def definition_with_split(info: dict[str, dict[str, Any]], name: str, methods: Any) -> str:
    """The definition of ``name`` (:mod:`.measure_words`), then the split sentence where it applies."""
    text = str((info.get(name) or {}).get("definition") or "")
    return " ".join(t for t in (text, split_note(methods, info, name)) if t)


# --------------------------------------------------------------------------- baselines


def variant_words(variant: str) -> str:
    """``"lab+plain"`` -> ``"CIELAB, plain coordinates"`` (unknown parts as they are).

    >>> variant_words("rgb+normalised"), variant_words("")
    ('RGB, normalised coordinates', '')
    """
    parts = [p for p in re.split(r"[+,/ ]+", str(variant or "").strip()) if p]
    return ", ".join(VARIANT_WORDS.get(p.lower(), p) for p in parts)


def grid_words(card: Any, grid: Any = None) -> str:
    """The patch grid a model's baselines are computed on, in words (``14 × 14 patches of 16 px``):
    a baseline depends on the grid, not on the model.

    >>> from types import SimpleNamespace
    >>> grid_words(SimpleNamespace(input_size=[224, 224], patch_size=16))
    '14 × 14 patches of 16 px'
    >>> grid_words(SimpleNamespace(input_size=[224, 224], patch_size=16), [8, 10, 16])  # the baseline's own grid
    '8 × 10 patches of 16 px'
    """
    if grid:  # a baseline computed at another input size than the model's (label propagation's frames)
        return f"{grid[0]} × {grid[1]} patches of {grid[2]} px"
    h, w = card.input_size
    p = card.patch_size
    return f"{h // p} × {w // p} patches of {p} px"


#: Captions of comparison plots that draw the baselines (atlas.site.figures.comparison_measure_figure).
COMPARISON_BASELINE_NOTE = ("In grey: the baselines of these models' patch grid, as on the model pages; hover for "
                            "their intervals.")
COMPARISON_GRIDS_NOTE = ("The models have different patch grids, so each grid has its own baselines: grey lines, "
                         "one shade per grid, named by the grid in the legend; the dash says which baseline; hover "
                         "for their intervals and models.")
COMPARISON_PARTIAL_NOTE = ("Baselines are drawn only for the models whose records hold them (the legend names their "
                           "grid; hover for their intervals and models).")


def comparison_baseline_note(groups: Sequence[dict[str, Any]], models: Sequence[str]) -> str:
    """The caption sentence on the baselines a comparison plot draws ("" when it draws none):
    ``groups`` are :func:`atlas.site.figures.baseline_groups`, ``models`` the models the plot draws."""
    drawn = [g for g in groups if any(s in models for s in g["models"])]
    if not drawn:
        return ""
    if len(drawn) > 1:
        return COMPARISON_GRIDS_NOTE
    covered = {s for s in drawn[0]["models"] if s in models}
    return COMPARISON_BASELINE_NOTE if covered == set(models) else COMPARISON_PARTIAL_NOTE


def baseline_label(b: Any) -> str:
    """A baseline's name, with its variant in words when the record names one
    (``colour + position (CIELAB, plain coordinates)``)."""
    words = variant_words(getattr(b, "variant", "") or "")
    return f"{b.name} ({words})" if words else str(b.name)


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _bounds(x: Any) -> tuple[float, float] | None:
    v = _finite(getattr(x, "value", None))
    if v is None:
        return None
    lo, hi = _finite(getattr(x, "lo", None)), _finite(getattr(x, "hi", None))
    if lo is None or hi is None:
        return v, v
    return min(lo, v), max(hi, v)


def simple_baselines(baselines: Iterable[Any], measure: str) -> list[Any]:
    """The simple baselines of ``measure`` (no ceiling), with a value."""
    return [b for b in baselines if b.measure == measure and b.name in SIMPLE_BASELINES and _bounds(b)]


def difference(row: Any, b: Any, level: float = 0.95, family: int = 1) -> dict[str, Any]:
    """``row``'s number minus baseline ``b``'s: ``{"lo", "hi", "below_hi", "paired", "value"}``.

    Paired (the record's ``versus``) where the row carries it for ``b``: its interval, and
    ``below_hi`` the upper end at level ``1 - (1 - level) / family`` (Bonferroni over the ``family``
    of baselines a ▼ may come from). Otherwise from the two intervals, which is the overlap rule
    (``hi < 0`` iff the intervals are disjoint with the model under; ``below_hi`` = ``hi``).

    >>> from types import SimpleNamespace as R
    >>> b = R(name="colour", value=0.50, lo=0.40, hi=0.60)
    >>> d = difference(R(value=0.55, lo=0.45, hi=0.65), b)  # the intervals overlap
    >>> round(d["lo"], 3), round(d["hi"], 3), d["paired"]
    (-0.15, 0.25, False)
    >>> paired = {"colour": {"value": 0.05, "lo": 0.02, "hi": 0.08, "se": 0.0153, "df": 30}}
    >>> d = difference(R(value=0.55, lo=0.45, hi=0.65, versus=paired), b, family=5)
    >>> d["lo"], d["hi"], round(d["below_hi"], 3), d["paired"]
    (0.02, 0.08, 0.092, True)
    """
    d = (getattr(row, "versus", None) or {}).get(b.name)
    if isinstance(d, dict) and all(_finite(d.get(x)) is not None for x in ("value", "lo", "hi", "se")):
        df = d.get("df")
        widened = interval_at(float(d["value"]), float(d["se"]), df, bonferroni(level, family))[1]
        return {"lo": float(d["lo"]), "hi": float(d["hi"]), "below_hi": widened, "paired": True,
                "value": float(d["value"])}
    (lo, hi), (blo, bhi) = _bounds(row), _bounds(b)
    return {"lo": lo - bhi, "hi": hi - blo, "below_hi": hi - blo, "paired": False,
            "value": float(row.value) - float(b.value)}


def baseline_flag(row: Any, baselines: Sequence[Any], info: dict[str, dict[str, Any]] | None = None,
                  level: float = 0.95) -> dict | None:
    """The flag of a model's number against the simple baselines of its measure (module docstring),
    or None when it clears them all (or has nothing to be compared with). ``level``: the build's
    interval level (``AtlasResults.interval_level``).

    Returns ``{"kind", "mark", "words", "title", "baseline"}``; ``title`` says in words which
    baseline, its score and, where paired, the difference.
    """
    if row is None:
        return None
    measure = getattr(row, "measure", "")
    if info is not None and (info.get(measure) or {}).get("direction", "quality") != "quality":
        return None
    simple = simple_baselines(baselines, measure)
    if _bounds(row) is None or not simple:
        return None
    gaps = [difference(row, b, level, family=len(simple)) for b in simple]
    below = [i for i, g in enumerate(gaps) if g["below_hi"] < 0]
    if below:
        kind, i = "below", min(below, key=lambda i: gaps[i]["below_hi"])
    else:
        near = [i for i, g in enumerate(gaps) if g["lo"] <= 0]
        if not near:
            return None
        kind, i = "not above", min(near, key=lambda i: gaps[i]["lo"])
    b, g = simple[i], gaps[i]
    shown = with_interval(b.value, b.lo, b.hi, digits=3)
    gap = f"; the paired difference is {with_interval(g['value'], g['lo'], g['hi'], digits=3)}" if g["paired"] else ""
    if g["paired"] and kind == "not above" and g["hi"] < 0:  # under 0, but not at the level ▼ reads
        gap += (f", under 0 but not at the {level_percent(1 - (1 - level) / len(simple))} level that ▼ reads "
                f"for {len(simple)} baselines")
    title = f"{FLAG_WORDS[kind]}: {baseline_label(b)} scores {shown}{gap}".replace("|", "/")  # Markdown tables
    return {"kind": kind, "mark": FLAG_MARKS[kind], "words": FLAG_WORDS[kind], "title": title,
            "baseline": b.name}


def legend() -> list[dict[str, str]]:
    """The legend of the marks: ``[{"mark", "text", "cls"}]``."""
    return [{"mark": FLAG_MARKS[k], "text": text, "cls": "below" if k == "below" else "not-above"}
            for k, text in FLAG_LEGEND]
