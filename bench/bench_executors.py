"""Benchmark: the same build serial vs ``--executor local`` vs ``--executor slurm``.

Each executor builds the config from scratch into its own output folder (every model computed),
all reading one warm feature cache (filled first, untimed), so the runs differ only in where the
models are computed. Prints wall-time ratios to the serial build and, per model job, the overhead
of the job machinery: wall time from submission to result minus the time the job spent loading
and computing its model (queueing, process start, imports, reading the config and images), as a
fraction of that model's time in the serial build (target: < 5 % per job).

Usage::

    .venv/bin/python bench/bench_executors.py                        # configs/demo.toml
    .venv/bin/python bench/bench_executors.py --executors serial,local

Slurm: the local one-node cluster (``scripts/slurm_local.sh up``, root) or any cluster this machine
submits to; skipped when ``sbatch`` is missing.
"""

from __future__ import annotations

import argparse
import logging
import platform
import shutil
import tempfile
import time
from pathlib import Path

from atlas.config import load_config, parse_config
from atlas.pipeline.build import build_atlas
from atlas.pipeline.executors import ModelJobs, executor_settings

REPO = Path(__file__).resolve().parents[1]


def _paths(text: str, out: Path, cache: Path) -> str:
    text = text.replace('output_dir = "build/demo"', f'output_dir = "{out}"')
    return text.replace('cache_dir = ".cache/features"', f'cache_dir = "{cache}"')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(REPO / "configs" / "demo.toml"))
    p.add_argument("--executors", default="serial,local,slurm")
    p.add_argument("--workers", type=int, default=2, help="local: jobs at a time")
    p.add_argument("--cache", default=str(REPO / ".cache" / "features"), help="the (warm) feature cache to share")
    p.add_argument("--cache-is-warm", action="store_true", help="skip filling the cache (it holds the config's features)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    source = Path(args.config).resolve()
    text = load_config(source).source_text
    kinds = [k for k in args.executors.split(",") if k]
    if "slurm" in kinds and shutil.which("sbatch") is None:
        print("slurm: sbatch not found, skipped")
        kinds.remove("slurm")
    with tempfile.TemporaryDirectory(prefix="atlas-bench-exec-") as tmp:
        # the config must be a file the jobs can read: written beside a copy of the project's configs
        cfg_file = REPO / "configs" / f".bench-executors-{source.stem}.toml"
        walls: dict[str, float] = {}
        serial_model_s: dict[str, float] = {}
        jobs: dict[str, dict] = {}
        try:
            if not args.cache_is_warm:
                warm = parse_config(_paths(text, Path(tmp) / "warm", Path(args.cache)), str(source))
                print("filling the feature cache (untimed) ...", flush=True)
                build_atlas(warm, progress=False)
            for kind in kinds:
                out = Path(tmp) / kind
                cfg_file.write_text(_paths(text, out, Path(args.cache)))
                cfg = load_config(cfg_file)
                # local: --workers jobs of an equal share of the cores; slurm: as many 1-core jobs at once
                executor = None if kind == "serial" else ModelJobs(
                    cfg, kind, executor_settings(cfg, workers=args.workers,
                                                 cpus_per_job=1 if kind == "slurm" else None), progress=False)
                t0 = time.perf_counter()
                results = build_atlas(cfg, progress=False, executor=executor)
                walls[kind] = time.perf_counter() - t0
                if kind == "serial":
                    serial_model_s = {k[len("model "):]: v for k, v in results.timings.items() if k.startswith("model ")}
                else:
                    jobs[kind] = executor.report
                print(f"{kind}: {walls[kind]:.1f} s", flush=True)
        finally:
            cfg_file.unlink(missing_ok=True)
    print(f"\n{platform.machine()}, {len(serial_model_s)} models, config {source.name}")
    for kind, wall in walls.items():
        print(f"{kind:7s} wall {wall:7.1f} s   ratio to serial {wall / walls['serial']:.2f}" if "serial" in walls
              else f"{kind:7s} wall {wall:7.1f} s")
    for kind, report in jobs.items():
        print(f"\n{kind}: per model job, seconds: queued = submission to process start; start-up = imports, "
              f"config, images; after = result written and seen; overhead = start-up + after")
        for slug, r in report.items():
            base = serial_model_s.get(slug)
            if base is None or "model_s" not in r or r.get("process_start") is None:
                continue
            queued = r["process_start"] - r["submitted_at"]
            startup = r["model_start"] - r["process_start"]
            after = r["seen_at"] - (r["model_start"] + r["model_s"])
            over = startup + after
            print(f"  {slug:44s} queued {queued:6.1f}  start-up {startup:5.1f}  model {r['model_s']:6.1f} "
                  f"(serial {base:6.1f})  after {after:4.1f}  overhead {over:5.1f} = {over / base:.1%} of serial")


if __name__ == "__main__":
    main()
