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
* peak GPU memory (``torch.cuda.max_memory_allocated``) of the whole run, and the most memory the
  kept features of one pass took.

On a machine without CUDA it runs only with ``--device cpu`` and says so on every line's header:
those are CPU figures, not GPU ones.

Usage::

    python bench/bench_gpu.py                                       # CUDA, ViT-S/16 and ViT-B/16, 128 images
    python bench/bench_gpu.py --models vit_large_patch14_dinov2.lvd142m --size 518 --images 256
    python bench/bench_gpu.py --device cpu --images 16 --models vit_small_patch16_224.dino
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _config(model: str, batch: int, size: int):
    from atlas.config import parse_config

    return parse_config(f"""
[images]
resolution = [{size}, {size}]
[features]
layers = "all"
gallery_layers = [1.0]
batch_size = {batch}
[clustering]
ks = [8]
[[backbones]]
display_name = "bench"
timm_name = "{model}"
weights = "random"
training = "random"
""")


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
    from atlas.features.backbones import load_backbone
    from atlas.pipeline.model_run import ModelRun
    from bench_extraction import _images, run_raw

    raw_args = argparse.Namespace(model=model, size=args.size, batch=args.batch, blocks="last", device=args.device,
                                  threads=0)
    out = {"raw fp32": run_raw(raw_args, args.images, "fp32"), "raw bf16": run_raw(raw_args, args.images, "bf16")}
    cfg = _config(model, args.batch, args.size)
    loaded = load_backbone(cfg.backbones[0], (args.size, args.size), seed=0)
    images = _images(args.images)
    memory = None if args.memory_gb is None else int(args.memory_gb * 1e9)
    run = ModelRun(cfg, loaded, images, None, device, memory_bytes=memory)
    _peak_reset(device)
    if args.profile:
        result = _profiled_run(run, args.profile)
    else:
        result = run.run()
    out["peak GiB"] = _peak_gib(device)
    out["extract s"] = result.timings["extract_s"]
    out["analyse s"] = result.timings["cluster_analyse_s"]
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
    p.add_argument("--profile", metavar="FILE", default="",
                   help="run the analyses one pair at a time under cProfile, print the costliest functions and "
                        "write the profile to FILE")
    args = p.parse_args(argv)

    import torch

    from atlas.features.device import describe, pick_device

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here; run on a GPU machine, or with --device cpu for CPU figures",
              file=sys.stderr)
        return 2
    device = pick_device(args.device)
    where = describe(device) + ("" if device.type == "cuda" else " -- CPU RUN, NOT GPU FIGURES")
    print(f"{args.images} images at {args.size}px, batch {args.batch} | device {where} | torch {torch.__version__}")
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
              f"{f['analyse s'] / max(f['extract s'], 1e-9):.2f})")
        if device.type == "cuda":
            print(f"  peak GPU memory           : {f['peak GiB']:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
