"""Features kept on the device between extraction and the analyses.

Without this, the analyses on a GPU read every (block, representation) back from the feature
cache (disk, checksums, float16 to float32 on the host) and copy it to the device again, and the
blank probes and shift windows once per k-means seed. While extracting, :class:`ResidentFeatures`
keeps the float16 tensors the cache entries are written from on the device, for as many
(block, representation) pairs of an image set as its byte budget holds, and hands them to the
analyses as float32 there. Those are the numbers a cache read gives (the cache stores the same
float16 values, and float16 to float32 is exact), so a build's results do not depend on what was
kept: ``tests/test_resident.py`` checks that.

A set is kept only when every one of its images was extracted in this run (an image found in the
cache is not read back just to be kept); a pair that is not kept is read from the cache as before.

Example
-------
>>> import torch
>>> store = ResidentFeatures(torch.device("cpu"), budget_bytes=2 * 3 * 5 * 4 * 2)  # float16
>>> shapes = {(0, "keys"): (5, 4), (0, "values"): (5, 4), (1, "keys"): (5, 4)}  # (tokens, channels)
>>> store.admit("set", shapes, n_images=3)
[(0, 'keys'), (0, 'values')]
>>> store.keep("set", (0, "keys"), 0, torch.ones(2, 5, 4))  # a batch: images 0 and 1
>>> store.get("set", (0, "keys")) is None  # image 2 not yet
True
>>> store.keep("set", (0, "keys"), 2, torch.ones(1, 5, 4))
>>> store.get("set", (0, "keys")).shape, store.get("set", (0, "values"))  # values: no image kept yet
(torch.Size([3, 5, 4]), None)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch

__all__ = ["ResidentFeatures"]


class ResidentFeatures:
    """Float16 token features (N, T, C) per (image set, block, representation) on ``device``,
    within ``budget_bytes`` reserved up front (:meth:`admit`)."""

    def __init__(self, device: torch.device, budget_bytes: int):
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes must be >= 0, got {budget_bytes}")
        self.device, self.budget = torch.device(device), int(budget_bytes)
        self.used = 0
        self._slots: dict[tuple, torch.Tensor] = {}
        self._filled: dict[tuple, torch.Tensor] = {}

    def admit(self, name: Hashable, shapes: Mapping[tuple[int, str], tuple[int, int]],
              n_images: int) -> list[tuple[int, str]]:
        """Reserve room for the pairs of an image set of ``n_images``, ``shapes``: pair -> (tokens,
        channels) per image, in the order to keep them while the budget holds. Returns the pairs
        admitted (their tensors are allocated now, so the budget is real)."""
        admitted = []
        for pair, (n_tokens, channels) in shapes.items():
            key = (name, *pair)
            if key in self._slots:
                admitted.append(tuple(pair))
                continue
            size = 2 * n_images * n_tokens * channels
            if self.used + size > self.budget:
                break
            try:
                self._slots[key] = torch.empty((n_images, n_tokens, channels), dtype=torch.float16, device=self.device)
            except torch.cuda.OutOfMemoryError:  # the estimate of free memory was optimistic: keep fewer
                break
            self._filled[key] = torch.zeros(n_images, dtype=torch.bool)
            self.used += size
            admitted.append(tuple(pair))
        return admitted

    def keep(self, name: Hashable, pair: tuple[int, str], start: int, tokens: torch.Tensor) -> None:
        """Store the tokens (B, T, C) of images ``start`` to ``start + B`` of an admitted pair, as
        float16 (the values the cache stores)."""
        key = (name, *pair)
        self._slots[key][start:start + len(tokens)].copy_(tokens)
        self._filled[key][start:start + len(tokens)] = True

    def get(self, name: Hashable, pair: tuple[int, str]) -> torch.Tensor | None:
        """The float16 tokens (N, T, C) of a pair whose every image was kept, else None."""
        key = (name, *pair)
        filled = self._filled.get(key)
        if filled is None or not bool(filled.all()):
            return None
        return self._slots[key]

    def pairs(self, name: Hashable) -> list[tuple[int, str]]:
        """The complete pairs of a set (for the build log)."""
        return [key[1:] for key in self._slots if key[0] == name and self.get(name, key[1:]) is not None]

    def names(self) -> list:
        """The sets with at least one complete pair."""
        return sorted({key[0] for key in self._slots if self.get(key[0], key[1:]) is not None}, key=repr)

    def clear(self) -> None:
        """Give the memory back (the end of a model's run)."""
        self._slots.clear()
        self._filled.clear()
        self.used = 0
