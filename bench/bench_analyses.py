"""Analyses benchmark: every measure of one model (all blocks, all representations) vs extraction.

Prints, measured in one run on the same images and model: time to extract the images (plus the
blank-input probes and shift-test crops the measures need) and time for the joint k-means and all
measures over every block and representation, and their ratio (target: well under 1).

Usage::

    python bench/bench_analyses.py                 # ViT-S/16 random init, 100 images, 12 blocks x 4 representations
    python bench/bench_analyses.py --images 40
    python bench/bench_analyses.py --breakdown     # also: single-thread time of each part per pair
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vit_small_patch16_224.dino")
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--breakdown", action="store_true",
                   help="also time each part of one (block, representation) single-threaded, over 8 pairs")
    args = p.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from atlas.config import block_representations, parse_config
    from atlas.features.backbones import load_backbone
    from atlas.features.device import describe, pick_device
    from atlas.pipeline.model_run import ModelRun
    from bench_extraction import _images

    cfg = parse_config(f"""
[features]
layers = "all"
gallery_layers = [1.0]
batch_size = {args.batch}
[clustering]
ks = [8]
[[backbones]]
display_name = "bench"
timm_name = "{args.model}"
weights = "random"
training = "random"
""")
    device = pick_device("auto")
    loaded = load_backbone(cfg.backbones[0], (224, 224), seed=0)
    images = _images(args.images)
    mb = ModelRun(cfg, loaded, images, None, device)  # features streamed, as a build does
    with threadpool_limits(1, user_api="blas"):
        result = mb.run()
    t_extract, t_analyse = result.timings["extract_s"], result.timings["cluster_analyse_s"]
    parts = None
    if args.breakdown:
        extra = mb.image_sets()
        # kept, as during a build (tokens_normed exists at the last block only)
        mb.stream.fill(block_representations(mb.blocks[:2], mb.reps, loaded.card.depth))
        parts = _breakdown(mb, extra)
    n_pairs = len(block_representations(mb.blocks, mb.reps, loaded.card.depth))
    measures = result.measures
    print(f"model {args.model} | {args.images} images | {len(mb.blocks)} blocks x {len(mb.reps)} representations | "
          f"device {describe(device)}")
    print(f"extraction (every image set)  : {t_extract:8.1f} s  ({result.passes['passes']} forward pass(es))")
    print(f"k-means + all measures       : {t_analyse:8.1f} s  ({t_analyse / n_pairs:.2f} s per block x representation, "
          f"{len(measures)} numbers)")
    print(f"ratio analyses / extraction  : {t_analyse / t_extract:6.3f}")
    if parts:
        total = sum(parts.values())
        print("single-thread time per block x representation (mean over 8 pairs):")
        for name, ms in parts.items():
            print(f"  {name:40s}: {ms:6.1f} ms  ({ms / total:4.0%})")
        print(f"  {'total':40s}: {total:6.1f} ms")


def _breakdown(mb, extra) -> dict[str, float]:
    """Milliseconds per (block, representation) of each part of the analyses, one thread."""
    from threadpoolctl import threadpool_limits

    from atlas.clustering.kmeans import predict_features
    from atlas.features.device import torch_threads
    from atlas.measures.boundary import _boundary_artifacts
    from atlas.measures.locality import _similarity_structure
    from atlas.measures.positional import (_as_features, _as_labels, _position_probe, blank_input_structure,
                                           positional_clustering)
    from atlas.measures.shift import shift_curve
    from atlas.pipeline.inputs import SHIFTS

    parts: dict[str, float] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        parts[name] = parts.get(name, 0.0) + (time.perf_counter() - t0) * 1000 / len(pairs)
        return out

    from atlas.config import block_representations

    pairs = block_representations(mb.blocks[:2], mb.reps, mb.loaded.card.depth)
    with threadpool_limits(1, user_api="blas"), torch_threads(1):
        for b, r in pairs:
            load = lambda imgs: mb.load(imgs, b, r)  # noqa: E731
            patches, prefix = timed("feature reads (images)", lambda: load(mb.images))
            labels, km = timed("k-means fit + assignment", lambda: mb.cluster(patches, mb.k_measures))
            labels = _as_labels(labels)
            feats = timed("input validation", lambda: _as_features(patches, min_images=2))
            timed("positional clustering (NCE, AMI)", lambda: positional_clustering(labels, seed=0))
            timed("position probe (5 folds x eigh)", lambda: _position_probe(feats))
            timed("similarity / locality", lambda: _similarity_structure(feats))
            timed("boundary artifacts", lambda: _boundary_artifacts(labels, feats, prefix))
            if "probe" in extra:
                blank, _ = timed("feature reads (blank probes, shift crops)", lambda: load(extra["probe"]))
                lab = timed("blank probe + shift test", lambda: predict_features(km, blank))
                timed("blank probe + shift test", lambda: blank_input_structure(lab, seed=0))
            if "shift0" in extra:
                crops = {s: timed("feature reads (blank probes, shift crops)", lambda s=s: load(extra[f"shift{s}"])[0])
                         for s in (0, *SHIFTS)}
                maps = {s: timed("blank probe + shift test", lambda s=s: predict_features(km, crops[s]))
                        for s in (0, *SHIFTS)}
                timed("blank probe + shift test", lambda: shift_curve({s: (maps[0], maps[s]) for s in SHIFTS}))
    return parts


if __name__ == "__main__":
    main()
