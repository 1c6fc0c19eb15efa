"""Extraction benchmark: pipeline throughput vs raw ``forward_features``, and peak memory vs images.

Prints, measured in one run on the same device, batch size and model:

* pipeline images/s (decode + resize + extract every requested block/representation + float16
  cache writes) divided by raw ``model.forward_features`` images/s on preprocessed tensors
  (target >= 0.9);
* peak RSS of a fresh process extracting 50 vs 200 images (target: flat; extraction streams).

Usage::

    python bench/bench_extraction.py                       # ViT-S/16, batch 8, last block, 4 representations
    python bench/bench_extraction.py --blocks all --images 64
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _images(n: int, size=(240, 320)):
    import numpy as np
    from PIL import Image

    from atlas.inputs.images import memory_image

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        # smooth random photos-like content (cheap to make, distinct hashes)
        small = rng.integers(0, 255, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size[1], size[0]), Image.Resampling.BILINEAR)
        out.append(memory_image(f"bench{i}", img, "bench"))
    return out


def _setup(args):
    import torch

    from atlas.config import Backbone, resolve_layers
    from atlas.features.backbones import load_backbone
    from atlas.features.device import pick_device

    torch.set_num_threads(args.threads) if args.threads else None
    spec = Backbone(display_name="bench", timm_name=args.model, weights="random", training="random")
    loaded = load_backbone(spec, (args.size, args.size), seed=0)
    device = pick_device(args.device)
    blocks = resolve_layers("all" if args.blocks == "all" else [1.0], loaded.card.depth)
    return loaded, device, blocks


def run_pipeline(args, n_images: int, cache_dir: str) -> float:
    from atlas.features.cache import FeatureCache
    from atlas.features.extract import extract_to_cache

    loaded, device, blocks = _setup(args)
    images = _images(n_images)
    reps = args.representations.split(",")
    t0 = time.perf_counter()
    stats = extract_to_cache(loaded, images, blocks, reps, FeatureCache(cache_dir),
                             device=device, batch_size=args.batch, progress=False)
    dt = time.perf_counter() - t0
    assert stats.extracted == n_images
    return n_images / dt


def run_raw(args, n_images: int, precision: str = "fp32") -> float:
    import torch

    from atlas.features.device import autocast
    from atlas.inputs.geometry import to_tensor

    loaded, device, _ = _setup(args)
    model = loaded.model.to(device)
    policy = loaded.policy
    # preprocessing is done before the clock starts: this is the model alone
    xs = [to_tensor(policy.apply(im.load()), loaded.card.mean, loaded.card.std) for im in _images(n_images)]
    batches = [torch.stack(xs[i:i + args.batch]) for i in range(0, n_images, args.batch)]
    with torch.inference_mode(), autocast(device, precision):
        model.forward_features(batches[0].to(device))  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for b in batches:
            model.forward_features(b.to(device)).float().cpu()
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    return n_images / dt


def _child_rss(args, n_images: int) -> float:
    """Peak RSS (MiB) of a fresh process that extracts n_images."""
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, __file__, "--_child", str(n_images), "--_cache", d] + _passthrough(args)
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["rss_mib"]


def _passthrough(args) -> list[str]:
    return ["--model", args.model, "--batch", str(args.batch), "--size", str(args.size), "--blocks", args.blocks,
            "--representations", args.representations, "--device", args.device, "--threads", str(args.threads)]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vit_small_patch16_224.dino", help="timm name (random init)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--images", type=int, default=48, help="images for the throughput comparison")
    p.add_argument("--blocks", choices=["last", "all"], default="last")
    p.add_argument("--representations", default="tokens,keys,queries,values")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--_child", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--_cache", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._child:
        run_pipeline(args, args._child, args._cache)
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"rss_mib": rss_kib / 1024}))
        return

    from atlas.features.device import describe, pick_device

    print(f"model {args.model} | batch {args.batch} | {args.size}px | blocks {args.blocks} | "
          f"representations {args.representations} | device {describe(pick_device(args.device))}")
    raw = run_raw(args, args.images)
    with tempfile.TemporaryDirectory() as d:
        pipe = run_pipeline(args, args.images, d)
    print(f"raw forward_features : {raw:7.2f} img/s")
    print(f"extraction pipeline  : {pipe:7.2f} img/s")
    print(f"ratio pipeline / raw : {pipe / raw:7.3f}   (target >= 0.9)")
    if not args.skip_rss:
        small, large = _child_rss(args, 50), _child_rss(args, 200)
        print(f"peak RSS  50 images  : {small:7.0f} MiB")
        print(f"peak RSS 200 images  : {large:7.0f} MiB")
        print(f"ratio 200 / 50       : {large / small:7.3f}   (target ~1.0: memory does not grow with images)")


if __name__ == "__main__":
    main()
