"""Content-addressed feature cache on disk.

One file per (model, weights hash, image content hash, preprocessing): a float16 ``.safetensors``
file holding the tokens ``(T, C)`` of every extracted (block, representation) of that image, named
``"{block}/{representation}"``, with the number of prefix tokens (CLS / registers) and the patch
grid in its metadata. One file per image, not per (block, representation), because the cost of a
cache is the number of files: extraction writes each image once, and reading one (block,
representation) of an image reads only that tensor (safetensors' header lists every tensor's
byte range). Any safetensors reader opens the files.

Files are written to a temporary file in the same folder and renamed into place (``os.replace``
is atomic on POSIX), so a build killed mid-write never leaves a corrupt entry: either the old
file or the complete new one exists. Writing merges with what the file already holds, so
extracting another block or representation of an image later keeps the earlier ones.

Example
-------
>>> import numpy as np, tempfile
>>> cache = FeatureCache(tempfile.mkdtemp())
>>> key = cache.key(model="m", weights="w", image="i", preprocessing="p")
>>> cache.put(key, {(0, "keys"): np.zeros((1 + 2 * 3, 4))}, n_prefix=1, grid=(2, 3))
>>> cache.entries(key)
frozenset({(0, 'keys')})
>>> patches, prefix = cache.get(key, 0, "keys")
>>> patches.shape, prefix.shape
((2, 3, 4), (1, 4))
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from ..files import TEMP_PREFIX, atomic_path

_FORMAT = "ssl-vit-atlas feature cache"
# what a missing, truncated or foreign file raises when read: all mean "not cached"
_UNREADABLE = (OSError, ValueError, KeyError, TypeError)
_MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header


def _read_header(f) -> tuple[dict, int]:
    """The JSON header of an open safetensors file and the offset of its data section.

    Read with plain ``read`` calls rather than safetensors' memory map: a mapped file is read
    through page faults, which are slow on virtual machines (measured here, one block of 100
    images: 106 ms through the map on first touch vs 7 ms with ``readinto``; 8 vs 6 ms repeated).
    """
    n = int.from_bytes(f.read(8), "little")
    if not 0 < n <= _MAX_HEADER:
        raise ValueError("not a safetensors file")
    header = json.loads(f.read(n))
    if (header.get("__metadata__") or {}).get("format") != _FORMAT:
        raise ValueError("not a feature-cache file")
    return header, 8 + n


def _read_tensor(f, header: dict, start: int, name: str) -> np.ndarray:
    info = header[name]
    if info["dtype"] != "F16":
        raise ValueError(f"{name}: unexpected dtype {info['dtype']}")
    begin, end = info["data_offsets"]
    out = np.empty(info["shape"], dtype=np.float16)
    if out.nbytes != end - begin:
        raise ValueError(f"{name}: shape and byte range disagree")
    f.seek(start + begin)
    if f.readinto(memoryview(out).cast("B")) != out.nbytes:
        raise ValueError(f"{name}: truncated")
    return out


def _name(block: int, representation: str) -> str:
    return f"{int(block)}/{representation}"


def _pair(name: str) -> tuple[int, str]:
    block, representation = name.split("/", 1)
    return int(block), representation


class FeatureCache:
    """Float16 feature store addressed by the hash of everything that determines the features."""

    VERSION = 2  # bump when the extraction definition or file layout changes: old entries are never read

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.writes = 0
        # parsed headers by path, checked against the file's size and mtime: the analyses read
        # every (block, representation) of an image from the same file
        self._headers: dict[Path, tuple[tuple[int, int], dict, int]] = {}

    @classmethod
    def key(cls, *, model: str, weights: str, image: str, preprocessing: str) -> str:
        payload = json.dumps(
            {"v": cls.VERSION, "model": model, "weights": weights, "image": image, "preprocessing": preprocessing},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.safetensors"

    def _header(self, f, path: Path) -> tuple[dict, int]:
        st = os.fstat(f.fileno())
        stamp = (st.st_size, st.st_mtime_ns)
        known = self._headers.get(path)
        if known is not None and known[0] == stamp:
            return known[1], known[2]
        header, start = _read_header(f)
        self._headers[path] = (stamp, header, start)
        return header, start

    def entries(self, key: str) -> frozenset[tuple[int, str]]:
        """The (block, representation) pairs stored for ``key`` (empty when absent or unreadable)."""
        path = self.path(key)
        try:
            with open(path, "rb") as f:
                header, _ = self._header(f, path)
        except _UNREADABLE:
            return frozenset()
        return frozenset(_pair(name) for name in header if name != "__metadata__")

    def has(self, key: str, pairs: Iterable[tuple[int, str]]) -> bool:
        """True when every (block, representation) of ``pairs`` is stored for ``key``."""
        return set(pairs) <= self.entries(key)

    def get(self, key: str, block: int, representation: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(patches (h, w, C), prefix (P, C)) as float16, or None when absent or unreadable."""
        path = self.path(key)
        try:
            with open(path, "rb") as f:
                header, start = self._header(f, path)
                tokens = _read_tensor(f, header, start, _name(block, representation))
            meta = header["__metadata__"]
            n_prefix = int(meta["n_prefix"])
            h, w = (int(x) for x in meta["grid"].split("x"))
        except _UNREADABLE:
            return None
        if tokens.ndim != 2 or tokens.shape[0] != n_prefix + h * w:
            return None
        self.hits += 1
        return tokens[n_prefix:].reshape(h, w, -1), tokens[:n_prefix]

    def put(self, key: str, tokens: Mapping[tuple[int, str], np.ndarray], *, n_prefix: int,
            grid: tuple[int, int]) -> None:
        """Store ``{(block, representation): tokens (n_prefix + h * w, C)}`` of one image.

        Pairs already stored for ``key`` (with the same prefix count and grid) and not given here
        are kept.
        """
        h, w = grid
        tensors = {_name(b, r): np.ascontiguousarray(t, dtype=np.float16) for (b, r), t in tokens.items()}
        for name, t in tensors.items():
            if t.ndim != 2 or t.shape[0] != n_prefix + h * w:
                raise ValueError(f"{name}: tokens must have shape ({n_prefix + h * w}, C) for {n_prefix} prefix "
                                 f"tokens and a {h} x {w} grid; got {t.shape}")
        p = self.path(key)
        meta = {"format": _FORMAT, "n_prefix": str(int(n_prefix)), "grid": f"{int(h)}x{int(w)}"}
        try:
            with open(p, "rb") as f:
                header, start = _read_header(f)
                if header["__metadata__"] == meta:
                    for name in header:
                        if name != "__metadata__" and name not in tensors:
                            tensors[name] = _read_tensor(f, header, start, name)
        except _UNREADABLE:
            pass  # nothing (readable) to keep
        # No fsync: the rename is what protects against a killed build; fsync per entry would
        # dominate extraction time and only adds safety against power loss.
        with atomic_path(p) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        self.writes += 1

    def stale_files(self) -> list[Path]:
        """Entries of an earlier cache format (``.npz`` per block and representation): never read."""
        return sorted(self.root.glob("*/*.npz"))

    def clean_temporaries(self) -> int:
        """Remove temp files left by a killed build; return how many."""
        n = 0
        for t in self.root.glob(f"*/{TEMP_PREFIX}*"):
            t.unlink(missing_ok=True)
            n += 1
        return n
