#!/usr/bin/env python
"""Synthetic results with the zoo's shapes, rendered into a site without running any model (issue 27).

:func:`synthetic_zoo_results` builds a complete :class:`atlas.records.AtlasResults` as a build of
``configs/zoo.toml`` would store it: the config's 25 models (the opt-in 7B included, as issue 27
counts them) with the depth, heads, embed dim, patch size, prefix tokens and patch grid of timm's
meta-device models (:func:`zoo_shapes.model_shape`), at their native input size by default; and
every field a build fills: model cards; a :class:`~atlas.records.ClusterRun` and a label map per
gallery block x representation x K; PCA-RGB pictures in both recipes per gallery (block,
representation); prefix-token attention, the head mean of every image and every head of the first
:data:`~atlas.pipeline.pictures.ATTENTION_IMAGES`; the layer sweep's measure rows with intervals and
seed spreads; positional references; evaluation rows, baselines and leaderboard choices; figure
payloads (made by :mod:`atlas.pipeline.payloads`);
comparisons with their label maps; photos at every model input size and the thumbnails; the image
list. Blocks, representations and K come from the config through ``atlas.config``
(``resolve_layers``, ``block_representations``) as in :class:`atlas.pipeline.model_run.ModelRun`.

Every number and picture is random. Pictures are *spatially structured* like real maps
(``structure="smooth"``, the default) or i.i.d. per patch (``structure="iid"``, the worst case
for any compressed format):

* a *smooth field* is a coarse grid of standard-normal values, linearly interpolated to the patch
  grid, plus i.i.d. normal noise of standard deviation ``noise`` (patch-level speckle, as k-means
  maps have at region borders). ``smoothness`` is the coarse grid's spacing as a fraction of the
  patch grid's longer side: regions cover the same share of the image at every resolution, as
  objects do (a 37 x 37 grid of a photo has the segments of its 14 x 14 grid, in more patches, so
  its maps take fewer bytes per patch; ``structure="iid"`` bounds that choice);
* cluster labels: the argmax over K smooth fields (K roughly equal clusters, ragged borders);
* PCA-RGB: three smooth fields mapped to uint8 around 128; the foreground recipe blacks out the
  patches where a fourth field is negative (about half), as the DINOv2 recipe does;
* attention: per prefix token (and head) ``exp(2 x field)``, scaled so the patches carry a random
  30-95 % of the row's mass (the rest is on the prefix tokens), float16.

Calibration (``--calibrate``, :func:`calibrate`, :func:`calibrate_pictures`,
:func:`calibrate_photos`): against the stored results of the demo build (random-init models on
real photos), at the demo's grids, image count and K. The defaults (``smoothness`` 0.25, ``noise``
0.1) make label maps *less* compressible than the demo's, K by K: zlib bytes per patch of the uint8
label stack of a view (the images of one (model, block, representation, K), as one packed file
per view holds them) 0.268 against the demo's 0.203 over all K (K = 2: 0.123 vs 0.115; K = 16:
0.402 vs 0.299), with a share of equal 4-neighbour pairs close to the demo's (0.70 vs 0.73). PCA
pictures and attention maps likewise compress no better than the demo's; photos take slightly more
WebP bytes per pixel than the demo's photos.

Photos are random images with a near-1/f spectrum (:func:`synthetic_photo`), so that their WebP
and JPEG sizes are those of photos, not of flat colour; each is resized to every model input size
with the build's own :class:`~atlas.inputs.geometry.ResizePolicy`, and to a thumbnail.

:func:`render_site` renders results as ``build_atlas.py --render-only`` does
(``atlas.site.render_site`` into a docs dir, then ``mkdocs build``) and measures both folders;
:func:`project_site` projects the zoo's site from two small renders.

    .venv/bin/python bench/zoo_results.py --images 300 --out /tmp/zoo-site
    .venv/bin/python bench/zoo_results.py --models "DINO ViT-B/16,DINOv2 ViT-B/14" --images 6 --out /tmp/zoo-small
    .venv/bin/python bench/zoo_results.py --calibrate          # synthetic vs build/demo

Before a render of more than 8 images the script projects the site from two small ones, and stops
when the projection is over ``--max-files`` (a renderer with files per image; ``--force`` renders
anyway).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import math
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from atlas import __version__  # noqa: E402
from atlas.config import (  # noqa: E402
    AtlasConfig,
    block_representations,
    load_config,
    rel_depth,
    resolution_label,
    resolve_layers,
)
from atlas.records import (  # noqa: E402
    PCA_VIEWS,
    AtlasResults,
    Baseline,
    ClusterRun,
    ComparisonResult,
    DatasetCredit,
    ImageInfo,
    MeasureRow,
    ModelCard,
    ModelResult,
    SkippedItem,
    attention_key,
    map_key,
    photo_key,
    picture_key,
    run_id,
    thumbnail_key,
)

ZOO_CONFIG = REPO / "configs" / "zoo.toml"
DEMO_DIR = REPO / "build" / "demo"
#: The budget of issue 27: what static hosts accept (GitHub Pages 1 GB, Cloudflare Pages 20,000 files).
BUDGET_BYTES = 1_000_000_000
BUDGET_FILES = 20_000

#: Defaults of the smooth structure (see the module docstring); :func:`calibrate` checks them
#: against the demo's real label maps.
SMOOTHNESS = 0.25
NOISE = 0.1
STRUCTURES = ("smooth", "iid")
#: Spectral slope of the synthetic photos (see :func:`synthetic_photo`): WebP (quality 80) takes
#: 0.17 bytes per pixel at 224 x 224, the demo's real photos 0.165.
PHOTO_SLOPE = 0.35

#: Classes of the zoo's evaluation dataset (CamVid, 11 classes): the K of its segmentation rows.
EVAL_CLASSES = 11
BUILD_DATE = "2025-01-01"  # fixed: the same seed gives the same results, and the same site

# ---------------------------------------------------------------------------------------------- fields


def _rng(seed: int, *parts: Any) -> np.random.Generator:
    """A generator of its own for every (seed, what): results do not depend on which models are
    chosen, nor in which order they are made."""
    h = zlib.crc32("/".join(str(p) for p in parts).encode())
    return np.random.default_rng([int(seed), h])


def _interp(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) weights of linear interpolation from ``n_in`` evenly spaced nodes."""
    m = np.zeros((n_out, n_in), np.float32)
    if n_in == 1:
        m[:, 0] = 1
        return m
    x = np.linspace(0.0, n_in - 1.0, n_out)
    i0 = np.minimum(np.floor(x).astype(int), n_in - 2)
    t = (x - i0).astype(np.float32)
    m[np.arange(n_out), i0] = 1 - t
    m[np.arange(n_out), i0 + 1] = t
    return m


def smooth_fields(rng: np.random.Generator, n: int, channels: int, grid: tuple[int, int],
                  smoothness: float = SMOOTHNESS, noise: float = NOISE) -> np.ndarray:
    """(n, channels, h, w) float32 random fields: coarse standard-normal nodes spaced ``smoothness``
    x the grid's longer side apart, linearly interpolated to the grid, plus i.i.d. noise of
    standard deviation ``noise``."""
    h, w = grid
    spacing = max(smoothness * max(h, w), 1e-9)
    nh, nw = (min(n_out, max(2, math.ceil(n_out / spacing) + 1)) for n_out in (h, w))
    coarse = rng.standard_normal((n, channels, nh, nw), dtype=np.float32)
    out = np.einsum("hi,ncij,wj->nchw", _interp(h, nh), coarse, _interp(w, nw), optimize=True)
    if noise:
        out += noise * rng.standard_normal(out.shape, dtype=np.float32)
    return out


def synthetic_labels(rng: np.random.Generator, n: int, k: int, grid: tuple[int, int], structure: str = "smooth",
                     smoothness: float = SMOOTHNESS, noise: float = NOISE) -> np.ndarray:
    """(n, h, w) int16 cluster ids in ``0 .. k - 1``: the argmax over ``k`` smooth fields, or
    i.i.d. uniform (``structure="iid"``)."""
    if structure == "iid":
        return rng.integers(0, k, (n, *grid)).astype(np.int16)
    out = np.empty((n, *grid), np.int16)
    step = max(1, 4_000_000 // max(1, k * grid[0] * grid[1]))  # bounded memory at any size
    for s in range(0, n, step):
        m = min(step, n - s)
        out[s:s + m] = smooth_fields(rng, m, k, grid, smoothness, noise).argmax(axis=1)
    return out


def synthetic_pca(rng: np.random.Generator, n: int, grid: tuple[int, int], view: str, structure: str = "smooth",
                  smoothness: float = SMOOTHNESS, noise: float = NOISE) -> np.ndarray:
    """(n, h, w, 3) uint8 PCA-RGB picture stack; ``view="pca-fg"`` blacks out a background."""
    if structure == "iid":
        rgb = rng.integers(0, 256, (n, *grid, 3), dtype=np.uint8)
        fg = rng.random((n, *grid)) < 0.5
    else:
        f = smooth_fields(rng, n, 4, grid, smoothness, noise)
        rgb = np.clip(128 + 80 * f[:, :3], 0, 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
        fg = f[:, 3] > 0
    if view == "pca-fg":
        rgb = rgb.copy()
        rgb[~fg] = 0
    return np.ascontiguousarray(rgb)


def synthetic_attention(rng: np.random.Generator, shape: tuple[int, ...], grid: tuple[int, int],
                        structure: str = "smooth", smoothness: float = SMOOTHNESS, noise: float = NOISE) -> np.ndarray:
    """float16 attention mass per patch, ``shape + grid``: each map sums to a random 0.3-0.95 (the
    rest of its row is on the prefix tokens)."""
    count = int(np.prod(shape))
    if structure == "iid":
        mass = rng.exponential(size=(count, *grid)).astype(np.float32)
    else:
        mass = np.exp(2.0 * smooth_fields(rng, count, 1, grid, smoothness, noise)[:, 0])
    mass *= rng.uniform(0.3, 0.95, (count, 1, 1)).astype(np.float32) / mass.sum(axis=(1, 2), keepdims=True)
    return mass.reshape(*shape, *grid).astype(np.float16)


def synthetic_photo(rng: np.random.Generator, size: tuple[int, int], slope: float = PHOTO_SLOPE):
    """A random RGB photo (PIL image, ``size = (H, W)``): octaves of random noise, each upsampled
    (bicubic) to the size, the octave of ``c`` cells weighted ``c ** -slope`` (natural images:
    about 1/f). :func:`calibrate_photos` compares its WebP size with the demo's photos."""
    from PIL import Image

    h, w = size
    acc = np.zeros((h, w, 3), np.float32)
    cells = 2
    while cells <= max(h, w):
        ch, cw = max(1, round(cells * h / max(h, w))), max(1, round(cells * w / max(h, w)))
        small = rng.standard_normal((ch, cw, 3), dtype=np.float32)
        for c in range(3):
            acc[..., c] += cells ** -slope * np.asarray(Image.fromarray(small[..., c], mode="F").resize((w, h),
                                                                                                      Image.BICUBIC))
        cells *= 2
    acc = (acc - acc.mean()) / (acc.std() + 1e-6)
    tint = rng.uniform(70, 180, 3).astype(np.float32)
    return Image.fromarray(np.clip(tint + 55 * acc, 0, 255).astype(np.uint8))


# ---------------------------------------------------------------------------------------------- models


@functools.lru_cache(maxsize=None)
def _meta_facts(config: str, slug: str, size: tuple[int, int] | None) -> tuple[Any, dict]:
    """(:class:`zoo_shapes.Shape`, card facts) of one model: one meta-device build (cached)."""
    import timm
    import torch
    from zoo_shapes import model_shape

    from atlas.features.backbones import _pos_encoding

    cfg = _config(config)
    spec = next(b for b in cfg.backbones if b.slug == slug)
    shape = model_shape(spec, cfg.features, size)
    with torch.device("meta"):  # the model of the shape, for what a card says beyond it
        model = timm.create_model(spec.timm_name, pretrained=False, num_classes=0, img_size=shape.input_size,
                                  **spec.overrides)
    has_cls = getattr(model, "cls_token", None) is not None
    pcfg = model.pretrained_cfg
    layer_scale = any(name.endswith((".ls1.gamma", ".ls2.gamma", ".gamma_1", ".gamma_2"))
                      for name, _ in model.named_parameters())
    facts = {"has_cls": has_cls,
             "num_registers": int(getattr(model, "num_reg_tokens", shape.prefix_tokens - int(has_cls))),
             "pos_encoding": _pos_encoding(model),
             "layer_scale": 0.1 if layer_scale else None,  # no weights on the meta device: a placeholder
             "mean": [float(x) for x in pcfg.get("mean", (0.485, 0.456, 0.406))],
             "std": [float(x) for x in pcfg.get("std", (0.229, 0.224, 0.225))]}
    return shape, facts


@functools.lru_cache(maxsize=4)
def _config(path: str) -> AtlasConfig:
    return load_config(path)


def zoo_shape(spec, size: tuple[int, int] | None, config: str | Path = ZOO_CONFIG):
    """The :class:`zoo_shapes.Shape` of ``spec`` (a backbone of ``config``) at ``size`` (None: native)."""
    return _meta_facts(str(config), spec.slug, size)[0]


def _card(spec, shape, facts: dict) -> ModelCard:
    return ModelCard(
        slug=spec.slug, display_name=spec.display_name, timm_name=spec.timm_name, family=spec.family,
        training=spec.training, group=spec.group, params=shape.params, patch_size=shape.patch_size,
        embed_dim=shape.embed_dim, depth=shape.depth, num_heads=shape.num_heads,
        num_prefix_tokens=shape.prefix_tokens, num_registers=facts["num_registers"], has_cls=facts["has_cls"],
        pos_encoding=facts["pos_encoding"], mean=facts["mean"], std=facts["std"], input_size=list(shape.input_size),
        pretrained_input_size=list(shape.native_size), weights_source=spec.weights,
        provenance=f"hf-hub timm/{spec.timm_name} @ synthetic (no weights: synthetic results)",
        is_random_init=spec.is_random_init, layer_scale=facts["layer_scale"], precision="fp32")


def _span(value_range) -> tuple[float, float]:
    lo, hi = value_range
    if lo is not None and hi is not None:
        return (lo, hi) if hi - lo <= 1.5 else (lo / 2, hi / 2)
    if lo is None and hi is not None:
        return hi - 1.1, hi
    if lo is not None:
        return lo, lo + 3.0
    return -1.0, 1.0


def _row_value(rng, measure, phase: float, d: float, with_interval: bool = True) -> dict:
    """A value (and an interval) of ``measure`` at relative depth ``d``: a smooth curve over depth."""
    from atlas.measures.registry import REGISTRY

    m = REGISTRY[measure]
    a, b = _span(m.value_range)
    v = a + (b - a) * (0.5 + 0.35 * math.sin(phase + 3.0 * d) + 0.05 * rng.standard_normal())
    lo_b, hi_b = m.value_range
    clip = lambda x: min(hi_b if hi_b is not None else x, max(lo_b if lo_b is not None else x, x))  # noqa: E731
    v = clip(v)
    out = {"value": round(float(v), 6)}
    if with_interval:
        half = (b - a) * rng.uniform(0.01, 0.06)
        out.update(lo=round(float(clip(v - half)), 6), hi=round(float(clip(v + half)), 6))
    return out


def _measures(rng, card: ModelCard, sweep: list[int], gallery: list[int], reps: list[str], k_measures: int,
              evaluation: bool) -> tuple[list[MeasureRow], list[MeasureRow], list[Baseline], dict]:
    """Measure rows, positional references, baselines and leaderboard choices, shaped as a build's."""
    from atlas.measures.registry import REGISTRY
    from atlas.pipeline.evaluation_baselines import BASELINES
    from atlas.pipeline.model_run import REFERENCES
    from atlas.pipeline.pictures import ATTENTION_INPUTS

    depth, prefix = card.depth, card.num_prefix_tokens
    phase = {name: rng.uniform(0, 2 * math.pi) for name in REGISTRY}
    rows, refs = [], []
    positional = [n for n, m in REGISTRY.items() if m.section == "positional" and m.inputs != "attention"
                  and (m.inputs != "prefix" or prefix)]
    for b, r in block_representations(sweep, reps, depth):
        d = rel_depth(b, depth)
        for name in positional:
            k = k_measures if REGISTRY[name].depends_on_k else None
            rows.append(MeasureRow(block=b, rel_depth=d, representation=r, measure=name, k=k,
                                   seed_spread=round(float(rng.uniform(0, 0.02)), 6) if k else None,
                                   **_row_value(rng, name, phase[name] + 0.3 * reps.index(r), d)))
        for ref in REFERENCES:
            for name in positional:
                if REGISTRY[name].inputs in ("labels", "labels+features", "features"):
                    k = k_measures if REGISTRY[name].depends_on_k else None
                    refs.append(MeasureRow(block=b, rel_depth=d, representation=r, measure=name, k=k, reference=ref,
                                           **_row_value(rng, name, phase[name] + len(ref), d, False)))
    if prefix and all(x in reps for x in ATTENTION_INPUTS):
        for b in sweep:
            for name in (n for n, m in REGISTRY.items() if m.inputs == "attention"):
                rows.append(MeasureRow(block=b, rel_depth=rel_depth(b, depth), representation="attention",
                                       measure=name, **_row_value(rng, name, phase[name], rel_depth(b, depth))))
    baselines, selected = [], {}
    if not evaluation:
        return rows, refs, baselines, selected
    last = gallery[-1]
    seg = {"seg_miou": EVAL_CLASSES, "seg_pixel_accuracy": EVAL_CLASSES, "seg_coverage": EVAL_CLASSES,
           "seg_miou_overcluster": 2 * EVAL_CLASSES}
    choice: dict[str, dict] = defaultdict(dict)
    for b, r in block_representations(gallery, reps, depth):
        d = rel_depth(b, depth)
        names = dict(seg)
        if r in ("tokens", "tokens_normed"):
            names["knn_miou_k10"] = None
        for name, k in names.items():
            row = MeasureRow(block=b, rel_depth=d, representation=r, measure=name, k=k,
                             seed_spread=round(float(rng.uniform(0, 0.02)), 6),
                             **_row_value(rng, name, phase[name] + 0.3 * reps.index(r), d))
            rows.append(row)
            choice[name][(b, r, k)] = row.value + 0.02 * rng.standard_normal()
    if "keys" in reps and "tokens" in reps:
        for name in ("pseudomask_miou", "pseudomask_coverage"):
            rows.append(MeasureRow(block=last, rel_depth=rel_depth(last, depth), representation="keys", measure=name,
                                   k=EVAL_CLASSES, **_row_value(rng, name, phase[name], 1.0)))
        selected["pseudomask_miou"] = {"block": last, "representation": "keys", "k": EVAL_CLASSES,
                                       "fixed_by_method": True}
    if "tokens" in reps:
        for name in ("cka_full_vs_foreground", "cka_full_vs_background", "cka_centre_vs_random_occlusion"):
            rows.append(MeasureRow(block=last, rel_depth=rel_depth(last, depth), representation="tokens",
                                   measure=name, **_row_value(rng, name, phase[name], 1.0)))
    for name, m in REGISTRY.items():
        by = m.selected_by or name
        if not m.ranked or by not in choice or name not in choice:
            continue
        cands = {key: v for key, v in choice[by].items() if key in choice[name]}
        (b, r, k), value = max(cands.items(), key=lambda kv: (kv[1], -kv[0][0]))
        selected[name] = {"block": b, "representation": r, "k": k, "selection_value": float(value),
                          "selected_by": by, "selection_images": 12}
    names_for = {"seg_miou": BASELINES, "seg_pixel_accuracy": BASELINES, "seg_miou_overcluster": BASELINES,
                 "knn_miou_k10": ("chance", "colour", "position", "colour + position"),
                 "pseudomask_miou": ("chance", "colour", "position", "colour + position", "ceiling"),
                 "cka_full_vs_foreground": ("colour",), "cka_full_vs_background": ("colour",),
                 "cka_centre_vs_random_occlusion": ("colour",)}
    variants = {"colour": ("rgb", "lab"), "colour + position": ("rgb+plain", "lab+plain", "rgb+normalised",
                                                                 "lab+normalised")}
    for measure, names in sorted(names_for.items()):
        for name in names:
            v = _row_value(rng, measure, phase[measure] + BASELINES.index(name), 0.3)
            v["value"] = round(v["value"] * (1.6 if name == "ceiling" else 0.5), 6)
            v["lo"], v["hi"] = min(v["lo"], v["value"]), max(v["hi"], v["value"])
            var = str(rng.choice(variants[name])) if name in variants else ""
            baselines.append(Baseline(measure=measure, name=name, variant=var,
                                      seed_spread=round(float(rng.uniform(0, 0.01)), 6), **v))
    return rows, refs, baselines, selected


def _figures(rng, card: ModelCard, grid: tuple[int, int], gallery: list[int], reps: list[str], k_measures: int,
             image_names: list[str], evaluation: bool, structure: str, smoothness: float, noise: float) -> dict:
    """The figure payloads a build adds (``atlas.pipeline.payloads`` and the evaluation's), from
    random inputs of the right shapes."""
    from atlas.measures.knn import CONTROLS
    from atlas.pipeline import payloads
    from atlas.pipeline.evaluation_run import KNN_KS, REMOVAL_MS, VARIANTS
    from atlas.pipeline.inputs import SHIFTS

    figures: dict[str, list] = {"heatmaps": [], "curves": []}
    last = gallery[-1]
    lab = lambda n: synthetic_labels(rng, n, k_measures, grid, structure, smoothness, noise)  # noqa: E731
    field = lambda: smooth_fields(rng, 1, 1, grid, smoothness, noise)[0, 0]  # noqa: E731
    for r in ("tokens", "keys"):
        if r not in reps:
            continue
        dom = lab(1)[0]
        results = {"positional_clustering": {"dominant_freq": 1 / (1 + np.exp(-field())), "dominant": dom},
                   "boundary_artifacts": {"norm_map": 40 + 5 * field(),
                                          "outlier_count_map": rng.poisson(0.5, grid)}}
        figures["heatmaps"] += payloads.measure_maps(results, last, r, k_measures)
        dist = np.arange(1, max(grid))
        within = np.exp(-dist / 4) * 0.6 + 0.1
        figures["curves"].append(payloads.locality_curve(
            {"distances": dist, "within": within, "across": within * 0.7, "beyond": within * 0.3}, last, r))
        probes = ["constant-black", "constant-white", "constant-grey"]
        figures["heatmaps"] += payloads.blank_maps(lab(3), probes, last, r, k_measures)
        shifts = {"shifts": list(SHIFTS), "content": list(rng.uniform(0.3, 0.9, len(SHIFTS))),
                  "position": list(rng.uniform(0.1, 0.6, len(SHIFTS))),
                  "content_fraction_adjusted": list(rng.uniform(0.2, 0.8, len(SHIFTS)))}
        # below both agreements, and no draw of its own (the generator's stream stays as calibrated)
        shifts["self_agreement"] = [0.8 * min(c, p) for c, p in zip(shifts["content"], shifts["position"])]
        if r == "tokens":
            names = image_names[:2]
            figures["heatmaps"] += payloads.shift_pair_maps(lab(len(names)), lab(len(names)), names, 2, last, r,
                                                            k_measures)
        figures["curves"].append(payloads.shift_curve(shifts, last, r))
    if evaluation and "tokens" in reps:
        knn = dict(zip(KNN_KS, np.sort(rng.uniform(0.2, 0.5, len(KNN_KS)))))
        figures["curves"].append(payloads.knn_curve(knn, KNN_KS, last))
        figures["curves"].append(payloads.variance_curve(np.sort(rng.exponential(1.0, card.embed_dim))[::-1], last))
        ms = [m for m in REMOVAL_MS if m < card.embed_dim]
        removal = {c: {m: {10: v} for m, v in zip(ms, rng.uniform(0.1, 0.5, len(ms)))} for c in CONTROLS}
        figures["curves"].append(payloads.removal_curve(removal, 10, last))
        for metric in ("linear_cka", "debiased_cka", "svcca"):
            mat = rng.uniform(0.3, 1.0, (len(VARIANTS), len(VARIANTS)))
            mat = np.round((mat + mat.T) / 2, 4)
            np.fill_diagonal(mat, 1.0)
            figures["heatmaps"].append(payloads.masking_matrix(metric, mat, list(VARIANTS), last))
    return figures


def synthetic_model(cfg: AtlasConfig, spec, size: tuple[int, int] | None, n_images: int, image_names: list[str],
                    seed: int = 0, structure: str = "smooth", smoothness: float = SMOOTHNESS, noise: float = NOISE,
                    evaluation: bool = True, config: str | Path = ZOO_CONFIG) -> ModelResult:
    """One model's :class:`ModelResult`, with the fields :meth:`ModelRun.run` fills."""
    from atlas.pipeline.pictures import ATTENTION_IMAGES, ATTENTION_INPUTS

    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {STRUCTURES}, got {structure!r}")
    shape, facts = _meta_facts(str(config), spec.slug, size)
    card = _card(spec, shape, facts)
    depth, grid = card.depth, tuple(shape.grid)
    sweep = resolve_layers(cfg.features.layers, depth)
    gallery = resolve_layers(cfg.features.gallery_layers, depth)
    reps = list(cfg.features.representations)
    ks = sorted(set(cfg.clustering.ks))
    opts = {"structure": structure, "smoothness": smoothness, "noise": noise}
    runs, label_maps, pictures = [], {}, {}
    for b, r in block_representations(gallery, reps, depth):
        for k in ks:
            key = map_key(b, r, k)
            labels = synthetic_labels(_rng(seed, spec.slug, key), n_images, k, grid, **opts)
            label_maps[key] = labels
            runs.append(ClusterRun(block=b, rel_depth=rel_depth(b, depth), representation=r, k=k,
                                   sizes=[int(x) for x in np.bincount(labels.ravel(), minlength=k)],
                                   inertia=round(float(_rng(seed, spec.slug, key, "inertia").uniform(1e3, 1e5)), 3)))
        for view in PCA_VIEWS:
            key = picture_key(b, r, view)
            pictures[key] = synthetic_pca(_rng(seed, spec.slug, key), n_images, grid, view, **opts)
    prefix = card.num_prefix_tokens
    if prefix and all(x in reps for x in ATTENTION_INPUTS):
        for b in gallery:
            heads = min(ATTENTION_IMAGES, n_images)
            per_head = synthetic_attention(_rng(seed, spec.slug, b, "heads"), (heads, prefix, card.num_heads), grid,
                                           **opts)
            rest = synthetic_attention(_rng(seed, spec.slug, b, "mean"), (n_images - heads, prefix), grid, **opts)
            mean = np.concatenate([per_head.astype(np.float32).mean(axis=2).astype(np.float16), rest])
            pictures[attention_key(b, "mean")] = mean
            pictures[attention_key(b, "heads")] = per_head
    rng = _rng(seed, spec.slug, "numbers")
    measures, references, baselines, selected = _measures(rng, card, sweep, gallery, reps, cfg.analyses.k, evaluation)
    figures = _figures(_rng(seed, spec.slug, "figures"), card, grid, gallery, reps, cfg.analyses.k, image_names,
                       evaluation, **opts)
    pairs = len(block_representations(sorted({*sweep, *gallery}), reps, depth))
    feature_bytes = 2 * n_images * shape.tokens * card.embed_dim * pairs
    return ModelResult(
        card=card, blocks=gallery, representations=reps, ks=ks, runs=runs, measures=measures, figures=figures,
        timings={"extract_s": round(card.params / 1e7, 2), "cluster_analyse_s": round(pairs * 1.5, 2),
                 **({"evaluation_s": 60.0} if evaluation else {})},
        references=references, baselines=baselines, selected=selected,
        passes={"passes": 1, "pairs": pairs, "feature_bytes": feature_bytes, "max_pair_bytes": feature_bytes // pairs,
                "budget_bytes": None, "cache": False, "kept_bytes": feature_bytes, "on_demand": 0},
        label_maps=label_maps, pictures=pictures)


def synthetic_comparison(cfg: AtlasConfig, comp, built: dict[str, ModelResult], k: int) -> ComparisonResult | None:
    """A comparison as :func:`atlas.pipeline.comparisons.build_comparison` makes it (the same
    panels, columns and label-map keys), its columns' colours left unaligned: the build aligns them
    on the least common grid of the columns, which at native resolution is 4144 x 4144 for the
    zoo's "Contrastive vs masked-image modelling" (grids 14, 16 and 37: about 41 GB of int64 for 300
    images), and random labels have nothing to align. A representations comparison (no
    resampling) is the build's own."""
    from atlas.pipeline.comparisons import build_comparison, comparison_models

    if comp.kind == "representations":
        return build_comparison(cfg, comp, built, k)
    slugs = comparison_models(cfg, comp, built)
    if len(slugs) < 2:
        return None
    rep, fracs = comp.representation, cfg.features.gallery_layers
    if isinstance(fracs, list) and all(isinstance(x, float) for x in fracs):
        depths = list(fracs)
    else:
        depths = sorted({r.rel_depth for s in slugs for r in built[s].runs})
    panels, label_maps = [], {}
    for d in depths:
        cols = []
        for s in slugs:
            m = built[s]
            b = resolve_layers([float(d)], m.card.depth)[0]
            if map_key(b, rep, k) in m.label_maps:
                key = f"d{int(round(d * 100)):03d}-{s}"
                label_maps[key] = m.label_maps[map_key(b, rep, k)]
                cols.append({"model": s, "representation": rep, "block": b, "maps": key})
        if len(cols) >= 2:
            panels.append({"rel_depth": float(d), "representation": rep, "columns": cols})
    return ComparisonResult(slug=comp.slug, title=comp.title, kind=comp.kind, description=comp.description,
                            models=slugs, rel_depths=[p["rel_depth"] for p in panels], representations=[rep], k=k,
                            panels=panels, label_maps=label_maps)


def _select(cfg: AtlasConfig, models) -> list:
    """None: every entry, opt-in included (the zoo's 25, as issue 27 counts them; a build without
    ``--models`` leaves the opt-in 7B out); a count: the first entries; else slugs or names."""
    if models is None:
        return list(cfg.backbones)
    if isinstance(models, int):
        return list(cfg.backbones)[:models]
    return cfg.select_backbones(list(models))


def _size(resolution) -> tuple[int, int] | None:
    if resolution in (None, "native"):
        return None
    if isinstance(resolution, int):
        return (resolution, resolution)
    return (int(resolution[0]), int(resolution[1]))


def synthetic_images(n_images: int, sizes: Iterable[tuple[int, int]], seed: int = 0
                     ) -> tuple[list[ImageInfo], dict[str, np.ndarray]]:
    """``n_images`` synthetic photos: their :class:`ImageInfo` and ``AtlasResults.photos`` (each at
    every size of ``sizes`` as the build resizes it, and the thumbnail)."""
    from atlas.inputs.geometry import ResizePolicy
    from atlas.pipeline.inputs import THUMBNAIL_SIZE

    originals = [(480, 640), (640, 480), (512, 512), (600, 800), (427, 640)]
    images, photos = [], {}
    for i in range(n_images):
        rng = _rng(seed, "photo", i)
        pic = synthetic_photo(rng, originals[i % len(originals)])
        digest = hashlib.sha256(pic.tobytes()).hexdigest()
        images.append(ImageInfo(name=f"synthetic-{i:03d}", source=f"synthetic://zoo/photo-{i:03d}", licence="CC0-1.0",
                                credit="synthetic 1/f noise image (bench/zoo_results.py)", content_hash=digest,
                                width=pic.width, height=pic.height))
        for size in sorted(set(sizes)):
            photos[photo_key(digest, size)] = np.asarray(ResizePolicy(*size).apply(pic))
        thumb = pic.copy()
        thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        photos[thumbnail_key(digest)] = np.asarray(thumb)
    return images, photos


def synthetic_zoo_results(n_images: int = 300, resolution: str | int | tuple[int, int] = "native", seed: int = 0,
                          models: int | Iterable[str] | None = None, *, config: str | Path = ZOO_CONFIG,
                          structure: str = "smooth", smoothness: float = SMOOTHNESS, noise: float = NOISE,
                          evaluation: bool = True) -> AtlasResults:
    """A complete :class:`AtlasResults` of ``config`` (default ``configs/zoo.toml``) as a build would
    store it, every value random (see the module docstring), no model run.

    ``resolution``: ``"native"`` (every model at its pretrained input size), a side in pixels,
    ``(H, W)``, or ``"axis"``: every size of the config's ``[images] resolutions`` as the build
    resolves them per model (the first in ``models``, the others in ``resolution_runs``).
    ``models``: None (every entry of the config, opt-in included: the zoo's 25), a count (the first
    entries) or slugs / display names. ``structure``: ``"smooth"`` (spatially structured pictures,
    ``smoothness`` and ``noise`` as :func:`smooth_fields`) or ``"iid"`` (every patch independent).
    ``evaluation``: include the evaluation's rows, baselines and figures (the zoo evaluates on
    CamVid). The same arguments give the same results."""
    from atlas.measures.registry import measure_info
    from atlas.pipeline.comparisons import comparison_k, comparison_models
    from atlas.pipeline.methods import methods_record

    if n_images < 2:
        raise ValueError("a build needs at least 2 images")
    cfg = _config(str(config))
    axis = resolution == "axis"
    size = None if axis else _size(resolution)
    specs = _select(cfg, models)
    skipped = []
    plan = {s.slug: _axis_runs(cfg, s, config, skipped) if axis else [(None, size)] for s in specs}
    sizes = {tuple(_meta_facts(str(config), s.slug, at)[0].input_size) for s in specs for _, at in plan[s.slug]}
    images, photos = synthetic_images(n_images, sizes, seed)
    names = [img.name for img in images]
    built, other_sizes = {}, []
    for s in specs:
        for run, at in plan[s.slug]:
            m = synthetic_model(cfg, s, at, n_images, names, seed, structure, smoothness, noise, evaluation, config)
            if run is not None:  # what load_backbone and the build record of a size of the axis
                native = tuple(m.card.pretrained_input_size)
                resampled = "learned absolute" in m.card.pos_encoding and tuple(m.card.input_size) != native
                m.card = dataclasses.replace(
                    m.card, resolution=run.label, requested_size=list(run.requested),
                    position_grid_from=[x // m.card.patch_size for x in native] if resampled else None)
            if run is None or run.main:
                built[s.slug] = m
            else:
                other_sizes.append(m)
    skipped += [SkippedItem(f"model {b.display_name}", "not chosen (synthetic zoo)")
                for b in cfg.backbones if b.slug not in built]
    comparisons = []
    k = comparison_k(cfg)
    for comp in cfg.comparisons:
        res = synthetic_comparison(cfg, comp, built, k) if comparison_models(cfg, comp, built) else None
        if res is None:
            skipped.append(SkippedItem(f"comparison {comp.title}",
                                       "fewer than 2 of its models (or no matching blocks) in this build"))
            continue
        comparisons.append(res)
    methods = methods_record(cfg, None)
    if not axis:  # the size this synthetic build ran at, not the config's axis
        methods["images"]["resolutions"] = ["native" if size is None else list(size)]
    stored = {run_id(m.card.slug, m.card.input_size, main):
              int(sum(a.nbytes for a in (*m.label_maps.values(), *m.pictures.values())))
              for main, ms in ((True, built.values()), (False, other_sizes)) for m in ms}
    return AtlasResults(
        title=cfg.atlas.title, atlas_version=__version__, config_name=Path(cfg.source_path).name,
        config_text=cfg.source_text, config_hash=cfg.config_hash, build_date=BUILD_DATE, seed=seed,
        environment={"python": sys.version.split()[0],
                     "note": "synthetic results (bench/zoo_results.py): no model ran"},
        device="none (synthetic results)", images=images, skipped=skipped, models=list(built.values()),
        comparisons=comparisons, methods=methods,
        timings={**{f"model {s}": m.timings["extract_s"] for s, m in built.items()}, "total_s": 0.0},
        site_url="", description=cfg.atlas.description, interval_level=cfg.uncertainty.level,
        datasets=[DatasetCredit(name="CamVid", kind="camvid", images=701, licence="see the dataset",
                                credit="Brostow et al. (synthetic entry)")] if evaluation else [],
        overview_image=cfg.atlas.overview_image, measure_info=measure_info(), stored_bytes=stored, reused_models=[],
        photos=photos, resolution_runs=other_sizes,
        resolutions=[resolution_label(e) for e in cfg.images.requested_resolutions()] if axis else [])


def _axis_runs(cfg: AtlasConfig, spec, config, skipped: list) -> list[tuple[Any, tuple[int, int]]]:
    """The sizes of the config's resolution axis one model runs at, as the build resolves them
    (:func:`atlas.pipeline.resolutions.model_resolutions`); what it skips goes to ``skipped``."""
    from atlas.pipeline.resolutions import model_resolutions

    shape = _meta_facts(str(config), spec.slug, None)[0]
    runs, skips = model_resolutions(cfg.images.requested_resolutions(), spec.display_name, spec.slug,
                                    patch=shape.patch_size, native=tuple(shape.native_size))
    skipped += skips
    return [(run, run.size) for run in runs]


# ---------------------------------------------------------------------------------------------- calibration


def label_map_stats(maps: Iterable[np.ndarray]) -> dict[str, float]:
    """Compressibility of label map stacks (each (N, h, w), one view): zlib (level 9) bytes per
    patch of each stack as uint8, over all stacks, and the share of 4-neighbour pairs with equal
    labels. Higher bytes per patch = less compressible."""
    compressed = patches = equal = pairs = 0
    for m in maps:
        m = np.asarray(m)
        compressed += len(zlib.compress(np.ascontiguousarray(m.astype(np.uint8)).tobytes(), 9))
        patches += m.size
        equal += int((m[:, 1:, :] == m[:, :-1, :]).sum() + (m[:, :, 1:] == m[:, :, :-1]).sum())
        pairs += m[:, 1:, :].size + m[:, :, 1:].size
    return {"bytes_per_patch": compressed / max(1, patches), "equal_neighbours": equal / max(1, pairs),
            "patches": patches}


def load_demo(demo_dir: str | Path = DEMO_DIR) -> AtlasResults:
    """The stored results of a demo build (``<output_dir>/state``), read from a copy (reading never
    touches the build's own folder)."""
    from atlas.pipeline.state import StateStore

    state = Path(demo_dir) / "state"
    if not (state / "atlas.json").is_file():
        raise FileNotFoundError(f"no stored demo results in {state} (make demo)")
    with tempfile.TemporaryDirectory(prefix="zoo-calibrate-") as tmp:
        shutil.copytree(state, Path(tmp) / "state")
        return StateStore(Path(tmp) / "state").load_atlas()


def calibrate(demo_dir: str | Path = DEMO_DIR, smoothness: float = SMOOTHNESS, noise: float = NOISE,
              structure: str = "smooth", seed: int = 0) -> list[dict[str, Any]]:
    """Label maps of the demo against synthetic ones of the same models' grids, image count and
    K: one row per K (and one for all K) with ``demo`` and ``synthetic`` :func:`label_map_stats`."""
    demo = load_demo(demo_dir)
    by_k: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))
    for m in demo.models:
        for run in m.runs:
            key = map_key(run.block, run.representation, run.k)
            real = m.label_maps[key]
            fake = synthetic_labels(_rng(seed, "calibrate", m.card.slug, key), real.shape[0], run.k,
                                    tuple(real.shape[1:]), structure, smoothness, noise)
            by_k[run.k][0].append(real)
            by_k[run.k][1].append(fake)
    rows = [{"k": k, "demo": label_map_stats(real), "synthetic": label_map_stats(fake)}
            for k, (real, fake) in sorted(by_k.items())]
    rows.append({"k": "all", "demo": label_map_stats(m for _, (r, _) in sorted(by_k.items()) for m in r),
                 "synthetic": label_map_stats(m for _, (_, f) in sorted(by_k.items()) for m in f)})
    return rows


def calibrate_pictures(demo_dir: str | Path = DEMO_DIR, smoothness: float = SMOOTHNESS, noise: float = NOISE,
                       structure: str = "smooth", seed: int = 0) -> list[dict[str, Any]]:
    """zlib (level 9) bytes per patch of the demo's picture stacks and of synthetic ones of the same
    shapes: rows ``{"kind", "demo", "synthetic"}`` for ``pca``, ``pca-fg`` (uint8 RGB),
    ``attention-mean`` (float16 as stored) and ``attention-mean uint8`` (each map scaled to its
    maximum and quantised to 0..255)."""
    demo = load_demo(demo_dir)
    opts = {"structure": structure, "smoothness": smoothness, "noise": noise}
    quantised = lambda a: np.round(255 * a.astype(np.float32) / np.maximum(  # noqa: E731
        a.astype(np.float32).max(axis=(-2, -1), keepdims=True), 1e-12)).astype(np.uint8)
    stacks: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for m in demo.models:
        for key, real in m.pictures.items():
            rng = _rng(seed, "calibrate", m.card.slug, key)
            if key.endswith(PCA_VIEWS):
                view = "pca-fg" if key.endswith("pca-fg") else "pca"
                stacks[view][0].append(real)
                stacks[view][1].append(synthetic_pca(rng, real.shape[0], tuple(real.shape[1:3]), view, **opts))
            elif key.endswith("attention-mean"):
                fake = synthetic_attention(rng, real.shape[:2], tuple(real.shape[2:]), **opts)
                stacks["attention-mean"][0].append(real)
                stacks["attention-mean"][1].append(fake)
                stacks["attention-mean uint8"][0].append(quantised(real))
                stacks["attention-mean uint8"][1].append(quantised(fake))

    def per_patch(arrays: list[np.ndarray], rgb: bool) -> float:
        size = sum(len(zlib.compress(np.ascontiguousarray(a).tobytes(), 9)) for a in arrays)
        return size / max(1, sum(a.size // (3 if rgb else 1) for a in arrays))

    return [{"kind": kind, "demo": per_patch(real, kind.startswith("pca")),
             "synthetic": per_patch(fake, kind.startswith("pca"))} for kind, (real, fake) in stacks.items()]


def _webp_bytes(rgb: np.ndarray, quality: int = 80) -> int:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="WEBP", quality=quality, method=4)
    return len(buf.getvalue())


def calibrate_photos(demo_dir: str | Path = DEMO_DIR, seed: int = 0) -> list[dict[str, Any]]:
    """WebP (quality 80) bytes per pixel of the demo's photos and of as many synthetic ones, per
    stored size (``"224x224"``, ``"thumb"``, ...): rows ``{"size", "demo", "synthetic"}`` (medians)."""
    demo = load_demo(demo_dir)
    sizes = sorted({tuple(m.card.input_size) for m in demo.models})
    _, fake = synthetic_images(len(demo.images), sizes, seed)
    rows = []
    for tag in sorted({k.split("@", 1)[1] for k in demo.photos}):
        med = lambda photos: float(np.median([_webp_bytes(v) / (v.shape[0] * v.shape[1])  # noqa: E731
                                              for k, v in photos.items() if k.endswith("@" + tag)]))
        rows.append({"size": tag, "demo": med(demo.photos), "synthetic": med(fake)})
    return rows


# ---------------------------------------------------------------------------------------------- site


@dataclasses.dataclass
class SiteSize:
    """What :func:`render_site` measured."""

    site_bytes: int
    site_files: int
    docs_bytes: int
    docs_files: int
    render_s: float
    mkdocs_s: float | None

    @property
    def within_budget(self) -> bool:
        return self.site_bytes <= BUDGET_BYTES and self.site_files <= BUDGET_FILES


def folder_size(root: str | Path) -> tuple[int, int]:
    """(bytes, files) under ``root``: every regular file, links not followed."""
    total = count = 0
    for folder, _, files in os.walk(root):
        for f in files:
            st = os.lstat(os.path.join(folder, f))
            if not os.path.islink(os.path.join(folder, f)):
                total += st.st_size
                count += 1
    return total, count


def largest_folders(root: str | Path, n: int = 10, depth: int = 4) -> tuple[list, list]:
    """The ``n`` largest folders of ``root`` by bytes and by files, each folder counting every file
    under it, folders cut at ``depth`` levels (a file deeper counts to its folder at that depth, so
    no file is counted twice): two lists of ``(relative folder, bytes, files)``."""
    root = Path(root)
    sizes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for folder, _, files in os.walk(root):
        parts = Path(folder).relative_to(root).parts[:depth]
        row = sizes["/".join(parts) or "."]
        for f in files:
            path = os.path.join(folder, f)
            if not os.path.islink(path):
                row[0] += os.lstat(path).st_size
                row[1] += 1
    rows = [(folder, b, c) for folder, (b, c) in sizes.items()]
    return sorted(rows, key=lambda r: -r[1])[:n], sorted(rows, key=lambda r: -r[2])[:n]


def render_site(results: AtlasResults, docs_dir: str | Path, site_dir: str | Path, mkdocs: bool = True) -> SiteSize:
    """Render ``results`` as ``build_atlas.py --render-only`` does (``atlas.site.render_site`` into
    ``docs_dir``, then ``mkdocs build`` of the project's ``mkdocs.yml`` into ``site_dir``; ``mkdocs``
    False skips the second step) and measure both folders. ``site_dir`` must be new, empty or an
    earlier atlas site (mkdocs empties it)."""
    from atlas.site import build_site
    from atlas.site import render_site as render_pages

    t0 = time.perf_counter()
    render_pages(results, Path(docs_dir))
    render_s = time.perf_counter() - t0
    docs_bytes, docs_files = folder_size(docs_dir)
    if not mkdocs:
        return SiteSize(docs_bytes, docs_files, docs_bytes, docs_files, render_s, None)
    t0 = time.perf_counter()
    site = build_site(REPO / "mkdocs.yml", docs_dir=docs_dir, site_dir=site_dir)
    mkdocs_s = time.perf_counter() - t0
    site_bytes, site_files = folder_size(site)
    return SiteSize(site_bytes, site_files, docs_bytes, docs_files, render_s, mkdocs_s)


#: The models :func:`project_site` renders: a 14 x 14 and a 37 x 37 grid (mean 782 patches, the
#: zoo's mean is 632, so bytes are projected high), and one comparison of two columns (the zoo has
#: about one comparison column per model).
PROJECTION_SAMPLE = ("DINO ViT-B/16", "DINOv2 ViT-B/14")


def project_site(models: int | Iterable[str] | None = None, n_images: int = 300, resolution="native", *,
                 small: tuple[int, int] = (4, 8), sample: Iterable[str] | int = PROJECTION_SAMPLE,
                 mkdocs: bool = False, workdir: str | Path | None = None, **kwargs) -> dict:
    """Projected size of the site of ``models`` (as :func:`synthetic_zoo_results`; None: the zoo's
    25) x ``n_images``: the site of the ``sample`` models (names, or a count of the first ones) is
    rendered at ``small[0]`` and ``small[1]`` images and grown linearly in the images, then in the
    models. With a renderer whose files do not grow with the images, it projects what it renders.
    Returns ``{"small": {n: SiteSize}, "files", "bytes", "files_per_model_image",
    "bytes_per_model_image", ...}``."""
    cfg = _config(str(kwargs.get("config", ZOO_CONFIG)))
    n_models = len(_select(cfg, models))
    names = [b.display_name for b in cfg.backbones]
    if not isinstance(sample, int) and not all(x in names for x in sample):
        sample = 2
    picked = _select(cfg, sample)
    measured = []
    with tempfile.TemporaryDirectory(prefix="zoo-project-", dir=workdir) as tmp:
        for n in small:
            res = synthetic_zoo_results(n, resolution, models=[b.slug for b in picked], **kwargs)
            out = Path(tmp) / f"n{n}"
            measured.append(render_site(res, out / "docs", out / "site", mkdocs=mkdocs))
            shutil.rmtree(out)
    (n1, n2), (a, b), m = small, measured, len(picked)

    def grow(x1: int, x2: int) -> float:
        per_image = max(0.0, (x2 - x1) / (n2 - n1))
        return (x2 + per_image * (n_images - n2)) * n_models / m

    return {"small": dict(zip(small, measured)), "sample": [b.display_name for b in picked], "models": n_models,
            "images": n_images, "files": grow(a.site_files, b.site_files), "bytes": grow(a.site_bytes, b.site_bytes),
            "files_per_model_image": (b.site_files - a.site_files) / (n2 - n1) / m,
            "bytes_per_model_image": (b.site_bytes - a.site_bytes) / (n2 - n1) / m}


# ---------------------------------------------------------------------------------------------- command line


def _mb(x: float) -> str:
    return f"{x / 1e6:,.1f} MB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--models", default=None, help="a count (the first entries) or comma-separated slugs or names "
                                                  "(default: every entry, opt-in included: the zoo's 25)")
    p.add_argument("--resolution", default="native",
                   help="native (default), a side in pixels, or axis: every size of the config's [images] resolutions")
    p.add_argument("--structure", choices=STRUCTURES, default="smooth")
    p.add_argument("--smoothness", type=float, default=SMOOTHNESS)
    p.add_argument("--noise", type=float, default=NOISE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", default=str(ZOO_CONFIG))
    p.add_argument("--out", default="/tmp/zoo-site", help="folder of docs/ and site/ (rendered again in place)")
    p.add_argument("--no-mkdocs", action="store_true", help="render the pages only")
    p.add_argument("--max-files", type=int, default=200_000,
                   help="stop when the projected site has more files (a renderer with one file per image)")
    p.add_argument("--force", action="store_true", help="render whatever the projection")
    p.add_argument("--calibrate", nargs="?", const=str(DEMO_DIR), metavar="DEMO_DIR",
                   help="compare label maps with a demo build's stored ones and stop")
    args = p.parse_args(argv)

    if args.calibrate:
        print(f"label maps, zlib bytes per patch of each view's uint8 stack (higher = less compressible); "
              f"synthetic {args.structure}, smoothness {args.smoothness}, noise {args.noise}")
        print(f"{'K':>4s} {'demo B/patch':>13s} {'synthetic':>10s} {'demo equal-nb':>14s} {'synthetic':>10s}")
        for row in calibrate(args.calibrate, args.smoothness, args.noise, args.structure, args.seed):
            d, s = row["demo"], row["synthetic"]
            print(f"{row['k']!s:>4s} {d['bytes_per_patch']:13.3f} {s['bytes_per_patch']:10.3f} "
                  f"{d['equal_neighbours']:14.3f} {s['equal_neighbours']:10.3f}")
        print("pictures, zlib bytes per patch of each stack (higher = less compressible)")
        for row in calibrate_pictures(args.calibrate, args.smoothness, args.noise, args.structure, args.seed):
            print(f"{row['kind']:>21s} demo {row['demo']:.3f} synthetic {row['synthetic']:.3f}")
        print("photos, WebP (quality 80) bytes per pixel, median")
        for row in calibrate_photos(args.calibrate, args.seed):
            print(f"{row['size']:>9s} demo {row['demo']:.3f} synthetic {row['synthetic']:.3f}")
        return 0

    models: Any = None
    if args.models:
        models = int(args.models) if args.models.isdigit() else [m.strip() for m in args.models.split(",")]
    resolution = args.resolution if args.resolution in ("native", "axis") else int(args.resolution)
    opts = {"config": args.config, "structure": args.structure, "smoothness": args.smoothness, "noise": args.noise}
    out = Path(args.out)
    if not args.force and args.images > 8:
        t0 = time.perf_counter()
        proj = project_site(models, args.images, resolution, mkdocs=not args.no_mkdocs, **opts)
        print(f"projection ({len(proj['sample'])} models at 4 and 8 images, {time.perf_counter() - t0:.0f} s): "
              f"{proj['files']:,.0f} files, {_mb(proj['bytes'])} for {proj['models']} models x {args.images} images "
              f"({proj['files_per_model_image']:.1f} files and {proj['bytes_per_model_image'] / 1e3:.1f} KB more per "
              f"model and image)")
        if proj["files"] > args.max_files:
            print(f"stopped: over --max-files {args.max_files:,} (the renderer writes files per image); "
                  "--force renders anyway")
            return 1
    t0 = time.perf_counter()
    results = synthetic_zoo_results(args.images, resolution, args.seed, models, **opts)
    t_make = time.perf_counter() - t0
    print(f"synthetic results: {len(results.models)} models x {len(results.images)} images in {t_make:.1f} s")
    size = render_site(results, out / "docs", out / "site", mkdocs=not args.no_mkdocs)
    print(f"docs dir: {size.docs_files:,} files, {_mb(size.docs_bytes)} (render {size.render_s:.1f} s)")
    if size.mkdocs_s is not None:
        print(f"site:     {size.site_files:,} files, {_mb(size.site_bytes)} (mkdocs {size.mkdocs_s:.1f} s)")
    print(f"budget:   <= {BUDGET_FILES:,} files and <= {_mb(BUDGET_BYTES)}: "
          f"{'within' if size.within_budget else 'OVER'}")
    by_bytes, by_files = largest_folders(out / ("docs" if args.no_mkdocs else "site"))
    print("largest folders by bytes (everything under them, cut at 4 levels):")
    for folder, b, n in by_bytes:
        print(f"  {_mb(b):>12s} {n:8,d}  {folder}")
    print("largest folders by files:")
    for folder, b, n in by_files:
        print(f"  {n:8,d} {_mb(b):>12s}  {folder}")
    print(f"time: {t_make + size.render_s + (size.mkdocs_s or 0):.1f} s (make {t_make:.1f}, render "
          f"{size.render_s:.1f}, mkdocs {size.mkdocs_s or 0:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
