"""The small dense decompositions of the analyses, timed on one device: what a call costs as the
channel count C grows, one matrix at a time vs one batched call.

The position probe decomposes one C x C Gram matrix per fold (5 folds), the PCA pictures one
C x C covariance per (block, representation) pair. On a GPU such calls are bound by latency, not
work, so how torch's ``linalg`` handles a batch decides whether batching pays. Per C it prints ms
per call of:

* ``eigh`` float32 and float64: 5 matrices one at a time vs one (5, C, C) batch;
* the ridge path by Cholesky instead (33 penalties x 5 folds, float64, one batched call);
* numpy's host ``eigh`` (float64), for reference.

Usage::

    python bench/bench_linalg.py                  # CUDA if available, else the CPU
    python bench/bench_linalg.py --device cpu --sizes 384,768
"""

from __future__ import annotations

import argparse
import sys
import time


def _timed(fn, sync, repeat: int = 3) -> float:
    fn()  # warm-up (also loads the kernels)
    sync()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync()
    return (time.perf_counter() - t0) / repeat * 1e3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="cuda, cpu or auto (default: CUDA if available)")
    p.add_argument("--sizes", default="384,768,1024,1536", help="channel counts C, comma-separated")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--penalties", type=int, default=33)
    args = p.parse_args(argv)

    import numpy as np
    import torch

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'host'}) | "
          f"torch {torch.__version__} | ms per call, mean of 3 after a warm-up")
    print(f"{'C':>6} {'eigh32 x5':>10} {'eigh32 b5':>10} {'eigh64 x5':>10} {'eigh64 b5':>10} "
          f"{'chol64 b' + str(args.folds * args.penalties):>11} {'numpy64 x1':>11}")
    gen = torch.Generator(device="cpu").manual_seed(0)
    for c in [int(s) for s in args.sizes.split(",") if s]:
        x = torch.randn(args.folds, 4 * c, c, generator=gen, dtype=torch.float64)
        grams = (x.transpose(1, 2) @ x).to(device)
        rhs = torch.randn(args.folds, c, 2, generator=gen, dtype=torch.float64).to(device)
        alphas = torch.logspace(-4, 4, args.penalties, dtype=torch.float64, device=device) * c
        g32 = grams.float()

        def one_by_one(g):
            return [torch.linalg.eigh(m) for m in g]

        def cholesky_path():
            a = grams[:, None] + alphas[None, :, None, None] * torch.eye(c, dtype=torch.float64, device=device)
            factor, _ = torch.linalg.cholesky_ex(a.reshape(-1, c, c))
            b = rhs[:, None].expand(-1, len(alphas), -1, -1).reshape(-1, c, 2)
            return torch.cholesky_solve(b, factor)

        host = grams[0].cpu().numpy()
        row = [_timed(lambda: one_by_one(g32), sync), _timed(lambda: torch.linalg.eigh(g32), sync),
               _timed(lambda: one_by_one(grams), sync), _timed(lambda: torch.linalg.eigh(grams), sync),
               _timed(cholesky_path, sync), _timed(lambda: np.linalg.eigh(host), lambda: None)]
        print(f"{c:>6} " + " ".join(f"{v:>10.1f}" for v in row[:4]) + f" {row[4]:>11.1f} {row[5]:>11.1f}")
        del x, grams, g32
    return 0


if __name__ == "__main__":
    sys.exit(main())
