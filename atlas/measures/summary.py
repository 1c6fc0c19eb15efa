"""All scalar measures of one (model, block, representation) that need only its own cluster maps,
features and prefix tokens, computed in one pass.

The blank-input probe and the shift test need other inputs (cluster maps of blank images, of
shifted windows) and are called on those directly; the dense evaluations need human masks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .boundary import _boundary_artifacts, boundary_artifacts
from .locality import _similarity_structure, similarity_structure
from .positional import _as_features, _as_labels, _position_probe, position_decodability, positional_clustering
from .pca import pca_variance_share
from .registry import REGISTRY
from .tensors import is_tensor

__all__ = ["summarise"]

#: Registry inputs :func:`summarise` covers.
PAIR_INPUTS = ("labels", "labels+features", "features", "prefix")


def summarise(labels: Any, features: Any, prefix: Any = None, *, seed: int = 0, weights: np.ndarray | None = None,
              labels_only: bool = False, return_results: bool = False,
              device: Any = None) -> dict[str, float] | tuple[dict[str, float], dict[str, dict]]:
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
    weights : float array (B, N), optional
        Image weights of resampling replicates (:func:`atlas.measures.uncertainty.half_samples`):
        every function also returns its ``replicates`` (the pairwise similarity measures their
        leave-one-out jackknife instead); :func:`replicates` collects them by measure name.
    labels_only : bool, default False
        Only the measures that depend on the cluster labels (for another k-means seed of the
        same features).
    return_results : bool, default False
        Also return the full result of every function (maps and curves as well as scalars).
    device : torch device or str, optional
        Where the heavy parts run (:mod:`atlas.measures.tensors`). None: where ``features`` is (a
        tensor's device; numpy: the CPU, today's path). With a device, ``features`` is copied
        there once (unless it is already a float32 tensor there) and every measure reuses it.

    Returns
    -------
    values : dict[str, float]
        One entry per registry measure (:data:`atlas.measures.registry.REGISTRY`) whose inputs are
        in :data:`PAIR_INPUTS` and available. Values are plain floats (NaN where undefined).
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
    labels, feats = _as_labels(labels), _as_features(features, min_images=2, device=device)
    device = feats.device if is_tensor(feats) else None
    # keyed by the registry's function names (each call is a module global: a benchmark can time it)
    results = {
        positional_clustering.__name__: positional_clustering(labels, seed=seed, weights=weights, device=device),
        boundary_artifacts.__name__: _boundary_artifacts(labels, feats, prefix, weights=weights, device=device),
    }
    if not labels_only:
        results[position_decodability.__name__] = _position_probe(feats, seed=seed, weights=weights, device=device)
        results[similarity_structure.__name__] = _similarity_structure(feats, jackknife=weights is not None,
                                                                        device=device)
        results[pca_variance_share.__name__] = pca_variance_share(feats, weights=weights, device=device)
    shape = tuple(getattr(prefix, "shape", np.shape(prefix))) if prefix is not None else ()
    has_prefix = len(shape) == 3 and shape[1] > 0
    out: dict[str, float] = {}
    for name, m in REGISTRY.items():
        if m.inputs not in PAIR_INPUTS or (m.inputs == "prefix" and not has_prefix):
            continue
        if labels_only and not m.depends_on_k:
            continue
        value = results[m.function.__name__][m.result_key]
        out[name] = float(np.mean(value))  # prefix_norm_ratio: mean over prefix tokens
    if return_results:
        return out, results
    return out


def replicates(results: dict[str, dict], names) -> dict[str, np.ndarray]:
    """The replicates of the named measures from :func:`summarise`'s full results (computed with
    ``weights``), keyed by measure name."""
    out = {}
    for name in names:
        m = REGISTRY[name]
        got = results.get(m.function.__name__, {}).get("replicates", {})
        if m.result_key in got:
            out[name] = np.asarray(got[m.result_key], dtype=np.float64)
    return out
