"""Exact extraction: recorded q/k/v reproduce each block's attention output; tokens match timm."""

import pytest
import timm
import torch

from atlas.features.extractor import TokenExtractor, _heads_to_tokens


def recompute_attention_output(attn: torch.nn.Module, rec: dict) -> torch.Tensor:
    """Test oracle: softmax(q k^T * scale + mask) v, heads merged, through the module's own norm and
    projection -- equal to the block's attention output only if the recorded q/k/v are the ones it used."""
    q, k, v = rec["q"].float(), rec["k"].float(), rec["v"].float()
    scale = rec["scale"] if rec["scale"] is not None else q.shape[-1] ** -0.5
    logits = (q * scale) @ k.transpose(-2, -1)
    mask = rec["attn_mask"]
    if mask is not None:
        logits = logits + mask.float() if mask.dtype != torch.bool else logits.masked_fill(~mask, float("-inf"))
    o = _heads_to_tokens(logits.softmax(-1) @ v)
    if getattr(attn, "norm", None) is not None:
        o = attn.norm(o)
    if getattr(attn, "gate", None) is not None:
        raise NotImplementedError("gated attention: recompute needs the block input")
    return attn.proj(o)


TINY = dict(depth=2, embed_dim=64, num_heads=2)

# One tiny random-init config per family the atlas covers.
FAMILIES = {
    "dino_learned_abs_cls_p16": ("vit_small_patch16_224.dino", {}),
    "dino_p8": ("vit_small_patch8_224.dino", {}),
    "dinov2_p14": ("vit_small_patch14_dinov2.lvd142m", {}),
    "dinov2_registers": ("vit_small_patch14_reg4_dinov2.lvd142m", {}),
    "dinov3_rope": ("vit_small_patch16_dinov3.lvd1689m", {}),
    "dinov3_rope_qkvb": ("vit_small_patch16_dinov3_qkvb.lvd1689m", {}),
    "mae": ("vit_base_patch16_224.mae", {}),
    "ijepa_no_cls": ("vit_huge_patch14_gap_224.in1k_ijepa", {}),
    "eva02_rope_abs": ("eva02_base_patch14_224.mim_in22k", {}),
    "beitv2_relpos": ("beitv2_base_patch16_224.in1k_ft_in22k_in1k", {}),
}


def _tiny(name, img_size):
    patch = int(name.split("patch")[1].split("_")[0])
    img_size = tuple(s // patch * patch for s in img_size)  # models are built for patch multiples
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=0, img_size=img_size, **TINY)
    return model.eval().requires_grad_(False)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("img_size", [(224, 224), (112, 168)], ids=["square", "non_square"])
def test_qkv_reproduce_attention_and_tokens_match_timm(family, img_size):
    name, _ = FAMILIES[family]
    model = _tiny(name, img_size)
    patch = model.patch_embed.patch_size[0]
    h, w = (s // patch * patch for s in img_size)
    x = torch.randn(2, 3, h, w)
    ex = TokenExtractor(model, blocks=[0, 1], representations=["tokens", "queries", "keys", "values", "tokens_normed"],
                        keep_attention_inputs=True)
    out = ex(x)
    n_tokens = model.num_prefix_tokens + (h // patch) * (w // patch)
    for b in (0, 1):
        rec = out[(b, "attention")]
        with torch.no_grad():
            recomputed = recompute_attention_output(model.blocks[b].attn, rec)
        torch.testing.assert_close(recomputed, rec["output"], rtol=1e-4, atol=1e-5)
        for rep in ("queries", "keys", "values"):
            assert out[(b, rep)].shape == (2, n_tokens, 64)
        assert out[(b, "tokens")].shape == (2, n_tokens, 64)
    # block outputs equal timm's own intermediates, and the last one through the final norm
    # equals forward_features
    with torch.no_grad():
        inter = model.forward_intermediates(x, indices=[0, 1], intermediates_only=True, output_fmt="NLC",
                                            return_prefix_tokens=True)
        feats = model.forward_features(x)
        npt = model.num_prefix_tokens
        for b in (0, 1):
            patches, prefix = inter[b] if isinstance(inter[b], tuple) else (inter[b], None)
            torch.testing.assert_close(out[(b, "tokens")][:, npt:], patches.reshape(2, -1, 64), rtol=1e-4, atol=1e-5)
            if prefix is not None and npt:
                torch.testing.assert_close(out[(b, "tokens")][:, :npt], prefix, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model.norm(out[(1, "tokens")]), feats, rtol=1e-4, atol=1e-5)
    # tokens_normed is what DINO users mean by last-layer features: forward_features, last block only
    torch.testing.assert_close(out[(1, "tokens_normed")], feats, rtol=1e-4, atol=1e-5)
    assert (0, "tokens_normed") not in out


def test_recompute_detects_wrong_qkv():
    """Control: swapping q and k must break the recomputation (the test can fail)."""
    model = _tiny("vit_small_patch16_224.dino", (224, 224))
    out = TokenExtractor(model, [1], ["keys"], keep_attention_inputs=True)(torch.randn(1, 3, 224, 224))
    rec = dict(out[(1, "attention")])
    rec["q"], rec["k"] = rec["k"], rec["q"]
    with torch.no_grad():
        wrong = recompute_attention_output(model.blocks[1].attn, rec)
    assert not torch.allclose(wrong, rec["output"], atol=1e-4)


def test_stops_after_last_requested_block():
    model = _tiny("vit_small_patch16_224.dino", (224, 224))
    called = []
    model.blocks[1].register_forward_hook(lambda *a: called.append(1))
    TokenExtractor(model, [0], ["tokens"])(torch.randn(1, 3, 224, 224))
    assert called == []


def test_invalid_arguments():
    model = _tiny("vit_small_patch16_224.dino", (224, 224))
    with pytest.raises(ValueError, match="blocks must lie"):
        TokenExtractor(model, [5], ["tokens"])
    with pytest.raises(ValueError, match="unknown representation"):
        TokenExtractor(model, [0], ["logits"])


def test_tokens_normed_only_with_the_last_block():
    """Asked for without the model's last block, tokens_normed is not produced (and not missing)."""
    model = _tiny("vit_small_patch16_dinov3.lvd1689m", (224, 224))
    out = TokenExtractor(model, [0], ["tokens", "tokens_normed"])(torch.randn(1, 3, 224, 224))
    assert set(out) == {(0, "tokens")}
    x = torch.randn(1, 3, 224, 224)
    out = TokenExtractor(model, [0, 1], ["tokens_normed"])(x)
    assert set(out) == {(1, "tokens_normed")}
    raw = TokenExtractor(model, [1], ["tokens"])(x)[(1, "tokens")]
    torch.testing.assert_close(out[(1, "tokens_normed")], model.norm(raw))
    assert not torch.allclose(out[(1, "tokens_normed")], raw, atol=1e-2)  # the norm is not an identity here
