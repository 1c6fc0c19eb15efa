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


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_fp32_is_exact_with_tf32_off_on_every_device():
    """The default precision is no autocast on any device, with TF32 switched off inside and the
    previous flags restored after (entering it needs no GPU)."""
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    before = [f.fp32_precision for f in flags]
    for device in ("cuda", "cpu"):
        ctx = autocast(torch.device(device))
        assert not isinstance(ctx, torch.autocast)
        with ctx:
            assert [f.fp32_precision for f in flags] == ["ieee", "ieee"]
        assert [f.fp32_precision for f in flags] == before
    bf16 = autocast(torch.device("cuda"), "bf16")
    assert isinstance(bf16, torch.autocast) and bf16.fast_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown precision 'tf32'"):
        autocast(torch.device("cpu"), "tf32")


ARCHS = ["vit_small_patch16_224", "vit_small_patch16_dinov3", "vit_small_patch14_reg4_dinov2"]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                               reason="no CUDA device visible"))]


def _perturbed_extractor(arch: str, device: str):
    import timm

    from atlas.features.extractor import TokenExtractor

    torch.manual_seed(0)
    size = {"img_size": 224} if "dinov2" in arch else {}
    model = timm.create_model(arch, pretrained=False, num_classes=0, depth=4, embed_dim=96, num_heads=3, **size).eval()
    with torch.no_grad():  # away from the init's symmetries, so that rounding shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return TokenExtractor(model.to(device), [1, 3], ["tokens", "keys", "queries", "values"])


def _relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest error relative to the largest reference value."""
    return ((got.float().cpu() - ref.cpu()).abs().max() / ref.abs().max()).item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch", ARCHS)
def test_autocast_error_against_fp32_is_bounded(arch, device):
    """The autocast precisions against fp32 on the same device (on the CPU: the CUDA path emulated,
    same dtypes): every representation's largest error, relative to its largest fp32 value, against
    the float16 storage rounding of the fp32 features (about 2^-12 of the largest value). Measured
    on the CPU: fp16 autocast 1.3-3.1x the storage rounding, bf16 9-25x (0.3-0.6%); on an H200
    (torch 2.11, worst representation): fp16 1.7-2.2x, bf16 14-16x. Hence fp32 is the default and the others are
    labelled options."""
    ex = _perturbed_extractor(arch, device)
    x = torch.randn(2, 3, 224, 224).to(device)
    with autocast(torch.device(device)):
        exact = ex(x)
    got = {}
    for precision in ("fp16", "bf16"):
        with autocast(torch.device(device), precision):
            got[precision] = ex(x)
    if device == "cpu":
        plain = ex(x)
        for key, ref in exact.items():
            torch.testing.assert_close(ref, plain[key], rtol=0, atol=0)  # fp32: the model's own result
    worst = {"storage": 0.0, "fp16": 0.0, "bf16": 0.0}
    for key, ref in exact.items():
        storage = _relative_error(ref.half(), ref)
        err = {p: _relative_error(got[p][key], ref) for p in got}
        assert err["fp16"] <= 4 * storage, (key, err, storage)
        assert 4 * storage < err["bf16"] <= 0.01, (key, err, storage)
        worst = {"storage": max(worst["storage"], storage), **{p: max(worst[p], err[p]) for p in err}}
    print(f"\nMEASURED precision {arch} on {device}: largest relative error storage {worst['storage']:.2e}, "
          f"fp16 {worst['fp16']:.2e}, bf16 {worst['bf16']:.2e}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")
@pytest.mark.parametrize("arch", ARCHS)
def test_cuda_fp32_extraction_is_ieee_fp32(arch):
    """The default precision on a GPU: CUDA fp32 features equal the CPU's to float32 rounding
    (different kernels, the same arithmetic), far inside the float16 the cache stores. Planted
    control: the same extraction with TF32 switched on (what cuDNN does by default) is off by
    TF32's 10-bit mantissa, at least 10x further. Measured on an H200: 0.9-1.3e-6 vs 3.1-4.4e-4."""
    cpu = _perturbed_extractor(arch, "cpu")
    x = torch.randn(2, 3, 224, 224)
    with autocast(torch.device("cpu")):
        ref = cpu(x)
    gpu = _perturbed_extractor(arch, "cuda")
    with autocast(torch.device("cuda")):
        ieee = gpu(x.cuda())
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    before = [f.fp32_precision for f in flags]
    try:
        for f in flags:
            f.fp32_precision = "tf32"
        tf32 = gpu(x.cuda())
    finally:
        for f, value in zip(flags, before):
            f.fp32_precision = value
    err_ieee = max(_relative_error(ieee[k], ref[k]) for k in ref)
    err_tf32 = max(_relative_error(tf32[k], ref[k]) for k in ref)
    storage = max(_relative_error(ref[k].half(), ref[k]) for k in ref)
    print(f"\nMEASURED cuda fp32 vs cpu {arch}: ieee {err_ieee:.2e}, tf32 {err_tf32:.2e}, float16 storage {storage:.2e}")
    assert err_ieee <= 1e-5 and err_ieee < storage / 10
    assert err_tf32 > 10 * err_ieee


_LINALG_RACE = """
import sys, threading, torch
from atlas.measures.tensors import load_linalg
if sys.argv[1] == "load":
    load_linalg("cuda")
barrier, errors = threading.Barrier(8), []
def first_eigh():
    a = torch.eye(64, device="cuda") + 0.01 * torch.randn(64, 64, device="cuda")
    barrier.wait()  # every thread's first linalg call at once
    try:
        torch.linalg.eigh(a + a.T)
    except RuntimeError as exc:
        errors.append(str(exc))
threads = [threading.Thread(target=first_eigh) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print("ERRORS", len(errors), errors[:1])
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")
def test_linalg_loaded_before_the_analysis_threads_start():
    """torch loads its CUDA linear algebra at the first call, and two threads' first calls can race
    ("lazy wrapper should be called at most once", pytorch#90613; it stopped a bench build here).
    ``load_linalg`` in the main thread first: 8 threads' simultaneous first eigh calls all succeed.
    The control (no load first) is only reported: the race is not certain to show."""
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    runs = {mode: subprocess.run([sys.executable, "-c", _LINALG_RACE, mode], capture_output=True, text=True,
                                 cwd=root, timeout=120) for mode in ("load", "race")}
    print(f"\nMEASURED linalg race without load_linalg: {runs['race'].stdout.strip() or runs['race'].stderr[-300:]}")
    assert runs["load"].returncode == 0, runs["load"].stderr[-2000:]
    assert "ERRORS 0 []" in runs["load"].stdout
