"""Benchmark: atlas JointKMeans (auto backend) vs scikit-learn KMeans on the same tokens.

Tokens are synthetic but shaped like ViT patch tokens: a Gaussian mixture with more components
than clusters (unequal weights, low-rank anisotropic spread per component, isotropic noise) plus
a few percent of unstructured background tokens, L2-normalised. Both methods get the same
normalised float32 matrix; inertia of both is recomputed by one function in that same space.

Usage::

    .venv/bin/python bench/bench_kmeans.py                 # 1M x 384, K=27
    .venv/bin/python bench/bench_kmeans.py --tokens 200000 # quicker

Targets: speed ratio sklearn/ours >= 2, inertia ratio ours/sklearn <= 1.01.

A second part measures what fitting the centroids on a sample costs (the build's default,
``[clustering] train_tokens_per_cluster = 512``): on one (block, representation) sized set of
tokens (100 images x 14 x 14 patches, a mixture of content clusters plus a planted direction per
grid quadrant), it fits on every token and on 256 / 512 / 1024 tokens per cluster and prints time,
inertia over all tokens and the label-based measures next to their spread over seeds of the
full fit. ``--skip-full`` runs only that part.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def make_tokens(n: int, dim: int, n_components: int, seed: int, chunk: int = 100_000) -> np.ndarray:
    """(n, dim) float32 L2-normalised mixture tokens, generated chunk by chunk."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_components, dim)).astype(np.float32)
    rank = 8
    bases = rng.normal(size=(n_components, rank, dim)).astype(np.float32) * 0.35  # anisotropic spread
    weights = rng.dirichlet(np.full(n_components, 0.7))  # unequal cluster sizes
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        m = e - s
        comp = rng.choice(n_components, size=m, p=weights)
        x = means[comp]
        x += np.einsum("nr,nrd->nd", rng.standard_normal((m, rank), dtype=np.float32), bases[comp])
        x += 0.9 * rng.standard_normal((m, dim), dtype=np.float32)
        background = rng.random(m) < 0.03  # unstructured tokens
        x[background] = 2.0 * rng.standard_normal((int(background.sum()), dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s:e] = x
    return out


def inertia(X: np.ndarray, centers: np.ndarray, chunk: int = 100_000) -> float:
    """Sum of squared distances of every row to its nearest centre (float64 accumulation)."""
    C = centers.astype(np.float64)
    c_sq = (C**2).sum(1)
    total = 0.0
    for s in range(0, len(X), chunk):
        x = X[s : s + chunk].astype(np.float64)
        d = (x**2).sum(1)[:, None] - 2.0 * x @ C.T + c_sq[None]
        total += float(np.maximum(d.min(1), 0).sum())
    return total


def subsample_effect(k: int = 8, n_images: int = 100, grid: int = 14, dim: int = 384, seeds: int = 4) -> None:
    """Sample-fitted vs all-token k-means on one pair's worth of tokens with planted position."""
    from sklearn.metrics import adjusted_rand_score
    from threadpoolctl import threadpool_limits

    from atlas.clustering.kmeans import JointKMeans
    from atlas.measures.boundary import boundary_artifacts
    from atlas.measures.positional import positional_clustering

    n_tok = n_images * grid * grid
    content = make_tokens(n_tok, dim, 40, seed=1).reshape(n_images, grid, grid, dim)
    # planted position: each quadrant of the grid gets its own unit direction
    directions = np.random.default_rng(2).normal(size=(4, dim)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    rows, cols = np.divmod(np.arange(grid * grid), grid)
    pos = directions[2 * (rows >= grid // 2) + (cols >= grid // 2)].reshape(1, grid, grid, dim)
    print(f"\ntraining sample vs all tokens: {n_tok:,} tokens x {dim} (one block x representation of "
          f"{n_images} images), K={k}, content mixture + alpha * position; 1 BLAS thread")
    for alpha in (0.0, 0.5, 1.0, 2.0):
        feats = content + alpha * pos
        flat = feats.reshape(-1, dim)

        def fit(per, seed):
            t = time.perf_counter()
            km = JointKMeans(k, seed=seed, n_init=1, max_train_tokens=per and per * k).fit(flat)
            labels = km.labels_.reshape(feats.shape[:3])
            nce = positional_clustering(labels)["nce"]
            border = boundary_artifacts(labels, feats)["ami"]
            return time.perf_counter() - t, km, nce, border

        with threadpool_limits(1, user_api="blas"):
            fit(None, seeds)  # warm-up: first calls pay for imports and thread pools
            full = [fit(None, s) for s in range(seeds)]
            rows = {per: [fit(per, s) for s in range(seeds)] for per in (256, 512, 1024)}
        ref_inertia = np.mean([f[1].inertia_ for f in full])
        seed_ari = np.mean([adjusted_rand_score(full[0][1].labels_, f[1].labels_) for f in full[1:]])
        nce = np.array([f[2] for f in full])
        print(f"alpha {alpha}: all tokens   {np.mean([f[0] for f in full]) * 1e3:6.0f} ms | inertia 1.0000 | "
              f"ARI between seeds {seed_ari:.3f} | positional NCE {nce.mean():.4f} +- {nce.std():.4f} | "
              f"border AMI {np.mean([f[3] for f in full]):.4f}")
        for per, fits in rows.items():
            ari = np.mean([adjusted_rand_score(full[0][1].labels_, f[1].labels_) for f in fits])
            nce_s = np.array([f[2] for f in fits])
            print(f"          {per:4d}/cluster {np.mean([f[0] for f in fits]) * 1e3:6.0f} ms | inertia "
                  f"{np.mean([f[1].inertia_ for f in fits]) / ref_inertia:.4f} | ARI vs all-token fit {ari:.3f} | "
                  f"positional NCE {nce_s.mean():.4f} +- {nce_s.std():.4f} | border AMI {np.mean([f[3] for f in fits]):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1_000_000, help="number of tokens (default 1M)")
    ap.add_argument("--dim", type=int, default=384, help="token dimension (default 384)")
    ap.add_argument("--k", type=int, default=27, help="number of clusters (default 27)")
    ap.add_argument("--components", type=int, default=40, help="mixture components (default 40)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=None, help="JointKMeans tol (default: its default, 1e-4)")
    ap.add_argument("--skip-full", action="store_true", help="only the training-sample part")
    args = ap.parse_args()
    if args.skip_full:
        subsample_effect()
        return

    import torch
    from sklearn import __version__ as sk_version
    from sklearn.cluster import KMeans

    from atlas.clustering.kmeans import JointKMeans

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpu, "
          f"torch threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}, sklearn {sk_version}")
    t = time.perf_counter()
    X = make_tokens(args.tokens, args.dim, args.components, args.seed)
    print(f"tokens: {X.shape[0]:,} x {X.shape[1]} float32 ({X.nbytes / 2**30:.2f} GiB), "
          f"{args.components} components, made in {time.perf_counter() - t:.1f} s; K={args.k}")

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    t = time.perf_counter()
    kw = {} if args.tol is None else {"tol": args.tol}
    ours = JointKMeans(args.k, seed=args.seed, n_iter=30, backend="auto", **kw).fit(X)
    t_ours = time.perf_counter() - t
    print(f"ours   : backend={ours.backend_}, {t_ours:7.2f} s, {ours.n_iter_} full-data iterations "
          f"(after seeding + Lloyd on a 100k-token sample), tol={ours.tol}")

    t = time.perf_counter()
    sk = KMeans(n_clusters=args.k, n_init=1, max_iter=30, init="k-means++", random_state=args.seed).fit(X)
    t_sk = time.perf_counter() - t
    print(f"sklearn:                {t_sk:7.2f} s, {sk.n_iter_} iterations")
    print(f"load average after: {os.getloadavg()[0]:.2f}")

    i_ours = inertia(X, ours.cluster_centers_)
    i_sk = inertia(X, sk.cluster_centers_)
    print(f"inertia (same space, same function): ours {i_ours:.2f}  sklearn {i_sk:.2f}  "
          f"(reported: ours.inertia_ {ours.inertia_:.2f}, sklearn.inertia_ {sk.inertia_:.2f})")
    print(f"speed ratio sklearn/ours : {t_sk / t_ours:.2f}x  (target >= 2x)")
    print(f"inertia ratio ours/sklearn: {i_ours / i_sk:.4f}  (target <= 1.01)")
    del X
    subsample_effect()


if __name__ == "__main__":
    main()
