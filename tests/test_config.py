"""Config validation: one-line errors that say what to fix; layer specs; shipped configs load."""

from pathlib import Path

import pytest

from atlas.config import ConfigError, load_config, parse_config, resolve_layers, slugify

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = """
[[backbones]]
display_name = "Tiny"
timm_name = "vit_small_patch16_224"
weights = "random"
training = "random"
"""


def test_shipped_configs_load_and_name_known_models():
    from atlas.features.backbones import check_model_name

    for name in ("demo.toml", "zoo.toml"):
        cfg = load_config(ROOT / "configs" / name)
        for b in cfg.backbones:
            check_model_name(b.timm_name)
    demo = load_config(ROOT / "configs" / "demo.toml")
    assert all(b.weights == "random" for b in demo.backbones)
    kinds = {b.timm_name.split(".")[0] for b in demo.backbones}
    assert {"vit_small_patch16_224", "vit_small_patch14_reg4_dinov2", "vit_small_patch16_dinov3", "vit_base_patch16_224"} <= kinds


def test_minimal_defaults():
    cfg = parse_config(MINIMAL)
    assert cfg.features.representations == ["tokens", "keys", "queries", "values", "tokens_normed"]
    assert cfg.backbones[0].slug == "tiny"
    assert len(cfg.config_hash) == 16


@pytest.mark.parametrize(
    "patch, expected",
    [
        ('weights = "pretrain"', "backbones[0].weights"),
        ('weights = "checkpoint"', "needs checkpoint"),
        ("colour = 1", "extra"),
    ],
)
def test_errors_are_one_line_and_name_the_field(patch, expected):
    text = MINIMAL.replace('weights = "random"', patch) if "weights" in patch else MINIMAL + patch
    with pytest.raises(ConfigError) as err:
        parse_config(text, "my.toml")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("my.toml: ")
    assert expected.lower() in msg.lower()


def test_bad_layers_and_unknown_comparison_model():
    with pytest.raises(ConfigError, match="relative depths"):
        parse_config("[features]\nlayers = [0.5, 1.5]\n" + MINIMAL)
    with pytest.raises(ConfigError, match="unknown model 'Nope'"):
        parse_config(MINIMAL + '\n[[comparisons]]\ntitle = "x"\nmodels = ["Nope"]\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[[backbones]\n")
    with pytest.raises(ConfigError, match="no \\[\\[backbones\\]\\]"):
        parse_config("[atlas]\nseed = 1\n")


def test_resolve_layers():
    assert resolve_layers("all", 4) == [0, 1, 2, 3]
    assert resolve_layers([0.25, 0.5, 0.75, 1.0], 12) == [2, 5, 8, 11]
    assert resolve_layers([0.01], 12) == [0]
    assert resolve_layers([3, 1, 3], 12) == [1, 3]
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_layers([12], 12)


def test_slugify_is_stable_and_url_safe():
    assert slugify("DINOv2 ViT-S/14") == "dinov2-vit-s-14"
    assert slugify("DINOv3 ViT-S+/16") != slugify("DINOv3 ViT-S/16")
    assert slugify("<script>") == "script"


def test_kmeans_training_sample_follows_the_config():
    from atlas.pipeline.model_run import kmeans_settings

    def km(text, k):
        return kmeans_settings(parse_config(text + MINIMAL), k)

    assert km("", 8)["max_train_tokens"] == 512 * 8  # default: 512 tokens per cluster
    assert km("[clustering]\ntrain_tokens_per_cluster = 100\n", 4)["max_train_tokens"] == 400
    assert km("[clustering]\ntrain_tokens_per_cluster = 0\n", 4)["max_train_tokens"] is None  # every token
    with pytest.raises(ConfigError, match="train_tokens_per_cluster"):
        parse_config("[clustering]\ntrain_tokens_per_cluster = -1\n" + MINIMAL)
