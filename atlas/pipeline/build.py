"""The build: config -> image set -> one :class:`ModelRun` per model -> comparisons -> stored records.

Incremental by construction. Features live in the content-addressed cache; each model's results
(numbers, aligned label maps) are stored under a *model key* (:mod:`atlas.pipeline.state`); a model
whose key is unchanged is neither re-extracted nor re-clustered, and a comparison is rebuilt only
when the key of one of its models (or its own settings) changed. The records are handed to the
site layer (``atlas.site.render_site``) and stored, so the site can be rendered again from them
alone (:func:`atlas.pipeline.state.load_stored_atlas`).

Example::

    from atlas.config import load_config
    results = build_atlas(load_config("configs/demo.toml"))
"""

from __future__ import annotations

import datetime as _dt
import difflib
import logging
import platform
import time
from importlib import metadata
from pathlib import Path

from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from .. import __version__
from ..config import AtlasConfig, Backbone
from ..features.backbones import (UnsafeCheckpointError, WeightsUnavailableError, check_backbone, load_backbone,
                                  missing_weights, weights_help)
from ..features.cache import FeatureCache
from ..features.device import describe, pick_device
from ..files import check_writable
from ..inputs.geometry import ResizePolicy
from ..measures.registry import measure_info
from ..records import AtlasResults, ModelResult, SkippedItem
from . import BuildError
from .comparisons import build_comparison, comparison_k, comparison_models
from .evaluation_run import EvaluationRun
from .highlights import make_highlights
from .inputs import load_images, photos
from .methods import methods_record
from .model_run import ModelRun
from .state import digest, model_key, state_store

log = logging.getLogger(__name__)


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


def select_backbones(cfg: AtlasConfig, names: list[str] | None) -> list[Backbone]:
    """The config's backbones named by ``--models`` (slugs or display names), else every entry
    that is not opt-in."""
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


def build_atlas(cfg: AtlasConfig, *, models: list[str] | None = None, progress: bool = True,
                build_date: str | None = None) -> AtlasResults:
    """Compute (or reuse) every model and comparison of ``cfg``; store and return the records."""
    t_start = time.perf_counter()
    cache_dir = cfg.resolve_path(cfg.atlas.cache_dir)
    check_writable({"output dir": cfg.resolve_path(cfg.atlas.output_dir), "feature cache": cache_dir})
    store = state_store(cfg)
    backbones = select_backbones(cfg, models)
    for spec in backbones:  # every architecture buildable (names, overrides) before any model is computed
        check_backbone(spec)
    missing = missing_weights(backbones)
    if missing:
        by_reason: dict[str, list[str]] = {}
        for b, why in missing:
            by_reason.setdefault(why, []).append(b.slug)
        lines = "; ".join(f"{why}: {', '.join(slugs)}" for why, slugs in by_reason.items())
        raise BuildError(f"weights unavailable for {len(missing)} of {len(backbones)} model(s) — {lines}. {weights_help()}")

    images, skipped = load_images(cfg)
    names = [img.name for img in images]
    if cfg.atlas.overview_image and cfg.atlas.overview_image not in names:
        close = difflib.get_close_matches(cfg.atlas.overview_image, names, n=3, cutoff=0.0)
        raise BuildError(f"[atlas] overview_image {cfg.atlas.overview_image!r} is not an image of this atlas; "
                         f"closest: {', '.join(close)}")
    cache = FeatureCache(cache_dir)
    cache.clean_temporaries()
    stale = cache.stale_files()
    if stale:
        size = sum(p.stat().st_size for p in stale) / 2**20
        log.warning("feature cache: %d files (%.0f MiB) of an earlier cache format are no longer read; "
                    "delete %s/*/*.npz to free the space", len(stale), size, cache.root)
    device = pick_device(cfg.features.device)
    log.info("device: %s; %d images; %d models", describe(device), len(images), len(backbones))

    evaluation = EvaluationRun.from_config(cfg, skipped)
    eval_key = evaluation.key if evaluation else "none"

    built: dict[str, ModelResult] = {}
    model_keys: dict[str, str] = {}
    timings: dict[str, float] = {}
    for spec in tqdm(backbones, desc="models", disable=not progress):
        t0 = time.perf_counter()
        try:
            loaded = load_backbone(spec, tuple(cfg.images.resolution), seed=cfg.atlas.seed)
        except UnsafeCheckpointError:
            raise
        except WeightsUnavailableError as exc:
            raise BuildError(f"{exc}. {weights_help()}") from None
        key = model_key(cfg, loaded, images, eval_key)
        model_keys[spec.slug] = key
        result = store.load_model(spec.slug, key)
        if result is not None:
            log.info("%s: unchanged (key %s), reusing its results", spec.display_name, key)
        else:
            # One BLAS thread for the numpy/sklearn analyses: on small matrices, and whenever anything
            # else runs on the machine, OpenBLAS's spinning threads cost more than they give (measured:
            # 0.45 vs 0.9 s per block and representation idle, 10x worse under load). Torch keeps its own.
            with threadpool_limits(1, user_api="blas"):
                result = ModelRun(cfg, loaded, images, cache, device, progress, evaluation).run()
            store.save_model(key, result)
        built[spec.slug] = result
        timings[f"model {spec.slug}"] = round(time.perf_counter() - t0, 2)
        del loaded
    atlas_wide, per_model = make_highlights(list(built.values()), cfg.uncertainty.level)
    for slug, m in built.items():
        m.highlights = per_model.get(slug, [])

    # comparisons: rebuilt only when one of their models (or their own settings) changed
    comparisons = []
    comp_k = comparison_k(cfg)
    for comp in cfg.comparisons:
        slugs = comparison_models(cfg, comp, built)
        key = digest({"comp": comp.model_dump(), "models": [model_keys[s] for s in slugs], "k": comp_k,
                      "layers": cfg.features.gallery_layers})
        res = store.load_comparison(comp.slug, key)
        if res is None:
            res = build_comparison(cfg, comp, built, comp_k)
            if res is None:
                skipped.append(SkippedItem(f"comparison {comp.title}",
                                           "fewer than 2 of its models (or no matching blocks) in this build"))
                continue
            store.save_comparison(key, res)
        comparisons.append(res)

    sizes = {tuple(m.card.input_size) for m in built.values()}
    policy_text = ResizePolicy(*cfg.images.resolution).describe() + (
        " The size is then rounded per model to the nearest multiple of its patch size (halves round up; e.g. 224 "
        "for /16 and /14 patches), so every image of a model shares one patch grid.")
    timings["total_s"] = round(time.perf_counter() - t_start, 2)
    results = AtlasResults(
        title=cfg.atlas.title, atlas_version=__version__, config_name=Path(cfg.source_path).name,
        config_text=cfg.source_text, config_hash=cfg.config_hash,
        build_date=build_date or _dt.date.today().isoformat(), seed=cfg.atlas.seed, resolution_policy=policy_text,
        environment=_environment(), device=describe(device), images=[img.info() for img in images], skipped=skipped,
        models=[built[b.slug] for b in backbones if b.slug in built], comparisons=comparisons,
        methods=methods_record(cfg, policy_text, evaluation.methods() if evaluation else None), timings=timings,
        site_url=cfg.atlas.site_url, description=cfg.atlas.description, interval_level=cfg.uncertainty.level,
        highlights=atlas_wide, datasets=[evaluation.credit()] if evaluation else [],
        overview_image=cfg.atlas.overview_image,
        measure_info=measure_info(), photos=photos(images, sizes),
    )
    store.save_atlas(results)
    return results
