"""Hostile models: an absurd model size and malformed checkpoints stop with one line, before any
model is computed (issue 24, items 5 and 7).

The drills go through the real command line on the tiny projects of ``test_hostile_inputs``; the
memory rule itself is proved on meta-device estimates with planted sizes and planted "available"
numbers, so nothing here allocates a large model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import timm
import torch
from test_hostile_inputs import TINY, _toml, error_line, project, run_cli

from atlas.config import Backbone, FeaturesSection
from atlas.features import backbones
from atlas.features.backbones import WeightsUnavailableError, load_backbone

GiB = 2**30


def _nothing_computed(root: Path) -> None:
    assert not (root / "out" / "state" / "models").exists()
    assert not (root / "cache").exists() or not list((root / "cache").rglob("*.safetensors"))


def _spec(**overrides) -> Backbone:
    return Backbone(display_name="M", timm_name="vit_small_patch16_224", weights="random", training="random",
                    overrides={**TINY, **overrides})


# ---------------------------------------------------------------- item 5: an absurd model size


def test_absurd_embed_dim_is_refused_in_one_line_before_allocating(tmp_path, capsys):
    config = project(tmp_path)
    config.write_text(config.read_text().replace("embed_dim = 32", "embed_dim = 10000000"))
    assert run_cli(config) == 2
    line = error_line(capsys)
    assert "Tiny A" in line and "needs about" in line and "PiB" in line and "available" in line
    assert "smaller overrides" in line
    _nothing_computed(tmp_path)


def test_estimate_grows_linearly_in_depth_and_quadratically_in_width():
    features = FeaturesSection(batch_size=2, layers="all", gallery_layers=[1.0], representations=["tokens"])

    def est(**kw) -> backbones.MemoryEstimate:
        return backbones.estimate_memory(_spec(**kw), (64, 64), features)

    d4, d8, d16 = (est(depth=d, embed_dim=256, num_heads=4) for d in (4, 8, 16))
    # parameters and kept activations: a fixed part (patch / position embedding, one block's working
    # set) plus the same amount per block
    assert d16.params - d8.params == pytest.approx(2 * (d8.params - d4.params), rel=1e-9)
    assert d16.per_image - d8.per_image == 2 * (d8.per_image - d4.per_image) > 0
    w256, w512, w1024 = (est(depth=4, embed_dim=w, num_heads=4) for w in (256, 512, 1024))
    assert 3.5 < w1024.params / w512.params < 4.1 and 3.5 < w512.params / w256.params < 4.1
    assert w1024.activations == 2 * w1024.per_image  # the batch scales the activations
    assert w1024.input_size == (64, 64) and w1024.weights_file == 0


def test_meta_estimate_of_an_absurd_model_allocates_nothing():
    est = backbones.estimate_memory(_spec(embed_dim=10_000_000), (64, 64), FeaturesSection(batch_size=4))
    assert est.params > 2**50  # petabytes, counted on the meta device
    assert backbones.memory_shortfall(_spec(embed_dim=10_000_000), est, "cpu", host_free=10**15) is not None


def test_tiny_model_fits_this_machine():
    assert backbones.memory_problem(_spec(), (64, 64), FeaturesSection(batch_size=4), torch.device("cpu")) is None


def test_refusal_threshold_with_planted_available_memory():
    est = backbones.MemoryEstimate(params=2 * GiB, per_image=GiB, weights_file=0, batch_size=4, input_size=(64, 64))

    def cpu(free: int | None, spec: Backbone = _spec()) -> str | None:
        return backbones.memory_shortfall(spec, est, "cpu", host_free=free)

    threshold = est.need(4) / backbones.MEMORY_HEADROOM  # 6 GiB needed
    assert cpu(int(threshold) + 1) is None
    line = cpu(int(threshold) - 1)
    assert "needs about 6.0 GiB" in line and "batch_size = 3" in line and "\n" not in line
    # not even one image fits: the model itself must shrink
    assert cpu(2 * GiB).endswith("use smaller overrides (embed_dim, depth) or a machine with more memory")
    stock = _spec().model_copy(update={"overrides": {}})  # a model as timm ships it: no overrides to shrink
    assert cpu(2 * GiB, stock).endswith("use a machine with more memory, or a smaller model")
    assert cpu(None) is None  # unknown available memory is not checked


def test_gpu_rule_needs_one_image_on_the_gpu_and_the_parameters_on_the_machine():
    spec = _spec()
    est = backbones.MemoryEstimate(params=20 * GiB, per_image=2 * GiB, weights_file=10 * GiB, batch_size=32,
                         input_size=(518, 518))
    # 20 + 2 GiB on the GPU, 20 + 10 GiB on the machine: a batch of 32 (84 GiB) is halved on the GPU
    assert backbones.memory_shortfall(spec, est, "cuda", host_free=64 * GiB, device_free=32 * GiB) is None
    line = backbones.memory_shortfall(spec, est, "cuda", host_free=64 * GiB, device_free=24 * GiB)
    assert "the GPU has 24.0 GiB free" in line and "one image" in line and "a GPU with more memory" in line
    line = backbones.memory_shortfall(spec, est, "cuda", host_free=30 * GiB, device_free=80 * GiB)
    assert "this machine has 30.0 GiB available" in line and "weights file" in line
    # on the CPU the whole batch (no halving there): 0.9 x 64 - 20 - 10 GiB leaves 13 images
    line = backbones.memory_shortfall(spec, est, "cpu", host_free=64 * GiB)
    assert "set [features] batch_size = 13 (or smaller)" in line


# ---------------------------------------------------------------- item 7: malformed checkpoints


def _tiny_state() -> dict[str, torch.Tensor]:
    model = timm.create_model("vit_small_patch16_224", num_classes=0, img_size=64, **TINY)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def _checkpoint_spec(path: Path) -> Backbone:
    return Backbone(display_name="M", timm_name="vit_small_patch16_224", weights="checkpoint",
                    checkpoint=str(path), training="contrastive", overrides=TINY)


def _half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _random_bytes(path: Path) -> None:
    data = np.random.default_rng(0).bytes(4096)
    assert data[0] != 0x80 and not data.startswith(b"PK")  # neither format's magic
    path.write_bytes(data)


MALFORMED = {  # file name -> (how to make it, what the line must say)
    "empty.pth": (lambda p: p.write_bytes(b""), "not a PyTorch checkpoint (empty file)"),
    "random.pth": (_random_bytes, "not a PyTorch checkpoint (neither the zip archive of torch.save nor a pickle"),
    "truncated.pth": (lambda p: (torch.save(_tiny_state(), p), _half(p)),
                      "not a PyTorch checkpoint (a truncated or damaged zip archive)"),
    "pickle.safetensors": (lambda p: torch.save(_tiny_state(), p), "not a safetensors file (its header cannot be "
                                                                  "read: header too large; it looks like a torch.save"),
    "empty.safetensors": (lambda p: p.write_bytes(b""), "not a safetensors file (empty file)"),
    "truncated.safetensors": (lambda p: (safetensors.torch.save_file(_tiny_state(), str(p)), _half(p)),
                              "not a safetensors file (its header cannot be read: incomplete metadata"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_checkpoint_is_named_in_one_line_before_computing(tmp_path, capsys, name):
    make, expected = MALFORMED[name]
    path = tmp_path / "weights" / name
    path.parent.mkdir()
    make(path)
    config = project(tmp_path)
    text = config.read_text().replace('weights = "random"', f'weights = "checkpoint"\ncheckpoint = {_toml(str(path))}')
    config.write_text(text.replace('training = "random"', 'training = "contrastive"'))
    assert run_cli(config) == 2
    line = error_line(capsys)
    assert f"{path}: {expected}" in line, line
    _nothing_computed(tmp_path)


def test_damage_past_the_header_is_one_line_at_load_time(tmp_path):
    """The loader's own exception is the fallback: a legacy (pickle) .pth passes the header check."""
    path = tmp_path / "legacy.pth"
    torch.save(_tiny_state(), path, _use_new_zipfile_serialization=False)
    _half(path)
    with pytest.raises(WeightsUnavailableError) as err:
        load_backbone(_checkpoint_spec(path), (64, 64))
    assert f"{path}: not a PyTorch checkpoint (" in str(err.value) and "\n" not in str(err.value)
    backbones.check_checkpoint_file(_checkpoint_spec(path))  # its first byte is a pickle's: passes


def test_checkpoint_of_the_right_format_passes_the_header_check(tmp_path):
    state = _tiny_state()
    for name, save in [("m.safetensors", lambda p: safetensors.torch.save_file(state, str(p))),
                       ("m.pth", lambda p: torch.save(state, p)),
                       ("legacy.pth", lambda p: torch.save(state, p, _use_new_zipfile_serialization=False))]:
        save(tmp_path / name)
        backbones.check_checkpoint_file(_checkpoint_spec(tmp_path / name))
