"""Device choice, autocast and out-of-memory batch halving."""

from __future__ import annotations

import contextlib
import logging

import torch

log = logging.getLogger(__name__)


def pick_device(preference: str = "auto") -> torch.device:
    """``auto``: CUDA if available, else Apple MPS, else CPU. An unavailable explicit choice is an error."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device = \"cuda\" but no CUDA device is visible; use device = \"auto\" or \"cpu\"")
    if preference == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("device = \"mps\" but MPS is not available; use device = \"auto\" or \"cpu\"")
    return torch.device(preference)


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


def autocast(device: torch.device):
    """bf16 autocast on CUDA (features are stored as float16 anyway); exact fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}, bf16 autocast)"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads, fp32)"
    return f"{device.type} (fp32)"


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
