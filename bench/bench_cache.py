"""Benchmark: what verifying feature-cache reads costs (CRC-32 + finite check vs a bare read).

Every ``FeatureCache.get`` checks the tensor it reads against the CRC-32 stored in the file and
for NaN / infinite values (``atlas/features/cache.py``). This prints the time of the verified
read next to a bare ``readinto`` of the same bytes, measured in one run on the same files, as a
ratio (absolute times on this machine are noisy).

Usage::

    .venv/bin/python bench/bench_cache.py                  # 100 images x 4 blocks, ViT-S/16 tokens
    .venv/bin/python bench/bench_cache.py --images 400
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import numpy as np

from atlas.features import cache as cache_mod


def _bare_read(f, header: dict, start: int, name: str) -> np.ndarray:
    begin, _ = header[name]["data_offsets"]
    out = np.empty(header[name]["shape"], dtype=np.float16)
    f.seek(start + begin)
    f.readinto(memoryview(out).cast("B"))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--tokens", type=int, default=197, help="tokens per image (ViT-S/16 at 224 px: 197)")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()

    rng = np.random.default_rng(0)
    side = int(round((args.tokens - 1) ** 0.5))
    with tempfile.TemporaryDirectory() as root:
        cache = cache_mod.FeatureCache(root)
        keys = [cache.key(model="m", weights="w", image=str(i), preprocessing="p") for i in range(args.images)]
        for key in keys:
            cache.put(key, {(b, "tokens"): rng.normal(size=(1 + side * side, args.dim)).astype(np.float16)
                            for b in range(args.blocks)}, n_prefix=1, grid=(side, side))

        def read_all() -> float:
            t0 = time.perf_counter()
            for b in range(args.blocks):
                for key in keys:
                    assert cache.get(key, b, "tokens") is not None
            return time.perf_counter() - t0

        verified_reader = cache_mod._read_tensor
        read_all()  # warm the page cache and the parsed headers
        verified = min(read_all() for _ in range(args.repeat))
        cache_mod._read_tensor = _bare_read
        try:
            bare = min(read_all() for _ in range(args.repeat))
        finally:
            cache_mod._read_tensor = verified_reader
    n = args.images * args.blocks
    print(f"{platform.machine()}, {n} reads of ({1 + side * side}, {args.dim}) float16, best of {args.repeat}")
    print(f"verified read (CRC-32 + finite): {verified / n * 1e3:.3f} ms/read")
    print(f"bare read:                       {bare / n * 1e3:.3f} ms/read")
    print(f"ratio verified / bare:           {verified / bare:.2f}")


if __name__ == "__main__":
    main()
