"""The measure registry: how every number the atlas stores is computed, described once.

Each :class:`Measure` says how a stored number is made -- its key (``MeasureRow.measure``), what it
is computed from, the function that computes it and the key of its result, its value range (the
interval is clipped to it), how its interval is resampled, and whether the evaluation selects a
(block, representation, K) for it. The pipeline copies :func:`measure_info` into the records: ids
and numbers. What the site says about a measure -- title, definition, formula, which way is
"more", its place on the leaderboard, the highlights and the scaling summary -- is the site's
(:mod:`atlas.site.measure_words`), so rewording it changes pages at the next ``--render-only`` and
leaves every stored result valid: the site is outside the code fingerprint.

Adding a measure: one :data:`REGISTRY` entry, its function, its words in
:data:`atlas.site.measure_words.WORDS`, its planted-effect test.

Example
-------
>>> m = REGISTRY["position_r2"]
>>> m.inputs, m.section, m.depends_on_k, m.function_name
('features', 'positional', False, 'atlas.measures.positional.position_decodability')
>>> [k for k, m in REGISTRY.items() if m.ranked][:2]
['seg_miou', 'seg_pixel_accuracy']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .attention import attention_entropy, high_norm_attention, ring_attention
from .boundary import boundary_artifacts
from .knn import knn_probe
from .locality import similarity_structure
from .pca import pca_variance_share
from .positional import blank_input_structure, position_decodability, positional_clustering
from .propagation import j_and_f
from .pseudomasks import score_pseudo_masks
from .segmentation import evaluate_label_maps
from .shift import shift_curve
from .similarity import similarity_matrix

__all__ = ["Measure", "REGISTRY", "measure_info"]

#: What a measure is computed from. ``labels`` / ``labels+features``: the joint cluster maps of the
#: atlas images (the value depends on K); ``features`` / ``prefix``: their patch / prefix tokens;
#: ``blank labels``: cluster maps of the blank-input probes; ``shift pairs``: cluster maps of the
#: shift-test windows; ``human masks``: the labelled evaluation dataset; ``attention``: the prefix
#: tokens' attention rows from the block's queries and keys (:mod:`.attention`); ``video masks``: the
#: first mask of each video sequence propagated through its frames (:mod:`.propagation`).
Inputs = Literal["labels", "labels+features", "features", "prefix", "blank labels", "shift pairs", "human masks",
                 "attention", "video masks"]

_K_INPUTS = ("labels", "labels+features", "blank labels", "shift pairs")
_EVALUATION_INPUTS = ("human masks", "video masks")


@dataclass(frozen=True)
class Measure:
    """One stored number: ``function(...)[result_key]``, clipped to ``value_range``."""

    inputs: Inputs
    function: Callable[..., dict[str, Any]]
    result_key: str | int
    value_range: tuple[float | None, float | None]  # None = unbounded
    # the evaluation selects a (block, representation, K) for it on its selection fold (the leaderboard's rows)
    ranked: bool = False
    # the measure whose selection-fold value chooses that (block, representation, K) and its baselines' own
    selected_by: str | None = None
    # delete-d jackknife: "random halves" (of the images, or of their groups), "leave-one-out" (images), or
    # "sequence halves" (random halves of the test sequences: label propagation)
    interval: str = "random halves"
    # the value is a statistic of the set of tokens, not of where each sits (within-image shuffles
    # leave it unchanged): its content-only reference would equal it by construction, so it has none
    position_free: bool = False

    @property
    def depends_on_k(self) -> bool:
        """Whether the value depends on the number of clusters K (stored with ``MeasureRow.k``)."""
        return self.inputs in _K_INPUTS

    @property
    def section(self) -> Literal["positional", "evaluation"]:
        """``evaluation`` for measures against human or video masks, else ``positional``."""
        return "evaluation" if self.inputs in _EVALUATION_INPUTS else "positional"

    @property
    def function_name(self) -> str:
        return f"{self.function.__module__}.{self.function.__name__}"


REGISTRY: dict[str, Measure] = {
    # ---------------------------------------------------------------- positional behaviour
    "positional_nce": Measure("labels", positional_clustering, "nce", (None, 1.0)),
    "positional_ami": Measure("labels", positional_clustering, "ami", (None, 1.0)),
    "position_r2": Measure("features", position_decodability, "r2", (None, 1.0)),
    "positional_effect": Measure(
        "features", similarity_structure, "positional_effect", (-2.0, 2.0), interval="leave-one-out",
    ),
    "locality_d1": Measure("features", similarity_structure, "locality_d1", (-2.0, 2.0), interval="leave-one-out"),
    "locality_slope": Measure(
        "features", similarity_structure, "locality_slope", (None, None), interval="leave-one-out",
    ),
    "border_ami": Measure("labels+features", boundary_artifacts, "ami", (None, 1.0)),
    "border_max_enrichment": Measure("labels+features", boundary_artifacts, "max_enrichment", (0.0, None)),
    "border_norm_ratio": Measure("features", boundary_artifacts, "norm_ratio", (0.0, None)),
    "outlier_fraction": Measure("features", boundary_artifacts, "outlier_fraction", (0.0, 1.0), position_free=True),
    "outlier_fraction_border": Measure("features", boundary_artifacts, "outlier_fraction_border", (0.0, 1.0)),
    "prefix_norm_ratio": Measure("prefix", boundary_artifacts, "prefix_norm_ratio", (0.0, None)),
    "pca_top3_variance": Measure("features", pca_variance_share, "share", (0.0, 1.0), position_free=True),
    "attention_entropy": Measure("attention", attention_entropy, "entropy", (0.0, 1.0)),
    "cls_ring_enrichment": Measure("attention", ring_attention, "enrichment", (0.0, None)),
    "cls_high_norm_enrichment": Measure("attention", high_norm_attention, "enrichment", (0.0, None)),
    "blank_position_score": Measure("blank labels", blank_input_structure, "position_score", (None, 1.0)),
    "blank_autocorrelation": Measure("blank labels", blank_input_structure, "autocorrelation", (None, 1.0)),
    "shift_content_fraction": Measure("shift pairs", shift_curve, "content_fraction_mean", (0.0, 1.0)),
    # ---------------------------------------------------------------- against human masks
    "seg_miou": Measure("human masks", evaluate_label_maps, "miou", (0.0, 1.0), ranked=True),
    "seg_pixel_accuracy": Measure(
        "human masks", evaluate_label_maps, "pixel_accuracy", (0.0, 1.0), ranked=True, selected_by="seg_miou",
    ),
    "seg_miou_overcluster": Measure("human masks", evaluate_label_maps, "miou", (0.0, 1.0), ranked=True),
    "seg_coverage": Measure("human masks", evaluate_label_maps, "coverage", (0.0, 1.0), selected_by="seg_miou"),
    "knn_miou_k10": Measure("human masks", knn_probe, 10, (0.0, 1.0), ranked=True),
    "pseudomask_miou": Measure("human masks", score_pseudo_masks, "miou", (0.0, 1.0), ranked=True),
    "pseudomask_coverage": Measure("human masks", score_pseudo_masks, "coverage", (0.0, 1.0)),
    "propagation_jf": Measure("video masks", j_and_f, "j_and_f", (0.0, 1.0), ranked=True, interval="sequence halves"),
    "propagation_j": Measure(
        "video masks", j_and_f, "j", (0.0, 1.0), selected_by="propagation_jf", interval="sequence halves",
    ),
    "propagation_f": Measure(
        "video masks", j_and_f, "f", (0.0, 1.0), selected_by="propagation_jf", interval="sequence halves",
    ),
    "cka_full_vs_foreground": Measure("human masks", similarity_matrix, "debiased_cka", (None, 1.0)),
    "cka_full_vs_background": Measure("human masks", similarity_matrix, "debiased_cka", (None, 1.0)),
    "cka_centre_vs_random_occlusion": Measure("human masks", similarity_matrix, "debiased_cka", (None, 1.0)),
}


def _range_text(lo: float | None, hi: float | None) -> str:
    left = "(−∞" if lo is None else f"[{lo:g}"
    right = "∞)" if hi is None else f"{hi:g}]"
    return f"{left}, {right}"


def measure_info() -> dict[str, dict[str, Any]]:
    """The registry as plain data for the records (``AtlasResults.measure_info``): ids and numbers.

    >>> info = measure_info()["border_ami"]
    >>> info["range"], info["section"], info["depends_on_k"]
    ('(−∞, 1]', 'positional', True)
    """
    out = {}
    for key, m in REGISTRY.items():
        info: dict[str, Any] = {
            "inputs": m.inputs, "function": m.function_name, "section": m.section,
            "range": _range_text(*m.value_range), "bounds": list(m.value_range), "depends_on_k": m.depends_on_k,
            "interval": m.interval,
        }
        if m.ranked:
            info["ranked"] = True
        if m.position_free:
            info["position_free"] = True
        if m.selected_by is not None:
            info["selected_by"] = m.selected_by
        out[key] = info
    return out
