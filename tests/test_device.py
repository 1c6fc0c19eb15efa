"""Device choice and out-of-memory batch halving."""

import pytest
import torch

from atlas.features.device import autocast, pick_device, run_with_oom_halving


def test_pick_device_auto_and_explicit():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            pick_device("cuda")


def test_oom_halves_the_batch_on_cuda_and_keeps_every_item(monkeypatch):
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    seen = []

    def fn(batch):
        if len(batch) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        seen.append(len(batch))
        return sum(batch)

    out = list(run_with_oom_halving(fn, list(range(10)), 8, torch.device("cuda")))
    assert [b for b, _ in out] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert sum(r for _, r in out) == sum(range(10)) and set(seen) == {2}


def test_oom_on_cpu_is_not_retried():
    def fn(batch):
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        list(run_with_oom_halving(fn, [1, 2, 3], 2, torch.device("cpu")))


def test_autocast_is_bf16_on_cuda_only():
    ctx = autocast(torch.device("cuda"))
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16
    assert not isinstance(autocast(torch.device("cpu")), torch.autocast)
