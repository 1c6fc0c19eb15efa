"""Quantitative measures of positional bias, locality and boundary artifacts (numpy; torch for one eigh).

Every scalar the pipeline stores as a :class:`atlas.results.MeasureRow` is listed in
:data:`MEASURES` with the function that computes it, the key of that function's result, a
one-line description and the formula the Methods page prints. :func:`summarise` computes all
the scalars that need only one (model, block, representation): the joint cluster labels, the
clustered features and optionally the prefix tokens. The blank-input probe and the shift test
need other inputs (cluster maps of blank images, of shifted crops) and are called directly.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from .boundary import _boundary_artifacts, border_mask, boundary_artifacts
from .locality import _similarity_structure, locality_curve, positional_effect, similarity_structure
from .positional import (_as_features, _as_labels, _position_probe, blank_input_structure, position_decodability,
                         positional_clustering)
from .shift import shift_boxes, shift_curve, shift_test

__all__ = [
    "MEASURES",
    "Measure",
    "summarise",
    "positional_clustering",
    "position_decodability",
    "blank_input_structure",
    "similarity_structure",
    "positional_effect",
    "locality_curve",
    "border_mask",
    "boundary_artifacts",
    "shift_boxes",
    "shift_test",
    "shift_curve",
]


class Measure(NamedTuple):
    """One stored scalar: ``function(...)[key]``.

    ``inputs`` says what the value depends on: ``"labels"`` / ``"labels+features"`` (depends on
    the number of clusters K, so store it with ``MeasureRow.k``), ``"features"`` or ``"prefix"``
    (independent of K), ``"blank labels"`` (cluster maps of content-free inputs) or
    ``"shift pairs"`` (cluster maps of shifted crops).
    """

    function: Callable[..., dict[str, Any]]
    description: str
    formula: str
    key: str
    inputs: str


MEASURES: dict[str, Measure] = {
    "positional_nce": Measure(
        positional_clustering,
        "How much the patch position determines the cluster (chance-corrected entropy score).",
        "NCE = 1 - mean_p H(c|p) / H(c); reported (NCE - NCE_shuffled) / (1 - NCE_shuffled), "
        "NCE_shuffled = NCE after shuffling each image's labels over its positions",
        "nce",
        "labels",
    ),
    "positional_ami": Measure(
        positional_clustering,
        "Adjusted mutual information between cluster and patch position.",
        "AMI(c, p) over all tokens (sklearn adjusted_mutual_info_score)",
        "ami",
        "labels",
    ),
    "position_r2": Measure(
        position_decodability,
        "How well a linear probe reads the (row, col) of a token, on held-out images.",
        "mean of R^2(row) and R^2(col): ridge on z-scored tokens (at most 4000, equally many per image), "
        "5-fold GroupKFold over images, penalty per target chosen from 33 values (trace(X^T X) / C * "
        "10^[-4..4]) by the pooled out-of-fold error, R^2 = 1 - SS_res / SS_tot on the pooled out-of-fold "
        "predictions",
        "r2",
        "features",
    ),
    "positional_effect": Measure(
        similarity_structure,
        "Cosine similarity of same-position tokens minus different-position tokens, across images.",
        "mean_p mean_{i!=j} u(i,p).u(j,p) - mean_{p!=q} mean_{i!=j} u(i,p).u(j,q), "
        "u = dataset-mean-centred unit tokens",
        "positional_effect",
        "features",
    ),
    "locality_d1": Measure(
        similarity_structure,
        "Extra similarity of neighbouring tokens in one image over the same offset across images.",
        "within(1) - across(1); within(d) = mean over pairs at Chebyshev distance d of u(i,p).u(i,q), "
        "across(d) = same with i != j",
        "locality_d1",
        "features",
    ),
    "locality_slope": Measure(
        similarity_structure,
        "How fast the locality beyond position decays with distance (per patch; negative = local).",
        "least-squares slope of within(d) - across(d) over d = 1..4",
        "locality_slope",
        "features",
    ),
    "border_ami": Measure(
        boundary_artifacts,
        "Adjusted mutual information between cluster and the border-ring indicator.",
        "AMI(c, b) with b(p) = 1 on the outer ring of the patch grid",
        "ami",
        "labels+features",
    ),
    "border_max_enrichment": Measure(
        boundary_artifacts,
        "Largest over-representation of a cluster on the border ring (1 = none).",
        "max_k ((n_kB + 1)/(n_B + K)) / ((n_kI + 1)/(n_I + K)) over clusters with >= 1% of tokens",
        "max_enrichment",
        "labels+features",
    ),
    "border_norm_ratio": Measure(
        boundary_artifacts,
        "Mean token norm on the border ring over the mean norm inside.",
        "mean_{b(p)=1} ||f(i,p)|| / mean_{b(p)=0} ||f(i,p)||",
        "norm_ratio",
        "features",
    ),
    "outlier_fraction": Measure(
        boundary_artifacts,
        "Share of patch tokens with an abnormally high norm.",
        "mean [ (||f|| - median) / (1.4826 MAD) > 5 ] over all patch tokens",
        "outlier_fraction",
        "features",
    ),
    "outlier_fraction_border": Measure(
        boundary_artifacts,
        "Share of border-ring tokens with an abnormally high norm.",
        "as outlier_fraction, over tokens with b(p) = 1",
        "outlier_fraction_border",
        "features",
    ),
    "prefix_norm_ratio": Measure(
        boundary_artifacts,
        "Mean norm of the prefix tokens (CLS, registers) over the mean patch-token norm.",
        "mean_t mean_i ||prefix(i,t)|| / mean_{i,p} ||f(i,p)||",
        "prefix_norm_ratio",
        "prefix",
    ),
    "blank_position_score": Measure(
        blank_input_structure,
        "How consistently content-free inputs get the same cluster map (pure positional structure).",
        "(A - A0) / (1 - A0), A = mean_p max_k #{i: c(i,p)=k} / M, A0 = A after within-image shuffles",
        "position_score",
        "blank labels",
    ),
    "blank_autocorrelation": Measure(
        blank_input_structure,
        "Spatial coherence of the cluster maps of content-free inputs.",
        "(B - B0) / (1 - B0), B = share of equal 4-neighbour labels, B0 = sum_k n_k(n_k-1) / (P(P-1))",
        "autocorrelation",
        "blank labels",
    ),
    "shift_content_fraction": Measure(
        shift_test,
        "Whether clusters follow the content or the grid when the crop moves (1 = content).",
        "c / (c + q), c = max(content - chance, 0), q = max(position - chance, 0); "
        "content = mean[a[..., s:] == b[..., :w-s]], position = same-column agreement",
        "content_fraction_adjusted",
        "shift pairs",
    ),
}


def summarise(labels: Any, features: Any, prefix: Any = None, *, seed: int = 0,
              return_results: bool = False) -> dict[str, float] | tuple[dict[str, float], dict[str, dict]]:
    """All scalar measures of one (model, block, representation) as ``{name: value}``.

    Parameters
    ----------
    labels : int array (N, h, w)
        Joint cluster ids of ``features`` (the values of ``inputs == "labels"`` measures depend
        on the number of clusters K; the others do not).
    features : float array (N, h, w, C)
        The clustered patch features.
    prefix : float array (N, T, C), optional
        Prefix tokens; adds ``prefix_norm_ratio`` (mean over prefix tokens) when T > 0.
    seed : int, default 0
        Seed of the permutations and token subsamples.
    return_results : bool, default False
        Also return the full result of every function (maps and curves as well as scalars).

    Returns
    -------
    values : dict[str, float]
        One entry per :data:`MEASURES` name whose inputs are available (blank-input and shift
        measures are not included). Values are plain floats (NaN where undefined).
    results : dict[str, dict]
        Only with ``return_results``: the result of each function, keyed by its name
        (``"positional_clustering"``, ``"position_decodability"``, ``"similarity_structure"``,
        ``"boundary_artifacts"``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> feats = rng.normal(size=(12, 6, 6, 16)).astype(np.float32)
    >>> labels = rng.integers(0, 4, (12, 6, 6))
    >>> sorted(summarise(labels, feats))[:3]
    ['border_ami', 'border_max_enrichment', 'border_norm_ratio']
    """
    # validated once here (a full pass over the features), not once per measure
    labels, feats = _as_labels(labels), _as_features(features, min_images=2)
    results = {
        positional_clustering: positional_clustering(labels, seed=seed),
        position_decodability: _position_probe(feats, seed=seed),
        similarity_structure: _similarity_structure(feats),
        boundary_artifacts: _boundary_artifacts(labels, feats, prefix),
    }
    has_prefix = prefix is not None and np.asarray(prefix).ndim == 3 and np.asarray(prefix).shape[1] > 0
    out: dict[str, float] = {}
    for name, m in MEASURES.items():
        if m.function not in results or (m.inputs == "prefix" and not has_prefix):
            continue
        value = results[m.function][m.key]
        out[name] = float(np.mean(value))  # prefix_norm_ratio: mean over prefix tokens
    if return_results:
        return out, {f.__name__: r for f, r in results.items()}
    return out
