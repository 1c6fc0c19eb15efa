"""The build: config -> image set -> one :class:`ModelRun` per model -> comparisons -> stored records.

Incremental by construction. Features live only while their analyses run
(:mod:`atlas.features.stream`; the content-addressed feature cache is opt-in); each model's results
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

import dataclasses
import datetime as _dt
import difflib
import logging
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from .. import __version__
from ..config import AtlasConfig, Backbone, ConfigError, resolution_label, resolve_layers
from ..features.backbones import (WeightsUnavailableError, check_backbone, check_checkpoint_file, load_backbone,
                                  memory_problem, patch_size, weights_help, weights_identity,
                                  weights_unavailable_message)
from ..features.cache import FeatureCache
from ..features.device import describe, pick_device
from ..features.stream import GB
from ..files import check_writable
from ..measures.registry import measure_info
from ..records import AtlasResults, ModelResult, SkippedItem
from . import BuildError
from .comparisons import build_comparison, comparison_k, comparison_models
from .evaluation_run import EvaluationRun
from .inputs import load_images, photos
from .methods import methods_record
from .model_run import ModelRun
from .propagation_run import PropagationRun
from .resolutions import ResolutionRun, align_to_main, model_resolutions
from .state import code_fingerprint, digest, model_key, state_store

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


@dataclass
class BuildInputs:
    """What every model of a build shares: the image set, the feature cache (None: off, the
    default), the device, the evaluation and the stored results. Made once per build, and once per
    model job on a cluster."""

    cfg: AtlasConfig
    images: list
    skipped: list[SkippedItem]
    cache: FeatureCache | None
    device: object
    evaluation: EvaluationRun | None
    store: object
    propagation: PropagationRun | None = None
    # {slug: (the model's runs over [images] resolutions, the resolutions it skips and why)}
    resolutions: dict[str, tuple[list[ResolutionRun], list[SkippedItem]]] | None = None

    def evaluations(self, run: ResolutionRun | None = None) -> list:
        """The evaluations a model goes through at ``run`` (against human masks, label
        propagation): all of them at the main resolution; at the others, those whose geometry
        follows the model's input size (a protocol's own geometry, STEGO's 320 px or the video
        frames' size, gives the same numbers at every resolution)."""
        return [e for e in (self.evaluation, self.propagation)
                if e is not None and (run is None or run.main or e.follows_resolution)]

    def eval_key(self, run: ResolutionRun | None = None) -> str:
        keys = [e.key for e in self.evaluations(run)]
        return "+".join(keys) if keys else "none"


def prepare_build(cfg: AtlasConfig, backbones: list[Backbone], *, computes_here: bool = True) -> BuildInputs:
    """Check everything that can be checked before computing (writable folders, architectures,
    weights, checkpoint files, the overview image and, where the models are computed in this
    process (``computes_here``), that each fits this machine's memory), then load the image set
    and the evaluation dataset. A job of another executor checks memory where it runs."""
    cache_dir = cfg.resolve_path(cfg.atlas.cache_dir)
    # the feature cache is an opt-in accelerator: a build without it writes no feature file
    check_writable({"output dir": cfg.resolve_path(cfg.atlas.output_dir)}
                   | ({"feature cache": cache_dir} if cfg.features.cache else {}))
    missing = weights_unavailable_message(backbones)  # first: it builds no model, so it answers at once
    if missing:
        raise BuildError(missing)
    device = pick_device(cfg.features.device)
    resolutions = {}
    for spec in backbones:  # every model checked before any is computed
        probe = check_backbone(spec)  # buildable with its overrides (on the meta device)
        check_checkpoint_file(spec)  # headers only
        for setting in ("layers", "gallery_layers"):  # block indices beyond this model's depth
            try:
                resolve_layers(getattr(cfg.features, setting), len(probe.blocks))
            except ConfigError as exc:
                raise BuildError(f"{spec.display_name}: [features] {setting}: {exc}") from None
        runs, skipped_sizes = resolutions[spec.slug] = model_resolutions(
            cfg.images.requested_resolutions(), spec.display_name, spec.slug, patch=patch_size(probe),
            native=tuple(probe.pretrained_cfg.get("input_size", (3, 224, 224))[1:]))
        if not runs or not runs[0].main:
            first = skipped_sizes[0]
            raise BuildError(f"{first.what}: {first.reason}; the first of [images] resolutions is the atlas's main "
                             "one and every model needs it: change it")
        if computes_here:  # estimated from the meta build: an absurd size is refused before any allocation
            largest = max(runs, key=lambda r: r.size[0] * r.size[1])
            problem = memory_problem(spec, largest.size, cfg.features, device, probe)
            if problem:
                raise BuildError(problem)

    images, skipped = load_images(cfg)
    names = [img.name for img in images]
    if cfg.atlas.overview_image and cfg.atlas.overview_image not in names:
        close = difflib.get_close_matches(cfg.atlas.overview_image, names, n=3, cutoff=0.0)
        raise BuildError(f"[atlas] overview_image {cfg.atlas.overview_image!r} is not an image of this atlas; "
                         f"closest: {', '.join(close)}")
    cache = None
    if cfg.features.cache:
        cache = FeatureCache(cache_dir, max_bytes=int(cfg.features.cache_gb * GB))
        cache.clean_temporaries()
        stale = cache.stale_files()
        if stale:
            size = sum(p.stat().st_size for p in stale) / 2**20
            log.warning("feature cache: %d files (%.0f MiB) of an earlier cache format are no longer read; "
                        "delete %s/*/*.npz to free the space", len(stale), size, cache.root)
    log.info("device: %s; %d images; %d models", describe(device, cfg.features.precision), len(images), len(backbones))
    evaluation = EvaluationRun.from_config(cfg, skipped)
    propagation = PropagationRun.from_config(cfg, skipped)
    store = state_store(cfg)
    for protocol in (evaluation, propagation):
        if protocol is not None:  # the models of one geometry share its baselines (computed once)
            protocol.baseline_store = store
    return BuildInputs(cfg, images, skipped, cache, device, evaluation, store, propagation, resolutions)


@dataclass
class ComputedRun:
    """One model at one resolution: where it is stored, under which key, and whether it was reused."""

    run: ResolutionRun
    key: str
    result: ModelResult
    reused: bool


def compute_model(inputs: BuildInputs, spec: Backbone, progress: bool = False) -> list[ComputedRun]:
    """One model's results at each of its resolutions (the main one first); each reused when its
    stored results are current, otherwise computed and stored (extraction, clustering, measures,
    evaluation)."""
    identity = weights_identity(spec, inputs.cfg.atlas.seed)  # may hash a checkpoint: once per model
    done: list[ComputedRun] = []
    for run in inputs.resolutions[spec.slug][0]:
        main = done[0].result if done and not run.main else None  # the other sizes take the main run's colours
        stored = _stored_run(inputs, spec, run, identity)
        if stored is not None and main is not None and not done[0].reused and align_to_main(stored.result, main):
            # the main run was recomputed (a setting only it depends on) with other cluster ids
            log.info("%s at %s: colours realigned to the recomputed main size", spec.display_name, run.label)
            inputs.store.save_model(stored.key, stored.result, run.run_id)
        done.append(stored or _compute_run(inputs, spec, run, identity, progress, main))
    return done


def stored_model(inputs: BuildInputs, spec: Backbone) -> list[ComputedRun] | None:
    """The model's current stored results at each of its resolutions, found without creating the
    model (its weights are known by name, seed or file); ``None`` when any one must be computed."""
    identity = weights_identity(spec, inputs.cfg.atlas.seed)
    found = [_stored_run(inputs, spec, run, identity) for run in inputs.resolutions[spec.slug][0]]
    return found if all(found) else None


def _stored_run(inputs: BuildInputs, spec: Backbone, run: ResolutionRun, weights: str | None) -> ComputedRun | None:
    """``run``'s stored results when current for the weights whose hash is ``weights`` (None: unknown)."""
    if weights is None:
        return None
    key = model_key(inputs.cfg, spec, weights, inputs.images, inputs.eval_key(run), run)
    result = inputs.store.load_model(run.run_id, key)
    if result is None:
        return None
    name = spec.display_name if run.main else f"{spec.display_name} at {run.label}"
    log.info("%s: unchanged (key %s), reusing its results", name, key)
    return ComputedRun(run, key, result, True)


def _compute_run(inputs: BuildInputs, spec: Backbone, run: ResolutionRun, identity: str | None,
                 progress: bool, main: ModelResult | None = None) -> ComputedRun:
    """``run`` computed and stored, its stored results not current for ``identity`` (the weights
    known without a load): they may be for the weights the load finds. ``main``: the model's main
    run, whose colours a run at another size takes (:func:`align_to_main`)."""
    cfg = inputs.cfg
    try:
        loaded = load_backbone(spec, run.requested, seed=cfg.atlas.seed)
    except WeightsUnavailableError as exc:
        raise BuildError(f"{exc}. {weights_help()}") from None
    loaded = dataclasses.replace(loaded, card=dataclasses.replace(loaded.card, resolution=run.label))
    if loaded.weights_hash != identity and (current := _stored_run(inputs, spec, run, loaded.weights_hash)):
        return current
    key = model_key(cfg, spec, loaded.weights_hash, inputs.images, inputs.eval_key(run), run)
    # One BLAS thread for the numpy/sklearn analyses: on small matrices, and whenever anything
    # else runs on the machine, OpenBLAS's spinning threads cost more than they give (measured:
    # 0.45 vs 0.9 s per block and representation idle, 10x worse under load). Torch keeps its own.
    with threadpool_limits(1, user_api="blas"):
        result = ModelRun(cfg, loaded, inputs.images, inputs.cache, inputs.device, progress,
                          inputs.evaluations(run)).run()
    if main is not None:
        align_to_main(result, main)
    inputs.store.save_model(key, result, run.run_id)
    return ComputedRun(run, key, result, False)


def failed_models(results: AtlasResults) -> list[SkippedItem]:
    """The models whose job failed (listed on the build report; the site has the others)."""
    return [s for s in results.skipped if s.what.startswith(FAILED_PREFIX)]


FAILED_PREFIX = "model job "


def build_atlas(cfg: AtlasConfig, *, models: list[str] | None = None, progress: bool = True,
                build_date: str | None = None, executor=None) -> AtlasResults:
    """Compute (or reuse) every model and comparison of ``cfg``; store and return the records.

    ``executor`` (:class:`atlas.pipeline.executors.ModelJobs`): compute the models as jobs (other
    processes, or Slurm) first; this process then reads their stored results, builds the
    comparisons and lists failed jobs on the build report. ``None``: one model after the other here.
    """
    t_start = time.perf_counter()
    backbones = cfg.select_backbones(models)
    inputs = prepare_build(cfg, backbones, computes_here=executor is None)  # a job checks its own memory
    images, skipped, store = inputs.images, inputs.skipped, inputs.store

    built: dict[str, ModelResult] = {}  # at the main resolution
    other_sizes: list[ModelResult] = []  # the other resolutions of the axis
    reused: list[str] = []  # run ids whose stored results were current (nothing computed this build)
    model_keys: dict[str, str] = {}
    run_bytes: dict[str, int] = {}
    timings: dict[str, float] = {}
    # a model whose stored results are current is read here, not sent as a job (no queue wait)
    stored = {b.slug: found for b in backbones if executor is not None and (found := stored_model(inputs, b))}
    jobs_done, jobs_failed = (executor.run([b for b in backbones if b.slug not in stored])
                              if executor is not None else ({}, {}))
    for spec in tqdm(backbones, desc="models", disable=not progress or executor is not None):
        t0 = time.perf_counter()
        runs, skipped_sizes = inputs.resolutions[spec.slug]
        if spec.slug in jobs_failed:
            skipped.append(SkippedItem(f"{FAILED_PREFIX}{spec.display_name}", jobs_failed[spec.slug]))
            continue
        if spec.slug in jobs_done:
            keys, seconds = jobs_done[spec.slug]
            unknown = [run.run_id for run in runs if run.run_id not in keys]
            if unknown:  # never load without a key: any stored folder would do
                skipped.append(SkippedItem(f"{FAILED_PREFIX}{spec.display_name}",
                                           f"the job returned no results for {unknown[0]}"))
                continue
            computed = [ComputedRun(run, keys[run.run_id], store.load_model(run.run_id, keys[run.run_id]), False)
                        for run in runs]
            missing = [c.key for c in computed if c.result is None]
            if missing:
                skipped.append(SkippedItem(f"{FAILED_PREFIX}{spec.display_name}",
                                           f"the job finished but its stored results (key {missing[0]}) are missing"))
                continue
        else:
            computed = stored.get(spec.slug) or compute_model(inputs, spec, progress)
            reused += [c.run.run_id for c in computed if c.reused]
            seconds = time.perf_counter() - t0
        skipped += skipped_sizes
        for c in computed:
            run_bytes[c.run.run_id] = store.model_bytes(c.run.run_id)
            if c.run.main:
                model_keys[spec.slug] = c.key
                built[spec.slug] = c.result
            else:
                other_sizes.append(c.result)
        timings[f"model {spec.slug}"] = round(seconds, 2)
    if inputs.cache is not None:
        inputs.cache.log_summary()  # evictions, once per build
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

    sizes = {tuple(m.card.input_size) for m in [*built.values(), *other_sizes]}
    timings["total_s"] = round(time.perf_counter() - t_start, 2)
    results = AtlasResults(
        title=cfg.atlas.title, atlas_version=__version__, config_name=Path(cfg.source_path).name,
        config_text=cfg.source_text, config_hash=cfg.config_hash,
        build_date=build_date or _dt.date.today().isoformat(), seed=cfg.atlas.seed,
        environment=_environment(), device=describe(inputs.device, cfg.features.precision), images=[img.info() for img in images], skipped=skipped,
        models=[built[b.slug] for b in backbones if b.slug in built], comparisons=comparisons,
        resolution_runs=other_sizes, resolutions=[resolution_label(e) for e in cfg.images.requested_resolutions()],
        methods=methods_record(cfg, inputs.evaluation.methods() if inputs.evaluation else None,
                               inputs.propagation.methods() if inputs.propagation else None, len(images)),
        timings=timings,
        site_url=cfg.atlas.site_url, description=cfg.atlas.description, interval_level=cfg.uncertainty.level,
        licence=cfg.atlas.licence, doi=cfg.atlas.doi,
        kmeans_seeds=cfg.uncertainty.seeds, code_hash=code_fingerprint(),
        datasets=[e.credit() for e in inputs.evaluations()],
        overview_image=cfg.atlas.overview_image,
        measure_info=measure_info(), photos=photos(images, sizes),
        stored_bytes=run_bytes, reused_models=reused,
    )
    store.save_atlas(results)
    return results
