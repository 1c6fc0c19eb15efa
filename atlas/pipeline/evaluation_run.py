"""Evaluation stage: dense features scored against human masks, the same way for every model.

Runs when the config names a labelled dataset whose folder exists (e.g. ``../shared/data/camvid``);
otherwise the build report says why it was skipped. All images go through the model's own resize
policy (or, with ``geometry = "stego"``, 320 px short side + centre crop); masks follow the same
geometry with nearest-neighbour resampling, so scores are on the centre crop the model sees.

Images are split once, by group (:mod:`atlas.inputs.splits`), into a *selection* fold that only
chooses each model's leaderboard row, and *test* images (k-NN: support and query folds of them).
Every reported number is on the test images: the mean over the k-means seeds after the one that
chose (:func:`evaluation_seeds`), with an interval
(delete-d jackknife over the test images' groups, or contiguous frame blocks when there are too few
groups: :func:`atlas.measures.uncertainty.resampling_units`; and the seeds) and beside the
baselines of :mod:`.evaluation_baselines`.

Per model:

* STEGO protocol: joint k-means with K = number of classes on every gallery block and
  representation, one Hungarian matching on the test images' confusion: mIoU and pixel accuracy;
  over-clustering (K = 2 x classes, majority or Hungarian mapping) as a separate number.
* k-NN patch probe (cosine, k in 1/5/10/20) on the tokens of every gallery block; at the last
  block the per-channel variance spectrum and k-NN after removing the top-m variance channels,
  with z-scoring and PCA-whitening controls.
* Representation similarity under masking: CLS (or mean-pooled) embeddings of full / foreground
  only / background only / centre-occluded / random-occluded images; linear CKA, debiased CKA, SVCCA.
* DatUS²-inspired pseudo-masks from the last block's key affinity, scored over all pixels.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import AtlasConfig, block_representations, rel_depth
from ..features.backbones import at_resolution
from ..inputs.datasets import DATASET_CREDITS, DatasetError, load_dataset
from ..inputs.images import AtlasImage, content_hash, memory_image
from ..inputs.splits import grouped_split
from ..measures.knn import channel_removal_curve, knn_probe, patch_labels, variance_spectrum
from ..measures.pseudomasks import pseudo_masks, score_pseudo_masks
from ..measures.registry import REGISTRY
from ..measures.segmentation import MaskCounts, evaluate_label_maps, mask_counts, score_images
from ..measures.similarity import debiased_linear_cka_replicates, make_variants, similarity_matrix
from ..measures.uncertainty import (Uncertainty, jackknife, resampling_id, resampling_units, row_fields,
                                    unit_half_samples, versus)
from ..records import Baseline, DatasetCredit, MeasureRow, SkippedItem
from . import BuildError, payloads
from .evaluation_baselines import evaluation_baselines
from .model_run import kmeans_seeds
from .shared_baselines import shared_baselines

if TYPE_CHECKING:
    from .model_run import FeatureProvider

log = logging.getLogger(__name__)

KNN_KS = (1, 5, 10, 20)
REMOVAL_MS = (0, 1, 2, 5, 10, 20, 50, 100, 200)
SIMILARITY_IMAGES = 16  # 5 variants each: kept small because every variant is one more forward pass
VARIANTS = ("full", "foreground_only", "background_only", "centre_occluded", "random_occluded")
STEGO_SIZE = (320, 320)  # STEGO's evaluation: resize the short side to 320, centre crop 320 x 320
CKA_PAIRS = {"cka_full_vs_foreground": ("full", "foreground_only"),
             "cka_full_vs_background": ("full", "background_only"),
             "cka_centre_vs_random_occlusion": ("centre_occluded", "random_occluded")}


def evaluation_seeds(cfg: AtlasConfig) -> list[int]:
    """The evaluation's k-means seeds: the atlas seed first, which only chooses each model's block,
    representation and K (and each baseline's variant) on the selection images, then the
    ``[uncertainty] seeds`` seeds after it, whose mean and interval on the test images are reported.
    The choosing seed is not among them: its one clustering covers the test images too, so its test
    value would carry the luck that won the choice.

    >>> from types import SimpleNamespace as NS
    >>> evaluation_seeds(NS(atlas=NS(seed=0), uncertainty=NS(seeds=3)))  # seed 0 chooses, 1-3 report
    [0, 1, 2, 3]
    """
    return kmeans_seeds(cfg) + [cfg.atlas.seed + cfg.uncertainty.seeds]


@dataclass
class Scored:
    """What the evaluation adds to a model's result."""

    rows: list[MeasureRow] = field(default_factory=list)
    baselines: list[Baseline] = field(default_factory=list)
    selected: dict[str, dict[str, Any]] = field(default_factory=dict)
    passes: dict[str, Any] = field(default_factory=dict)  # passes of its own through the model (build report)
    # each row's uncertainty: the record keeps those of the rows compared across records (ModelResult.uncertainties)
    uncertain: list[tuple[MeasureRow, Uncertainty]] = field(default_factory=list)


def dataset_options(cfg) -> dict:
    """``load_dataset`` keyword arguments from the config's ``[evaluation]`` section."""
    ev = cfg.evaluation
    opts: dict[str, Any] = {"limit": ev.max_images or None}
    if ev.split:
        opts["split"] = ev.split
    if ev.image_list:
        opts["image_list"] = cfg.resolve_path(ev.image_list)
    if ev.foreground:
        opts["foreground"] = list(ev.foreground)
    if ev.class_names or ev.class_names_file:
        names = list(ev.class_names)
        if ev.class_names_file:
            path = cfg.resolve_path(ev.class_names_file)
            if not path.is_file():
                raise BuildError(f"[evaluation] class_names_file not found: {path}")
            names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        opts["class_names"] = names
    if ev.ignore_index is not None:
        opts["ignore_index"] = ev.ignore_index
    return opts


class EvaluationRun:
    """The evaluation protocol of one labelled dataset, run on every model in the same way."""

    def __init__(self, cfg, dataset):
        self.cfg = cfg
        self.dataset = dataset
        self.samples = list(dataset.samples)
        self._images = [s.image for s in self.samples]
        self._masks = [s.mask for s in self.samples]
        ev = cfg.evaluation
        self.group_regex = ev.group_regex or dataset.group_regex
        f, s = ev.selection_fraction, ev.support_fraction
        self.split = grouped_split([smp.name for smp in self.samples],
                                   {"selection": f, "support": (1 - f) * s, "query": (1 - f) * (1 - s)},
                                   self.group_regex, cfg.atlas.seed)
        folds = self.split.folds
        self.test = np.sort(np.concatenate([folds["support"], folds["query"]]))
        # resampling units of every image set with an interval: frames of one sequence are not
        # independent, so replicates drop whole groups or contiguous frame blocks
        self.resampling = {what: resampling_units([self.split.groups[i] for i in idx],
                                                  [self.samples[i].name for i in idx])
                           for what, idx in (("test", self.test), ("query", folds["query"]),
                                             ("similarity", np.arange(min(SIMILARITY_IMAGES, len(self.samples)))))}
        h = hashlib.sha256()
        for img, mask in zip(self._images, self._masks):
            h.update(content_hash(img).encode())
            h.update(np.ascontiguousarray(mask).tobytes())
        h.update(repr(cfg.evaluation.model_dump(exclude={"licence", "credit", "propagation"})).encode())
        # what the dataset resolved from its files (classes.txt names the classes, sets K and the
        # foreground): the config holds only the path
        h.update(repr((list(dataset.class_names), sorted(int(c) for c in dataset.foreground),
                       int(dataset.ignore_index))).encode())
        self.key = h.hexdigest()[:20]
        self.device = None  # the analysis device of the model being scored (set by start(); None: the CPU)
        self.baseline_store = None  # a build's StateStore: baselines shared by the models of a geometry
        self._counts = None  # (masks, grid, their MaskCounts): counts_at's memo for the model being scored

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
        try:
            ds = load_dataset(ev.dataset, root, **dataset_options(cfg))
        except (DatasetError, ValueError) as exc:
            raise BuildError(f"[evaluation] {ev.dataset} at {root}: {exc}; fix the [evaluation] section of "
                             f"{cfg.source_path}") from None
        skipped += ds.skipped
        if not ds.foreground:
            skipped.append(SkippedItem(f"similarity under masking ({ev.dataset})",
                                       "no foreground classes; name them in [evaluation] foreground"))
        if len(ds) < 4:
            skipped.append(SkippedItem(f"evaluation ({ev.dataset})", f"only {len(ds)} usable samples; need >= 4"))
            return None
        try:
            return cls(cfg, ds)
        except ValueError as exc:  # too few images or groups for the folds
            raise BuildError(f"[evaluation] {exc}") from None

    def credit(self) -> DatasetCredit:
        """The dataset as the Images page credits it."""
        ev, ds = self.cfg.evaluation, self.dataset
        name, credit, licence, url = DATASET_CREDITS.get(ds.kind, (ds.root.name, "", "", ""))
        return DatasetCredit(name=name, kind=ds.kind, images=len(ds), licence=ev.licence or licence or "not stated "
                             "(set [evaluation] licence)", credit=ev.credit or credit, url=url)

    def methods(self) -> dict:
        """This evaluation's section of the Methods record: ids and numbers (the site words them,
        :mod:`atlas.site.methods`)."""
        ds, ev, folds, unc = self.dataset, self.cfg.evaluation, self.split.folds, self.cfg.uncertainty
        return {
            "dataset": ds.kind, "images": len(ds), "classes": list(ds.class_names), "ignore_index": ds.ignore_index,
            "split": ev.split or None, "image_list": ev.image_list or None, "max_images": ev.max_images or None,
            "geometry": ev.geometry,
            # "groups" (each group whole in one fold) or "contiguous blocks"; the captions read it
            "split_kind": self.split.kind, "group_regex": self.group_regex or None,
            "groups": self.split.n_groups, "split_seed": self.split.seed,
            "folds": {"selection": len(folds["selection"]), "test": len(self.test),
                      "support": len(folds["support"]), "query": len(folds["query"])},
            "fold_groups": self.split.fold_groups,
            "over_clustering": ev.over_clustering,
            "knn_ks": list(KNN_KS), "removal_ms": list(REMOVAL_MS),
            "similarity_images": min(SIMILARITY_IMAGES, len(self.samples)), "variants": list(VARIANTS),
            "foreground": [ds.class_names[i] for i in ds.foreground],
            "level": unc.level, "resamples": unc.resamples, "seeds": unc.seeds,
            "selection_seed": evaluation_seeds(self.cfg)[0], "reported_seeds": evaluation_seeds(self.cfg)[1:],
            "resampling": {what: {**rule, "images": len(units)} for what, (units, rule) in self.resampling.items()},
        }

    # ------------------------------------------------------------------ per model

    def _atlas_images(self) -> list[AtlasImage]:
        return [memory_image(s.name, img, f"{self.dataset.kind}:{s.name}", licence="dataset")
                for s, img in zip(self.samples, self._images)]

    def _weights(self, units: np.ndarray, salt: int) -> np.ndarray | None:
        """Replicate weights of an image set: random halves of its resampling ``units`` (groups or
        frame blocks, ``self.resampling``)."""
        resamples = self.cfg.uncertainty.resamples
        if not resamples or len(units) < 2 or units.max() < 1:
            return None
        return unit_half_samples(units, resamples, self.cfg.atlas.seed + 100 + salt)

    def _uncertainty(self) -> Uncertainty:
        """The evaluation reports the mean over the k-means seeds (see :attr:`Uncertainty.value`)."""
        return Uncertainty(self.cfg.uncertainty.level, centre="mean")

    def _unseeded(self, value: float, replicates, weights: np.ndarray | None) -> Uncertainty:
        """A number no k-means seed changes (k-NN, CKA, pseudo-masks): its value and its replicates
        under the replicate ``weights`` (None: no interval)."""
        u = self._uncertainty()
        u.add(value, replicates, *jackknife(weights), resampling_id(weights))
        return u

    @property
    def follows_resolution(self) -> bool:
        """Whether the evaluation sees the model's own input size (``geometry = "model"``), so that
        it is run again at each resolution of the axis; STEGO's fixed 320 px is run once."""
        return self.cfg.evaluation.geometry != "stego"

    def geometry(self, loaded):
        """The model as the evaluation sees it: ``loaded`` itself, or the same weights at STEGO's
        320 px (``[evaluation] geometry = "stego"``)."""
        if self.cfg.evaluation.geometry != "stego":
            return loaded
        return at_resolution(loaded, STEGO_SIZE)

    def start(self, features: "FeatureProvider", *, blocks: list[int], reps: list[str], device=None) -> "Scoring":
        """The evaluation of one model begins. ``features`` provides the model's features in the
        evaluation geometry (:meth:`geometry`): its image sets are announced to its stream, so that
        they go through the model in the passes of the model's own images. ``blocks`` and
        ``reps`` are the model's gallery blocks and representations; ``device`` is where the
        analyses compute (None: the CPU). :meth:`score_pairs` then scores each chunk of pairs
        while its features are kept, and :meth:`finish` gives the numbers."""
        self.device = device
        loaded = features.loaded
        # not resample_labels: masks take the image's own PIL resize and crop, pixel for pixel
        masks = [loaded.policy.apply_mask(m) for m in self._masks]
        st = Scoring(features=features, depth=loaded.card.depth, images=self._atlas_images(), masks=masks,
                     plabels=np.stack([patch_labels(m, loaded.grid, self.dataset.ignore_index) for m in masks]),
                     w_test=self._weights(self.resampling["test"][0], 0),
                     w_query=self._weights(self.resampling["query"][0], 1),
                     seeds=evaluation_seeds(self.cfg), last=blocks[-1],
                     pairs=block_representations(blocks, reps, loaded.card.depth))
        features.stream.add("evaluation images", st.images, st.pairs)
        if self._similarity_possible(reps):
            st.variants = self.variant_images(loaded.policy, masks)
            for v, imgs in st.variants.items():
                features.stream.add(f"masking {v}", imgs, [(st.last, "tokens")])
        return st

    def score_pairs(self, st: "Scoring", pairs) -> None:
        """Score the pairs among ``pairs`` (a chunk whose features the streams keep now), in order;
        the last gallery block's pseudo-masks and masking similarity once its pairs have passed."""
        provider = st.features
        for b, r in pairs:
            if (b, r) not in st.pairs or (b, r) in st.done:
                continue
            st.done.add((b, r))
            feats, _ = provider.features(st.images, b, r)  # on a GPU: there once for the k-means and the k-NN probe
            seg = self.segmentation(lambda k, s: provider.cluster(feats, k, seed=s)[0], st.masks, st.seeds, st.w_test)
            for name, (u, k, selection) in seg.items():
                if name != "seg_coverage" or u.value < 1.0:
                    st.add(b, r, name, u, k)
                st.choice.setdefault(name, {})[(b, r, k)] = selection
            if r in ("tokens", "tokens_normed"):  # the k-NN probe reads token features, not attention's
                u, per_k, selection = self.knn(feats, st.plabels, st.w_query)
                st.add(b, r, "knn_miou_k10", u)
                st.choice.setdefault("knn_miou_k10", {})[(b, r, None)] = selection
                if b == st.last and r == "tokens":
                    self._last_block_figures(st.figures, feats, st.plabels, self.dataset.n_classes, b, per_k,
                                             st.w_query)
        last_pairs = {(st.last, r) for r in ("keys", "tokens")} & set(st.pairs)
        if not st.last_done and last_pairs <= st.done:
            st.last_done = True
            pm = self._pseudo_masks(provider, st.images, st.masks, st.last, st.w_test)
            for name, u in pm.items():
                st.add(st.last, "keys", name, u, self.dataset.n_classes, tail=True)
            if pm:
                st.selected["pseudomask_miou"] = {"block": st.last, "representation": "keys", "k": self.dataset.n_classes,
                                                  "fixed_by_method": True}
            for name, u in self._similarity(provider, st.variants, st.figures, st.last).items():
                st.add(st.last, "tokens", name, u, tail=True)

    def finish(self, st: "Scoring", figures: dict) -> Scored:
        """The numbers of the evaluation (every pair scored), its figures added to ``figures``."""
        self.score_pairs(st, st.pairs)  # pairs no chunk held (none in a build): computed on demand
        for kind, items in st.figures.items():
            figures.setdefault(kind, []).extend(items)
        out = Scored(rows=st.rows + st.tail_rows, selected=dict(st.selected))
        out.selected.update(self._select(st.choice))
        loaded = st.features.loaded

        def compute():
            baselines, paired = evaluation_baselines(self, loaded, st.images, st.masks, st.plabels, st.w_test,
                                                     st.w_query, st.seeds)
            return baselines, None, paired

        out.baselines, _, paired = shared_baselines(self.baseline_store, "evaluation", self.key, self.cfg, loaded,
                                                    compute)
        for row, u in st.uncertain:  # each number minus each baseline, on the replicates both share
            row.versus = versus(u, paired.get(row.measure, {}))
        out.uncertain = st.uncertain
        self._counts = None  # the model's masks are not needed any more
        return out

    # ------------------------------------------------------------------ protocol pieces (also run on baselines)

    def segmentation(self, labels_for, masks, seeds, w_test) -> dict[str, tuple[Uncertainty, int, float]]:
        """Matched mIoU, pixel accuracy, coverage (K = classes) and over-clustering mIoU (K = 2 x
        classes): the first of ``seeds`` gives the selection-fold value, the others the test
        images' values, pooled (:func:`evaluation_seeds`; one seed does both: a labelling no seed
        changes). ``labels_for(k, seed)`` gives the (N, h, w) cluster ids. Returns ``{measure:
        (uncertainty, K, selection-fold value)}``."""
        n_cls, ignore = self.dataset.n_classes, self.dataset.ignore_index
        rule2 = self.cfg.evaluation.over_clustering
        result: dict[str, tuple[Uncertainty, int, float]] = {}
        for k, rule, names in ((n_cls, "hungarian", ("seg_miou", "seg_pixel_accuracy", "seg_coverage")),
                               (2 * n_cls, rule2, ("seg_miou_overcluster",))):
            keys = ("miou", "pixel_accuracy", "coverage")[: len(names)]
            unc = {n: self._uncertainty() for n in names}
            selection = {}
            for j, seed in enumerate(seeds):
                labels = list(labels_for(k, seed))
                ev = evaluate_label_maps(labels, masks, k, n_cls, ignore, counts=self.counts_at(masks, labels))
                if j > 0 or len(seeds) == 1:
                    test = score_images(ev["per_image"], rule, self.test, w_test, ev["unassigned"])
                    for n, key in zip(names, keys):
                        unc[n].add(test[key], test.get("replicates", {}).get(key), *jackknife(w_test),
                                   resampling_id(w_test))
                if j == 0:
                    sel = score_images(ev["per_image"], rule, self.split.folds["selection"], None, ev["unassigned"])
                    selection = {n: sel[key] for n, key in zip(names, keys)}
            result.update({n: (unc[n], k, selection[n]) for n in names})
        return result

    def counts_at(self, masks, labels) -> list[MaskCounts] | None:
        """The :class:`MaskCounts` of ``masks`` (the model's, :meth:`start`) at the grid of the
        label maps ``labels``, made once per model and grid: each model scores some hundred label
        maps (its pairs, Ks and seeds, and the baselines') against the same masks. Kept until
        :meth:`finish`."""
        if not len(labels):
            return None
        grid = tuple(np.shape(labels[0]))
        memo = self._counts
        if memo is None or memo[0] is not masks or memo[1] != grid:  # `is`: the memo holds the list itself
            n_cls, ignore = self.dataset.n_classes, self.dataset.ignore_index
            memo = self._counts = (masks, grid, [mask_counts(m, grid, n_cls, ignore) for m in masks])
        return memo[2]

    def knn(self, patches, plabels, w_query):
        """k-NN mIoU (k = 10) support -> query with its interval, all k, and the support -> selection value."""
        folds, n_cls = self.split.folds, self.dataset.n_classes
        s, q, sel = folds["support"], folds["query"], folds["selection"]
        scored = knn_probe(patches[s], plabels[s], patches[q], plabels[q], KNN_KS, n_cls, weights=w_query,
                           device=self.device)
        knn, reps = scored if w_query is not None else (scored, {})
        per_k = {k: self._unseeded(knn[k], reps.get(k), w_query) for k in knn}
        selection = knn_probe(patches[s], plabels[s], patches[sel], plabels[sel], (10,), n_cls, device=self.device)[10]
        return per_k[10], per_k, selection

    def _select(self, choice: dict[str, dict]) -> dict[str, dict]:
        """Each leaderboard measure's (block, representation, K): the best selection-fold value of
        the measure that chooses for it."""
        selected = {}
        for name, m in REGISTRY.items():
            by = m.selected_by or name
            if not m.ranked or by not in choice or name not in choice:
                continue
            candidates = {key: v for key, v in choice[by].items() if np.isfinite(v) and key in choice[name]}
            if not candidates:
                continue
            (b, r, k), value = max(candidates.items(), key=lambda kv: (kv[1], -kv[0][0]))
            selected[name] = {"block": b, "representation": r, "k": k, "selection_value": float(value),
                              "selected_by": by, "selection_images": len(self.split.folds["selection"])}
        return selected

    def _last_block_figures(self, figures, patches, plabels, n_cls, b, per_k, w_query) -> None:
        """The last block's curves: k-NN mIoU against k, the variance spectrum and channel removal,
        the mIoU curves with the intervals of the leaderboard's k-NN number (the same query images
        and replicates)."""
        s, q = self.split.folds["support"], self.split.folds["query"]
        figures.setdefault("curves", []).append(payloads.knn_curve(
            {k: u.value for k, u in per_k.items()}, KNN_KS, b, {k: u.interval((0.0, 1.0)) for k, u in per_k.items()}))
        # the spectrum the removal ranks channels by: the labelled support patches
        figures["curves"].append(payloads.variance_curve(variance_spectrum(patches[s], plabels[s]), b))
        scored = channel_removal_curve(patches[s], plabels[s], patches[q], plabels[q], ks=(10,), ms=REMOVAL_MS,
                                       n_classes=n_cls, device=self.device, weights=w_query)
        curve, reps = scored if w_query is not None else (scored, {})
        intervals = {ctrl: {m: self._unseeded(by_k[10], reps.get(ctrl, {}).get(m, {}).get(10), w_query)
                            .interval((0.0, 1.0)) for m, by_k in by_m.items()} for ctrl, by_m in curve.items()}
        figures["curves"].append(payloads.removal_curve(curve, 10, b, intervals))

    def pseudo_mask_scores(self, keys, tokens, masks, w_test) -> dict[str, Uncertainty]:
        """DatUS²-inspired pseudo-mask mIoU and coverage on the test images (empty when too few segments)."""
        n_cls, ignore, seed = self.dataset.n_classes, self.dataset.ignore_index, self.cfg.atlas.seed
        pm = pseudo_masks(keys, n_cls, features=tokens, seed=seed)  # ValueError: too few segments for K
        ev = score_pseudo_masks(pm.labels, masks, n_cls, n_cls, ignore, counts=self.counts_at(masks, pm.labels))
        test = score_images(ev["per_image"], "hungarian", self.test, w_test, ev["unassigned"])
        out = {}
        for name, key in (("pseudomask_miou", "miou"), ("pseudomask_coverage", "coverage")):
            out[name] = self._unseeded(test[key], test.get("replicates", {}).get(key), w_test)
        return out

    def _pseudo_masks(self, features: "FeatureProvider", images, masks, b, w_test) -> dict[str, Uncertainty]:
        if "keys" not in self.cfg.features.representations or "tokens" not in self.cfg.features.representations:
            return {}
        keys, _ = features.load(images, b, "keys")
        tokens, _ = features.load(images, b, "tokens")
        try:
            return self.pseudo_mask_scores(keys, tokens, masks, w_test)
        except ValueError as exc:  # too few segments for K
            log.warning("%s: pseudo-masks skipped: %s", features.loaded.card.display_name, exc)
            return {}

    def variant_images(self, policy, masks) -> dict[str, list[AtlasImage]]:
        """The masking variants of the first :data:`SIMILARITY_IMAGES` images."""
        seed = self.cfg.atlas.seed
        out: dict[str, list[AtlasImage]] = {v: [] for v in VARIANTS}
        for i, (s, img, mask) in enumerate(zip(self.samples, self._images, masks)):
            if i >= SIMILARITY_IMAGES:
                break
            variants = make_variants(policy.apply(img), self.dataset.foreground_mask(mask), seed=seed + i)
            for v in VARIANTS:
                out[v].append(memory_image(f"{s.name}#{v}", variants[v], "masking variant", licence="dataset"))
        return out

    def cka_scores(self, emb: dict[str, np.ndarray]) -> dict[str, Uncertainty]:
        """The stored CKA numbers of variant embeddings, with intervals from halves of the images'
        resampling units (the first images of the dataset: groups or frame blocks). Debiased CKA:
        with 16 images of hundreds of dimensions, plain linear CKA of unrelated embeddings is
        about 0.96 (the bias of few images in many dimensions), debiased CKA about 0."""
        mats = similarity_matrix(emb, ("debiased_cka",), device=self.device)["debiased_cka"]
        idx = {v: i for i, v in enumerate(emb)}
        n = len(emb["full"])
        units = self.resampling["similarity"][0]  # the variants are made of the first images
        if n != len(units):
            units = resampling_units(self.split.groups[:n], [s.name for s in self.samples[:n]])[0]
        weights = self._weights(units, 2)
        out = {}
        for name, (a, b) in CKA_PAIRS.items():
            out[name] = self._unseeded(
                float(mats[idx[a], idx[b]]),
                None if weights is None else debiased_linear_cka_replicates(emb[a], emb[b], weights, device=self.device),
                weights)
        return out

    def _similarity_possible(self, reps) -> bool:
        # foreground-only / background-only would be meaningless without a foreground
        return bool(self.dataset.foreground) and "tokens" in reps and min(SIMILARITY_IMAGES, len(self.samples)) >= 4

    def _similarity(self, features: "FeatureProvider", variant_images, figures, b) -> dict[str, Uncertainty]:
        """CKA / SVCCA between the masking variants (``variant_images``, in the model's input
        geometry) of the first images, at block ``b``'s tokens."""
        loaded = features.loaded
        if not variant_images:
            return {}
        emb = {}
        for v, imgs in variant_images.items():
            patches, prefix = features.load(imgs, b, "tokens")
            emb[v] = prefix[:, 0] if loaded.card.has_cls else patches.mean(axis=(1, 2))
        mats = similarity_matrix(emb, device=self.device)
        for metric, mat in mats.items():
            figures.setdefault("heatmaps", []).append(payloads.masking_matrix(metric, mat, list(VARIANTS), b))
        return self.cka_scores(emb)


@dataclass
class Scoring:
    """One model's evaluation while its chunks pass (:meth:`EvaluationRun.start`)."""

    features: Any  # the FeatureProvider in the evaluation geometry
    depth: int
    images: list
    masks: list
    plabels: np.ndarray
    w_test: np.ndarray | None
    w_query: np.ndarray | None
    seeds: list
    last: int
    pairs: list
    variants: dict = field(default_factory=dict)
    done: set = field(default_factory=set)
    last_done: bool = False
    rows: list = field(default_factory=list)
    tail_rows: list = field(default_factory=list)  # the last block's, after every pair's (as chunks pass)
    choice: dict = field(default_factory=dict)  # measure -> {(b, r, k): selection value}
    selected: dict = field(default_factory=dict)
    figures: dict = field(default_factory=lambda: {"heatmaps": [], "curves": []})
    uncertain: list = field(default_factory=list)  # (row, its Uncertainty): for the paired differences

    def add(self, b, r, name, u: Uncertainty, k=None, tail: bool = False) -> None:
        row = MeasureRow(block=b, rel_depth=rel_depth(b, self.depth), representation=r, measure=name, k=k,
                         **row_fields(u, REGISTRY[name].value_range))
        (self.tail_rows if tail else self.rows).append(row)
        self.uncertain.append((row, u))
