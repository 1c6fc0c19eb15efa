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

Entries are verifiable: the metadata holds the CRC-32 of every tensor's bytes, checked on every
read, and only finite values are ever stored. A file damaged afterwards (truncated, a flipped
byte in its header or data, emptied) is reported, moved aside to ``<name>.corrupt`` and then
counts as not cached, so the build extracts it again and goes on (:attr:`FeatureCache.damaged`
lists what was moved).

The cache is an accelerator, never needed for a correct build, and may be bounded:
``FeatureCache(root, max_bytes=...)`` (``[features] cache_gb``) evicts the least recently used
entries when it writes. An entry is *used* when written, read (:meth:`~FeatureCache.get`) or found
complete (:meth:`~FeatureCache.has`: the caller skips computing it and reads it soon); a look
(:meth:`~FeatureCache.entries`, a miss) is not. A use sets the file's modification time to now
with ``os.utime`` (cheap, and it survives the process, so builds sharing a cache share one order).
Not the access time: the kernel updates that on its own on reads (always, or with ``relatime``
once after every ``utime``, which moves the change time), and not at all with ``noatime``; the
modification time changes only when the cache sets it (a rewrite is a new file, renamed into
place, so check the inode, not the time, to tell that an entry was not rewritten). Setting times
needs the file's owner: another user's entries keep their times, and their order is approximate.
Which entries a write evicts:

- the oldest modification time first, but entries this instance used in the last ``recent_s``
  seconds only after every other entry (they are what the running build reads next);
- never the file being written (or merged into): :class:`CacheTooSmall` guarantees it fits alone.

The bound is hard (room is made before the data is written): a bound below what a build uses at
once evicts entries it reads again, with one warning, and they are computed again. The running
total is one scan at start plus this instance's writes and evictions, refreshed by a rescan at
most every :attr:`~FeatureCache.RESCAN_EVERY` times a scan takes (so scanning costs about a tenth of
the time at most). Other builds writing into the same cache make it approximate: it may exceed the
bound by what they wrote since the last rescan. Damaged entries moved aside, temp files and files of
an earlier format are not counted. Evictions are counted (:attr:`~FeatureCache.evicted`) and logged
in one line by :meth:`~FeatureCache.log_summary`.

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

A bound of two entries keeps the two most recently used:

>>> one = FeatureCache.entry_bytes([(0, "keys")], n_prefix=1, grid=(2, 3), channels=4)
>>> small = FeatureCache(tempfile.mkdtemp(), max_bytes=2 * one)
>>> keys = {name: small.key(model="m", weights="w", image=name, preprocessing="p") for name in "abc"}
>>> for name in "abc":
...     small.put(keys[name], {(0, "keys"): np.ones((7, 4))}, n_prefix=1, grid=(2, 3))
...     if name == "b":
...         _ = small.get(keys["a"], 0, "keys")   # a is now used after b
>>> [name for name in "abc" if small.entries(keys[name])], small.evicted
(['a', 'c'], 1)
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import save_file

from ..files import TEMP_PREFIX, atomic_path, remove_orphaned_temporaries
from ..formatting import byte_size

log = logging.getLogger(__name__)

_FORMAT = "ssl-vit-atlas feature cache"
_MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header
DAMAGED_SUFFIX = ".corrupt"
_ENTRY_NAME = re.compile(r"[0-9a-f]{64}\.safetensors")
GB = 10**9  # ``cache_gb`` is in decimal gigabytes, like the sizes in the build report


class DamagedEntry(ValueError):
    """A cache file that cannot be trusted: unreadable header, wrong size, checksum mismatch or
    non-finite values."""


class EarlierFormat(ValueError):
    """A readable file of another writer or an earlier cache format: not cached, overwritten."""


class NonFiniteFeatures(ValueError):
    """Features with NaN or infinite values: never stored (they would break every analysis)."""


class CacheTooSmall(ValueError):
    """``[features] cache_gb`` is below one entry (one image's features), so nothing could be cached;
    the message is one line naming the smallest ``cache_gb`` that holds the entry."""


class CacheUsage(NamedTuple):
    """What the cache holds: entries (one per image) and their bytes on disk."""

    entries: int
    bytes: int


def _gb_at_least(n: int) -> str:
    """The smallest ``cache_gb`` with three significant digits that holds ``n`` bytes (rounded up):
    ``_gb_at_least(12_345_678) == '0.0124'``."""
    x = n / GB
    scale = 10.0 ** (2 - math.floor(math.log10(x)))
    return f"{math.ceil(x * scale - 1e-9) / scale:g}"


def _file_bytes(shapes: Mapping[str, tuple[int, int]], meta: Mapping[str, str]) -> int:
    """Size of the file ``save_file`` writes for float16 tensors of ``shapes`` and metadata ``meta``:
    8 bytes of header length, the compact JSON header padded with spaces to a multiple of 8, then
    the data in name order (safetensors' layout; a test checks it against the files written)."""
    header: dict = {"__metadata__": dict(meta)}
    offset = 0
    for name in sorted(shapes):
        t, c = shapes[name]
        header[name] = {"dtype": "F16", "shape": [int(t), int(c)], "data_offsets": [offset, offset + 2 * t * c]}
        offset += 2 * t * c
    n = len(json.dumps(header, separators=(",", ":")))
    return 8 + n + (-n % 8) + offset


def _stamp(target: int | str | Path) -> int | None:
    """Mark a file (path or open descriptor) used: set its times to now (ns), and return that time,
    or None where it cannot be set (another user's file, a read-only mount). The time is given
    explicitly: the kernel's own clock for file times is coarse (a few ms), too coarse to order uses."""
    now = time.time_ns()
    try:
        os.utime(target, ns=(now, now))
    except OSError:
        return None
    return now


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"))


def _finite(a: np.ndarray) -> bool:
    """True when no float16 value is NaN or infinite (exponent bits all set); ~9x faster than
    ``np.isfinite`` on float16, which numpy computes through float32."""
    return not ((a.view(np.uint16) & 0x7C00) == 0x7C00).any()


def _read_header(f) -> tuple[dict, int]:
    """The JSON header of an open safetensors file and the offset of its data section.

    Read with plain ``read`` calls rather than safetensors' memory map: a mapped file is read
    through page faults, which are slow on virtual machines (measured here, one block of 100
    images: 106 ms through the map on first touch vs 7 ms with ``readinto``; 8 vs 6 ms repeated).
    """
    head = f.read(8)
    if len(head) < 8:
        raise DamagedEntry("empty or truncated header")
    n = int.from_bytes(head, "little")
    if not 0 < n <= _MAX_HEADER:
        raise DamagedEntry("header length out of range")
    try:
        header = json.loads(f.read(n))
        meta = header.get("__metadata__") or {}
    except (ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise DamagedEntry(f"unreadable header ({type(exc).__name__})") from None
    if meta.get("format") != _FORMAT:
        raise EarlierFormat("not a feature-cache file")
    if "crc32" not in meta:
        raise EarlierFormat("an earlier cache format (no checksums)")
    try:
        crcs = meta["crc32"] = json.loads(meta["crc32"])  # parsed once per header
        n_prefix = int(meta["n_prefix"])
        h, w = (int(x) for x in meta["grid"].split("x"))
        end = 0
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, stop = info["data_offsets"]
            shape = info["shape"]
            if (info["dtype"] != "F16" or name not in crcs or len(shape) != 2 or shape[0] != n_prefix + h * w
                    or stop - begin != 2 * shape[0] * shape[1]):
                raise ValueError(name)
            end = max(end, stop)
    except (ValueError, KeyError, TypeError) as exc:
        raise DamagedEntry(f"inconsistent header ({exc})") from None
    if os.fstat(f.fileno()).st_size != 8 + n + end:
        raise DamagedEntry("file size does not match its header (truncated or extended)")
    return header, 8 + n


def _read_tensor(f, header: dict, start: int, name: str) -> np.ndarray:
    """One tensor, checked against its CRC-32 and for finite values (the header is checked already)."""
    info = header[name]
    begin, end = info["data_offsets"]
    out = np.empty(info["shape"], dtype=np.float16)
    f.seek(start + begin)
    if f.readinto(memoryview(out).cast("B")) != out.nbytes:
        raise DamagedEntry(f"{name}: truncated")
    if _crc(out) != header["__metadata__"]["crc32"][name]:
        raise DamagedEntry(f"{name}: checksum mismatch")
    if not _finite(out):  # a damaged (or foreign) file: this writer never stores one
        raise DamagedEntry(f"{name}: non-finite values")
    return out


def _name(block: int, representation: str) -> str:
    return f"{int(block)}/{representation}"


def _pair(name: str) -> tuple[int, str]:
    block, representation = name.split("/", 1)
    return int(block), representation


class FeatureCache:
    """Float16 feature store addressed by the hash of everything that determines the features.

    ``max_bytes`` bounds the files' total size (None: no bound); entries this instance used in the
    last ``recent_s`` seconds are evicted only after every other (see the module notes).
    """

    VERSION = 2  # bump when the extraction definition or file layout changes: old entries are never read
    #: A write rescans the folder (to see other builds' writes and evictions) once this many times
    #: the last scan's duration has passed since it; 0 rescans at every write.
    RESCAN_EVERY = 10.0

    def __init__(self, root: str | Path, max_bytes: float | None = None, *, recent_s: float = 600.0):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = None if max_bytes is None else round(max_bytes)
        if self.max_bytes is not None and self.max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1 (None: no bound); got {max_bytes}")
        self.recent_s = recent_s
        self.hits = 0
        self.writes = 0
        self.evicted = 0  # entries this instance evicted, and their bytes
        self.evicted_bytes = 0
        self.damaged: list[Path] = []  # entries moved aside (``.corrupt``) by this instance
        self._lock = threading.Lock()
        # parsed headers by path, checked against the file's size and mtime: the analyses read
        # every (block, representation) of an image from the same file
        self._headers: dict[Path, tuple[tuple[int, int], dict, int]] = {}
        # bounded caches: [size, modification time ns] of every entry in order of use, oldest first
        # (an ordered dict: finding the oldest and moving a used one last take constant time), their
        # total, and when this instance last used each entry (time.monotonic())
        self._index: OrderedDict[Path, list[int]] = OrderedDict()
        self._total = 0
        self._used: dict[Path, float] = {}
        self._scanned_at = -math.inf
        self._scan_s = 0.0
        self._warned_recent = False
        if self.max_bytes is not None:
            self._rescan()

    @classmethod
    def key(cls, *, model: str, weights: str, image: str, preprocessing: str) -> str:
        payload = json.dumps(
            {"v": cls.VERSION, "model": model, "weights": weights, "image": image, "preprocessing": preprocessing},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.safetensors"

    def _set_aside(self, path: Path, why: str) -> None:
        """Report a damaged entry and move it aside, so that it counts as not cached."""
        with self._lock:
            self._drop(path)
            try:
                os.replace(path, path.with_name(path.name + DAMAGED_SUFFIX))
            except FileNotFoundError:
                return  # another reader (thread or build) moved it already
            self.damaged.append(path)
        log.warning("feature cache: damaged entry %s (%s): moved aside to %s%s; it is extracted again",
                    path.name, why, path.name, DAMAGED_SUFFIX)

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
        """The (block, representation) pairs stored for ``key``: empty when absent, of an earlier
        format, or damaged (then moved aside and reported). Checks the header and the file size;
        the data is checked when read (:meth:`get`). Not a use of the entry (see :meth:`has`)."""
        return self._entries(key, None)

    def has(self, key: str, pairs: Iterable[tuple[int, str]]) -> bool:
        """True when every (block, representation) of ``pairs`` is stored for ``key``. A yes is a
        use of the entry: the caller skips computing it and reads it soon, so the writes in between
        must not evict it first."""
        want = frozenset(pairs)
        return want <= self._entries(key, want)

    def _entries(self, key: str, use_if: frozenset | None) -> frozenset[tuple[int, str]]:
        """:meth:`entries`, marking the entry used when it holds every pair of ``use_if``."""
        path = self.path(key)
        try:
            with open(path, "rb") as f:
                header, _ = self._header(f, path)
                stored = frozenset(_pair(name) for name in header if name != "__metadata__")
                if use_if is not None and use_if <= stored:
                    self._use(f.fileno(), path)
        except FileNotFoundError:
            self._forget(path)
            return frozenset()
        except EarlierFormat:
            return frozenset()
        except DamagedEntry as exc:
            self._set_aside(path, str(exc))
            return frozenset()
        return stored

    def get(self, key: str, block: int, representation: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(patches (h, w, C), prefix (P, C)) as float16, or None when absent, of an earlier format
        or damaged (then moved aside and reported)."""
        path = self.path(key)
        name = _name(block, representation)
        try:
            with open(path, "rb") as f:
                header, start = self._header(f, path)
                if name not in header:
                    return None
                tokens = _read_tensor(f, header, start, name)
                self._use(f.fileno(), path)
            meta = header["__metadata__"]
            n_prefix = int(meta["n_prefix"])
            h, w = (int(x) for x in meta["grid"].split("x"))
        except FileNotFoundError:  # never written, or evicted: a miss, not damage
            self._forget(path)
            return None
        except EarlierFormat:
            return None
        except DamagedEntry as exc:
            self._set_aside(path, str(exc))
            return None
        self.hits += 1
        return tokens[n_prefix:].reshape(h, w, -1), tokens[:n_prefix]

    def put(self, key: str, tokens: Mapping[tuple[int, str], np.ndarray], *, n_prefix: int,
            grid: tuple[int, int]) -> None:
        """Store ``{(block, representation): tokens (n_prefix + h * w, C)}`` of one image.

        Pairs already stored for ``key`` (with the same prefix count and grid) and not given here
        are kept, once their checksums are verified (a damaged file is moved aside instead).
        Raises :class:`NonFiniteFeatures` for NaN or infinite values (e.g. float16 overflow),
        :class:`CacheTooSmall` when the entry (with the pairs it keeps) is larger than the whole
        bound, and ``OSError`` (with the file name) when the write fails, e.g. on a full disk; the
        entry then keeps its earlier content. A bounded cache first evicts least recently used
        entries (never this one) to make room for it.
        """
        h, w = grid
        tensors = {_name(b, r): np.ascontiguousarray(t, dtype=np.float16) for (b, r), t in tokens.items()}
        for name, t in tensors.items():
            if t.ndim != 2 or t.shape[0] != n_prefix + h * w:
                raise ValueError(f"{name}: tokens must have shape ({n_prefix + h * w}, C) for {n_prefix} prefix "
                                 f"tokens and a {h} x {w} grid; got {t.shape}")
            if not _finite(t):
                raise NonFiniteFeatures(f"block {name.replace('/', ' ')} has NaN or infinite values (beyond the "
                                        f"float16 range of +-65504, or broken weights): not cached")
        p = self.path(key)
        keep = {"format": _FORMAT, "n_prefix": str(int(n_prefix)), "grid": f"{int(h)}x{int(w)}"}
        try:
            with open(p, "rb") as f:
                header, start = _read_header(f)
                if {k: header["__metadata__"].get(k) for k in keep} == keep:
                    for name in header:
                        if name != "__metadata__" and name not in tensors:
                            tensors[name] = _read_tensor(f, header, start, name)
        except (FileNotFoundError, EarlierFormat):
            pass  # nothing to keep
        except DamagedEntry as exc:
            self._set_aside(p, str(exc))
        meta = dict(keep, crc32=json.dumps({name: _crc(t) for name, t in sorted(tensors.items())}))
        if self.max_bytes is not None:
            size = _file_bytes({name: t.shape for name, t in tensors.items()}, meta)
            self.check_fits(size, f"one image's features ({len(tensors)} block x representation pairs)")
            if time.monotonic() - self._scanned_at > self.RESCAN_EVERY * self._scan_s:
                self._rescan()
            self._make_room(p, size)  # before writing: the bound holds on disk at every moment
        # No fsync: the rename is what protects against a killed build; fsync per entry would
        # dominate extraction time and only adds safety against power loss.
        with atomic_path(p) as tmp:
            try:
                save_file(tensors, str(tmp), metadata=meta)
            except SafetensorError as exc:  # an I/O error, e.g. a full disk, as an OSError naming the file
                raise _os_error(exc, p) from None
            _stamp(tmp)  # precisely, before the rename: the new entry is the most recently used
            st = tmp.stat()
        self.writes += 1
        if self.max_bytes is not None:
            size = st.st_size
            with self._lock:
                self._total += size - self._index.pop(p, (0,))[0]
                self._index[p] = [size, st.st_mtime_ns]  # last: the most recently used
                self._used[p] = time.monotonic()
            if self._total > self.max_bytes:  # other builds' writes seen meanwhile, or a new safetensors layout
                self._make_room(p, size)

    @staticmethod
    def entry_bytes(pairs: Iterable[tuple[int, str]], *, n_prefix: int, grid: tuple[int, int], channels: int) -> int:
        """Bytes on disk of one image's entry holding ``pairs``, each ``n_prefix + h * w`` tokens of
        ``channels`` float16 values: exact but for the checksums' digits, counted at their widest.

        >>> pairs = [(b, r) for b in range(12) for r in ("tokens", "keys", "queries", "values")]
        >>> FeatureCache.entry_bytes(pairs, n_prefix=1, grid=(14, 14), channels=384)  # ViT-S/16 at 224 px
        7267280
        """
        names = sorted(_name(b, r) for b, r in pairs)
        h, w = grid
        meta = {"format": _FORMAT, "n_prefix": str(int(n_prefix)), "grid": f"{int(h)}x{int(w)}",
                "crc32": json.dumps(dict.fromkeys(names, 2**32 - 1))}
        return _file_bytes(dict.fromkeys(names, (n_prefix + h * w, channels)), meta)

    def check_fits(self, entry_bytes: int, what: str = "one entry") -> None:
        """Raise :class:`CacheTooSmall` when an entry of ``entry_bytes`` (see :meth:`entry_bytes`)
        is larger than the whole bound; call it before computing. ``what`` names the entry.

        >>> import tempfile
        >>> FeatureCache(tempfile.mkdtemp(), max_bytes=10**6).check_fits(12_345_678, "one image of vit_small")
        Traceback (most recent call last):
        ...
        atlas.features.cache.CacheTooSmall: [features] cache_gb = 0.001 holds no entry: one image of vit_small takes 12.3 MB; raise cache_gb to at least 0.0124 or set cache = false
        """
        if not self.fits(entry_bytes):
            raise CacheTooSmall(f"[features] cache_gb = {self.max_bytes / GB:g} holds no entry: {what} takes "
                                f"{byte_size(entry_bytes)}; raise cache_gb to at least {_gb_at_least(entry_bytes)} "
                                f"or set cache = false")

    def fits(self, n_bytes: int) -> bool:
        """True when ``n_bytes`` fit within the bound. For what one step writes and then reads back
        (e.g. every image of a model, ``n_images * entry_bytes``): when that does not fit, its later
        writes evict its earlier entries before they are read, and reading through the cache is
        wasted (:meth:`has` saying yes does not promise that a later :meth:`get` hits).

        >>> import tempfile
        >>> cache = FeatureCache(tempfile.mkdtemp(), max_bytes=100)
        >>> cache.fits(100), cache.fits(101), FeatureCache(tempfile.mkdtemp()).fits(10**15)
        (True, False, True)
        """
        return self.max_bytes is None or n_bytes <= self.max_bytes

    def usage(self) -> CacheUsage:
        """Entries and bytes the cache holds now (a fresh scan: other builds' files count too)."""
        found = self._scan()
        return CacheUsage(len(found), sum(size for size, _ in found.values()))

    def size_bytes(self) -> int:
        """Bytes of every entry the cache holds now (:meth:`usage`)."""
        return self.usage().bytes

    def log_summary(self) -> None:
        """Log what this instance evicted, in one line (call it once, at the end of a build)."""
        if self.evicted:
            entries, size = self.usage()
            log.info("feature cache: evicted %d least recently used entries (%s) to stay within cache_gb = %g; "
                     "it holds %d entries (%s)", self.evicted, byte_size(self.evicted_bytes), self.max_bytes / GB,
                     entries, byte_size(size))

    # ------------------------------------------------------------------ the size bound

    def _scan(self) -> dict[Path, list[int]]:
        """[size, modification time ns] of every entry file (not temp files, not damaged ones moved aside)."""
        found: dict[Path, list[int]] = {}
        try:
            with os.scandir(self.root) as folders:
                tops = [e.path for e in folders if len(e.name) == 2 and e.is_dir(follow_symlinks=False)]
        except OSError:  # removed meanwhile: nothing cached
            return found
        for top in tops:
            try:
                with os.scandir(top) as files:
                    for e in files:
                        # only names this cache writes (<64 hex>.safetensors in the folder of its
                        # first two): a file another program put there is never counted or evicted
                        if _ENTRY_NAME.fullmatch(e.name) and e.name[:2] == os.path.basename(top):
                            try:
                                st = e.stat(follow_symlinks=False)
                            except FileNotFoundError:  # evicted or moved aside meanwhile
                                continue
                            found[Path(e.path)] = [st.st_size, st.st_mtime_ns]
            except OSError:  # a folder removed or unreadable: its entries are never read either
                continue
        return found

    def _rescan(self) -> None:
        start = time.monotonic()
        found = self._scan()
        with self._lock:
            self._index = OrderedDict(sorted(found.items(), key=lambda item: item[1][1]))
            self._total = sum(size for size, _ in found.values())
            self._scanned_at = time.monotonic()
            self._scan_s = self._scanned_at - start

    def _use(self, fd: int, path: Path) -> None:
        """Mark the entry open as ``fd`` as used now (see the module notes)."""
        before = os.fstat(fd)
        used = _stamp(fd)  # through the descriptor: never stamps a file another build renamed in meanwhile
        if used is None:
            return
        with self._lock:
            header = self._headers.get(path)
            if header is not None and header[0] == (before.st_size, before.st_mtime_ns):
                self._headers[path] = ((before.st_size, used), *header[1:])  # same file, still parsed
            if self.max_bytes is not None:
                self._used[path] = time.monotonic()
                if (known := self._index.get(path)) is not None:
                    known[1] = used
                    self._index.move_to_end(path)

    def _drop(self, path: Path) -> int:
        """Forget an entry that is gone (call with the lock held); return its size as tracked."""
        self._headers.pop(path, None)
        self._used.pop(path, None)
        known = self._index.pop(path, None)
        if known is None:
            return 0
        self._total -= known[0]
        return known[0]

    def _forget(self, path: Path) -> None:
        if self.max_bytes is not None:
            with self._lock:
                self._drop(path)

    def _make_room(self, keep: Path, size: int) -> None:
        """Evict least recently used entries, never ``keep``, until ``keep`` at ``size`` bytes fits.

        The oldest entry is first in the index. ``keep`` and the entries this instance used in the
        last ``recent_s`` seconds are passed over for the others; once only those are left, the
        oldest of them (not ``keep``) goes. An entry is checked on disk before it goes:
        another build may have used it since (then it moves last), rewritten or evicted it.
        """
        now = time.monotonic()

        def held(path: Path) -> bool:
            return now - self._used.get(path, -math.inf) < self.recent_s

        checked: set[Path] = set()
        with self._lock:
            while self._total - self._index.get(keep, (0,))[0] + size > self.max_bytes:
                # the oldest entry not held, else the oldest held one; held entries are skipped, not
                # moved, so the index keeps their order of use for the next eviction
                victim = (next((p for p in self._index if p != keep and not held(p)), None)
                          or next((p for p in self._index if p != keep), None))
                if victim is None:
                    break  # nothing else is tracked (check_fits guarantees that keep alone fits)
                known = self._index[victim]
                if victim not in checked:
                    checked.add(victim)
                    try:
                        st = os.stat(victim)
                    except FileNotFoundError:
                        self._drop(victim)
                        continue
                    if [st.st_size, st.st_mtime_ns] != known:
                        self._total += st.st_size - known[0]
                        known[:] = [st.st_size, st.st_mtime_ns]
                        self._index.move_to_end(victim)
                        continue
                was_held = held(victim)
                try:
                    os.unlink(victim)  # a reader holding it open still reads it whole (POSIX)
                except FileNotFoundError:
                    self._drop(victim)
                    continue
                self.evicted_bytes += self._drop(victim)
                self.evicted += 1
                if was_held and not self._warned_recent:
                    self._warned_recent = True
                    recent = sum(s for path, (s, _) in self._index.items() if held(path))
                    log.warning("feature cache: cache_gb = %g is less than this build used in the last %.0f s "
                                "(over %s): entries it reads again are evicted and computed again; raise "
                                "cache_gb to keep them", self.max_bytes / GB, self.recent_s,
                                byte_size(recent + known[0] + size))

    def stale_files(self) -> list[Path]:
        """Entries of an earlier cache format (``.npz`` per block and representation): never read."""
        return sorted(self.root.glob("*/*.npz"))

    def clean_temporaries(self) -> int:
        """Remove temp files left by killed builds (never one that a running build is writing);
        return how many."""
        return remove_orphaned_temporaries(self.root.glob(f"*/{TEMP_PREFIX}*"))


def _os_error(exc: SafetensorError, path: Path) -> OSError:
    """safetensors reports I/O errors as text (``I/O error: No space left on device (os error 28)``)."""
    text = str(exc)
    code = re.search(r"os error (\d+)|code: (\d+)", text)
    number = int(code.group(1) or code.group(2)) if code else errno.EIO
    return OSError(number, os.strerror(number), str(path))
