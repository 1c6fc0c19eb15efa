"""Backbones: name checks with suggestions, model facts, checkpoint loading, offline failure."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch

from atlas.features.backbones import (UnknownModelError, WeightsUnavailableError, check_model_name, load_backbone,
                             missing_weights, state_dict_hash, weights_identity)
from atlas.files import sha256_file
from atlas.config import Backbone
from atlas.records import RANDOM_INIT_LABEL

TINY = {"depth": 2, "embed_dim": 64, "num_heads": 2}


def _spec(name, **kw):
    kw.setdefault("weights", "random")
    return Backbone(display_name=kw.pop("display_name", name), timm_name=name, training="random",
                    overrides=kw.pop("overrides", TINY), **kw)


def test_unknown_name_suggests_three_closest():
    with pytest.raises(UnknownModelError) as err:
        check_model_name("vit_smal_patch16_224.dino")
    msg = str(err.value)
    assert "vit_small_patch16_224.dino" in msg and msg.count(",") == 2
    with pytest.raises(UnknownModelError):
        check_model_name("vit_small_patch16_224.not_a_tag")
    check_model_name("vit_small_patch14_reg4_dinov2.lvd142m")


@pytest.mark.parametrize("name, patch, prefix, regs, pos, mean0, layer_scale", [
    ("vit_small_patch16_224.dino", 16, 1, 0, "learned absolute", 0.485, None),
    ("vit_small_patch14_reg4_dinov2.lvd142m", 14, 5, 4, "learned absolute", 0.485, 1e-5),
    ("vit_small_patch16_dinov3.lvd1689m", 16, 5, 4, "RoPE", 0.485, 1e-5),
    ("eva02_base_patch14_224.mim_in22k", 14, 1, 0, "learned absolute + RoPE", 0.48145466, None),
    ("vit_huge_patch14_gap_224.in1k_ijepa", 14, 0, 0, "learned absolute", 0.485, None),
    ("beitv2_base_patch16_224.in1k_ft_in22k_in1k", 16, 1, 0, "relative position bias", 0.485, 1e-5),
])
def test_model_card_facts(name, patch, prefix, regs, pos, mean0, layer_scale):
    loaded = load_backbone(_spec(name), (224, 200), seed=0)
    card = loaded.card
    # LayerScale's initial gamma of random DINOv2 / DINOv3 / BEiT models (the site's "flat lines" note)
    assert card.layer_scale == (None if layer_scale is None else pytest.approx(layer_scale))
    assert (card.patch_size, card.num_prefix_tokens, card.num_registers, card.pos_encoding) == (patch, prefix, regs, pos)
    # snapped to the patch size, halves up (200 / 16 = 12.5 -> 13 patches), as snap_to_patch_multiple
    assert card.input_size == ([224, 208] if patch == 16 else [224, 196])
    assert card.depth == 2 and card.embed_dim == 64 and card.num_heads == 2
    assert card.params == sum(p.numel() for p in loaded.model.parameters())
    assert card.mean[0] == pytest.approx(mean0)
    assert card.provenance == RANDOM_INIT_LABEL and card.is_random_init


def test_layer_scale_reads_the_weights():
    """The card reports the gammas the model holds (trained weights have learned ones), not a default."""
    from atlas.features.backbones import _layer_scale

    model = timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False, num_classes=0, **TINY)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".gamma"):
                p.fill_(-0.5)
    assert _layer_scale(model) == pytest.approx(0.5)
    assert _layer_scale(timm.create_model("vit_small_patch16_224", pretrained=False, **TINY)) is None


def test_random_init_is_deterministic_per_seed():
    a = load_backbone(_spec("vit_small_patch16_224"), (224, 224), seed=0)
    b = load_backbone(_spec("vit_small_patch16_224"), (224, 224), seed=0)
    c = load_backbone(_spec("vit_small_patch16_224"), (224, 224), seed=1)
    assert a.weights_hash == b.weights_hash != c.weights_hash
    # the identity is the recipe: it holds only because the weights themselves are the same
    assert state_dict_hash(a.model) == state_dict_hash(b.model) != state_dict_hash(c.model)
    assert weights_identity(a.spec, 0) == a.weights_hash  # known without creating the model


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_checkpoint_loading_roundtrip(tmp_path, fmt):
    torch.manual_seed(3)
    src = timm.create_model("vit_small_patch16_224", num_classes=0, **TINY)
    sd = src.state_dict()
    path = tmp_path / f"model.{fmt}"
    if fmt == "safetensors":
        safetensors.torch.save_file(sd, str(path))
    else:
        torch.save({"model": sd}, path)  # a common training-checkpoint layout; timm unwraps it
    spec = _spec("vit_small_patch16_224", weights="checkpoint", checkpoint=str(path))
    loaded = load_backbone(spec, (224, 224))
    for k, v in loaded.model.state_dict().items():
        torch.testing.assert_close(v, sd[k])
    assert loaded.weights_hash == sha256_file(path)
    assert "checkpoint" in loaded.card.provenance and not loaded.card.is_random_init


def test_checkpoint_resamples_position_embedding_for_other_input_size(tmp_path):
    src = timm.create_model("vit_small_patch16_224", num_classes=0, **TINY)
    path = tmp_path / "m.safetensors"
    safetensors.torch.save_file(src.state_dict(), str(path))
    loaded = load_backbone(_spec("vit_small_patch16_224", weights="checkpoint", checkpoint=str(path)), (160, 320))
    assert loaded.model.pos_embed.shape[1] == 1 + 10 * 20


class PickledObject:
    """Stands for arbitrary code in a checkpoint: needs full unpickling."""


def test_checkpoint_that_misses_weights_fails_loudly(tmp_path):
    path = tmp_path / "partial.safetensors"
    src = timm.create_model("vit_small_patch16_224", num_classes=0, **TINY).state_dict()
    safetensors.torch.save_file({k: v for k, v in src.items() if "blocks.1." not in k}, str(path))
    with pytest.raises(WeightsUnavailableError, match="do not fit"):
        load_backbone(_spec("vit_small_patch16_224", weights="checkpoint", checkpoint=str(path)), (224, 224))


def test_pth_with_pickled_objects_is_refused(tmp_path):
    """weights_only=True: a checkpoint that needs arbitrary unpickling is not loaded."""

    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "obj": PickledObject()}, path)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_backbone(_spec("vit_small_patch16_224", weights="checkpoint", checkpoint=str(path)), (224, 224))


def test_missing_pretrained_weights_reported_without_network(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    specs = [Backbone(display_name="DINO S", timm_name="vit_small_patch16_224.dino", training="contrastive"),
             _spec("vit_small_patch16_224")]
    missing = missing_weights(specs)
    assert [m[0].display_name for m in missing] == ["DINO S"]
    with pytest.raises(WeightsUnavailableError, match="DINO S"):
        load_backbone(specs[0], (224, 224))


def test_pretrained_weights_from_filled_hub_cache(monkeypatch, tmp_path):
    """The real `pretrained` path, offline, with a hub cache that a test fills (no download)."""
    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    torch.manual_seed(5)
    src = timm.create_model("vit_small_patch16_224", num_classes=0, **TINY)
    snap = hub / "models--timm--vit_small_patch16_224.dino" / "snapshots" / "0123456789abcdef"
    snap.mkdir(parents=True)
    safetensors.torch.save_file(src.state_dict(), str(snap / "model.safetensors"))
    (hub / "models--timm--vit_small_patch16_224.dino" / "refs").mkdir()
    (hub / "models--timm--vit_small_patch16_224.dino" / "refs" / "main").write_text("0123456789abcdef")
    spec = Backbone(display_name="DINO S tiny", timm_name="vit_small_patch16_224.dino", training="contrastive",
                    overrides=TINY)
    assert missing_weights([spec]) == []
    loaded = load_backbone(spec, (224, 224))
    torch.testing.assert_close(loaded.model.pos_embed, src.pos_embed)
    assert loaded.card.provenance.startswith("hf-hub timm/vit_small_patch16_224.dino @ 0123456789ab")


FAST_ANSWER = """
import sys, time, timm
def refuse(*a, **k):
    raise AssertionError("a model was built")
timm.create_model = refuse
from atlas.cli import main
rc = main(sys.argv[1:])
print("RC", rc, "SKLEARN", "sklearn" in sys.modules, "BUILD", "atlas.pipeline.build" in sys.modules)
"""


@pytest.mark.parametrize("extra", [[], ["--check-weights"]])
def test_weights_missing_answered_offline_without_building_a_model(tmp_path, extra):
    """The zoo build and --check-weights decide "weights missing" from the local caches alone: no
    model is constructed (timm.create_model refuses here), the analysis modules are not imported,
    and with HF_HUB_OFFLINE=1 no connection is attempted."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "TORCH_HOME": str(tmp_path / "torch")}
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", FAST_ANSWER, "--config", str(root / "configs" / "zoo.toml"),
                           "--no-site", "-q", *extra], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert "a model was built" not in done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last == ("RC 1" if extra else "RC 2") + " SKLEARN False BUILD False", done.stdout + done.stderr
    if extra:  # one line per model, naming the timm tag
        assert "vit_small_patch14_dinov2.lvd142m]: not cached and offline" in done.stdout
    else:  # one line naming the slugs, with what to do
        (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
        assert "not cached and offline" in line and "dinov2-vit-s-14" in line and "--download-only" in line
