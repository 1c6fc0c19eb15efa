"""Evaluation stage: dense features scored against human masks, the same way for every model.

Runs when the config names a labelled dataset whose folder exists (e.g. ``../shared/data/camvid``);
otherwise the build report says why it was skipped. All images go through the model's own resize
policy; masks follow the same geometry with nearest-neighbour resampling, so scores are on the
centre crop the model sees.

Per model:

* STEGO protocol: joint k-means with K = number of classes on every gallery block and
  representation, one Hungarian matching on the dataset-wide confusion matrix: mIoU and pixel
  accuracy; over-clustering (K = 2 x classes, majority mapping) as a separate number.
* k-NN patch probe (cosine, k in 1/5/10/20) on the tokens of every gallery block; at the last
  block the per-channel variance spectrum and k-NN after removing the top-m variance channels,
  with z-scoring and PCA-whitening controls.
* Representation similarity under masking: CLS (or mean-pooled) embeddings of full / foreground
  only / background only / centre-occluded / random-occluded images; linear CKA, debiased CKA, SVCCA.
* DatUS²-style pseudo-masks from the last block's key affinity, scored over all pixels.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
from PIL import Image

from ..config import rel_depth
from ..inputs.datasets import load_dataset
from ..inputs.images import AtlasImage, content_hash, memory_image
from ..measures.knn import channel_removal_curve, knn_probe, patch_labels, split_images, variance_spectrum
from ..measures.pseudomasks import pseudo_masks, score_pseudo_masks
from ..measures.segmentation import evaluate_label_maps
from ..measures.similarity import make_variants, similarity_matrix
from ..records import MeasureRow, SkippedItem

log = logging.getLogger(__name__)

KNN_KS = (1, 5, 10, 20)
REMOVAL_MS = (0, 1, 2, 5, 10, 20, 50, 100, 200)
SIMILARITY_IMAGES = 16  # 5 variants each: kept small because every variant is one more forward pass
VARIANTS = ("full", "foreground_only", "background_only", "centre_occluded", "random_occluded")


class EvaluationRun:
    """The evaluation protocol of one labelled dataset, run on every model in the same way."""

    def __init__(self, cfg, dataset):
        self.cfg = cfg
        self.dataset = dataset
        self.samples = list(dataset.samples)
        self._images = [s.image for s in self.samples]
        self._masks = [s.mask for s in self.samples]
        h = hashlib.sha256()
        for img, mask in zip(self._images, self._masks):
            h.update(content_hash(img).encode())
            h.update(np.ascontiguousarray(mask).tobytes())
        h.update(repr(cfg.evaluation.model_dump()).encode())
        self.key = h.hexdigest()[:20]

    @classmethod
    def from_config(cls, cfg, skipped: list[SkippedItem]):
        ev = cfg.evaluation
        if ev.dataset is None:
            return None
        root = cfg.resolve_path(ev.root)
        if not root.is_dir():
            msg = f"dataset folder {root} not found; evaluations against human masks skipped"
            log.warning("evaluation: %s", msg)
            skipped.append(SkippedItem(f"evaluation ({ev.dataset})", msg))
            return None
        ds = load_dataset(ev.dataset, root, limit=ev.max_images or None)
        skipped += ds.skipped
        if len(ds) < 4:
            skipped.append(SkippedItem(f"evaluation ({ev.dataset})", f"only {len(ds)} usable samples; need >= 4"))
            return None
        return cls(cfg, ds)

    def methods(self) -> dict:
        ds = self.dataset
        return {
            "dataset": f"{ds.kind}: {len(ds)} images, {ds.n_classes} classes ({', '.join(ds.class_names)}), "
                       f"ignore index {ds.ignore_index}",
            "geometry": "images and masks pass through the same resize/centre-crop (masks with nearest neighbour)",
            "matched mIoU (STEGO protocol)": "joint k-means with K = number of classes; cluster maps upsampled (nearest) "
                                             "to mask resolution; one Hungarian matching on the confusion matrix "
                                             "accumulated over all images; mIoU over the classes with a non-empty union",
            "over-clustering": "K = 2 x classes; each cluster mapped to its majority class",
            "k-NN patch probe": f"support/query split of the images ({self.cfg.evaluation.support_fraction:.0%} support, "
                                f"seeded); patch label = majority of its pixels (cells mostly ignore are skipped); cosine "
                                f"k-NN with k in {list(KNN_KS)}; mIoU over query patches",
            "high-variance channel removal": f"k-NN (k = 10) after dropping the top-m variance channels of the support set, "
                                             f"m in {list(REMOVAL_MS)}; controls: z-scoring, PCA whitening",
            "similarity under masking": f"first {SIMILARITY_IMAGES} images in five variants ({', '.join(VARIANTS)}); "
                                        f"foreground classes: {', '.join(ds.class_names[i] for i in ds.foreground)}; "
                                        "embedding = CLS token (mean of patch tokens when the model has none) of the last "
                                        "block; linear CKA, debiased linear CKA, SVCCA (99% variance)",
            "pseudo-masks (DatUS²-style)": "per image, spectral grouping of the last block's key affinity, connected "
                                           "components, segments under 3 patches dropped; mean-pooled tokens per segment; "
                                           "k-means (K = classes) over all segments; scored over all pixels "
                                           "(unassigned pixels count as wrong), coverage reported",
        }

    # ------------------------------------------------------------------ per model

    def _atlas_images(self) -> list[AtlasImage]:
        return [memory_image(s.name, img, f"{self.dataset.kind}:{s.name}", licence="dataset")
                for s, img in zip(self.samples, self._images)]

    def run(self, model_run, figures: dict) -> list[MeasureRow]:
        """Every evaluation of one model (``model_run``: its :class:`atlas.pipeline.model_run.ModelRun`)."""
        loaded = model_run.loaded
        policy = loaded.policy
        depth, seed = loaded.card.depth, self.cfg.atlas.seed
        n_cls, ignore = self.dataset.n_classes, self.dataset.ignore_index
        images = self._atlas_images()
        blocks = model_run.gallery_blocks
        reps = model_run.reps
        model_run.extract_images(images, blocks, reps, "evaluation images")
        masks = [np.asarray(policy.apply(Image.fromarray(m.astype(np.int32)), Image.Resampling.NEAREST)) for m in self._masks]
        grid = loaded.grid
        rows: list[MeasureRow] = []

        def row(block, rep, measure, value, k=None):
            rows.append(MeasureRow(block=block, rel_depth=rel_depth(block, depth), representation=rep,
                                   measure=measure, value=float(value), k=k))

        support, query = split_images(len(images), self.cfg.evaluation.support_fraction, seed)
        plabels = np.stack([patch_labels(m, grid, ignore) for m in masks])
        last = blocks[-1]
        for b in blocks:
            for r in reps:
                patches, prefix = model_run.load(images, b, r)
                for k, variant in ((n_cls, "hungarian"), (2 * n_cls, "majority")):
                    labels, _ = model_run.cluster(patches, k)
                    scores = evaluate_label_maps(list(labels), masks, k, n_cls, ignore)
                    if variant == "hungarian":
                        row(b, r, "seg_miou", scores["hungarian"]["miou"], k)
                        row(b, r, "seg_pixel_accuracy", scores["hungarian"]["pixel_accuracy"], k)
                        if scores["hungarian"]["coverage"] < 1.0:
                            row(b, r, "seg_coverage", scores["hungarian"]["coverage"], k)
                    else:
                        row(b, r, "seg_miou_overcluster", scores["majority"]["miou"], k)
                if r == "tokens":
                    knn = knn_probe(patches[support], plabels[support], patches[query], plabels[query], KNN_KS, n_cls)
                    row(b, r, "knn_miou_k10", knn[10])
                    if b == last:
                        self._last_block_figures(figures, patches, plabels, support, query, n_cls, b, knn)
        self._pseudo_masks(model_run, images, masks, last, n_cls, ignore, seed, row)
        self._similarity(model_run, masks, figures, last, row)
        return rows

    def _last_block_figures(self, figures, patches, plabels, support, query, n_cls, b, knn) -> None:
        figures.setdefault("curves", []).append({
            "id": "knn-k", "title": f"k-NN patch probe, block {b} tokens: mIoU vs k", "x": list(KNN_KS),
            "series": {"mIoU": [round(knn[k], 5) for k in KNN_KS]}, "xaxis": "k", "yaxis": "mIoU", "section": "evaluation"})
        spectrum = variance_spectrum(patches.reshape(-1, patches.shape[-1]))
        figures["curves"].append({
            "id": "variance-spectrum", "title": f"Per-channel variance of block {b} tokens (sorted)",
            "x": list(range(1, len(spectrum) + 1)), "series": {"variance": [round(float(v), 6) for v in spectrum]},
            "xaxis": "channel rank", "yaxis": "variance", "section": "evaluation"})
        curve = channel_removal_curve(patches[support], plabels[support], patches[query], plabels[query], ks=(10,),
                                      ms=REMOVAL_MS, n_classes=n_cls)
        ms = sorted({m for c in curve.values() for m in c})
        figures["curves"].append({
            "id": "channel-removal", "title": f"k-NN (k = 10) after removing top-m variance channels, block {b} tokens",
            "x": ms, "series": {ctrl: [round(curve[ctrl][m][10], 5) if m in curve[ctrl] else None for m in ms]
                                for ctrl in curve},
            "xaxis": "channels removed (m)", "yaxis": "mIoU", "section": "evaluation"})

    def _pseudo_masks(self, model_run, images, masks, b, n_cls, ignore, seed, row) -> None:
        if "keys" not in self.cfg.features.representations or "tokens" not in self.cfg.features.representations:
            return
        keys, _ = model_run.load(images, b, "keys")
        tokens, _ = model_run.load(images, b, "tokens")
        try:
            pm = pseudo_masks(keys, n_cls, features=tokens, seed=seed)
        except ValueError as exc:  # too few segments for K
            log.warning("%s: pseudo-masks skipped: %s", model_run.loaded.card.display_name, exc)
            return
        scores = score_pseudo_masks(pm.labels, masks, n_cls, n_cls, ignore)["hungarian"]
        row(b, "keys", "pseudomask_miou", scores["miou"], n_cls)
        row(b, "keys", "pseudomask_coverage", scores["coverage"], n_cls)

    def _similarity(self, model_run, masks, figures, b, row) -> None:
        """``masks``: the dataset masks already brought to the model's input geometry."""
        loaded, policy = model_run.loaded, model_run.loaded.policy
        seed = self.cfg.atlas.seed
        variant_images: dict[str, list[AtlasImage]] = {v: [] for v in VARIANTS}
        for i, (s, img, mask) in enumerate(zip(self.samples, self._images, masks)):
            if i >= SIMILARITY_IMAGES:
                break
            variants = make_variants(policy.apply(img), self.dataset.foreground_mask(mask), seed=seed + i)
            for v in VARIANTS:
                variant_images[v].append(memory_image(f"{s.name}#{v}", variants[v], "masking variant", licence="dataset"))
        if len(variant_images["full"]) < 4:
            return
        emb = {}
        for v, imgs in variant_images.items():
            model_run.extract_images(imgs, [b], ["tokens"], f"masking {v}")
            patches, prefix = model_run.load(imgs, b, "tokens")
            emb[v] = prefix[:, 0] if loaded.card.has_cls else patches.mean(axis=(1, 2))
        mats = similarity_matrix(emb)
        for metric, mat in mats.items():
            figures.setdefault("heatmaps", []).append({
                "id": f"masking-{metric}", "title": f"{metric} between masking variants (rows/cols: {', '.join(VARIANTS)})",
                "z": np.round(np.asarray(mat, dtype=float), 4).tolist(), "block": b, "representation": "tokens",
                "colorscale": "Viridis", "zlabel": metric, "x_labels": list(VARIANTS), "y_labels": list(VARIANTS),
                "section": "evaluation"})
        idx = {v: i for i, v in enumerate(VARIANTS)}
        cka = np.asarray(mats["linear_cka"])
        row(b, "tokens", "cka_full_vs_foreground", cka[idx["full"], idx["foreground_only"]])
        row(b, "tokens", "cka_full_vs_background", cka[idx["full"], idx["background_only"]])
        row(b, "tokens", "cka_centre_vs_random_occlusion", cka[idx["centre_occluded"], idx["random_occluded"]])
