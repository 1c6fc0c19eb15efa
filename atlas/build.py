"""The build: config -> backbones -> feature cache -> clustering and analyses -> records -> site.

Incremental by construction. Features live in the content-addressed cache; each model's results
(numbers, aligned label maps, gallery images) are stored under a *model key* (hash of its weights,
images, preprocessing and every config section that changes its numbers); a model whose key is
unchanged is neither re-extracted nor re-clustered, and a comparison is rebuilt only when the key of
one of its models (or its own settings) changed.

Example
-------
>>> from atlas.config import load_config
>>> results = build_atlas(load_config("configs/demo.toml"))   # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import logging
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from . import __version__
from .align import align_to_reference, apply_mapping, common_grid, resample_labels
from .analyses import MEASURES, blank_input_structure, shift_test, summarise
from .backbones import LoadedBackbone, WeightsUnavailableError, load_backbone, missing_weights, weights_help
from .cache import FeatureCache
from .cluster import JointKMeans
from .config import AtlasConfig, resolve_layers, slugify
from .device import describe, pick_device, torch_threads
from .features import extract_to_cache, load_block
from .images import AtlasImage, ResizePolicy, content_hash, load_embedded_set, load_image_folder, probe_images
from .render import save_segmentation_pair, save_webp
from .results import (AtlasResults, ClusterRun, ComparisonResult, GalleryEntry, Highlight, MeasureRow,
                      ModelCard, ModelResult, SkippedItem)

log = logging.getLogger("atlas.build")

SHIFTS = (1, 2, 3, 4)
# (block, representation) pairs analysed at a time, one BLAS / torch thread each; capped because
# every worker holds one block of features of all images in memory
ANALYSIS_WORKERS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
SHIFT_IMAGES = 16  # images used by the shift test (each costs 5 extra crops per model)
MODEL_STATE_VERSION = "1"


class BuildError(RuntimeError):
    """A build problem phrased as one line that says what to do."""


# ---------------------------------------------------------------- images


def load_images(cfg: AtlasConfig) -> tuple[list[AtlasImage], list[SkippedItem]]:
    images: list[AtlasImage] = []
    skipped: list[SkippedItem] = []
    for s in cfg.images.sets:
        if s == "embedded":
            got, skip = load_embedded_set(max_pixels=cfg.images.max_pixels)
        else:
            folder = cfg.resolve_path(s.folder)
            if not folder.is_dir():
                raise BuildError(f"image folder not found: {folder}; fix [images] sets in {cfg.source_path}")
            got, skip = load_image_folder(folder, max_pixels=cfg.images.max_pixels)
        images += got
        skipped += [x.item() for x in skip]
    seen, unique = set(), []
    for img in images:  # the same pixels twice would count twice in every statistic
        if img.content_hash in seen:
            skipped.append(SkippedItem(f"image {img.name}", "duplicate pixels of an earlier image"))
            continue
        seen.add(img.content_hash)
        unique.append(img)
    if cfg.images.max_images:
        for img in unique[cfg.images.max_images:]:
            skipped.append(SkippedItem(f"image {img.name}", f"beyond max_images = {cfg.images.max_images}"))
        unique = unique[: cfg.images.max_images]
    for item in skipped:
        log.warning("skipped %s: %s", item.what, item.reason)
    if len(unique) < 2:
        raise BuildError("fewer than 2 usable images; joint clustering needs several (check [images] sets)")
    return unique, skipped


def _memory_image(name: str, img: Image.Image, source: str) -> AtlasImage:
    return AtlasImage(name=name, source=source, licence="generated", credit="", content_hash=content_hash(img),
                      width=img.width, height=img.height, loader=img.copy)


def probe_set(size: tuple[int, int], seed: int, mean, std) -> list[AtlasImage]:
    return [_memory_image(p.name, p.image, "blank-input probe") for p in probe_images(size, seed=seed, mean=mean, std=std)]


def shift_sets(images: list[AtlasImage], size: tuple[int, int], patch: int) -> dict[int, list[AtlasImage]]:
    """Crops for the shift test: for every image, windows 0..max(SHIFTS) patches apart on one canvas.

    Window ``s`` lies ``s`` patches to the right of window 0, so window s's column x shows the
    content of window 0's column x + s (the convention of :func:`atlas.analyses.shift_test`).
    """
    h, w = size
    span = max(SHIFTS) * patch
    out: dict[int, list[AtlasImage]] = {s: [] for s in (0, *SHIFTS)}
    for img in images[:SHIFT_IMAGES]:
        canvas = ResizePolicy(h, w + span).apply(img.load())
        for s in out:
            crop = canvas.crop((s * patch, 0, s * patch + w, h))
            out[s].append(_memory_image(f"{img.name}@shift{s}", crop, f"shift-test crop of {img.name}"))
    return out


# ---------------------------------------------------------------- keys


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the code that computes numbers: a change to it invalidates stored model results (pages
    are rendered afresh on every build anyway, so the site layer is left out)."""
    h = hashlib.sha256()
    pkg = Path(__file__).resolve().parent
    for path in sorted(pkg.rglob("*.py")):
        if path.name in ("site.py", "figures.py", "cli.py"):
            continue
        h.update(str(path.relative_to(pkg)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def model_key(cfg: AtlasConfig, loaded: LoadedBackbone, images: list[AtlasImage], eval_key: str) -> str:
    return _hash({
        "v": MODEL_STATE_VERSION, "atlas": __version__, "code": code_fingerprint(), "weights": loaded.weights_hash,
        "spec": loaded.spec.model_dump(), "images": [i.content_hash for i in images],
        "resolution": cfg.images.resolution, "features": cfg.features.model_dump(exclude={"batch_size", "device"}),
        "clustering": cfg.clustering.model_dump(), "analyses": cfg.analyses.model_dump(), "seed": cfg.atlas.seed,
        "evaluation": eval_key,
    })


# ---------------------------------------------------------------- state on disk (atomic)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save_state(state_dir: Path, key: str, result: ModelResult | ComparisonResult, labels: dict | None = None) -> None:
    if labels is not None:
        fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".tmp-", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **labels)
        os.replace(tmp, state_dir / "labels.npz")
    _atomic_write_bytes(state_dir / "result.json", json.dumps(asdict(result), sort_keys=True).encode())
    _atomic_write_bytes(state_dir / "key.txt", key.encode())  # written last: marks the state complete


def _state_is_current(state_dir: Path, key: str, docs_dir: Path) -> dict | None:
    try:
        if (state_dir / "key.txt").read_text() != key:
            return None
        data = json.loads((state_dir / "result.json").read_text())
    except (OSError, ValueError):
        return None
    files = [e[f] for r in data.get("runs", []) for e in r["gallery"] for f in ("overlay", "bare")]
    files += [e[f] for p in data.get("panels", []) for c in p["columns"] for e in c["entries"] for f in ("overlay", "bare")]
    if not all((docs_dir / f).is_file() for f in files):
        return None
    return data


def _model_result_from_dict(d: dict) -> ModelResult:
    return ModelResult(
        card=ModelCard(**d["card"]), blocks=d["blocks"], representations=d["representations"], ks=d["ks"],
        runs=[ClusterRun(**{**r, "gallery": [GalleryEntry(**e) for e in r["gallery"]]}) for r in d["runs"]],
        measures=[MeasureRow(**m) for m in d["measures"]], figures=d["figures"], timings=d["timings"],
        highlights=[Highlight(**h) for h in d.get("highlights", [])],
    )


# ---------------------------------------------------------------- one model


def _rel_depth(block: int, depth: int) -> float:
    return round((block + 1) / depth, 4)


def _flat(patches: np.ndarray) -> np.ndarray:
    return patches.reshape(-1, patches.shape[-1])


class ModelBuilder:
    """Extraction, clustering, analyses and gallery images of one backbone."""

    def __init__(self, cfg: AtlasConfig, loaded: LoadedBackbone, images: list[AtlasImage], cache: FeatureCache,
                 device: torch.device, docs_dir: Path, progress: bool, evaluation=None):
        self.cfg, self.loaded, self.images, self.cache = cfg, loaded, images, cache
        self.device, self.docs_dir, self.progress = device, docs_dir, progress
        self.evaluation = evaluation
        card = loaded.card
        self.policy = ResizePolicy(*card.input_size)
        self.sweep = resolve_layers(cfg.features.layers, card.depth)
        self.gallery_blocks = resolve_layers(cfg.features.gallery_layers, card.depth)
        self.blocks = sorted(set(self.sweep) | set(self.gallery_blocks))
        self.reps = list(cfg.features.representations)
        self.ks = sorted(set(cfg.clustering.ks))
        self.k_measures = cfg.analyses.k
        self.out_rel = Path("generated") / "models" / card.slug

    def kmeans(self, k: int) -> JointKMeans:
        """An unfitted joint k-means with the config's settings (shared with the evaluation stage)."""
        c = self.cfg.clustering
        return JointKMeans(k, normalize=c.normalize, seed=self.cfg.atlas.seed, n_iter=c.n_iter, n_init=c.n_init,
                           max_train_tokens=c.train_tokens_per_cluster * k or None)

    def extract(self, timings: dict) -> dict:
        card = self.loaded.card
        name = card.display_name
        t0 = time.perf_counter()
        stats = extract_to_cache(self.loaded, self.images, self.policy, self.blocks, self.reps, self.cache,
                                 device=self.device, batch_size=self.cfg.features.batch_size, progress=self.progress,
                                 desc=f"{name}: extract")
        timings["extract_s"] = round(time.perf_counter() - t0, 2)
        extra = {}
        an = self.cfg.analyses
        t0 = time.perf_counter()
        if an.blank_probe:
            extra["probe"] = probe_set(tuple(card.input_size), self.cfg.atlas.seed, card.mean, card.std)
        if an.shift_test:
            extra.update({f"shift{s}": v for s, v in shift_sets(self.images, tuple(card.input_size), card.patch_size).items()})
        for label, imgs in extra.items():
            extract_to_cache(self.loaded, imgs, self.policy, self.blocks, self.reps, self.cache, device=self.device,
                             batch_size=self.cfg.features.batch_size, progress=self.progress, desc=f"{name}: {label}")
        timings["extract_probes_s"] = round(time.perf_counter() - t0, 2)
        log.info("%s: %d images extracted, %d cached", name, stats.extracted, stats.cached)
        return extra

    def run(self) -> tuple[ModelResult, dict[str, np.ndarray]]:
        card = self.loaded.card
        timings: dict[str, float] = {}
        extra = self.extract(timings)
        t0 = time.perf_counter()
        runs, labels_of, measures, figures = self.analyse(extra)
        timings["cluster_analyse_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        self._align(labels_of)
        self._gallery(runs, labels_of)
        timings["render_s"] = round(time.perf_counter() - t0, 2)
        if self.evaluation is not None:
            t0 = time.perf_counter()
            measures += self.evaluation.run(self, figures)
            timings["evaluation_s"] = round(time.perf_counter() - t0, 2)
        result = ModelResult(card=card, blocks=self.gallery_blocks, representations=self.reps, ks=self.ks,
                             runs=[runs[key] for key in sorted(runs)], measures=measures, figures=figures,
                             timings=timings)
        state_labels = {f"b{b}-{r}-k{k}": v.astype(np.int16) for (b, r, k), v in labels_of.items()}
        return result, state_labels

    def analyse(self, extra: dict):
        """Joint k-means for every (block, representation, K) and every measure of the sweep blocks."""
        card = self.loaded.card
        runs: dict[tuple[int, str, int], ClusterRun] = {}
        labels_of: dict[tuple[int, str, int], np.ndarray] = {}
        measures: list[MeasureRow] = []
        figures: dict[str, list] = {"heatmaps": [], "curves": []}
        last_gallery = self.gallery_blocks[-1] if self.gallery_blocks else -1
        pairs = [(b, r) for b in self.blocks for r in self.reps]
        # (block, representation) pairs are independent: several at a time use the cores (numpy,
        # BLAS, faiss and torch release the GIL); results are gathered in a fixed order, so the
        # output does not depend on scheduling.
        with ThreadPoolExecutor(max_workers=ANALYSIS_WORKERS) as pool, torch_threads(1):
            done = pool.map(lambda pair: self._analyse_pair(*pair, extra, last_gallery), pairs)
            for (b, r), out in tqdm(zip(pairs, done), total=len(pairs), desc=f"{card.display_name}: cluster + measure",
                                    disable=not self.progress, leave=False):
                pair_runs, pair_labels, pair_measures, pair_figures = out
                runs.update(pair_runs)
                labels_of.update(pair_labels)
                measures += pair_measures
                for kind in figures:
                    figures[kind] += pair_figures[kind]
        return runs, labels_of, measures, figures

    def _analyse_pair(self, b: int, r: str, extra: dict, last_gallery: int):
        depth = self.loaded.card.depth
        runs, labels_of, measures = {}, {}, []
        figures: dict[str, list] = {"heatmaps": [], "curves": []}
        patches, prefix = load_block(self.loaded, self.images, self.policy, b, r, self.cache)
        n, h, w, c = patches.shape
        ks = set(self.ks) if b in self.gallery_blocks else set()
        if b in self.sweep:
            ks.add(self.k_measures)
        fitted = {}
        for k in sorted(ks):
            km = self.kmeans(k).fit(_flat(patches))
            fitted[k] = km
            if b in self.gallery_blocks and k in self.ks:
                labels_of[(b, r, k)] = km.labels_.reshape(n, h, w)
                runs[(b, r, k)] = ClusterRun(block=b, rel_depth=_rel_depth(b, depth), representation=r, k=k,
                                             sizes=[int(x) for x in km.cluster_sizes_], inertia=float(km.inertia_))
        if b in self.sweep:
            km = fitted[self.k_measures]
            labels = km.labels_.reshape(n, h, w)
            values, results = summarise(labels, patches, prefix, seed=self.cfg.atlas.seed, return_results=True)
            values.update(self._probe_measures(km, b, r, extra, figures, b == last_gallery))
            for name, v in values.items():
                k = self.k_measures if MEASURES[name].inputs in ("labels", "labels+features", "blank labels", "shift pairs") else None
                measures.append(MeasureRow(block=b, rel_depth=_rel_depth(b, depth), representation=r, measure=name,
                                           value=float(v), k=k, section="positional"))
            if b == last_gallery and r in ("tokens", "keys"):
                self._figures(figures, results, b, r)
        return runs, labels_of, measures, figures

    def _probe_measures(self, km, b, r, extra, figures, show) -> dict[str, float]:
        out = {}
        if "probe" in extra:
            patches, _ = load_block(self.loaded, extra["probe"], self.policy, b, r, self.cache)
            labels = km.predict(_flat(patches)).reshape(patches.shape[:3])
            res = blank_input_structure(labels, seed=self.cfg.atlas.seed)
            for name, m in MEASURES.items():
                if m.inputs == "blank labels":
                    out[name] = float(np.mean(res[m.key]))
            if show and r in ("tokens", "keys"):
                for i, img in enumerate(extra["probe"][:3]):
                    figures["heatmaps"].append({
                        "id": f"blank-{img.name}-{r}", "title": f"Blank-input probe ({img.name}), block {b} {r}: cluster map",
                        "z": labels[i].tolist(), "labels": labels[i].tolist(), "block": b, "representation": r,
                        "colorscale": "Viridis", "zlabel": "cluster", "image": img.name, "section": "positional"})
        if "shift0" in extra:
            base, _ = load_block(self.loaded, extra["shift0"], self.policy, b, r, self.cache)
            la = km.predict(_flat(base)).reshape(base.shape[:3])
            fractions, content, position = [], [], []
            for s in SHIFTS:
                moved, _ = load_block(self.loaded, extra[f"shift{s}"], self.policy, b, r, self.cache)
                lb = km.predict(_flat(moved)).reshape(moved.shape[:3])
                res = shift_test(la, lb, s)
                if show and r == "tokens" and s == 2:
                    # the pair itself: content moves 2 patches left from crop a to crop b; clusters that
                    # move with it follow content, clusters that stay put follow the grid
                    for i, img in enumerate(extra["shift0"][:2]):
                        name = img.name.rsplit("@", 1)[0]
                        for tag, lab in (("a", la[i]), ("b", lb[i])):
                            figures["heatmaps"].append({
                                "id": f"shift-pair-{slugify(name)}-{tag}",
                                "title": f"Shift test pair, {name}, crop {tag}"
                                         + (" (content moved 2 patches left)" if tag == "b" else "")
                                         + f": block {b} {r} clusters",
                                "z": lab.tolist(), "labels": lab.tolist(), "block": b, "representation": r,
                                "colorscale": "Viridis", "zlabel": "cluster", "image": img.name,
                                "section": "positional"})
                fractions.append(res["content_fraction_adjusted"])
                content.append(res["content"])
                position.append(res["position"])
            out["shift_content_fraction"] = float(np.nanmean(fractions))
            if show and r in ("tokens", "keys"):
                figures["curves"].append({
                    "id": f"shift-{r}", "title": f"Shift test, block {b} {r}: agreement vs shift",
                    "x": list(SHIFTS), "series": {"aligned by content": content, "aligned by grid position": position,
                                                  "content-following fraction": fractions},
                    "xaxis": "shift s (patches)", "yaxis": "fraction of tokens", "section": "positional"})
        return out

    def _figures(self, figures, results: dict, b, r) -> None:
        """Heatmaps and curves of the measures' maps (``results``: :func:`summarise`'s full results)."""
        pc = results["positional_clustering"]
        dom = np.asarray(pc["dominant"])
        figures["heatmaps"].append({
            "id": f"dominant-{r}", "title": f"Block {b} {r}: how often each position's dominant cluster wins",
            "z": np.round(np.asarray(pc["dominant_freq"], dtype=float), 4).tolist(), "labels": dom.tolist(),
            "block": b, "representation": r, "colorscale": "Viridis", "zlabel": "win frequency", "section": "positional"})
        ba = results["boundary_artifacts"]
        figures["heatmaps"].append({
            "id": f"norm-{r}", "title": f"Block {b} {r}: token norm averaged over images",
            "z": np.round(np.asarray(ba["norm_map"], dtype=float), 4).tolist(), "block": b, "representation": r,
            "colorscale": "Magma", "zlabel": "mean L2 norm", "section": "positional"})
        figures["heatmaps"].append({
            "id": f"outliers-{r}", "title": f"Block {b} {r}: high-norm outlier tokens per position",
            "z": np.asarray(ba["outlier_count_map"]).astype(int).tolist(), "block": b, "representation": r,
            "colorscale": "Magma", "zlabel": "outlier count", "section": "positional"})
        loc = results["similarity_structure"]
        figures["curves"].append({
            "id": f"locality-{r}", "title": f"Block {b} {r}: similarity vs distance, within vs across images",
            "x": [int(x) for x in loc["distances"]],
            "series": {"within image": _finite(loc["within"]), "across images (same offset)": _finite(loc["across"]),
                       "locality beyond position": _finite(loc["beyond"])},
            "xaxis": "distance (patches)", "yaxis": "mean cosine similarity", "section": "positional"})

    def _align(self, labels_of: dict) -> None:
        """Same colour = same region: chain blocks (deep to shallow) per (representation, K), after
        aligning each representation's deepest block to the tokens' deepest block."""
        blocks = sorted(self.gallery_blocks, reverse=True)
        for k in self.ks:
            ref_rep = "tokens" if "tokens" in self.reps else self.reps[0]
            for r in [ref_rep] + [x for x in self.reps if x != ref_rep]:
                if r != ref_rep:
                    key, ref = (blocks[0], r, k), labels_of[(blocks[0], ref_rep, k)]
                    labels_of[key] = apply_mapping(labels_of[key], align_to_reference(ref, labels_of[key], k, k))
                for prev, b in zip(blocks, blocks[1:]):
                    ref, key = labels_of[(prev, r, k)], (b, r, k)
                    labels_of[key] = apply_mapping(labels_of[key], align_to_reference(ref, labels_of[key], k, k))

    def _gallery(self, runs: dict, labels_of: dict) -> None:
        photos = {}
        for (b, r, k), run in runs.items():
            labels = labels_of[(b, r, k)]
            run.sizes = [int(x) for x in np.bincount(labels.ravel(), minlength=k)]  # sizes in aligned ids
            for i, img in enumerate(self.images):
                if img.name not in photos:
                    photos[img.name] = np.asarray(self.policy.apply(img.load()))
                stem = self.out_rel / "gallery" / f"b{b:02d}-{r}-k{k:02d}" / slugify(img.name)
                ov, bare = f"{stem}-overlay.webp", f"{stem}-map.webp"
                save_segmentation_pair(photos[img.name], labels[i], self.docs_dir / ov, self.docs_dir / bare)
                run.gallery.append(GalleryEntry(image=img.name, overlay=ov, bare=bare))


def _finite(values) -> list:
    return [None if not np.isfinite(v) else round(float(v), 5) for v in np.asarray(values, dtype=float)]


# ---------------------------------------------------------------- comparisons


def _comparison_models(cfg: AtlasConfig, comp, built: dict[str, ModelResult]) -> list[str]:
    wanted = cfg.model_slugs(comp.models) if comp.models else [b.slug for b in cfg.backbones]
    return [s for s in wanted if s in built]


def build_comparison(cfg: AtlasConfig, comp, built: dict[str, ModelResult], labels: dict[str, dict], docs_dir: Path,
                     photos: dict[str, np.ndarray], k: int) -> ComparisonResult | None:
    slugs = _comparison_models(cfg, comp, built)
    rel_depths = sorted({r.rel_depth for s in slugs for r in built[s].runs})
    if comp.kind == "representations":
        if not slugs:
            return None
        m = built[slugs[0]]
        panels = []
        for b in m.blocks:
            cols = []
            for rep in m.representations:
                run = next((x for x in m.runs if x.block == b and x.representation == rep and x.k == k), None)
                if run:
                    cols.append({"model": m.card.slug, "representation": rep, "block": b, "label": rep,
                                 "entries": [asdict(e) for e in run.gallery]})
            panels.append({"rel_depth": _rel_depth(b, m.card.depth), "columns": cols})
        return ComparisonResult(slug=comp.slug, title=comp.title, kind=comp.kind, description=comp.description,
                                models=slugs[:1], rel_depths=[p["rel_depth"] for p in panels],
                                representations=list(m.representations), k=k, panels=panels)
    if len(slugs) < 2:
        log.warning("comparison %r skipped: fewer than 2 of its models are in this build", comp.title)
        return None
    rep = comp.representation
    gallery_fracs = cfg.features.gallery_layers if cfg.features.gallery_layers != "all" else None
    panels = []
    for d in (gallery_fracs if isinstance(gallery_fracs, list) and all(isinstance(x, float) for x in gallery_fracs) else rel_depths):
        cols, maps = [], []
        for s in slugs:
            m = built[s]
            b = resolve_layers([float(d)], m.card.depth)[0]
            key = f"b{b}-{rep}-k{k}"
            if key not in labels[s]:
                continue
            maps.append((s, b, labels[s][key].astype(np.int64)))
        if len(maps) < 2:
            continue
        grid = common_grid(*[mp.shape[1:] for _, _, mp in maps])
        ref = resample_labels(maps[0][2], grid)
        for j, (s, b, mp) in enumerate(maps):
            if j:
                mp_c = resample_labels(mp, grid)
                mp = apply_mapping(mp, align_to_reference(ref, mp_c, k, k))
            entries = []
            for i, name in enumerate(photos):
                stem = Path("generated") / "comparisons" / comp.slug / f"d{int(round(d * 100)):03d}-{s}" / slugify(name)
                ov, bare = f"{stem}-overlay.webp", f"{stem}-map.webp"
                save_segmentation_pair(photos[name][s], mp[i], docs_dir / ov, docs_dir / bare)
                entries.append({"image": name, "overlay": ov, "bare": bare})
            cols.append({"model": s, "representation": rep, "block": b, "entries": entries})
        panels.append({"rel_depth": float(d), "representation": rep, "columns": cols})
    return ComparisonResult(slug=comp.slug, title=comp.title, kind=comp.kind, description=comp.description,
                            models=slugs, rel_depths=[p["rel_depth"] for p in panels], representations=[rep], k=k,
                            panels=panels)


# ---------------------------------------------------------------- highlights and methods


# Titles shown on the site for every stored number (the raw name stays in CSV/JSON and anchors).
MEASURE_TITLES = {
    "positional_nce": "Positional clustering (chance-corrected NCE)",
    "positional_ami": "Positional clustering (AMI of cluster vs position)",
    "position_r2": "Position decodability (linear probe R², folds over images)",
    "positional_effect": "Positional effect (same-position minus different-position similarity)",
    "locality_d1": "Locality beyond position at distance 1",
    "locality_slope": "Locality decay with distance (slope)",
    "border_ami": "Boundary: AMI of cluster vs outer patch ring",
    "border_max_enrichment": "Boundary: largest cluster enrichment on the outer ring",
    "border_norm_ratio": "Boundary: token norm, outer ring / interior",
    "outlier_fraction": "High-norm outlier tokens (fraction of patches)",
    "outlier_fraction_border": "High-norm outlier tokens on the outer ring (fraction)",
    "prefix_norm_ratio": "Prefix tokens (CLS, registers): norm / mean patch norm",
    "blank_position_score": "Blank-input probe: positional structure",
    "blank_autocorrelation": "Blank-input probe: spatial autocorrelation of cluster maps",
    "shift_content_fraction": "Shift test: fraction of clusters that follow content",
    "seg_miou": "Matched mIoU vs human masks (STEGO protocol, K = classes)",
    "seg_pixel_accuracy": "Matched pixel accuracy vs human masks (K = classes)",
    "seg_miou_overcluster": "Over-clustering mIoU (K = 2 × classes, majority mapping)",
    "seg_coverage": "Fraction of labelled pixels scored (matched mIoU)",
    "knn_miou_k10": "k-NN patch probe mIoU (k = 10)",
    "pseudomask_miou": "DatUS²-style pseudo-mask mIoU (all pixels)",
    "pseudomask_coverage": "DatUS²-style pseudo-mask coverage",
    "cka_full_vs_foreground": "Linear CKA: full image vs foreground only",
    "cka_full_vs_background": "Linear CKA: full image vs background only",
    "cka_centre_vs_random_occlusion": "Linear CKA: centre-occluded vs random-occluded (control)",
}


def measure_info() -> dict[str, dict[str, str]]:
    info = {name: {"title": title, "description": ""} for name, title in MEASURE_TITLES.items()}
    for name, m in MEASURES.items():
        info.setdefault(name, {"title": name, "description": ""})["description"] = m.description
    return info


# Measures that get a highlight sentence (worded with their MEASURE_TITLES).
HIGHLIGHT_MEASURES = ("positional_ami", "position_r2", "border_ami", "shift_content_fraction", "blank_position_score")


def make_highlights(models: list[ModelResult]) -> tuple[list[Highlight], dict[str, list[Highlight]]]:
    """Sentences computed from the numbers: each model's most extreme (block, representation) per
    measure, flagged when it is the highest in the atlas. Never hand-written."""
    per_model: dict[str, list[Highlight]] = {}
    atlas_wide: list[Highlight] = []
    for measure in HIGHLIGHT_MEASURES:
        text = MEASURE_TITLES[measure]
        best = {}
        for m in models:
            rows = [r for r in m.measures if r.measure == measure and np.isfinite(r.value)]
            if rows:
                best[m.card.slug] = (max(rows, key=lambda r: (r.value, -r.block)), m)
        if not best:
            continue
        top_slug = max(best, key=lambda s: best[s][0].value)
        for slug, (row, m) in best.items():
            tag = " — random init, architecture baseline" if m.card.is_random_init else ""
            flag = ", highest in this atlas" if slug == top_slug and len(best) > 1 else ""
            sentence = f"Block {row.block} {row.representation}: {text} {row.value:.2f}{flag}{tag}."
            anchor = f"fig-measure-{slugify(measure)}"
            per_model.setdefault(slug, []).append(Highlight(text=sentence, model=slug, anchor=anchor))
            if flag:
                atlas_wide.append(Highlight(text=f"{m.card.display_name}, block {row.block} {row.representation}: "
                                                 f"{text} {row.value:.2f}, highest in this atlas{tag}.",
                                            model=slug, anchor=anchor))
    return atlas_wide, per_model


def methods_record(cfg: AtlasConfig, policy_text: str, eval_methods: dict | None) -> dict:
    c = cfg.clustering
    methods = {
        "Extraction": {
            "tokens": "output of transformer block b (the residual stream, before the final norm)",
            "queries / keys / values": "exactly the tensors the block's attention multiplies (after q/k norm and rotary "
                                       "position embedding where the model has them), heads concatenated: one vector per token",
            "prefix tokens": "CLS and register tokens are stored apart from the patch grid and used only by the prefix-norm measure",
            "layers (measures)": json.dumps(cfg.features.layers),
            "layers (gallery)": json.dumps(cfg.features.gallery_layers),
            "relative depth": "(b + 1) / depth; relative depth d selects block round(d * depth) - 1",
            "storage": "float16 feature cache; computation in fp32 on CPU, bf16 autocast on CUDA",
        },
        "Images": {"resolution policy": policy_text, "seed": str(cfg.atlas.seed)},
        "Joint clustering": {
            "algorithm": "k-means (Lloyd, k-means++ init) over the patch features of all images jointly",
            "L2-normalise before clustering": str(c.normalize),
            "K": ", ".join(map(str, c.ks)),
            "iterations": str(c.n_iter),
            "training tokens": (f"centroids fitted on a seeded uniform sample of at most {c.train_tokens_per_cluster} tokens "
                                "per cluster (K x that many), drawn from all images jointly; every token is then "
                                "assigned to its nearest centroid" if c.train_tokens_per_cluster else "every token"),
            "cluster order": "clusters sorted by size; colours aligned across blocks (deep to shallow chain), "
                             "representations (to tokens at the deepest gallery block) and models (to the first model of "
                             "a comparison) by Hungarian matching of the co-occurrence matrix",
            "K for the measures": str(cfg.analyses.k),
        },
        "Measures": {name: f"{m.description} Definition: {m.formula}." for name, m in MEASURES.items()},
        "Shift test": {"shifts (patches)": ", ".join(map(str, SHIFTS)),
                       "images": f"the first {SHIFT_IMAGES} images, cover-resized to (H, W + {max(SHIFTS)} patches); "
                                 "window s starts s patches right of window 0; both assigned to the same centroids"},
    }
    if eval_methods:
        methods["Evaluation against human masks"] = eval_methods
    return methods


# ---------------------------------------------------------------- the build


def _environment() -> dict[str, str]:
    env = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("torch", "torchvision", "timm", "numpy", "scipy", "scikit-learn", "faiss-cpu", "pillow", "plotly",
                "jinja2", "mkdocs", "mkdocs-material"):
        try:
            env[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            env[pkg] = "not installed"
    env["ssl-vit-atlas"] = __version__
    return env


def select_backbones(cfg: AtlasConfig, names: list[str] | None):
    if names:
        chosen = cfg.model_slugs(names)
        unknown = [n for n in names if not cfg.model_slugs([n])]
        if unknown:
            options = ", ".join(b.slug for b in cfg.backbones)
            raise BuildError(f"--models: unknown model {unknown[0]!r}; choose from: {options}")
        return [b for b in cfg.backbones if b.slug in chosen]
    skipped = [b for b in cfg.backbones if b.opt_in]
    for b in skipped:
        log.info("skipped %s: opt-in entry (name it with --models %s)", b.display_name, b.slug)
    return [b for b in cfg.backbones if not b.opt_in]


def build_atlas(cfg: AtlasConfig, *, models: list[str] | None = None, docs_dir: str | Path | None = None,
                progress: bool = True, build_date: str | None = None) -> AtlasResults:
    """Run everything up to the records and the rendered ``docs_dir`` (the site is built separately)."""
    t_start = time.perf_counter()
    root = cfg.project_root
    docs_dir = Path(docs_dir) if docs_dir else root / "site_src"
    state_root = cfg.resolve_path(cfg.atlas.output_dir) / "state"
    backbones = select_backbones(cfg, models)
    missing = missing_weights(backbones)
    if missing:
        by_reason: dict[str, list[str]] = {}
        for b, why in missing:
            by_reason.setdefault(why, []).append(b.slug)
        lines = "; ".join(f"{why}: {', '.join(slugs)}" for why, slugs in by_reason.items())
        raise BuildError(f"weights unavailable for {len(missing)} of {len(backbones)} model(s) — {lines}. {weights_help()}")

    images, skipped = load_images(cfg)
    cache = FeatureCache(cfg.resolve_path(cfg.atlas.cache_dir))
    cache.clean_temporaries()
    stale = cache.stale_files()
    if stale:
        size = sum(p.stat().st_size for p in stale) / 2**20
        log.warning("feature cache: %d files (%.0f MiB) of an earlier cache format are no longer read; "
                    "delete %s/*/*.npz to free the space", len(stale), size, cache.root)
    device = pick_device(cfg.features.device)
    log.info("device: %s; %d images; %d models", describe(device), len(images), len(backbones))

    from .evaluate import EvaluationRunner  # optional stage: needs a labelled dataset on disk

    evaluation = EvaluationRunner.from_config(cfg, skipped)
    eval_key = evaluation.key if evaluation else "none"

    built: dict[str, ModelResult] = {}
    labels: dict[str, dict] = {}
    model_keys: dict[str, str] = {}
    timings: dict[str, float] = {}
    for spec in tqdm(backbones, desc="models", disable=not progress):
        t0 = time.perf_counter()
        try:
            loaded = load_backbone(spec, tuple(cfg.images.resolution), seed=cfg.atlas.seed)
        except WeightsUnavailableError as exc:
            raise BuildError(f"{exc}. {weights_help()}") from None
        key = model_key(cfg, loaded, images, eval_key)
        model_keys[spec.slug] = key
        state_dir = state_root / "models" / spec.slug
        state_dir.mkdir(parents=True, exist_ok=True)
        current = _state_is_current(state_dir, key, docs_dir)
        if current is not None:
            log.info("%s: unchanged (key %s), reusing its results", spec.display_name, key)
            built[spec.slug] = _model_result_from_dict(current)
            with np.load(state_dir / "labels.npz") as z:
                labels[spec.slug] = {k: z[k] for k in z.files}
        else:
            # One BLAS thread for the numpy/sklearn analyses: on small matrices, and whenever anything
            # else runs on the machine, OpenBLAS's spinning threads cost more than they give (measured:
            # 0.45 vs 0.9 s per block and representation idle, 10x worse under load). Torch keeps its own.
            with threadpool_limits(1, user_api="blas"):
                result, lab = ModelBuilder(cfg, loaded, images, cache, device, docs_dir, progress, evaluation).run()
            _save_state(state_dir, key, result, lab)
            built[spec.slug] = result
            labels[spec.slug] = lab
        timings[f"model {spec.slug}"] = round(time.perf_counter() - t0, 2)
        del loaded
    atlas_wide, per_model = make_highlights(list(built.values()))
    for slug, m in built.items():
        m.highlights = per_model.get(slug, [])

    # comparisons: rebuilt only when one of their models (or their own settings) changed
    comparisons = []
    photo_cache: dict[str, dict[str, np.ndarray]] = {}
    # comparison pages show one K: the measures' K when it is among the gallery's, else the largest
    comp_k = cfg.analyses.k if cfg.analyses.k in cfg.clustering.ks else max(cfg.clustering.ks)
    for comp in cfg.comparisons:
        slugs = _comparison_models(cfg, comp, built)
        key = _hash({"comp": comp.model_dump(), "models": [model_keys[s] for s in slugs], "k": comp_k,
                     "layers": cfg.features.gallery_layers})
        state_dir = state_root / "comparisons" / comp.slug
        state_dir.mkdir(parents=True, exist_ok=True)
        current = _state_is_current(state_dir, key, docs_dir)
        if current is not None:
            comparisons.append(ComparisonResult(**current))
            continue
        photos = {}
        for img in images:
            photos[img.name] = {}
            for s in slugs:
                size = tuple(built[s].card.input_size)
                cache_key = f"{img.name}|{size}"
                if cache_key not in photo_cache:
                    photo_cache[cache_key] = np.asarray(ResizePolicy(*size).apply(img.load()))
                photos[img.name][s] = photo_cache[cache_key]
        res = build_comparison(cfg, comp, built, labels, docs_dir, photos, comp_k)
        if res is not None:
            _save_state(state_dir, key, res)
            comparisons.append(res)
        else:
            skipped.append(SkippedItem(f"comparison {comp.title}", "fewer than 2 of its models (or no matching "
                                                                   "blocks) in this build"))

    # thumbnails for the Images page
    infos = []
    for img in images:
        thumb = Path("generated") / "images" / f"{slugify(img.name)}.webp"
        if not (docs_dir / thumb).is_file():
            pic = img.load()
            pic.thumbnail((256, 256))
            save_webp(pic, docs_dir / thumb, quality=80)
        infos.append(img.info(thumbnail=str(thumb)))

    res = cfg.images.resolution
    policy_text = ResizePolicy(*res).describe() + (
        " The size is then rounded per model to the nearest multiple of its patch size (e.g. 224 for /16 and /14 "
        "patches), so every image of a model shares one patch grid.")
    timings["total_s"] = round(time.perf_counter() - t_start, 2)
    return AtlasResults(
        title=cfg.atlas.title, atlas_version=__version__, config_name=Path(cfg.source_path).name,
        config_text=cfg.source_text, config_hash=cfg.config_hash,
        build_date=build_date or _dt.date.today().isoformat(), seed=cfg.atlas.seed, resolution_policy=policy_text,
        environment=_environment(), device=describe(device), images=infos, skipped=skipped,
        models=[built[b.slug] for b in backbones if b.slug in built], comparisons=comparisons,
        methods=methods_record(cfg, policy_text, evaluation.methods() if evaluation else None), timings=timings,
        site_url=cfg.atlas.site_url, highlights=atlas_wide, measure_info=measure_info(),
    )
