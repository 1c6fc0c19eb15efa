"""Words and looks of the analysis figures the build stores as numbers (``ModelResult.figures``,
made by :mod:`atlas.pipeline.payloads`): each payload names its ``kind``, and this module gives it
a title, axis and series names, a colour scale, a value range and a page section. Rewording a
figure here re-renders the site; no model is recomputed.

>>> p = {"id": "norm-keys", "kind": "norm", "block": 11, "representation": "keys", "z": [[1.0]]}
>>> d = dressed(p)
>>> d["title"], d["colorscale"], d["zlabel"], d["section"]
('Block 11 keys: token norm averaged over images', 'Magma', 'mean L2 norm', 'positional')
>>> "title" in p  # the record is not changed
False
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FigureWords:
    """How one kind of payload is shown. ``title`` is formatted with the payload's fields (and
    ``moved``, the shift pair's note); ``series`` names a curve's series by id (unknown ids are
    shown as they are)."""

    title: str
    section: str = "positional"
    zlabel: str = ""
    colorscale: str = ""
    xaxis: str = ""
    yaxis: str = ""
    bounds: tuple[float, float] | None = None
    series: dict[str, str] = field(default_factory=dict)


_MAP = "Block {block} {representation}: "
#: Said in the title of a figure of scores whose payload holds no interval (``lo``/``hi``), so the
#: figure and its caption say it: per-sequence J&F (one number per sequence), and curves of results
#: stored before their intervals were, or built with ``resamples = 0``.
NO_INTERVAL = " (no interval)"
#: The curve kinds that are scores: their intervals are drawn as bands, or their titles say there are none.
SCORE_CURVES = frozenset({"knn-k", "channel-removal", "propagation-sequences"})

#: One entry per payload kind of :mod:`atlas.pipeline.payloads`.
FIGURES: dict[str, FigureWords] = {
    "dominant": FigureWords(_MAP + "how often each position's dominant cluster{k_in_brackets} wins",
                            zlabel="win frequency", colorscale="Viridis"),
    "norm": FigureWords(_MAP + "token norm averaged over images", zlabel="mean L2 norm", colorscale="Magma"),
    "outliers": FigureWords(_MAP + "high-norm outlier tokens per position", zlabel="outlier count",
                            colorscale="Magma"),
    "blank": FigureWords("Blank-input probe ({image}), block {block} {representation}: cluster map{k_after_comma}",
                         zlabel="cluster"),
    "shift-pair": FigureWords("Shift test pair, {photo}, crop {crop}{moved}: block {block} {representation} "
                              "clusters{k_after_comma}",
                              zlabel="cluster"),
    "locality": FigureWords(_MAP + "similarity vs distance, within vs across images", xaxis="distance (patches)",
                            yaxis="mean cosine similarity", bounds=(-1.0, 1.0),
                            series={"within": "within image", "across": "across images (same offset)",
                                    "beyond": "locality beyond position"}),
    "shift": FigureWords("Shift test, block {block} {representation}: agreement vs shift", xaxis="shift s (patches)",
                         yaxis="fraction of tokens", bounds=(0.0, 1.0),
                         series={"content": "aligned by content", "position": "aligned by grid position",
                                 "self_agreement": "each map with itself s patches away (baseline of both)",
                                 "content_fraction": "content-following share"}),
    "knn-k": FigureWords("k-NN patch probe, block {block} tokens: mIoU vs k", section="evaluation",
                         xaxis="k", yaxis="mIoU", bounds=(0.0, 1.0), series={"miou": "mIoU"}),
    "variance-spectrum": FigureWords("Channel variance of block {block} tokens on the k-NN support set (sorted)",
                                     section="evaluation",
                                     xaxis="channel rank", yaxis="variance", series={"variance": "variance"}),
    "channel-removal": FigureWords("k-NN (k = {k}) after removing top-m variance channels, block {block} tokens",
                                   section="evaluation", xaxis="channels removed (m)", yaxis="mIoU", bounds=(0.0, 1.0),
                                   series={"none": "raw channels", "zscore": "z-scored channels",
                                           "pca_whiten": "PCA-whitened channels"}),
    "propagation-sequences": FigureWords("Label propagation J&F per test sequence, block {block} {representation} "
                                         "(the leaderboard's choice) and its baselines",
                                         section="evaluation",
                                         xaxis="test sequence", yaxis="J&F", bounds=(0.0, 1.0),
                                         series={"model": "model", "zero_motion": "zero motion (first mask copied)",
                                                 "colour": "colour baseline", "position": "position baseline",
                                                 "ceiling": "patch-grid ceiling"}),
    "masking": FigureWords("{metric} between masking variants, block {block} tokens", section="evaluation",
                           zlabel="{metric}", colorscale="Viridis"),
}


def dressed(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``payload`` with the words and looks of its kind (a payload without a known kind
    keeps its own fields: the site draws it as it is)."""
    words = FIGURES.get(str(payload.get("kind", "")))
    if words is None:
        return dict(payload)
    k = payload.get("k")
    fields = {"moved": f" (content moved {payload['moved_by']} patches left)" if payload.get("moved_by") else "",
              "k_in_brackets": f" (K = {k})" if k else "",
              "k_after_comma": f", K = {k}" if k else "", **payload}
    title = words.title.format(**fields)
    if payload.get("kind") in SCORE_CURVES and not (payload.get("lo") and payload.get("hi")):
        title += NO_INTERVAL
    out = {**payload, "title": title, "section": words.section}
    for name in ("colorscale", "xaxis", "yaxis"):
        if getattr(words, name):
            out[name] = getattr(words, name)
    if words.zlabel:
        out["zlabel"] = words.zlabel.format(**fields)
    if words.bounds is not None:
        out["bounds"] = list(words.bounds)
    for name in ("series", "lo", "hi"):  # the bounds are keyed by series, like the values
        if name in payload:
            out[name] = {words.series.get(key, key): ys for key, ys in payload[name].items()}
    return out
