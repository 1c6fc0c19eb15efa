"""GPU benchmark: raw ``forward_features`` in fp32 and bf16 vs the extraction pipeline, analyses vs
extraction per model, and peak GPU memory. Prints figures measured in one run and their ratios.

Per model (random init: the speed does not depend on the weights), on one device:

* raw ``model.forward_features`` img/s on preprocessed tensors, fp32 (TF32 off) and bf16 autocast;
* pipeline img/s: decode + resize + every sweep block x representation kept on the device as
  float16 (:mod:`atlas.features.stream`; no feature file is written), in the build's default
  precision (fp32), and its ratio to raw fp32 and raw bf16;
* analyses (joint k-means and every measure of every block x representation) vs extraction time,
  as a build runs them (``ModelRun.run``: forward passes per chunk of blocks within the budget,
  ``--memory-gb``, default from the free memory), and the passes that took;
* the evaluation against human masks (the zoo's CamVid, ``../shared/data/camvid``; skipped with a
  line where it is absent), timed apart from the analyses.

The analysis settings are ``configs/zoo.toml``'s (``--settings zoo``: every block, 4 gallery blocks,
K = 2/4/8/16, 3 k-means seeds, 200 resamples) so that the figures project the zoo;
``--settings readme`` has those of the README's 2026-12-04 table (one K, the last block's gallery,
no evaluation), to compare with it.
* peak GPU memory (``torch.cuda.max_memory_allocated``) of the whole run, and the most memory the
  kept features of one pass took;
* with ``--stages``: where the run's time goes, stage by stage (k-means, each measure, PCA
  pictures, attention, the evaluation's parts), the pairs one at a time and the device
  synchronised at each stage's start and end (:class:`_Stages`).

On a machine without CUDA it runs only with ``--device cpu`` and says so on every line's header:
those are CPU figures, not GPU ones.

Usage::

    python bench/bench_gpu.py                                       # CUDA, ViT-S/16 and ViT-B/16, 128 images
    python bench/bench_gpu.py --models vit_large_patch14_dinov2.lvd142m --size 518 --images 256
    python bench/bench_gpu.py --models vit_large_patch14_dinov2.lvd142m --size 518 --images 300 \
        --layers 0.5,1.0 --no-evaluation                            # per pair at 300 images, 4 blocks
    python bench/bench_gpu.py --device cpu --images 16 --models vit_small_patch16_224.dino
    python bench/bench_gpu.py --models vit_large_patch14_dinov2.lvd142m --size 518 --images 32 --stages
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


ZOO = Path(__file__).resolve().parents[1] / "configs" / "zoo.toml"
# the analysis settings of the README's 2026-12-04 H200 table: one K, the last block's gallery, no evaluation
README_SETTINGS = {"features": {"layers": "all", "gallery_layers": [1.0]}, "clustering": {"ks": [8]}}


def _layers(text: str):
    """``--layers``: "all", or comma-separated block indices (0, 5) or relative depths (0.5, 1.0)."""
    if text == "all":
        return text
    items = [x.strip() for x in text.split(",") if x.strip()]
    return [float(x) for x in items] if any("." in x for x in items) else [int(x) for x in items]


def _config(model: str, batch: int, size: int, settings: str = "zoo", layers: str | None = None,
            evaluation: bool = True, evaluation_root: str | None = None):
    """The benchmark's config: ``model`` (random init) at ``size`` px with the analysis settings of
    ``configs/zoo.toml`` (``settings="zoo"``: its blocks, gallery, representations, Ks, measures,
    resamples, seeds and, with ``evaluation``, its [evaluation] against human masks; label
    propagation is timed by ``bench_scale.py --time-propagation``) or of the README's 2026-12-04
    table (``"readme"``); ``layers`` replaces the sweep's blocks; ``evaluation_root`` the dataset's
    folder."""
    import tomllib

    from atlas.config import AtlasConfig

    if settings == "readme":
        data = {k: dict(v) for k, v in README_SETTINGS.items()}
    else:
        zoo = tomllib.loads(ZOO.read_text())
        data = {"features": {k: zoo["features"][k] for k in ("layers", "gallery_layers", "representations")
                             if k in zoo["features"]}}
        data.update({k: zoo[k] for k in ("clustering", "analyses", "uncertainty") if k in zoo})
        if evaluation and "evaluation" in zoo:
            data["evaluation"] = {k: v for k, v in zoo["evaluation"].items() if k != "propagation"}
            if evaluation_root:
                data["evaluation"]["root"] = str(Path(evaluation_root).resolve())
    data["features"]["batch_size"] = batch
    if layers:
        data["features"]["layers"] = _layers(layers)
    data["images"] = {"resolution": [size, size]}
    data["backbones"] = [{"display_name": "bench", "timm_name": model, "weights": "random", "training": "random"}]
    return AtlasConfig(**data, source_path=str(ZOO))  # paths ([evaluation] root) relative to the repository


def _peak_reset(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device) -> float:
    import torch

    if device.type != "cuda":
        return float("nan")
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated(device) / 2**30


def bench_model(model: str, args, device) -> dict[str, float]:
    from threadpoolctl import threadpool_limits

    from atlas.features.backbones import load_backbone
    from atlas.pipeline.evaluation_run import EvaluationRun
    from atlas.pipeline.model_run import ModelRun
    from bench_extraction import _images, run_raw

    raw_args = argparse.Namespace(model=model, size=args.size, batch=args.batch, blocks="last", device=args.device,
                                  threads=0)
    out = {"raw fp32": run_raw(raw_args, args.images, "fp32"), "raw bf16": run_raw(raw_args, args.images, "bf16")}
    cfg = _config(model, args.batch, args.size, args.settings, args.layers, not args.no_evaluation,
                  args.evaluation_root)
    loaded = load_backbone(cfg.backbones[0], (args.size, args.size), seed=0)
    images = _images(args.images)
    memory = None if args.memory_gb is None else int(args.memory_gb * 1e9)
    skipped = []
    evaluation = EvaluationRun.from_config(cfg, skipped)
    for item in skipped:
        print(f"  skipped: {item.what}: {item.reason}")
    run = ModelRun(cfg, loaded, images, None, device, memory_bytes=memory,
                   evaluations=[evaluation] if evaluation else [])
    _peak_reset(device)
    stages = _Stages(device) if args.stages else None
    t0 = time.perf_counter()
    try:
        with threadpool_limits(1, user_api="blas"), (stages.timing() if stages else nullcontext()):
            # as a build runs a model (atlas.pipeline.build)
            result = _profiled_run(run, args.profile) if args.profile else run.run()
    except BaseException:  # a time limit (SIGTERM, see main) or an error: where the time went so far
        if stages is not None:
            took = time.perf_counter() - t0
            print(f"\n{model}: stages so far, the run stopped after {took:.1f} s:\n" + "\n".join(stages.table(took)),
                  flush=True)
        raise
    out["run s"] = time.perf_counter() - t0
    out["stages"] = stages
    out["peak GiB"] = _peak_gib(device)
    out["extract s"] = result.timings["extract_s"]
    out["analyse s"] = result.timings["cluster_analyse_s"]
    out["evaluation s"] = result.timings.get("evaluation_s")
    out["evaluation images"] = len(evaluation.dataset) if evaluation else 0
    out["gallery pairs"] = len([p for p in run.pairs() if p[0] in run.gallery_blocks])
    passes = result.passes
    out["passes"], out["pairs"], out["on demand"] = passes["passes"], passes["pairs"], passes["on_demand"]
    out["kept GiB"] = passes.get("kept_bytes", 0) / 2**30
    out["features GiB"] = passes["feature_bytes"] / 2**30
    # images through the model: every set of the run, once per pass that needs it
    through = sum(len(s.images) for s in run.stream.sets.values()) * passes["passes"]
    out["pipeline fp32"] = through / max(out["extract s"], 1e-9)
    return out


class _InThisThread:
    """A stand-in for ThreadPoolExecutor that runs every call in the calling thread (cProfile sees
    only the thread it was started in)."""

    def __init__(self, max_workers=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items):
        return [fn(x) for x in items]


class _Stages:
    """Wall time of the named stages of a run (:data:`STAGES`), its pairs one at a time in the
    calling thread so that no two stages overlap. The device is synchronised when a stage starts
    and ends, so the work a stage queues on a GPU counts in that stage; a stage's own time leaves
    out the stages it calls (the evaluation's k-means is a k-means, its baselines score label
    maps with the same functions as the model). Calls from other threads (a loader) pass untimed.

    The numbers are of a serial run (a build runs two pairs at a time): where the time goes, not
    how long a build takes."""

    #: (owner, attribute, stage name): each is replaced by a timed wrapper during :meth:`timing`.
    STAGES = (
        ("atlas.features.stream:FeatureStream", "fill", "extraction (forward passes)"),
        ("atlas.pipeline.model_run:ModelRun", "cluster", "k-means (fit + assign)"),
        ("atlas.pipeline.evaluation_baselines", "cluster_features", "k-means (fit + assign)"),  # colour, position
        ("atlas.pipeline.model_run", "fit_pictures", "PCA pictures"),
        ("atlas.pipeline.model_run:ModelRun", "attention", "attention (maps + CLS measures)"),
        ("atlas.pipeline.model_run:ModelRun", "probe_measures", "blank probe + shift test"),
        ("atlas.pipeline.model_run", "reference_tokens", "reference token sets (made)"),
        ("atlas.measures.summary", "positional_clustering", "measure: positional clustering (NCE, AMI)"),
        ("atlas.measures.summary", "_boundary_artifacts", "measure: boundary artifacts"),
        ("atlas.measures.summary", "_position_probe", "measure: position probe (ridge)"),
        ("atlas.measures.summary", "_similarity_structure", "measure: similarity / locality"),
        ("atlas.measures.summary", "pca_variance_share", "measure: PCA variance share"),
        ("atlas.pipeline.model_run:ModelRun", "align", "label alignment"),
        ("atlas.pipeline.evaluation_run:EvaluationRun", "segmentation", "evaluation: cluster mIoU scoring"),
        ("atlas.pipeline.evaluation_run:EvaluationRun", "knn", "evaluation: k-NN probe"),
        ("atlas.pipeline.evaluation_run:EvaluationRun", "_last_block_figures",
         "evaluation: k-NN curve, spectrum, channel removal"),
        ("atlas.pipeline.evaluation_run:EvaluationRun", "_pseudo_masks", "evaluation: pseudo-masks"),
        ("atlas.pipeline.evaluation_run:EvaluationRun", "_similarity", "evaluation: masking CKA / SVCCA"),
        ("atlas.pipeline.evaluation_run", "evaluation_baselines", "evaluation: baselines (colour, position)"),
    )

    def __init__(self, device):
        import torch

        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.total: dict[str, float] = defaultdict(float)
        self.own: dict[str, float] = defaultdict(float)
        self.calls: Counter = Counter()
        self._inner: list[float] = []  # per open stage: the time of the stages it called
        self._thread = threading.get_ident()

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if threading.get_ident() != self._thread:
                return fn(*args, **kwargs)
            self.sync()
            t0 = time.perf_counter()
            self._inner.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                self.sync()
                took = time.perf_counter() - t0
                inner = self._inner.pop()
                self.total[name] += took
                self.own[name] += took - inner
                self.calls[name] += 1
                if self._inner:
                    self._inner[-1] += took
        return timed

    @contextmanager
    def timing(self):
        """Every stage timed and the pairs one at a time, while the block runs."""
        import importlib
        from unittest import mock

        from atlas.pipeline import model_run

        with ExitStack() as stack:
            stack.enter_context(mock.patch.object(model_run, "ThreadPoolExecutor", _InThisThread))
            for where, attr, name in self.STAGES:
                module, _, cls = where.partition(":")
                owner = importlib.import_module(module)
                owner = getattr(owner, cls) if cls else owner
                stack.enter_context(mock.patch.object(owner, attr, self.wrap(name, getattr(owner, attr))))
            yield self

    def table(self, run_s: float) -> list[str]:
        """Lines of the stages by own time, with the run's time no stage covers."""
        lines = [f"  {'stage (own time: without the stages it calls)':52s} {'calls':>6} {'own s':>8} {'share':>6} "
                 f"{'with callees s':>15}"]
        for name in sorted(self.own, key=self.own.get, reverse=True):
            lines.append(f"  {name:52s} {self.calls[name]:6d} {self.own[name]:8.2f} {self.own[name] / run_s:6.1%} "
                         f"{self.total[name]:15.2f}")
        rest = run_s - sum(self.own.values())
        lines.append(f"  {'(in no stage: streams, intervals, records, ...)':52s} {'':6s} {rest:8.2f} {rest / run_s:6.1%}")
        return lines


def _stopped(signum, frame):
    raise SystemExit(f"stopped by signal {signum} (a time limit?)")


def _profiled_run(run, path: str):
    """The run with its analyses one pair after another under cProfile (forward passes included);
    the 30 costliest functions (own time and with callees) printed, the whole profile written to
    ``path`` (read with ``python -m pstats``)."""
    import cProfile
    import pstats
    from unittest import mock

    from atlas.pipeline import model_run

    profiler = cProfile.Profile()
    with mock.patch.object(model_run, "ThreadPoolExecutor", _InThisThread):
        result = profiler.runcall(run.run)
    profiler.dump_stats(path)
    for key in ("tottime", "cumulative"):
        print(f"\n--- run profile, one pair at a time, by {key} ---")
        pstats.Stats(profiler).sort_stats(key).print_stats(30)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="vit_small_patch16_224.dino,vit_base_patch16_224.mae",
                   help="comma-separated timm names (random init)")
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (then the figures are CPU figures)")
    p.add_argument("--memory-gb", type=float, default=None,
                   help="feature budget ([features] memory_gb; default: from the free memory)")
    p.add_argument("--settings", choices=("zoo", "readme"), default="zoo",
                   help="analysis settings: configs/zoo.toml's (default: every block, 4 gallery blocks, K = 2/4/8/16, "
                        "3 seeds, 200 resamples, its [evaluation]) or the README's 2026-12-04 table's (one K, the "
                        "last block's gallery, no evaluation)")
    p.add_argument("--layers", default=None,
                   help="the sweep's blocks instead: indices (0,11) or relative depths (0.25,0.5,0.75,1.0); the "
                        "gallery blocks are analysed too. Per-pair figures of a subset, for large image counts")
    p.add_argument("--no-evaluation", action="store_true", help="leave out the evaluation against human masks")
    p.add_argument("--evaluation-root", default=None,
                   help="the evaluation dataset's folder (default: configs/zoo.toml's, ../shared/data/camvid)")
    p.add_argument("--profile", metavar="FILE", default="",
                   help="run the analyses one pair at a time under cProfile, print the costliest functions and "
                        "write the profile to FILE")
    p.add_argument("--stages", action="store_true",
                   help="also time each stage (k-means, every measure, PCA, attention, the evaluation's parts), the "
                        "pairs one at a time and the device synchronised at each stage: where the time goes (the "
                        "run's own total is then a serial one, not a build's)")
    args = p.parse_args(argv)

    import torch

    from atlas.features.device import describe, pick_device

    if args.stages:  # `timeout` stops a step with SIGTERM: unwind, so that the stages so far are printed
        signal.signal(signal.SIGTERM, _stopped)

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here; run on a GPU machine, or with --device cpu for CPU figures",
              file=sys.stderr)
        return 2
    device = pick_device(args.device)
    where = describe(device) + ("" if device.type == "cuda" else " -- CPU RUN, NOT GPU FIGURES")
    print(f"{args.images} images at {args.size}px, batch {args.batch} | device {where} | torch {torch.__version__} | "
          f"{args.settings} settings{'' if args.layers is None else ', blocks ' + args.layers}"
          f"{', no evaluation' if args.no_evaluation or args.settings == 'readme' else ''}")
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        f = bench_model(model, args, device)
        print(f"\n{model} ({f['pairs']} block x representation pairs)")
        print(f"  raw forward_features fp32 : {f['raw fp32']:8.1f} img/s")
        print(f"  raw forward_features bf16 : {f['raw bf16']:8.1f} img/s   (bf16 / fp32 = {f['raw bf16'] / f['raw fp32']:.2f})")
        print(f"  pipeline (fp32)           : {f['pipeline fp32']:8.1f} img/s   (/ raw fp32 = "
              f"{f['pipeline fp32'] / f['raw fp32']:.2f}, / raw bf16 = {f['pipeline fp32'] / f['raw bf16']:.2f})")
        print(f"  extraction (all sets)     : {f['extract s']:8.1f} s   ({f['passes']} pass(es) over {f['pairs']} pairs, "
              f"{f['features GiB']:.2f} GiB of features; at most {f['kept GiB']:.2f} GiB kept at once; "
              f"{f['on demand']} pair(s) on demand)")
        print(f"  analyses                  : {f['analyse s']:8.1f} s   (/ extraction = "
              f"{f['analyse s'] / max(f['extract s'], 1e-9):.2f}; {f['analyse s'] / max(f['pairs'], 1):.2f} s per pair, "
              f"{f['gallery pairs']} of the {f['pairs']} pairs in the gallery)")
        if f["evaluation s"] is not None:
            print(f"  evaluation                : {f['evaluation s']:8.1f} s   ({f['evaluation images']} images with "
                  f"human masks, {f['gallery pairs']} gallery pairs)")
        if device.type == "cuda":
            print(f"  peak GPU memory           : {f['peak GiB']:.2f} GiB")
        if f["stages"] is not None:
            print(f"  stages of the run ({f['run s']:.1f} s, pairs one at a time, device synchronised per stage):")
            print("\n".join(f["stages"].table(f["run s"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
