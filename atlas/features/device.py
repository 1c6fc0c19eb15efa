"""Device choice, autocast and out-of-memory batch halving."""

from __future__ import annotations

import contextlib
import logging

import torch

from ..measures.tensors import mps_available, resolve_device
from ..records import precision_label

log = logging.getLogger(__name__)


def pick_device(preference: str = "auto") -> torch.device:
    """``auto``: CUDA if available, else Apple MPS, else CPU. An unavailable explicit choice is an error."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device = \"cuda\" but no CUDA device is visible; use device = \"auto\" or \"cpu\"")
    if preference == "mps" and not mps_available():
        raise RuntimeError("device = \"mps\" but MPS is not available; use device = \"auto\" or \"cpu\"")
    return resolve_device(preference, mps=True)  # the build's device: MPS is a choice here


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with ``n`` torch intra-op threads, restoring the previous count (the analyses run one
    single-threaded (block, representation) pair per core; multi-threaded pools would contend)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: Extraction precisions: ``fp32`` (default: exact, TF32 off), or autocast to ``fp16`` / ``bf16``.
PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


@contextlib.contextmanager
def exact_fp32():
    """fp32 matrix products and convolutions as IEEE fp32: TF32 off (on Ampere and later GPUs TF32
    keeps 10 mantissa bits, about float16's, and cuDNN convolutions use it by default). Restores the
    previous flags. Only the new ``fp32_precision`` API is used: torch refuses a mix of the two."""
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    before = [f.fp32_precision for f in flags]
    for f in flags:
        f.fp32_precision = "ieee"
    try:
        yield
    finally:
        for f, value in zip(flags, before):
            f.fp32_precision = value


def autocast(device: torch.device, precision: str = "fp32"):
    """The numeric context of extraction: ``fp32`` is exact fp32 (no autocast, TF32 off) on every
    device; ``fp16`` / ``bf16`` autocast the model on ``device`` to that dtype (an option: the model
    card and Methods say so; ``tests/test_device.py`` bounds its error against fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return exact_fp32()
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


def describe(device: torch.device, precision: str = "fp32") -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}, {precision_label(precision)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads, {precision_label(precision)})"
    return f"{device.type} ({precision_label(precision)})"


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def run_with_oom_halving(fn, items: list, batch_size: int, device: torch.device):
    """Call ``fn(batch)`` over ``items`` in batches; on CUDA out-of-memory halve the batch and retry.

    Yields ``(batch_items, fn(batch_items))``. On CPU an OOM is not retried (it is not recoverable).
    """
    i = 0
    while i < len(items):
        batch = items[i:i + batch_size]
        try:
            result = fn(batch)
        except RuntimeError as exc:
            if device.type != "cuda" or not is_oom(exc) or batch_size == 1:
                raise
            torch.cuda.empty_cache()
            batch_size = max(1, batch_size // 2)
            log.warning("CUDA out of memory; retrying with batch size %d", batch_size)
            continue
        yield batch, result
        i += len(batch)
