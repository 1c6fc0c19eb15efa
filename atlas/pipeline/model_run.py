"""One model's run: features streamed through the analyses a chunk of blocks at a time
(:mod:`atlas.features.stream`), joint k-means of every (block, representation, K), every
positional measure of the layer sweep, the evaluation, colour alignment, and the figure payloads.

Example::

    run = ModelRun(cfg, loaded, images, None, device)   # None: no feature cache (the default)
    result = run.run()
    result.label_maps[map_key(11, "keys", 8)].shape
    # -> (10, 14, 14)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from ..clustering.align import align_chain, apply_mapping, colour_chains
from ..clustering.kmeans import JointKMeans, cluster_features, predict_features
from ..config import AtlasConfig, block_representations, rel_depth, resolve_layers
from ..features.backbones import LoadedBackbone, host_available_memory
from ..features.cache import FeatureCache
from ..features.device import describe, torch_threads
from ..features.stream import GB, FeatureStream, default_budget, plan_chunks
from ..inputs.images import AtlasImage
from ..inputs.probes import probe_images
from ..measures.positional import blank_input_structure
from ..measures.registry import REGISTRY
from ..measures.shift import shift_curve
from ..measures.summary import summarise
from ..measures.summary import replicates as summary_replicates
from ..measures.tensors import is_tensor, load_linalg, upload_features
from ..measures.uncertainty import Uncertainty, half_samples, jackknife, leave_one_out, resampling_id, row_fields
from ..records import (ATTENTION_ROWS, ClusterRun, MeasureRow, ModelResult, compared_rows, map_key, recount_sizes,
                       row_id)
from . import payloads
from .inputs import SHIFTS, shift_sets
from .pictures import ATTENTION_INPUTS, align_pictures, attention_measures, attention_pictures, block_attention, fit_pictures

log = logging.getLogger(__name__)

# (block, representation) pairs analysed at a time, one BLAS / torch thread each; capped because
# every worker holds one block of features of all images in memory
ANALYSIS_WORKERS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


#: Names of the positional reference token sets (``ModelResult.references``).
REFERENCES = ("content-only", "position-only")


def kmeans_settings(cfg: AtlasConfig, k: int, seed: int | None = None) -> dict:
    """Keyword arguments of :class:`JointKMeans` for ``k`` clusters under the config (the gallery,
    the measures and the evaluation all cluster this way); ``seed`` defaults to the atlas seed."""
    c = cfg.clustering
    return {"normalize": c.normalize, "seed": cfg.atlas.seed if seed is None else seed, "n_iter": c.n_iter,
            "n_init": c.n_init, "max_train_tokens": c.train_tokens_per_cluster * k or None}


def kmeans_seeds(cfg: AtlasConfig) -> list[int]:
    """The k-means seeds of every interval: the atlas seed first (its clustering is the one shown)."""
    return [cfg.atlas.seed + j for j in range(cfg.uncertainty.seeds)]


def reference_tokens(patches: np.ndarray, name: str, seed: int) -> np.ndarray:
    """The positional reference token sets of a block's patch tokens (N, h, w, C).

    ``content-only``: every image's tokens shuffled over its positions (content kept, position
    removed); ``position-only``: every token replaced by the mean over images of the tokens at its
    position (position kept, content removed).
    """
    n, h, w, c = patches.shape
    if name == "content-only":
        order = np.random.default_rng([int(seed), 1663]).permuted(np.tile(np.arange(h * w), (n, 1)), axis=1)
        if is_tensor(patches):  # on the features' device; the same shuffle
            idx = torch.from_numpy(order).to(patches.device)[:, :, None]
            return torch.take_along_dim(patches.reshape(n, h * w, c), idx, dim=1).reshape(patches.shape)
        return np.take_along_axis(patches.reshape(n, h * w, c), order[:, :, None], axis=1).reshape(patches.shape)
    if name == "position-only":
        if is_tensor(patches):  # a broadcast view: no second copy of the features on the device
            return patches.mean(dim=0, keepdim=True).expand(patches.shape)
        return np.broadcast_to(patches.mean(axis=0, keepdims=True), patches.shape).copy()
    raise ValueError(f"unknown reference {name!r}; choose from {REFERENCES}")


class FeatureProvider(Protocol):
    """What an analysis outside the run (the evaluation) reads features through: a model at one
    input geometry, the stream that keeps its image sets' features during a pass, and the run's
    joint k-means. :class:`ModelRun` is one; the analysis never sees the run itself."""

    loaded: LoadedBackbone
    stream: FeatureStream

    def features(self, images: list[AtlasImage], block: int, rep: str) -> tuple: ...

    def load(self, images: list[AtlasImage], block: int, rep: str) -> tuple[np.ndarray, np.ndarray]: ...

    def cluster(self, features, k: int, seed: int | None = None) -> tuple[np.ndarray, JointKMeans]: ...

    def feature_budget(self, workers: int) -> int | None: ...


class ModelRun:
    """Extraction, joint clustering, measures and aligned label maps of one backbone."""

    def __init__(self, cfg: AtlasConfig, loaded: LoadedBackbone, images: list[AtlasImage], cache: FeatureCache | None,
                 device: torch.device, progress: bool = False, evaluations=(), memory_bytes: int | None = None):
        self.cfg, self.loaded, self.images, self.cache = cfg, loaded, images, cache
        # the evaluations (against human masks, label propagation): each start / score_pairs / finish
        self.device, self.progress, self.evaluations = device, progress, [e for e in evaluations if e is not None]
        # bytes of features kept at a time (None: [features] memory_gb, else what memory allows)
        self.memory_bytes = memory_bytes
        self.stream = FeatureStream(loaded, device=device, keep_device=self.analysis_device,
                                    batch_size=cfg.features.batch_size, precision=cfg.features.precision,
                                    cache=cache, progress=progress)
        self.passes: dict = {}
        depth = loaded.card.depth
        self.sweep = resolve_layers(cfg.features.layers, depth)
        self.gallery_blocks = resolve_layers(cfg.features.gallery_layers, depth)
        self.blocks = sorted(set(self.sweep) | set(self.gallery_blocks))
        self.reps = list(cfg.features.representations)
        self.ks = sorted(set(cfg.clustering.ks))
        self.k_measures = cfg.analyses.k
        # filled by the pair threads (distinct keys), read in run(): PCA fits to align, attention maps
        self._pca_fits: dict[str, dict] = {}
        self._attention_maps: dict[str, np.ndarray] = {}

    def cluster(self, features, k: int, seed: int | None = None) -> tuple[np.ndarray, JointKMeans]:
        """Joint k-means of patch features (N, h, w, C) with the config's settings, on the
        analysis device (a tensor there: in torch on it)."""
        return cluster_features(features, k, device=self.analysis_device, **kmeans_settings(self.cfg, k, seed))

    @property
    def analysis_device(self) -> torch.device | None:
        """Where the analyses compute: the build's device when it is a CUDA GPU, else None (the
        CPU: numpy features, as before). MPS is left out: it has no float64, which the measures'
        sums use."""
        return self.device if self.device.type == "cuda" else None

    def on_device(self, features):
        """Features (N, ...) as the analyses take them: one float32 copy on the analysis device,
        shared by every k-means and measure of a (block, representation); unchanged on the CPU."""
        return features if self.analysis_device is None else upload_features(features, self.analysis_device)

    def pair_bytes(self) -> int:
        """Device memory one (block, representation) pair's analyses take: about 3 float32 copies
        of its features (the features, a reference token set, the centred unit tokens) and 1 GiB."""
        h, w = self.loaded.grid
        return 3 * 4 * max(1, len(self.images)) * h * w * self.loaded.card.embed_dim + 2**30

    def analysis_workers(self) -> int:
        """(block, representation) pairs analysed at a time: :data:`ANALYSIS_WORKERS` on the CPU.
        On a GPU at most 2 (its kernels run one after another; a second pair overlaps the host-side
        parts) and no more than its free memory holds (:meth:`pair_bytes` each)."""
        if self.analysis_device is None:
            return ANALYSIS_WORKERS
        free, _ = torch.cuda.mem_get_info(self.analysis_device)
        return int(max(1, min(2, ANALYSIS_WORKERS, free // self.pair_bytes())))

    def feature_budget(self, workers: int) -> int | None:
        """Bytes of features kept at a time: what was asked (``memory_bytes``, ``[features]
        memory_gb``), else what the device's free memory (GPU) or the machine's (CPU) leaves after
        the model and ``workers`` pairs' analyses (:func:`atlas.features.stream.default_budget`)."""
        if self.memory_bytes is not None:
            return self.memory_bytes
        if self.cfg.features.memory_gb is not None:
            return int(self.cfg.features.memory_gb * GB)
        model = sum(p.numel() * p.element_size() for p in self.loaded.model.parameters())
        return default_budget(self.stream.keep_device, reserved=model + workers * self.pair_bytes(),
                              available=host_available_memory)

    def features(self, images: list[AtlasImage], block: int, rep: str) -> tuple:
        """Patch features (N, h, w, C) on the analysis device, float32 (as :meth:`on_device`;
        numpy on the CPU), and prefix tokens (N, P, C) as a float32 array, from the stream."""
        kept = self.stream.get(images, block, rep)
        n_prefix, (h, w) = self.loaded.card.num_prefix_tokens, self.loaded.grid
        patches = upload_features(kept[:, n_prefix:].unflatten(1, (h, w)), kept.device)
        prefix = kept[:, :n_prefix].float().cpu().numpy()
        return (patches.numpy() if patches.device.type == "cpu" else patches), prefix

    def weights(self, n: int, salt: int = 0) -> np.ndarray | None:
        """Random-halves weights over ``n`` images (None when intervals are off)."""
        resamples = self.cfg.uncertainty.resamples
        return half_samples(n, resamples, self.cfg.atlas.seed + salt) if resamples and n > 1 else None

    def load(self, images: list[AtlasImage], block: int, rep: str) -> tuple[np.ndarray, np.ndarray]:
        """Patch features (N, h, w, C) and prefix tokens (N, P, C) as float32 arrays on the host."""
        patches, prefix = self.features(images, block, rep)
        return (patches if isinstance(patches, np.ndarray) else patches.cpu().numpy()), prefix

    # ------------------------------------------------------------------ stages

    def image_sets(self) -> dict[str, list[AtlasImage]]:
        """The blank probes and shift windows the measures need, beside the atlas images."""
        card = self.loaded.card
        extra: dict[str, list[AtlasImage]] = {}
        an = self.cfg.analyses
        if an.blank_probe:
            extra["probe"] = probe_images(tuple(card.input_size), seed=self.cfg.atlas.seed, mean=card.mean, std=card.std)
        if an.shift_test and self.loaded.grid[1] <= max(SHIFTS):
            log.warning("%s: shift test skipped: its %d x %d patch grid leaves no overlap for shifts of up to %d "
                        "patches (raise [images] resolution)", card.display_name, *self.loaded.grid, max(SHIFTS))
        elif an.shift_test:
            windows = shift_sets(self.images, self.loaded.policy, card.patch_size)
            extra.update({f"shift{s}": v for s, v in windows.items()})
        return extra

    def plan(self, pairs: list, runs: list["ModelRun"]) -> list[list]:
        """The chunks of pairs whose features of every image set of ``runs`` fit the budget."""
        per_run = [run.stream.pair_bytes(pairs) for run in runs]  # one blank pass per run for the shapes
        sizes = {p: sum(b[p] for b in per_run) for p in pairs}
        budget = self.feature_budget(self.analysis_workers())
        largest = max(sizes.values(), default=0)
        if budget is not None and budget < largest and self.memory_bytes is None and self.cfg.features.memory_gb is None:
            # the machine's free memory, not a setting: one pair at a time rather than an error
            log.warning("%s: the free memory leaves %.3g GB for features, less than one (block, representation) "
                        "pair (%.3g GB); keeping one pair at a time (set [features] memory_gb to choose)",
                        self.loaded.card.display_name, budget / GB, largest / GB)
            budget = largest
        chunks = plan_chunks(pairs, sizes, budget)
        total = sum(sizes.values())
        self.passes = {"passes": len(chunks), "pairs": len(pairs), "feature_bytes": int(total),
                       "max_pair_bytes": int(largest),  # the smallest budget that works
                       "budget_bytes": None if budget is None else int(budget), "cache": self.cache is not None,
                       # where this model's numbers were computed (a job's GPU, not the submitting node)
                       "device": describe(self.device, self.cfg.features.precision)}
        log.info("%s: features of %d (block, representation) pairs take %.3g GB; %s", self.loaded.card.display_name,
                 len(pairs), total / GB, "one forward pass" if len(chunks) == 1 else
                 f"{len(chunks)} forward passes, one per chunk of blocks, within the {budget / GB:.3g} GB budget")
        return chunks

    def run(self) -> ModelResult:
        card = self.loaded.card
        timings: dict[str, float] = {"extract_s": 0.0, "cluster_analyse_s": 0.0}
        evaluation_s = 0.0
        extra = self.image_sets()
        pairs = self.pairs()
        sweep = set(self.sweep)
        self.stream.add("images", self.images)
        for label, imgs in extra.items():  # the measures read probes and windows at sweep blocks only
            self.stream.add(label, imgs, [p for p in pairs if p[0] in sweep])
        scorings, runs_streamed = [], [self]
        for evaluation in self.evaluations:
            provider = self.evaluation_features(evaluation)
            scorings.append(evaluation.start(provider, blocks=self.gallery_blocks, reps=self.reps,
                                             device=self.analysis_device))
            runs_streamed += [provider] if provider is not self else []
        chunks = self.plan(pairs, runs_streamed)
        # the same resamples for every block and representation (one resampling of the image set)
        self._weights = {"images": self.weights(len(self.images)),
                         "probe": self.weights(len(extra.get("probe", [])), 1),
                         "shift": self.weights(len(extra.get("shift0", [])), 2)}
        if self.analysis_device is not None:
            load_linalg(self.analysis_device)  # not in two threads at once (torch's lazy loading races)
        runs, label_maps, measures, references = [], {}, [], []
        uncertain: list[tuple[MeasureRow, Uncertainty]] = []  # every row's uncertainty, until the record keeps some
        figures: dict[str, list] = {"heatmaps": [], "curves": []}
        for i, chunk in enumerate(chunks):
            t0 = time.perf_counter()
            for run in runs_streamed:  # every run's previous chunk freed before any is filled
                run.stream.release()
            for run in runs_streamed:
                run.stream.fill(chunk, f"pass {i + 1} of {len(chunks)}" if len(chunks) > 1 else "extract")
            timings["extract_s"] += time.perf_counter() - t0
            self.passes["kept_bytes"] = max(self.passes.get("kept_bytes", 0),
                                            sum(run.stream.kept_bytes() for run in runs_streamed))
            t0 = time.perf_counter()
            out = self.analyse(chunk, extra)
            runs += out[0]
            label_maps.update(out[1])
            measures += out[2]
            references += out[3]
            for kind in figures:
                figures[kind] += out[4][kind]
            uncertain += out[5]
            timings["cluster_analyse_s"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            for evaluation, scoring in zip(self.evaluations, scorings):
                evaluation.score_pairs(scoring, chunk)
            evaluation_s += time.perf_counter() - t0
        for run in runs_streamed:
            run.stream.release()
        self.passes["on_demand"] = sum(len(run.stream.on_demand) for run in runs_streamed)
        if self.passes["on_demand"]:
            log.info("%s: %d pair(s) computed outside their pass (%s)", card.display_name, self.passes["on_demand"],
                     "; ".join(d for run in runs_streamed for d in run.stream.on_demand[:3]))
        timings = {k: round(v, 2) for k, v in timings.items()}
        runs.sort(key=lambda r: (r.block, r.representation, r.k))
        # the maps of cluster ids beside the gallery's take its colours (the same fits, renumbered alike)
        payloads.renumber_cluster_ids(figures["heatmaps"], self.align(label_maps))
        pictures = {**align_pictures(self._pca_fits, self.gallery_blocks, self.reps), **self._attention_maps}
        recount_sizes(runs, label_maps)  # sizes in aligned ids
        baselines, selected = [], {}
        t0 = time.perf_counter()
        for evaluation, scoring in zip(self.evaluations, scorings):
            scored = evaluation.finish(scoring, figures)
            measures += scored.rows
            baselines += scored.baselines
            selected.update(scored.selected)
            uncertain += scored.uncertain
            self.passes.update(scored.passes)
        if scorings:  # scoring each chunk's pairs and finishing (folds, baselines, selection)
            timings["evaluation_s"] = round(evaluation_s + time.perf_counter() - t0, 2)
        card = dataclasses.replace(card, precision=self.cfg.features.precision)
        result = ModelResult(card=card, blocks=self.gallery_blocks, representations=self.reps, ks=self.ks, runs=runs,
                             measures=measures, figures=figures, timings=timings, references=references,
                             baselines=baselines, selected=selected, pictures=pictures,
                             label_maps={k: v.astype(np.int16) for k, v in label_maps.items()}, passes=self.passes)
        kept = {row_id(r) for r in compared_rows(result)}  # the numbers other records are compared with
        result.uncertainties = dict(sorted(((row_id(row), u.state()) for row, u in uncertain if row_id(row) in kept),
                                           key=lambda kv: kv[0]))
        return result

    def evaluation_features(self, evaluation) -> "ModelRun":
        """The features ``evaluation`` reads: this run's, or the same weights in the evaluation's
        input geometry (:meth:`EvaluationRun.geometry`) with a stream of their own, which passes
        with this run's chunks."""
        loaded = evaluation.geometry(self.loaded)
        return self if loaded is self.loaded else ModelRun(self.cfg, loaded, [], self.cache, self.device, self.progress,
                                                           memory_bytes=self.memory_bytes)

    def pairs(self) -> list:
        """Every (block, representation) the run analyses, in block order."""
        return block_representations(self.blocks, self.reps, self.loaded.card.depth)

    def analyse(self, pairs: list, extra: dict):
        """Joint k-means for every (block, representation, K) of ``pairs`` and every measure of the
        sweep blocks among them (their features kept by the stream)."""
        runs: list[ClusterRun] = []
        label_maps: dict[str, np.ndarray] = {}
        measures: list[MeasureRow] = []
        references: list[MeasureRow] = []
        uncertain: list[tuple[MeasureRow, Uncertainty]] = []
        figures: dict[str, list] = {"heatmaps": [], "curves": []}
        last_gallery = self.gallery_blocks[-1] if self.gallery_blocks else -1
        # (block, representation) pairs are independent: several at a time use the cores (numpy,
        # BLAS, faiss and torch release the GIL); results are gathered in a fixed order, so the
        # output does not depend on scheduling (nor on how the pairs were chunked).
        with ThreadPoolExecutor(max_workers=self.analysis_workers()) as pool, torch_threads(1):
            done = pool.map(lambda pair: self.analyse_pair(*pair, extra, last_gallery), pairs)
            for out in tqdm(done, total=len(pairs), desc=f"{self.loaded.card.display_name}: cluster + measure",
                            disable=not self.progress, leave=False):
                pair_runs, pair_maps, pair_measures, pair_refs, pair_figures, pair_uncertain = out
                uncertain += pair_uncertain
                runs += pair_runs
                label_maps.update(pair_maps)
                measures += pair_measures
                references += pair_refs
                for kind in figures:
                    figures[kind] += pair_figures[kind]
        return runs, label_maps, measures, references, figures, uncertain

    def analyse_pair(self, b: int, r: str, extra: dict, last_gallery: int):
        depth = self.loaded.card.depth
        runs, label_maps, measures, references, uncertain = [], {}, [], [], []
        figures: dict[str, list] = {"heatmaps": [], "curves": []}
        # on a GPU: there once (kept from extraction, or copied), for every measure of the pair
        patches, prefix = self.features(self.images, b, r)
        ks = set(self.ks) if b in self.gallery_blocks else set()
        if b in self.sweep:
            ks.add(self.k_measures)
        fitted = {}
        for k in sorted(ks):
            labels, km = self.cluster(patches, k)
            fitted[k] = (labels, km)
            if b in self.gallery_blocks and k in self.ks:
                label_maps[map_key(b, r, k)] = labels
                runs.append(ClusterRun(block=b, rel_depth=rel_depth(b, depth), representation=r, k=k,
                                       sizes=[int(x) for x in km.cluster_sizes_], inertia=float(km.inertia_)))
        if b in self.gallery_blocks:  # both PCA recipes; aligned across blocks in run()
            self._pca_fits.update(fit_pictures(patches, b, r, device=self.analysis_device))
        if r == "queries" and all(x in self.reps for x in ATTENTION_INPUTS):  # once per block
            for row, u in self.attention(b, prefix):
                measures.append(row)
                uncertain.append((row, u))
        if b in self.sweep:
            row = dict(block=b, rel_depth=rel_depth(b, depth), representation=r)
            uncertainty, results = self.measure(patches, prefix, fitted[self.k_measures], b, r, extra, figures,
                                                b == last_gallery)
            for name, u in uncertainty.items():
                k = self.k_measures if REGISTRY[name].depends_on_k else None
                measures.append(MeasureRow(**row, measure=name, k=k,  # seed spread only of k-dependent measures
                                           **row_fields(u, REGISTRY[name].value_range, seed_spread=bool(k))))
                uncertain.append((measures[-1], u))
            if b == last_gallery and r in ("tokens", "keys"):
                figures["heatmaps"] += payloads.measure_maps(results, b, r, self.k_measures)
                figures["curves"].append(payloads.locality_curve(results["similarity_structure"], b, r))
            if self.cfg.analyses.references:
                for name in REFERENCES:
                    ref = reference_tokens(patches, name, self.cfg.atlas.seed)
                    values = summarise(self.cluster(ref, self.k_measures)[0], ref, seed=self.cfg.atlas.seed,
                                       device=self.analysis_device)
                    del ref
                    references += [MeasureRow(**row, measure=m, value=float(v),
                                               k=self.k_measures if REGISTRY[m].depends_on_k else None, reference=name)
                                   for m, v in values.items()
                                   if not (name == "content-only" and REGISTRY[m].position_free)]
        return runs, label_maps, measures, references, figures, uncertain

    def attention(self, b: int, q_prefix) -> list[tuple[MeasureRow, Uncertainty]]:
        """The prefix tokens' attention of block ``b`` from its prefix queries (already read by the
        queries pair) and its keys (:meth:`features`): its maps (gallery blocks) and the CLS measures with their
        intervals (sweep blocks, representation ``"attention"``), each row with its uncertainty; nothing
        without prefix tokens."""
        attn = block_attention(self, b, q_prefix, device=self.analysis_device)
        if attn is None:
            return []
        if b in self.gallery_blocks:
            self._attention_maps.update(attention_pictures(attn, b))
        if b not in self.sweep:
            return []
        tokens = self.features(self.images, b, "tokens")[0]
        values, replicates = attention_measures(attn, tokens, self._weights["images"])
        rows = []
        for name, value in values.items():
            u = Uncertainty(self.cfg.uncertainty.level)
            u.add(value, replicates.get(name), *self._jackknife(name), self._resampling(name))
            rows.append((MeasureRow(block=b, rel_depth=rel_depth(b, self.loaded.card.depth),
                                    representation=ATTENTION_ROWS, measure=name,
                                    **row_fields(u, REGISTRY[name].value_range, seed_spread=False)), u))
        return rows

    def _jackknife(self, name: str) -> tuple[float, int | None]:
        """``(r / d, degrees of freedom)`` of the resampling behind a measure's replicates."""
        m = REGISTRY[name]
        if m.interval == "leave-one-out":
            return leave_one_out(len(self.images))
        return jackknife(self._weights[self._resampled(name)])

    def _resampling(self, name: str) -> str | None:
        """The id of the resampling behind a measure's replicates: two numbers pair up under one
        (:func:`atlas.measures.uncertainty.paired_difference`), such as a model's at two input sizes."""
        if REGISTRY[name].interval == "leave-one-out":
            return f"leave-one-out of {len(self.images)}"
        return resampling_id(self._weights[self._resampled(name)])

    @staticmethod
    def _resampled(name: str) -> str:
        """Which image set's weights resample a measure (``self._weights``)."""
        return {"blank labels": "probe", "shift pairs": "shift"}.get(REGISTRY[name].inputs, "images")

    def measure(self, patches, prefix, clustered, b: int, r: str, extra: dict, figures: dict, show: bool):
        """Every positional measure of one (block, representation) with its interval: resampling
        replicates of the atlas seed's clustering and of every other k-means seed's."""
        seed = self.cfg.atlas.seed
        weights = self._weights["images"]
        uncertainty: dict[str, Uncertainty] = {}
        results: dict = {}
        for j, kseed in enumerate(kmeans_seeds(self.cfg)):
            # the other seeds only for the measures that depend on the clustering
            labels, km = clustered if j == 0 else self.cluster(patches, self.k_measures, seed=kseed)
            values, found = summarise(labels, patches, prefix, seed=seed, weights=weights, labels_only=j > 0,
                                      return_results=True, device=self.analysis_device)
            results = results or found
            reps = summary_replicates(found, values)
            probe_values, probe_reps = self.probe_measures(km, b, r, extra, figures, show and j == 0)
            values.update(probe_values)
            reps.update(probe_reps)
            for name, v in values.items():
                uncertainty.setdefault(name, Uncertainty(self.cfg.uncertainty.level)).add(
                    v, reps.get(name), *self._jackknife(name), self._resampling(name))
        return uncertainty, results

    def probe_measures(self, km: JointKMeans, b: int, r: str, extra: dict, figures: dict | None,
                       show: bool) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Blank-input probe and shift test of one (block, representation): the probes' and windows'
        tokens assigned to the centroids fitted on the atlas images; values and bootstrap replicates."""
        out, reps = {}, {}
        seed = self.cfg.atlas.seed
        if "probe" in extra:
            labels = predict_features(km, self.features(extra["probe"], b, r)[0])
            res = blank_input_structure(labels, seed=seed, weights=self._weights["probe"], device=self.analysis_device)
            for name, m in REGISTRY.items():
                if m.inputs == "blank labels":
                    out[name] = float(np.mean(res[m.result_key]))
                    if "replicates" in res:
                        reps[name] = res["replicates"][m.result_key]
            if show and r in ("tokens", "keys"):
                figures["heatmaps"] += payloads.blank_maps(labels[:3], [img.name for img in extra["probe"][:3]], b, r,
                                                           self.k_measures)
        if "shift0" in extra:
            base = predict_features(km, self.features(extra["shift0"], b, r)[0])
            moved = {s: predict_features(km, self.features(extra[f"shift{s}"], b, r)[0]) for s in SHIFTS}
            curve = shift_curve({s: (base, moved[s]) for s in SHIFTS}, weights=self._weights["shift"])
            key = REGISTRY["shift_content_fraction"].result_key
            out["shift_content_fraction"] = curve[key]
            if "replicates" in curve:
                reps["shift_content_fraction"] = curve["replicates"][key]
            if show and r == "tokens":
                names = [img.name.rsplit("@", 1)[0] for img in extra["shift0"][:2]]
                figures["heatmaps"] += payloads.shift_pair_maps(base[:2], moved[2][:2], names, 2, b, r,
                                                                self.k_measures)
            if show and r in ("tokens", "keys"):
                figures["curves"].append(payloads.shift_curve(curve, b, r))
        return out, reps

    def align(self, label_maps: dict[str, np.ndarray]) -> dict[tuple[int, str, int], np.ndarray]:
        """Same colour = same region: per K, the gallery's label maps aligned along
        :func:`atlas.clustering.align.colour_chains` (deep to shallow, every representation's chain
        from the tokens' deepest block) with :func:`atlas.clustering.align.align_chain`. Returns the
        mapping applied to each map, by ``(block, representation, k)`` (the chains' anchors keep
        their ids)."""
        mappings = {}
        for k in self.ks:
            for r, anchor, blocks in colour_chains(self.gallery_blocks, self.reps):
                present = [b for b in blocks if map_key(b, r, k) in label_maps]  # tokens_normed: last only
                head = [map_key(*anchor, k)] if anchor else []
                chain = [label_maps[key] for key in head + [map_key(b, r, k) for b in present]]
                # the anchor (another representation's map, aligned already) keeps its ids
                for b, mapping in zip(present, align_chain(chain, [k] * len(chain))[len(head):]):
                    label_maps[map_key(b, r, k)] = apply_mapping(label_maps[map_key(b, r, k)], mapping)
                    mappings[(b, r, k)] = mapping
        return mappings
