"""Figure payloads of a model page: the maps and curves behind the positional measures, as the
plain dicts ``ModelResult.figures`` holds (the site draws them; see :class:`atlas.records.ModelResult`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import slugify


def _finite(values) -> list:
    return [None if not np.isfinite(v) else round(float(v), 5) for v in np.asarray(values, dtype=float)]


def _cluster_map(id_: str, title: str, labels: np.ndarray, b: int, r: str, image: str) -> dict[str, Any]:
    return {"id": id_, "title": title, "z": labels.tolist(), "labels": labels.tolist(), "block": b,
            "representation": r, "zlabel": "cluster", "image": image, "section": "positional"}


def measure_maps(results: dict[str, dict], b: int, r: str) -> list[dict[str, Any]]:
    """Per-position maps of :func:`atlas.measures.summary.summarise`'s full results: the dominant
    cluster's win frequency, the mean token norm and the high-norm outlier count."""
    pc, ba = results["positional_clustering"], results["boundary_artifacts"]
    return [
        {"id": f"dominant-{r}", "title": f"Block {b} {r}: how often each position's dominant cluster wins",
         "z": np.round(np.asarray(pc["dominant_freq"], dtype=float), 4).tolist(),
         "labels": np.asarray(pc["dominant"]).tolist(), "block": b, "representation": r, "colorscale": "Viridis",
         "zlabel": "win frequency", "section": "positional"},
        {"id": f"norm-{r}", "title": f"Block {b} {r}: token norm averaged over images",
         "z": np.round(np.asarray(ba["norm_map"], dtype=float), 4).tolist(), "block": b, "representation": r,
         "colorscale": "Magma", "zlabel": "mean L2 norm", "section": "positional"},
        {"id": f"outliers-{r}", "title": f"Block {b} {r}: high-norm outlier tokens per position",
         "z": np.asarray(ba["outlier_count_map"]).astype(int).tolist(), "block": b, "representation": r,
         "colorscale": "Magma", "zlabel": "outlier count", "section": "positional"},
    ]


def locality_curve(loc: dict[str, Any], b: int, r: str) -> dict[str, Any]:
    """Within- vs across-image similarity against distance (:func:`atlas.measures.locality.similarity_structure`)."""
    return {"id": f"locality-{r}", "title": f"Block {b} {r}: similarity vs distance, within vs across images",
            "x": [int(x) for x in loc["distances"]],
            "series": {"within image": _finite(loc["within"]), "across images (same offset)": _finite(loc["across"]),
                       "locality beyond position": _finite(loc["beyond"])},
            "xaxis": "distance (patches)", "yaxis": "mean cosine similarity", "bounds": [-1, 1],
            "section": "positional"}


def blank_maps(labels: np.ndarray, names: list[str], b: int, r: str) -> list[dict[str, Any]]:
    """Cluster maps of blank-input probes under the joint centroids."""
    return [_cluster_map(f"blank-{name}-{r}", f"Blank-input probe ({name}), block {b} {r}: cluster map", lab, b, r, name)
            for name, lab in zip(names, labels)]


def shift_pair_maps(base: np.ndarray, moved: np.ndarray, names: list[str], shift: int, b: int, r: str) -> list[dict]:
    """Cluster maps of shift-test pairs: content moves ``shift`` patches left from crop a to crop b;
    clusters that move with it follow content, clusters that stay put follow the grid."""
    out = []
    for name, la, lb in zip(names, base, moved):
        for tag, lab in (("a", la), ("b", lb)):
            moved_note = f" (content moved {shift} patches left)" if tag == "b" else ""
            out.append(_cluster_map(f"shift-pair-{slugify(name)}-{tag}",
                                    f"Shift test pair, {name}, crop {tag}{moved_note}: block {b} {r} clusters",
                                    lab, b, r, f"{name}@shift{shift if tag == 'b' else 0}"))
    return out


def shift_curve(curve: dict[str, Any], b: int, r: str) -> dict[str, Any]:
    """Agreement by content vs by grid position against the shift (:func:`atlas.measures.shift.shift_curve`)."""
    return {"id": f"shift-{r}", "title": f"Shift test, block {b} {r}: agreement vs shift",
            "x": [int(s) for s in curve["shifts"]],
            "series": {"aligned by content": [float(v) for v in curve["content"]],
                       "aligned by grid position": [float(v) for v in curve["position"]],
                       "content-following fraction": [float(v) for v in curve["content_fraction_adjusted"]]},
            "xaxis": "shift s (patches)", "yaxis": "fraction of tokens", "bounds": [0, 1], "section": "positional"}
