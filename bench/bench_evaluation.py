"""Evaluation benchmark: time of all evaluations against human masks per model vs its extraction.

Runs on ../shared/data/camvid (all 101 images by default). Prints, in one run on the same model:
extraction time of the dataset images (4 gallery blocks x 4 representations), evaluation time
(STEGO matched mIoU + over-clustering, k-NN probe, channel removal, masking similarity incl. its
extra forward passes, pseudo-masks) and their ratio.

Usage::

    python bench/bench_evaluation.py                         # ViT-S/16 random init, all CamVid images
    python bench/bench_evaluation.py --images 40
    python bench/bench_evaluation.py --model vit_small_patch14_reg4_dinov2 --size 322   # a 23 x 23 grid
    python bench/bench_evaluation.py --images 40 --json /tmp/after.json   # the numbers too, to compare
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vit_small_patch16_224.dino")
    p.add_argument("--images", type=int, default=0, help="0 = all")
    p.add_argument("--size", type=int, default=224, help="input size in px (default 224)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "camvid"))
    p.add_argument("--json", metavar="FILE", help="also write the numbers (rows, baselines, selection, figures) "
                                                  "to FILE: two checkouts' files compare a change's results")
    args = p.parse_args(argv)
    if not Path(args.data).is_dir():
        print(f"skipped: {args.data} not found (the evaluation benchmark needs CamVid)")
        return

    from threadpoolctl import threadpool_limits

    from atlas.config import parse_config
    from atlas.features.backbones import load_backbone
    from atlas.features.device import describe, pick_device
    from atlas.pipeline.evaluation_run import EvaluationRun
    from atlas.pipeline.model_run import ModelRun

    cfg = parse_config(f"""
[evaluation]
dataset = "camvid"
root = "{args.data}"
max_images = {args.images}
[[backbones]]
display_name = "bench"
timm_name = "{args.model}"
weights = "random"
training = "random"
""")
    ev = EvaluationRun.from_config(cfg, [])
    device = pick_device("auto")
    loaded = load_backbone(cfg.backbones[0], (args.size, args.size), seed=0)
    mb = ModelRun(cfg, loaded, [], None, device, evaluations=[ev])
    images = ev._atlas_images()
    scoring = ev.start(mb, blocks=mb.gallery_blocks, reps=mb.reps, device=mb.analysis_device)
    t0 = time.perf_counter()
    mb.stream.fill(scoring.pairs)  # the dataset images (and masking variants) in one pass, as a build does
    t_extract = time.perf_counter() - t0
    t0 = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):
        ev.score_pairs(scoring, scoring.pairs)
        t_pairs = time.perf_counter() - t0
        figures: dict = {}
        scored = ev.finish(scoring, figures)  # the baselines (chance, colour, position, ...) and the selection
        rows = scored.rows
    t_eval = time.perf_counter() - t0
    print(f"model {args.model} | {len(images)} CamVid images | {len(mb.gallery_blocks)} blocks x {len(mb.reps)} "
          f"representations | device {describe(device)}")
    print(f"extraction of the dataset images : {t_extract:7.1f} s")
    print(f"all evaluations                  : {t_eval:7.1f} s  ({len(rows)} numbers; the model's "
          f"{t_pairs:.1f} s, their baselines {t_eval - t_pairs:.1f} s)")
    print(f"ratio evaluation / extraction    : {t_eval / t_extract:7.2f}")
    if args.json:
        import json

        from atlas.records import to_json

        numbers = {"rows": to_json(rows), "baselines": to_json(scored.baselines), "selected": scored.selected,
                   "figures": figures}
        Path(args.json).write_text(json.dumps(numbers, sort_keys=True, default=float), encoding="utf-8")
        print(f"numbers written to {args.json}")


if __name__ == "__main__":
    main()
