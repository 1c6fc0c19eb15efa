"""Planted effects in a real timm ViT, through the path that produces the site (``ModelRun``:
extraction into the cache, joint k-means, every positional measure, blank-input probe, shift test).

* position embedding zeroed: no position information enters the model -> no positional score,
  clusters follow content in the shift test, blank inputs give no repeated map;
* position embedding at x10 / x100 timm's init scale: every positional score rises with it;
* patch embedding zeroed (tokens are a function of position alone): positional clustering and the
  blank-input probe saturate, and the shift test finds clusters that stay with the grid.
"""

from __future__ import annotations

import pytest
import torch

from atlas.config import parse_config
from atlas.features.backbones import load_backbone, state_dict_hash
from atlas.features.cache import FeatureCache
from atlas.pipeline.inputs import load_images
from atlas.pipeline.model_run import ModelRun

CONFIG = """
[images]
resolution = [112, 112]
[features]
layers = [1]
gallery_layers = [1]
representations = ["tokens", "keys"]
[clustering]
ks = [6]
[analyses]
k = 6
[[backbones]]
display_name = "tiny"
timm_name = "vit_small_patch16_224"
weights = "random"
training = "random"
overrides = { depth = 2, embed_dim = 64, num_heads = 2 }
"""


INIT_STD = 0.02  # timm's trunc_normal_ std of pos_embed, on the weights' own 14 x 14 grid


def _scale_pos(scale: float):
    def plant(model):
        # at 112 px the random weights' embeddings are resampled from 14 x 14 to 7 x 7 (as every size
        # of the resolution axis), which averages them (std ~0.009): scale against the init's std so
        # the planted strength does not depend on the resampling
        model.pos_embed.mul_(scale * INIT_STD / model.pos_embed.std())
    return plant


def _position_only(model):
    model.patch_embed.proj.weight.zero_()
    model.patch_embed.proj.bias.zero_()


PLANTS = {"zeroed": _scale_pos(0.0), "x10": _scale_pos(10.0), "x100": _scale_pos(100.0),
          "position only": _position_only}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    cfg = parse_config(CONFIG)
    images, _ = load_images(cfg)
    cache = FeatureCache(tmp_path_factory.mktemp("cache"))
    out = {}
    for name, plant in PLANTS.items():
        loaded = load_backbone(cfg.backbones[0], (112, 112), seed=0)
        with torch.no_grad():
            plant(loaded.model)
        loaded.weights_hash = state_dict_hash(loaded.model)  # the cache key follows the weights
        result = ModelRun(cfg, loaded, images, cache, torch.device("cpu")).run()
        out[name] = {(r.measure, r.representation): r.value for r in result.measures}
    return out


POSITIONAL = ("positional_nce", "position_r2", "positional_effect", "blank_position_score")


@pytest.mark.parametrize("rep", ["tokens", "keys"])
def test_no_position_no_positional_score(measured, rep):
    zero = measured["zeroed"]
    for name in POSITIONAL:
        assert zero[name, rep] < 0.1, (name, zero[name, rep])
    assert zero["shift_content_fraction", rep] > 0.8  # clusters move with the content


@pytest.mark.parametrize("rep", ["tokens", "keys"])
def test_amplified_position_raises_every_score(measured, rep):
    zero, x10, x100 = measured["zeroed"], measured["x10"], measured["x100"]
    for name in ("position_r2", "positional_effect"):
        assert zero[name, rep] < x10[name, rep] < x100[name, rep], name
    assert x100["positional_nce", rep] > 0.5 and x100["position_r2", rep] > 0.8
    assert x100["blank_position_score", rep] > 0.8
    assert x100["shift_content_fraction", rep] < zero["shift_content_fraction", rep] - 0.5


@pytest.mark.parametrize("rep", ["tokens", "keys"])
def test_position_only_tokens(measured, rep):
    pos = measured["position only"]
    assert pos["positional_nce", rep] > 0.9 and pos["blank_position_score", rep] > 0.9
    assert pos["position_r2", rep] > 0.8
    assert pos["shift_content_fraction", rep] < 0.1  # clusters stay with the grid
