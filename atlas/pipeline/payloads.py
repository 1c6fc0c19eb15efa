"""Figure payloads of a model page: the maps and curves behind the measures, as the plain dicts
``ModelResult.figures`` holds (see :class:`atlas.records.ModelResult`).

A payload carries ids and numbers only: its ``kind``, the block, representation and image it
belongs to, and the values. Titles, axis names, series names and colour scales belong to the site
(:mod:`atlas.site.figure_words`), so rewording a figure re-renders pages without recomputing a
model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import slugify


def _finite(values) -> list:
    return [None if not np.isfinite(v) else round(float(v), 5) for v in np.asarray(values, dtype=float)]


def _cluster_map(id_: str, kind: str, labels: np.ndarray, b: int, r: str, image: str, **ids: Any) -> dict[str, Any]:
    return {"id": id_, "kind": kind, "z": labels.tolist(), "labels": labels.tolist(), "block": b,
            "representation": r, "image": image, **ids}


def measure_maps(results: dict[str, dict], b: int, r: str, k: int | None = None) -> list[dict[str, Any]]:
    """Per-position maps of :func:`atlas.measures.summary.summarise`'s full results: the dominant
    cluster's win frequency (its cluster ids those of the clustering at ``k``), the mean token norm
    and the high-norm outlier count."""
    pc, ba = results["positional_clustering"], results["boundary_artifacts"]
    return [
        {"id": f"dominant-{r}", "kind": "dominant", "z": np.round(np.asarray(pc["dominant_freq"], dtype=float), 4).tolist(),
         "labels": np.asarray(pc["dominant"]).tolist(), "block": b, "representation": r, "k": k},
        {"id": f"norm-{r}", "kind": "norm", "z": np.round(np.asarray(ba["norm_map"], dtype=float), 4).tolist(),
         "block": b, "representation": r},
        {"id": f"outliers-{r}", "kind": "outliers", "z": np.asarray(ba["outlier_count_map"]).astype(int).tolist(),
         "block": b, "representation": r},
    ]


def locality_curve(loc: dict[str, Any], b: int, r: str) -> dict[str, Any]:
    """Within- vs across-image similarity against distance (:func:`atlas.measures.locality.similarity_structure`)."""
    return {"id": f"locality-{r}", "kind": "locality", "block": b, "representation": r,
            "x": [int(x) for x in loc["distances"]],
            "series": {"within": _finite(loc["within"]), "across": _finite(loc["across"]),
                       "beyond": _finite(loc["beyond"])}}


def blank_maps(labels: np.ndarray, names: list[str], b: int, r: str, k: int | None = None) -> list[dict[str, Any]]:
    """Cluster maps of blank-input probes under the joint centroids (fitted at ``k``)."""
    return [_cluster_map(f"blank-{name}-{r}", "blank", lab, b, r, name, k=k) for name, lab in zip(names, labels)]


def shift_pair_maps(base: np.ndarray, moved: np.ndarray, names: list[str], shift: int, b: int, r: str,
                    k: int | None = None) -> list[dict]:
    """Cluster maps of shift-test pairs under the joint centroids (fitted at ``k``): content moves
    ``shift`` patches left from crop a to crop b; clusters that move with it follow content,
    clusters that stay put follow the grid."""
    out = []
    for name, la, lb in zip(names, base, moved):
        for crop, lab in (("a", la), ("b", lb)):
            moved_by = shift if crop == "b" else 0
            out.append(_cluster_map(f"shift-pair-{slugify(name)}-{crop}", "shift-pair", lab, b, r,
                                    f"{name}@shift{moved_by}", photo=name, crop=crop, moved_by=moved_by, k=k))
    return out


#: The payload kinds whose ``labels`` are joint cluster ids of the clustering at their ``k``.
CLUSTER_ID_KINDS = ("dominant", "blank", "shift-pair")


def renumber_cluster_ids(heatmaps: list[dict[str, Any]], mappings: dict[tuple[int, str, int], np.ndarray]) -> None:
    """Same colour = same cluster in these maps too: each payload of :data:`CLUSTER_ID_KINDS` with
    its ids renumbered, in place, by the mapping that renumbered the gallery's label map of its
    ``(block, representation, k)`` (``new id = mapping[old id]``); a payload without one is left as
    it is.

    >>> maps = blank_maps(np.array([[[0, 1], [1, 2]]]), ["grey"], 11, "keys", k=3)
    >>> renumber_cluster_ids(maps, {(11, "keys", 3): np.array([2, 0, 1])})
    >>> maps[0]["z"], maps[0]["labels"]
    ([[2, 0], [0, 1]], [[2, 0], [0, 1]])
    """
    for payload in heatmaps:
        key = (payload.get("block"), payload.get("representation"), payload.get("k"))
        if payload.get("kind") not in CLUSTER_ID_KINDS or key not in mappings:
            continue
        mapping = np.asarray(mappings[key])
        if payload["z"] == payload["labels"]:  # a cluster map: its colours are the ids
            payload["z"] = mapping[np.asarray(payload["z"])].tolist()
        payload["labels"] = mapping[np.asarray(payload["labels"])].tolist()


def shift_curve(curve: dict[str, Any], b: int, r: str) -> dict[str, Any]:
    """Agreement by content vs by grid position against the shift (:func:`atlas.measures.shift.shift_curve`)."""
    return {"id": f"shift-{r}", "kind": "shift", "block": b, "representation": r,
            "x": [int(s) for s in curve["shifts"]],
            "series": {"content": [float(v) for v in curve["content"]],
                       "position": [float(v) for v in curve["position"]],
                       "self_agreement": [float(v) for v in curve["self_agreement"]],
                       "content_fraction": [float(v) for v in curve["content_fraction_adjusted"]]}}


def _interval_series(intervals: dict[str, list], keys: list[str]) -> dict[str, dict[str, list]]:
    """``{"lo": {series: [...]}, "hi": {series: [...]}}`` of the intervals ``{series: [(lo, hi) |
    None per point]}`` (a bound that is not finite is None); empty when no point has a finite
    interval (the site then says "no interval")."""
    def whole(iv) -> bool:
        return iv is not None and all(v is not None and np.isfinite(v) for v in iv)

    if not any(whole(iv) for key in keys for iv in intervals.get(key, [])):
        return {}
    return {side: {key: [round(float(iv[j]), 5) if whole(iv) else None for iv in intervals[key]] for key in keys}
            for j, side in enumerate(("lo", "hi"))}


def knn_curve(scores: dict[int, float], ks: list[int], b: int,
              intervals: dict[int, tuple[float, float]] | None = None) -> dict[str, Any]:
    """k-NN patch-probe mIoU against k (:func:`atlas.measures.knn.knn_probe`), block ``b``'s tokens;
    ``intervals``: ``{k: (lo, hi)}`` (the site draws them as a band)."""
    ks = list(ks)
    bands = _interval_series({"miou": [(intervals or {}).get(k) for k in ks]}, ["miou"])
    return {"id": "knn-k", "kind": "knn-k", "block": b, "representation": "tokens", "x": ks,
            "series": {"miou": [round(float(scores[k]), 5) for k in ks]}, **bands}


def variance_curve(spectrum: np.ndarray, b: int) -> dict[str, Any]:
    """Per-channel variance, sorted (:func:`atlas.measures.knn.variance_spectrum`), block ``b``'s tokens."""
    return {"id": "variance-spectrum", "kind": "variance-spectrum", "block": b, "representation": "tokens",
            "x": list(range(1, len(spectrum) + 1)), "series": {"variance": [round(float(v), 6) for v in spectrum]}}


def removal_curve(curve: dict[str, dict[int, dict[int, float]]], k: int, b: int,
                  intervals: dict[str, dict[int, tuple[float, float]]] | None = None) -> dict[str, Any]:
    """k-NN mIoU (at ``k``) after removing the top-m variance channels, per control
    (:func:`atlas.measures.knn.channel_removal_curve`), block ``b``'s tokens; ``intervals``:
    ``{control: {m: (lo, hi)}}``."""
    ms = sorted({m for c in curve.values() for m in c})
    bands = _interval_series({ctrl: [((intervals or {}).get(ctrl) or {}).get(m) for m in ms] for ctrl in curve},
                             list(curve))
    return {"id": "channel-removal", "kind": "channel-removal", "block": b, "representation": "tokens", "k": k,
            "x": ms, "series": {ctrl: [round(float(curve[ctrl][m][k]), 5) if m in curve[ctrl] else None for m in ms]
                                for ctrl in curve}, **bands}


def masking_matrix(metric: str, matrix: np.ndarray, variants: list[str], b: int) -> dict[str, Any]:
    """A similarity ``metric`` between the masking variants' embeddings
    (:func:`atlas.measures.similarity.similarity_matrix`), block ``b``'s tokens."""
    return {"id": f"masking-{metric}", "kind": "masking", "metric": metric, "block": b, "representation": "tokens",
            "z": np.round(np.asarray(matrix, dtype=float), 4).tolist(), "x_labels": list(variants),
            "y_labels": list(variants)}


def propagation_sequences(sequences: list[str], model: list[float], baselines: dict[str, list[float]], b: int,
                          r: str) -> dict[str, Any]:
    """Label-propagation J&F of each test sequence at the chosen block ``b`` and representation
    ``r``, and of each baseline (``{name: values}``; series ids are the names with ``_`` for spaces)."""
    return {"id": "propagation-sequences", "kind": "propagation-sequences", "block": b, "representation": r,
            "x": list(sequences), "series": {"model": _finite(model),
                                             **{name.replace(" ", "_"): _finite(v) for name, v in baselines.items()}}}
