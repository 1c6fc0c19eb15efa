"""Baselines of the dense evaluations: what needs no model at all, through the model's protocol.

For one model's evaluation geometry (its input size and patch grid) every reference feature set of
:mod:`atlas.measures.baselines` is scored exactly like the model's features -- same images, split,
K, k-means settings and seeds, matching, k-NN support and queries, pseudo-mask method, intervals --
so a model's score can be read against chance, the layout of the dataset (position), its colours,
both, and the patch-resolution ceiling.

A baseline with simple variants reports the strongest of them: ``colour`` (RGB or CIELAB) and
``colour + position`` (RGB or CIELAB x plain or per-block-normalised coordinates,
:data:`atlas.measures.baselines.COLOUR_POSITION_VARIANTS`) run every variant through the protocol
and keep, per measure, the one with the best value on the *selection* images (of the measure that
chooses the model's row, ``selected_by`` in the registry; the k-NN probe by its support ->
selection value; pseudo-masks, which have no selection value, take the variant of ``seg_miou``).
The test-image numbers of that variant are reported, its id in :attr:`Baseline.variant`.

A build computes them once per geometry and the other models of that geometry read them
(:mod:`.shared_baselines`).
"""

from __future__ import annotations

import numpy as np

from ..clustering.kmeans import cluster_features
from ..measures.baselines import (COLOUR_VARIANTS, colour_position_variants, patch_colours, patch_majority,
                                  position_features, random_labels, zscore)
from ..measures.registry import REGISTRY
from ..measures.segmentation import evaluate_label_maps, score_images
from ..measures.uncertainty import Uncertainty, jackknife, resampling_id, row_fields
from ..records import Baseline
from .model_run import kmeans_settings

#: Baseline names, in the order the pages list them.
BASELINES = ("chance", "constant", "colour", "position", "colour + position", "ceiling")


def _baseline(measure: str, name: str, u: Uncertainty, variant: str = "") -> Baseline:
    return Baseline(measure=measure, name=name, **row_fields(u, REGISTRY[measure].value_range), variant=variant)


def _best(selection: dict[str, float]) -> str:
    """The variant with the highest selection-image value (NaN never wins; ties: the first listed)."""
    key = lambda v: selection[v] if np.isfinite(selection[v]) else -np.inf  # noqa: E731
    return max(selection, key=key)


def _colour_embedding(images) -> np.ndarray:
    """(n, 6) mean and standard deviation of CIELAB over each image: a colour-only embedding."""
    from skimage.color import rgb2lab

    rows = []
    for img in images:
        lab = rgb2lab(np.asarray(img.load(), dtype=np.float64) / 255.0).reshape(-1, 3)
        rows.append(np.concatenate([lab.mean(0), lab.std(0)]))
    return np.asarray(rows)


def evaluation_baselines(protocol, loaded, images, masks, plabels, w_test, w_query, seeds
                         ) -> tuple[list[Baseline], dict[str, dict[str, Uncertainty]]]:
    """Every evaluation measure's baselines for the grid of ``loaded`` (the model in the evaluation
    geometry, :class:`atlas.features.backbones.LoadedBackbone`), and their uncertainties by measure
    and name (the replicates a model's paired differences need); ``protocol`` is the
    :class:`EvaluationRun`."""
    cfg, ds = protocol.cfg, protocol.dataset
    n, grid = len(images), loaded.grid
    n_cls = ds.n_classes
    photos = [np.asarray(loaded.policy.apply(img.load())) for img in images]
    raw = {space: patch_colours(photos, grid, space) for space in COLOUR_VARIANTS}
    # name -> {variant id: (N, h, w, C) features}; a lone variant "" is a baseline without variants
    feature_sets = {"colour": {space: zscore(raw[space]) for space in COLOUR_VARIANTS},
                    "position": {"": position_features(n, grid)},
                    "colour + position": colour_position_variants(photos, grid, raw)}
    out: list[Baseline] = []
    paired: dict[str, dict[str, Uncertainty]] = {}

    def add(measure: str, name: str, u: Uncertainty, variant: str = "") -> None:
        out.append(_baseline(measure, name, u, variant))
        paired.setdefault(measure, {})[name] = u

    def segmentation(name, labels_for, seeds_used):
        for measure, (u, _, _) in protocol.segmentation(labels_for, masks, seeds_used, w_test).items():
            if measure != "seg_coverage":
                add(measure, name, u)

    def strongest(name, scored: dict[str, dict[str, tuple[Uncertainty, float]]]) -> dict[str, str]:
        """``scored``: variant -> {measure: (test uncertainty, selection value)}; each measure's
        baseline is the variant best on the selection images. Returns measure -> variant chosen."""
        first = next(iter(scored.values()))
        chosen = {}
        for measure in first:
            by = REGISTRY[measure].selected_by or measure
            by = by if by in first else measure
            v = _best({var: s[by][1] for var, s in scored.items()}) if len(scored) > 1 else next(iter(scored))
            chosen[measure] = v
            add(measure, name, scored[v][measure][0], v)
        return chosen

    segmentation("chance", lambda k, s: random_labels(n, grid, k, s), seeds)
    segmentation("constant", lambda k, s: np.zeros((n, *grid), dtype=np.int64), seeds[:1])
    seg_choice = {}
    for name, variants in feature_sets.items():
        scored = {}
        for var, feats in variants.items():
            seg = protocol.segmentation(
                lambda k, s, f=feats: cluster_features(f, k, **kmeans_settings(cfg, k, s))[0], masks, seeds, w_test)
            scored[var] = {m: (u, sel) for m, (u, _, sel) in seg.items() if m != "seg_coverage"}
        seg_choice[name] = strongest(name, scored).get("seg_miou", next(iter(variants)))
    ceiling = patch_majority(masks, grid, ds.ignore_index)
    segmentation("ceiling", lambda k, s: ceiling, seeds[:1])

    rng = np.random.default_rng([cfg.atlas.seed, 8191])
    knn_sets = {"chance": {"": rng.normal(size=(n, *grid, 16)).astype(np.float32)}, **feature_sets}
    for name, variants in knn_sets.items():
        scored = {}
        for var, feats in variants.items():
            u, _, selection = protocol.knn(feats, plabels, w_query)
            scored[var] = {"knn_miou_k10": (u, selection)}
        strongest(name, scored)

    for name, variants in feature_sets.items():
        var = seg_choice[name]
        feats = variants[var]
        try:
            scores = protocol.pseudo_mask_scores(feats, feats, masks, w_test)
        except ValueError:  # too few segments for K: no baseline rather than a wrong one
            continue
        add("pseudomask_miou", name, scores["pseudomask_miou"], var)
    for name, labels in (("chance", random_labels(n, grid, n_cls, cfg.atlas.seed)), ("ceiling", ceiling)):
        labels = list(labels)
        ev = evaluate_label_maps(labels, masks, n_cls, n_cls, ds.ignore_index, counts=protocol.counts_at(masks, labels))
        test = score_images(ev["per_image"], "hungarian", protocol.test, w_test, ev["unassigned"])
        u = Uncertainty(cfg.uncertainty.level)
        u.add(test["miou"], test.get("replicates", {}).get("miou"), *jackknife(w_test), resampling_id(w_test))
        add("pseudomask_miou", name, u)

    variants = protocol.variant_images(loaded.policy, masks) if ds.foreground else {"full": []}
    if len(variants["full"]) >= 4:
        emb = {v: _colour_embedding(imgs) for v, imgs in variants.items()}
        for m, u in protocol.cka_scores(emb).items():
            add(m, "colour", u)
    order = {b: i for i, b in enumerate(BASELINES)}
    return sorted(out, key=lambda b: (b.measure, order[b.name])), paired
