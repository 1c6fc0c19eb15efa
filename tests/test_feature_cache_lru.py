"""The feature cache as a bounded accelerator: least-recently-used eviction, checked against a
brute-force reference, the one-line error for a bound below one entry, merges, concurrent builds."""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from atlas.features.cache import DAMAGED_SUFFIX, GB, CacheTooSmall, FeatureCache, _file_bytes
from atlas.files import TEMP_PREFIX

GRID = (4, 4)
C = 16
# one (block, representation) of one image: 1 prefix token + a 4 x 4 grid of 16 float16 channels
ONE = FeatureCache.entry_bytes([(0, "keys")], n_prefix=1, grid=GRID, channels=C)


def _tokens(image: str, block: int) -> np.ndarray:
    """Planted features: a function of the image and block, so any file can be checked."""
    seed = int.from_bytes(image.encode(), "little") % 2**32 * 100 + block
    return np.random.default_rng(seed).normal(size=(1 + GRID[0] * GRID[1], C)).astype(np.float16)


def _key(image: str) -> str:
    return FeatureCache.key(model="m", weights="w", image=image, preprocessing="p")


def _put(cache: FeatureCache, image: str, *blocks: int) -> None:
    cache.put(_key(image), {(b, "keys"): _tokens(image, b) for b in blocks or (0,)}, n_prefix=1, grid=GRID)


def _stored(root: Path) -> set[str]:
    """Images (by key) whose entry file exists."""
    return {p.stem for p in root.glob("*/*.safetensors") if not p.name.startswith(TEMP_PREFIX)}


def _names(root: Path, images) -> set[str]:
    on_disk = _stored(root)
    return {image for image in images if _key(image) in on_disk}


def _total(root: Path) -> int:
    return sum(p.stat().st_size for p in root.glob("*/*.safetensors") if not p.name.startswith(TEMP_PREFIX))


def _mode(cache: FeatureCache, rescan: str) -> FeatureCache:
    """'scan': every write rescans (order from the files' times); 'tracked': never (the tracked index)."""
    cache.RESCAN_EVERY = 0.0 if rescan == "scan" else math.inf
    return cache


# ---------------------------------------------------------------- the eviction rule


@pytest.mark.parametrize("rescan", ["scan", "tracked"])
@pytest.mark.parametrize("use", ["get", "has"])
def test_a_read_keeps_an_entry_the_oldest_unread_is_evicted(tmp_path, use, rescan):
    """Write a, b, c; read a; write d with room for three: b goes, a stays."""
    cache = _mode(FeatureCache(tmp_path, max_bytes=3 * ONE, recent_s=0), rescan)
    for image in "abc":
        _put(cache, image)
    b_size = cache.path(_key("b")).stat().st_size
    if use == "get":
        assert cache.get(_key("a"), 0, "keys") is not None
    else:
        assert cache.has(_key("a"), [(0, "keys")])
    _put(cache, "d")
    assert _names(tmp_path, "abcd") == {"a", "c", "d"}
    assert (cache.evicted, cache.evicted_bytes) == (1, b_size)


@pytest.mark.parametrize("look", ["entries", "has, incomplete", "get, absent pair"])
def test_looking_without_using_is_not_a_use(tmp_path, look):
    cache = FeatureCache(tmp_path, max_bytes=3 * ONE, recent_s=0)
    for image in "abc":
        _put(cache, image)
    if look == "entries":
        assert cache.entries(_key("a")) == {(0, "keys")}
    elif look == "has, incomplete":
        assert not cache.has(_key("a"), [(0, "keys"), (1, "keys")])
    else:
        assert cache.get(_key("a"), 1, "keys") is None
    _put(cache, "d")
    assert _names(tmp_path, "abcd") == {"b", "c", "d"}


def test_the_order_survives_the_process(tmp_path):
    """Uses are stamped on the files (modification time), so another build (a new instance) evicts
    by them; a use does not rewrite the file."""
    first = FeatureCache(tmp_path)  # no bound: still stamps its uses
    for image in "abcd":
        _put(first, image)
    written = {image: first.path(_key(image)).stat() for image in "abcd"}
    for image in "ca":  # a is now the most recently used, then c
        assert first.get(_key(image), 0, "keys") is not None
    now = {image: first.path(_key(image)).stat() for image in "abcd"}
    assert all(now[i].st_ino == written[i].st_ino and now[i].st_size == written[i].st_size for i in "abcd")
    assert now["a"].st_mtime_ns > now["c"].st_mtime_ns > written["d"].st_mtime_ns == now["d"].st_mtime_ns
    second = FeatureCache(tmp_path, max_bytes=3 * ONE, recent_s=0)
    _put(second, "e")
    assert _names(tmp_path, "abcde") == {"c", "a", "e"}  # b and d, the least recently used


def test_this_builds_recent_entries_are_evicted_last_with_one_warning(tmp_path, caplog):
    other = FeatureCache(tmp_path)
    _put(other, "x")
    _put(other, "y")
    build = FeatureCache(tmp_path, max_bytes=4 * ONE, recent_s=600)
    _put(build, "a")
    _put(build, "b")
    assert other.get(_key("x"), 0, "keys") is not None  # another build's use: newer than a and b
    with caplog.at_level(logging.WARNING, logger="atlas"):
        _put(build, "c")
        assert _names(tmp_path, "xyabc") == {"x", "a", "b", "c"}  # y: the other build's oldest
        _put(build, "d")
        assert _names(tmp_path, "xyabcd") == {"a", "b", "c", "d"}  # then x, though used after a and b
        assert not caplog.records
        _put(build, "e")
        _put(build, "f")
    assert _names(tmp_path, "abcdef") == {"c", "d", "e", "f"}  # the bound holds: this build's oldest go
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "raise cache_gb" in warnings[0]


# ---------------------------------------------------------------- against a brute-force reference


class _Reference:
    """Least recently used by brute force: an ordered dict of entry sizes, oldest use first."""

    def __init__(self, bound: int):
        self.bound = bound
        self.sizes: OrderedDict[str, int] = OrderedDict()
        self.pairs: dict[str, set[int]] = {}
        self.evicted = 0
        self.evicted_bytes = 0

    def use(self, image: str) -> None:
        self.sizes.move_to_end(image)

    def put(self, image: str, blocks, size: int) -> None:
        while sum(s for i, s in self.sizes.items() if i != image) + size > self.bound:
            oldest = next(i for i in self.sizes if i != image)
            self.evicted += 1
            self.evicted_bytes += self.sizes.pop(oldest)
            self.pairs.pop(oldest)
        self.sizes[image] = size
        self.sizes.move_to_end(image)
        self.pairs[image] = self.pairs.get(image, set()) | set(blocks)


@pytest.mark.parametrize("rescan", ["scan", "tracked"])
def test_many_operations_match_a_brute_force_reference(tmp_path, rescan):
    rng = np.random.default_rng(7)
    bound = 6 * ONE + ONE // 2
    cache = _mode(FeatureCache(tmp_path, max_bytes=bound, recent_s=0), rescan)
    ref = _Reference(bound)
    images = [f"img{i}" for i in range(12)]
    for step in range(300):
        image = images[rng.integers(len(images))]
        op = rng.choice(["put", "put", "get", "has", "entries"])
        if op == "put":
            blocks = sorted({int(b) for b in rng.integers(0, 3, rng.integers(1, 3))})
            _put(cache, image, *blocks)
            ref.put(image, blocks, cache.path(_key(image)).stat().st_size)
        elif op == "get":
            block = int(rng.integers(0, 3))
            got = cache.get(_key(image), block, "keys")
            assert (got is not None) == (block in ref.pairs.get(image, ())), step
            if got is not None:
                ref.use(image)
                np.testing.assert_array_equal(got[0].reshape(-1, C), _tokens(image, block)[1:])
        elif op == "has":
            complete = cache.has(_key(image), [(0, "keys")])
            assert complete == (0 in ref.pairs.get(image, ())), step
            if complete:
                ref.use(image)
        else:
            assert cache.entries(_key(image)) == {(b, "keys") for b in ref.pairs.get(image, ())}, step
        assert _names(tmp_path, images) == set(ref.sizes), step
        assert _total(tmp_path) <= bound
    assert ref.evicted > 50  # the bound was reached again and again
    assert (cache.evicted, cache.evicted_bytes) == (ref.evicted, ref.evicted_bytes)
    assert cache.usage() == (len(ref.sizes), sum(ref.sizes.values())) and cache.size_bytes() == _total(tmp_path)
    assert not cache.damaged and not list(tmp_path.rglob(f"*{DAMAGED_SUFFIX}"))


def test_sizes_are_known_before_writing(tmp_path):
    """The room made before a write is the file's exact size; entry_bytes is an upper bound."""
    cache = FeatureCache(tmp_path)
    for n_pairs in (1, 3, 12):
        for grid, channels in (((2, 3), 4), ((14, 14), 8)):
            tokens = {(b, r): np.ones((1 + grid[0] * grid[1], channels)) * b
                      for b in range(n_pairs) for r in ("keys", "tokens")}
            key = cache.key(model=str(n_pairs), weights="w", image=str(grid), preprocessing="p")
            cache.put(key, tokens, n_prefix=1, grid=grid)
            path = cache.path(key)
            header = path.read_bytes()[8:8 + int.from_bytes(path.read_bytes()[:8], "little")]
            meta = json.loads(header)["__metadata__"]
            shapes = {f"{b}/{r}": t.shape for (b, r), t in tokens.items()}
            assert _file_bytes(shapes, meta) == path.stat().st_size
            upper = FeatureCache.entry_bytes(tokens, n_prefix=1, grid=grid, channels=channels)
            assert path.stat().st_size <= upper <= path.stat().st_size + 16 * len(tokens)


# ---------------------------------------------------------------- misses, bad bounds, merges


def test_read_of_an_evicted_entry_is_a_clean_miss(tmp_path, caplog):
    cache = FeatureCache(tmp_path, max_bytes=2 * ONE, recent_s=0)
    with caplog.at_level(logging.WARNING, logger="atlas"):
        for image in "abc":
            _put(cache, image)
        assert cache.get(_key("a"), 0, "keys") is None
        assert not cache.has(_key("a"), [(0, "keys")]) and cache.entries(_key("a")) == frozenset()
    assert not caplog.records and not cache.damaged and not list(tmp_path.rglob(f"*{DAMAGED_SUFFIX}"))
    _put(cache, "a")  # computed again
    np.testing.assert_array_equal(cache.get(_key("a"), 0, "keys")[1], _tokens("a", 0)[:1])
    assert _names(tmp_path, "abc") == {"c", "a"}


def test_entry_larger_than_the_bound_is_one_line(tmp_path):
    cache = FeatureCache(tmp_path, max_bytes=ONE + 64)
    _put(cache, "small")
    with pytest.raises(CacheTooSmall) as err:
        _put(cache, "big", 0, 1, 2)
    line = str(err.value)
    assert "\n" not in line and line.startswith(f"[features] cache_gb = {(ONE + 64) / GB:g} holds no entry: ")
    assert line.endswith(" or set cache = false") and "3 block x representation pairs" in line
    assert isinstance(err.value, ValueError)
    assert _names(tmp_path, ["small", "big"]) == {"small"} and not list(tmp_path.rglob(f"{TEMP_PREFIX}*"))
    # the same line before computing, and the advice works
    three = FeatureCache.entry_bytes([(b, "keys") for b in range(3)], n_prefix=1, grid=GRID, channels=C)
    with pytest.raises(CacheTooSmall, match="one image of m takes .* kB; raise cache_gb to at least"):
        cache.check_fits(three, "one image of m")
    advised = float(line.split("at least ")[1].split()[0])
    FeatureCache(tmp_path, max_bytes=advised * GB).put(
        _key("big"), {(b, "keys"): _tokens("big", b) for b in range(3)}, n_prefix=1, grid=GRID)
    FeatureCache(tmp_path, max_bytes=three).check_fits(three)
    FeatureCache(tmp_path).check_fits(10**15)  # no bound


def test_merging_into_the_least_recently_used_entry(tmp_path):
    """Adding a block to the oldest entry keeps it (it is the file being written) and evicts the
    next oldest to make room for its growth; a merge that cannot fit keeps the entry unchanged."""
    cache = FeatureCache(tmp_path, max_bytes=3 * ONE, recent_s=0)
    for image in "abc":
        _put(cache, image)
    _put(cache, "a", 1)  # a grows to two blocks
    assert _names(tmp_path, "abc") == {"a", "c"} and cache.evicted == 1
    for block in (0, 1):
        np.testing.assert_array_equal(cache.get(_key("a"), block, "keys")[0].reshape(-1, C),
                                      _tokens("a", block)[1:])
    with pytest.raises(CacheTooSmall):
        _put(cache, "a", 2, 3)  # four blocks: more than the whole bound
    assert cache.entries(_key("a")) == {(0, "keys"), (1, "keys")} and _names(tmp_path, "abc") == {"a", "c"}
    # merging into an entry another build evicted meanwhile stores just the new block
    other = FeatureCache(tmp_path, max_bytes=2 * ONE, recent_s=0)
    _put(other, "d")
    assert "a" not in _names(tmp_path, "acd")
    _put(cache, "a", 2)
    assert cache.entries(_key("a")) == {(2, "keys")} and cache.get(_key("a"), 0, "keys") is None
    assert _total(tmp_path) <= 3 * ONE and not cache.damaged


# ---------------------------------------------------------------- concurrent builds


def _build(root: str, writer: int, n: int, bound: int, queue) -> None:
    """One build: writes its block of shared images (merging into the other build's files) and
    reads earlier images, which the other build may have evicted."""
    try:
        cache = FeatureCache(root, max_bytes=bound)
        rng = np.random.default_rng(writer)
        wrong = 0
        for i in range(n):
            _put(cache, f"img{i}", writer)
            for _ in range(2):
                image, block = f"img{rng.integers(i + 1)}", int(rng.integers(2))
                got = cache.get(_key(image), block, "keys")
                wrong += got is not None and not np.array_equal(got[1], _tokens(image, block)[:1])
        queue.put((wrong, [str(p) for p in cache.damaged], cache.evicted))
    except BaseException as exc:  # reported to the test
        queue.put(f"{type(exc).__name__}: {exc}")


def test_concurrent_builds_stay_near_the_bound(tmp_path):
    bound = 8 * 2 * ONE  # eight images of two blocks
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_build, args=(str(tmp_path), w, 80, bound, queue)) for w in (0, 1)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert all(isinstance(r, tuple) for r in results), results
    assert [r[:2] for r in results] == [(0, []), (0, [])]  # no wrong read, nothing damaged
    # both evicted, and every image beyond the 8 that fit went at least once (more when one build
    # writes back what the other evicted: how often depends on the interleaving, so no more is asserted)
    assert all(r[2] > 0 for r in results) and sum(r[2] for r in results) >= 80 - 8
    assert bound / 2 < _total(tmp_path) <= bound + 2 * 2 * ONE  # each build may miss the other's last write
    assert not list(tmp_path.rglob(f"{TEMP_PREFIX}*")) and not list(tmp_path.rglob(f"*{DAMAGED_SUFFIX}"))
    cache = FeatureCache(tmp_path, max_bytes=bound)
    for path in tmp_path.glob("*/*.safetensors"):  # every entry left verifies and holds what was planted
        image = next(f"img{i}" for i in range(80) if _key(f"img{i}") == path.stem)
        for block, _ in cache.entries(path.stem):
            np.testing.assert_array_equal(cache.get(path.stem, block, "keys")[0].reshape(-1, C),
                                          _tokens(image, block)[1:])
    _put(cache, "last")  # the next write (after a scan) brings it within the bound
    assert _total(tmp_path) <= bound and not cache.damaged


def test_files_the_cache_did_not_write_are_never_evicted(tmp_path):
    """A cache_dir that also holds someone's checkpoint (`ab/model.safetensors`): never counted,
    never evicted, however small the bound."""
    foreign = tmp_path / "ab" / "model.safetensors"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"\0" * 4096)
    cache = FeatureCache(tmp_path, max_bytes=1500)
    for i in range(6):
        cache.put(cache.key(model="m", weights="w", image=str(i), preprocessing="p"),
                  {(0, "keys"): np.ones((5, 8), np.float16)}, n_prefix=1, grid=(2, 2))
    assert foreign.read_bytes() == b"\0" * 4096 and cache.evicted > 0
