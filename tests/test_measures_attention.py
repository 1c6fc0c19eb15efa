"""Prefix-token (CLS / register) attention maps and their measures: exactness against timm's own
attention probabilities, planted peaks in tiny timm models, normalisation, and planted effects for
the entropy, outer-ring and high-norm measures."""

from __future__ import annotations

import types

import numpy as np
import pytest
import scipy.stats
import timm
import torch
from scipy.special import softmax

from atlas.features.extractor import TokenExtractor
from atlas.measures.attention import (
    NORMALISATION,
    NoPrefixTokens,
    PrefixAttention,
    attention_bias,
    attention_entropy,
    high_norm_attention,
    high_norm_tokens,
    prefix_attention,
    prefix_token_names,
    ring_attention,
)
from atlas.measures.boundary import border_mask, boundary_artifacts
from atlas.measures.uncertainty import half_samples

TINY = {"depth": 2, "embed_dim": 64, "num_heads": 2}
HEADS = TINY["num_heads"]

EXACT_FAMILIES = {
    "learned_abs_cls": "vit_small_patch16_224.dino",
    "registers": "vit_small_patch14_reg4_dinov2.lvd142m",
    "rope_registers": "vit_small_patch16_dinov3.lvd1689m",
    "relative_position_bias": "beitv2_base_patch16_224.in1k_ft_in22k_in1k",
    "rope_and_abs_eva02": "eva02_base_patch14_224.mim_in22k",  # EvaAttention with q/v biases
}
# Tolerances on attention probabilities (absolute, rtol 0), for the sharpened tiny models below
# (row entropies ~0.5, peaks up to ~0.8): float32 q/k reproduce timm's non-fused softmax up to
# float32 rounding (observed <= 3e-7); q/k rounded through float16, as the cache stores them, move
# each logit by ~2^-11 of its size (observed <= 6e-4).
ATOL_FP32 = 1e-6
ATOL_FP16 = 2e-3


def _tiny(name: str, img_size: tuple[int, int], seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, num_classes=0, img_size=img_size, **TINY)
    with torch.no_grad():  # timm initialises BEiT's relative position bias tables to zero: make them matter
        for blk in model.blocks:
            table = getattr(blk.attn, "relative_position_bias_table", None)
            if table is not None:
                table.normal_(std=2.0)
    return model.eval().requires_grad_(False)


def _grid(model) -> tuple[int, int]:
    return tuple(int(g) for g in model.patch_embed.grid_size)


def _split(t: torch.Tensor, n_prefix: int, grid: tuple[int, int]):
    """(B, T, C) extractor output -> patches (B, h, w, C) and prefix (B, P, C) numpy, like load_block."""
    a = t.float().numpy()
    return a[:, n_prefix:].reshape(len(a), *grid, a.shape[-1]), a[:, :n_prefix]


def _cached_attention(model, x, block, cast=torch.float32, bias="model") -> PrefixAttention:
    out = TokenExtractor(model, [block], ["queries", "keys"])(x)
    npt, grid = model.num_prefix_tokens, _grid(model)
    q_pat, q_pre = _split(out[(block, "queries")].to(cast), npt, grid)
    k_pat, k_pre = _split(out[(block, "keys")].to(cast), npt, grid)
    return prefix_attention(q_pat, q_pre, k_pat, k_pre, num_heads=HEADS,
                            bias=attention_bias(model, block) if bias == "model" else bias,
                            names=prefix_token_names(model))


def _timm_attention(model, x) -> dict[int, torch.Tensor]:
    """Ground truth: the softmaxed attention timm itself computes on its non-fused path, read from
    the input of ``attn.attn_drop`` (applied right after the softmax; identity in eval mode)."""
    probs, handles = {}, []
    for b, blk in enumerate(model.blocks):
        blk.attn.fused_attn = False
        handles.append(blk.attn.attn_drop.register_forward_hook(
            lambda _m, inputs, _o, b=b: probs.__setitem__(b, inputs[0].detach().clone())))
    try:
        with torch.no_grad():
            model.forward_features(x)
    finally:
        for h in handles:
            h.remove()
    return probs  # block -> (B, heads, T, T)


# --------------------------------------------------------------------------- exactness


def _sharpen(model):
    """Random-init timm ViTs attend almost uniformly (qkv std 0.02): larger q/k/v weights and
    random CLS / register tokens give peaked rows, where exactness is a real test."""
    with torch.no_grad():
        for blk in model.blocks:
            for proj in ("qkv", "q_proj", "k_proj", "v_proj"):  # EVA-02 has separate projections
                if getattr(blk.attn, proj, None) is not None:
                    getattr(blk.attn, proj).weight.normal_(std=0.2)
        for name in ("cls_token", "reg_token"):
            if getattr(model, name, None) is not None:
                getattr(model, name).normal_()
    return model


@pytest.mark.parametrize("family", sorted(EXACT_FAMILIES))
def test_maps_equal_timm_attention_probabilities(family):
    model = _sharpen(_tiny(EXACT_FAMILIES[family], (112, 160)))
    npt, (h, w) = model.num_prefix_tokens, _grid(model)
    x = torch.randn(2, 3, 112, 160)
    cached = {b: {c: _cached_attention(model, x, b, cast=c) for c in (torch.float32, torch.float16)} for b in (0, 1)}
    truth = _timm_attention(model, x)
    for b in (0, 1):
        expected = truth[b][:, :, :npt].permute(0, 2, 1, 3).numpy()  # (N, P, heads, T)
        assert expected.shape == (2, npt, HEADS, npt + h * w)
        assert expected.max() > 0.2  # peaked rows (uniform would be ~0.01), a real test of exactness
        for cast, atol in ((torch.float32, ATOL_FP32), (torch.float16, ATOL_FP16)):
            att = cached[b][cast]
            assert att.maps.shape == (2, npt, HEADS, h, w) and att.prefix.shape == (2, npt, HEADS, npt)
            np.testing.assert_allclose(att.rows, expected, rtol=0, atol=atol, err_msg=f"block {b} {cast}")
            np.testing.assert_allclose(att.maps, expected[..., npt:].reshape(att.maps.shape), rtol=0, atol=atol)
    # control: BEiT's relative position bias is needed (left out, the rows are wrong). For the CLS
    # row it is one learned value for CLS -> CLS and one for CLS -> every patch (per head), so it
    # moves mass between the CLS and the patches.
    if family == "relative_position_bias":
        no_bias = _cached_attention(model, x, 1, bias=None).prefix[:, 0, :, 0]  # CLS -> CLS, (N, heads)
        with_bias = truth[1][:, :, 0, 0].numpy()
        assert np.abs(np.log(no_bias / with_bias)).max() > 0.5


@pytest.mark.parametrize("family", sorted(EXACT_FAMILIES))
def test_attention_bias_is_what_the_block_adds(family):
    """attention_bias equals the attention mask the block hands scaled_dot_product_attention."""
    model = _tiny(EXACT_FAMILIES[family], (112, 160))
    out = TokenExtractor(model, [0, 1], ["keys"], keep_attention_inputs=True)(torch.randn(1, 3, 112, 160))
    for b in (0, 1):
        rec = out[(b, "attention")]
        assert rec["scale"] is None  # SDPA's default scale head_dim ** -0.5, prefix_attention's default
        bias = attention_bias(model, b)
        if rec["attn_mask"] is None:
            assert bias is None and family != "relative_position_bias"
        else:
            torch.testing.assert_close(bias, rec["attn_mask"].float().reshape(bias.shape))
            assert bias.shape == (HEADS, *rec["attn_mask"].shape[-2:])


def test_attention_bias_rejects_unknown_attention():
    fake = types.SimpleNamespace(blocks=[types.SimpleNamespace(attn=torch.nn.Identity())])
    with pytest.raises(TypeError, match="unknown attention"):
        attention_bias(fake, 0)
    with pytest.raises(ValueError, match="block"):
        attention_bias(_tiny("vit_small_patch16_224.dino", (64, 64)), 5)


def test_prefix_token_names():
    assert prefix_token_names(_tiny("vit_small_patch16_224.dino", (64, 64))) == ("cls",)
    assert prefix_token_names(_tiny("vit_small_patch16_dinov3.lvd1689m", (64, 64))) == ("cls", "reg0", "reg1", "reg2",
                                                                                         "reg3")
    assert prefix_token_names(_tiny("vit_huge_patch14_gap_224.in1k_ijepa", (56, 56))) == ()


# --------------------------------------------------------------------------- planted peaks


def _image(size, patch, patches, seed=0, pattern_of=None) -> torch.Tensor:
    """Blank image except a random pattern in each of ``patches`` (the same one where
    ``pattern_of`` maps a patch to another)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(1, 3, *size)
    pats = {}
    for rc in patches:
        src = (pattern_of or {}).get(rc, rc)
        if src not in pats:
            pats[src] = torch.randn(3, patch, patch, generator=g)
        r, c = rc
        x[0, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = pats[src]
    return x


def _plant(model, x, cls_patch, reg_patch=None, gain=2.0):
    """Zero positions and biases, an identity query/key for head 0 of block 0 (head 1 attends
    uniformly), and a CLS token equal to the embedded token of ``cls_patch`` (register 0: of
    ``reg_patch``): then the CLS's head-0 logit on that patch is gain^2 * |LN(e)|^2 * scale and 0 on
    every blank patch."""
    ps = model.patch_embed.patch_size[0]
    dim = model.embed_dim
    d = dim // HEADS
    proj = model.patch_embed.proj
    with torch.no_grad():
        if getattr(model, "pos_embed", None) is not None:
            model.pos_embed.zero_()
        proj.bias.zero_()

        def embedded(rc):
            r, c = rc
            return proj.weight.flatten(1) @ x[0, :, r * ps:(r + 1) * ps, c * ps:(c + 1) * ps].flatten()

        model.cls_token.copy_(embedded(cls_patch).view(1, 1, dim))
        if getattr(model, "reg_token", None) is not None:
            model.reg_token.zero_()
            if reg_patch is not None:
                model.reg_token[0, 0] = embedded(reg_patch)
        blk = model.blocks[0]
        blk.norm1.weight.fill_(1.0)
        blk.norm1.bias.zero_()
        attn = blk.attn
        attn.qkv.weight.zero_()
        attn.qkv.weight[:d, :d] = gain * torch.eye(d)  # q, head 0
        attn.qkv.weight[dim:dim + d, :d] = gain * torch.eye(d)  # k, head 0
        for bias in (getattr(attn.qkv, "bias", None), getattr(attn, "q_bias", None), getattr(attn, "k_bias", None)):
            if bias is not None:
                bias.zero_()
    return model


def _argmax(m: np.ndarray) -> tuple[int, int]:
    return tuple(int(i) for i in np.unravel_index(np.argmax(m), m.shape))


# learned absolute positions on a non-square grid (10 x 14, off-centre target: checks row-major
# order), registers (DINOv2, 11 x 15), RoPE + registers (DINOv3, 13 x 13: the centre patch's
# rotation is the identity since timm's dinov3 RoPE uses centred coordinates (i + 0.5) / 13 * 2 - 1)
PLANTED = {
    "learned_abs_cls": ("vit_small_patch16_224.dino", (160, 224), (3, 9)),
    "registers": ("vit_small_patch14_reg4_dinov2.lvd142m", (154, 210), (7, 2)),
    "rope_registers": ("vit_small_patch16_dinov3.lvd1689m", (208, 208), (6, 6)),
}


@pytest.mark.parametrize("family", sorted(PLANTED))
def test_planted_cls_attends_to_the_chosen_patch(family):
    name, size, target = PLANTED[family]
    model = _tiny(name, size)
    ps = model.patch_embed.patch_size[0]
    x = _image(size, ps, [target])
    att = _cached_attention(_plant(model, x, target), x, 0, cast=torch.float16)
    assert _argmax(att.maps[0, 0, 0]) == target
    assert _argmax(att.head_mean[0, 0]) == target
    assert att.maps[0, 0, 0][target] > 0.3  # shares the row with the CLS itself (same key), ~0.5
    # head 1 has zero query/key weights: uniform over all tokens
    np.testing.assert_allclose(att.rows[0, 0, 1], 1 / att.rows.shape[-1], rtol=1e-3)


def test_planted_register_attends_to_its_own_patch():
    name, size, target = PLANTED["registers"]
    reg_target = (2, 11)
    model = _tiny(name, size)
    x = _image(size, model.patch_embed.patch_size[0], [target, reg_target])
    att = _cached_attention(_plant(model, x, target, reg_patch=reg_target), x, 0)
    assert att.names == ("cls", "reg0", "reg1", "reg2", "reg3")
    assert _argmax(att.maps[0, 0, 0]) == target and _argmax(att.maps[0, 1, 0]) == reg_target
    # registers 1..3 are zero tokens: zero queries, uniform rows
    np.testing.assert_allclose(att.rows[0, 2:], 1 / att.rows.shape[-1], rtol=1e-4)


def test_planted_peak_moves_with_the_patch():
    """Control for the learned-absolute model: the peak follows the planted patch, not a position."""
    name, size, _ = PLANTED["learned_abs_cls"]
    for target in [(0, 0), (9, 13), (5, 1)]:
        model = _tiny(name, size)
        x = _image(size, 16, [target], seed=3)
        assert _argmax(_cached_attention(_plant(model, x, target), x, 0).maps[0, 0, 0]) == target


def test_rope_is_inside_the_cached_keys():
    """Two identical patches, one at the grid centre (rotation = identity) and one off-centre: the
    CLS (never rotated) prefers the unrotated copy -- without RoPE in the cached keys they would tie."""
    name, size, centre = PLANTED["rope_registers"]
    copy = (2, 9)
    model = _tiny(name, size)
    x = _image(size, 16, [centre, copy], pattern_of={copy: centre})
    m = _cached_attention(_plant(model, x, centre), x, 0).maps[0, 0, 0]
    assert _argmax(m) == centre and m[centre] > 1.05 * m[copy] > 0
    # the same picture through the learned-absolute model (zero positions): the copies tie
    name, size, _ = PLANTED["learned_abs_cls"]
    model = _tiny(name, size)
    x = _image(size, 16, [(3, 3), (6, 10)], pattern_of={(6, 10): (3, 3)})
    m = _cached_attention(_plant(model, x, (3, 3)), x, 0).maps[0, 0, 0]
    assert m[3, 3] == pytest.approx(m[6, 10], rel=1e-4)


@pytest.mark.parametrize("family", sorted(PLANTED))
def test_random_model_control_is_at_chance(family):
    """Unmodified random-init models on noise images put the CLS argmax on the planted target no
    more often than chance (1 / patches per image: expected ~0.1 of 12 images)."""
    name, size, target = PLANTED[family]
    model = _tiny(name, size)
    torch.manual_seed(1)
    att = _cached_attention(model, torch.randn(12, 3, *size), 0)
    hits = sum(_argmax(att.head_mean[i, 0]) == target for i in range(12))
    assert hits <= 2
    assert len({_argmax(att.head_mean[i, 0]) for i in range(12)}) > 3  # the argmax moves with the image


# --------------------------------------------------------------------------- normalisation, inputs


def _random_qk(n=3, p=2, h=4, w=5, c=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, h, w, c)).astype(np.float32), rng.normal(size=(n, p, c)).astype(np.float32),
            rng.normal(size=(n, h, w, c)).astype(np.float32), rng.normal(size=(n, p, c)).astype(np.float32))


def test_rows_sum_to_one_and_maps_to_one_minus_prefix_mass():
    q_pat, q_pre, k_pat, k_pre = _random_qk()
    k_pre[:] = q_pre  # each prefix token's key = its query: a sizeable prefix (self) mass
    att = prefix_attention(q_pat, q_pre, k_pat, k_pre, num_heads=2, batch_size=2)
    np.testing.assert_allclose(att.rows.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(att.maps.sum(axis=(-2, -1)), 1.0 - att.prefix_mass, atol=1e-5)
    assert att.prefix_mass.min() > 0.01
    assert att.normalisation == NORMALISATION and "1 minus the mass" in NORMALISATION
    assert att.scale == pytest.approx(8 ** -0.5)  # head_dim ** -0.5 by default
    # the same rows by hand (numpy), in the model's token order (prefix first, patches row-major)
    k_all = np.concatenate([k_pre, k_pat.reshape(3, 20, 16)], axis=1).reshape(3, 22, 2, 8)
    logits = np.einsum("nphd,nthd->nhpt", q_pre.reshape(3, 2, 2, 8), k_all) * 8 ** -0.5
    expected = softmax(logits, axis=-1).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(att.rows, expected, atol=1e-6)


def test_scale_and_bias_arguments():
    q_pat, q_pre, k_pat, k_pre = _random_qk()
    t = 2 + 20
    rng = np.random.default_rng(1)
    bias = rng.normal(size=(2, t, t)).astype(np.float32)
    ref = prefix_attention(q_pat, q_pre, k_pat, k_pre, 2, scale=0.5, bias=bias)
    for b in (bias[None], torch.from_numpy(bias), np.broadcast_to(bias, (3, 2, t, t))):
        np.testing.assert_allclose(prefix_attention(q_pat, q_pre, k_pat, k_pre, 2, scale=0.5, bias=b).rows,
                                   ref.rows, atol=1e-6)
    assert not np.allclose(prefix_attention(q_pat, q_pre, k_pat, k_pre, 2, scale=0.5).rows, ref.rows, atol=1e-3)
    # a boolean mask keeps True entries, like scaled_dot_product_attention
    keep = np.ones((t, t), dtype=bool)
    keep[:, 2 + 7] = False  # patch (1, 2)
    masked = prefix_attention(q_pat, q_pre, k_pat, k_pre, 2, bias=keep)
    assert (masked.maps[..., 1, 2] == 0).all()
    np.testing.assert_allclose(masked.rows.sum(-1), 1.0, atol=1e-5)
    q_none = prefix_attention(None, q_pre, k_pat, k_pre, 2)
    np.testing.assert_array_equal(q_none.maps, prefix_attention(q_pat, q_pre, k_pat, k_pre, 2).maps)


def test_validation():
    q_pat, q_pre, k_pat, k_pre = _random_qk()
    with pytest.raises(ValueError, match="multiple of num_heads"):
        prefix_attention(q_pat, q_pre, k_pat, k_pre, num_heads=3)
    with pytest.raises(ValueError, match="same shape"):
        prefix_attention(q_pat[:, :2], q_pre, k_pat, k_pre, 2)
    with pytest.raises(ValueError, match="q_prefix"):
        prefix_attention(q_pat, q_pre[:, :1], k_pat, k_pre, 2)
    with pytest.raises(ValueError, match="bias"):
        prefix_attention(q_pat, q_pre, k_pat, k_pre, 2, bias=np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="heads"):
        prefix_attention(q_pat, q_pre, k_pat, k_pre, 2, bias=np.zeros((3, 22, 22)))
    bad = k_pat.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        prefix_attention(q_pat, q_pre, bad, k_pre, 2)
    rows = np.full((1, 1, 1, 5), 0.25, np.float32)  # sums to 1.25
    with pytest.raises(ValueError, match="sum to 1"):
        PrefixAttention.from_rows(rows, grid=(2, 2))
    att = PrefixAttention.from_rows(np.full((1, 1, 1, 5), 0.2, np.float32), grid=(2, 2))
    with pytest.raises(ValueError, match="token"):
        attention_entropy(att, token=1)
    with pytest.raises(ValueError, match="weights"):
        attention_entropy(att, weights=np.ones((2, 3)))


# --------------------------------------------------------------------------- no prefix tokens


def test_models_without_prefix_tokens_raise_no_prefix_tokens():
    model = _tiny("vit_huge_patch14_gap_224.in1k_ijepa", (56, 56))
    assert model.num_prefix_tokens == 0
    with pytest.raises(NoPrefixTokens, match="no prefix tokens"):
        _cached_attention(model, torch.randn(1, 3, 56, 56), 0)
    assert issubclass(NoPrefixTokens, ValueError)
    with pytest.raises(NoPrefixTokens):
        PrefixAttention(maps=np.zeros((1, 0, 2, 4, 4)), prefix=np.zeros((1, 0, 2, 0)))


# --------------------------------------------------------------------------- entropy


def test_entropy_one_hot_is_zero_and_uniform_is_one():
    t = 1 + 16
    one_hot = np.zeros((3, 1, 2, t), np.float32)
    one_hot[:, :, 0, 5] = 1  # head 0: one patch
    one_hot[:, :, 1, 0] = 1  # head 1: the CLS itself
    out = attention_entropy(PrefixAttention.from_rows(one_hot, grid=(4, 4)))
    assert out["entropy"] == 0.0 and out["entropy_per_head"].tolist() == [0.0, 0.0]
    uniform = np.full((3, 1, 2, t), 1 / t, np.float32)
    out = attention_entropy(PrefixAttention.from_rows(uniform, grid=(4, 4)))
    assert out["entropy"] == pytest.approx(1.0, abs=1e-6) and out["tokens"] == t


def test_entropy_matches_scipy():
    q_pat, q_pre, k_pat, k_pre = _random_qk(seed=4)
    att = prefix_attention(q_pat, q_pre * 3, k_pat, k_pre, 2)
    t = att.rows.shape[-1]
    for token in (0, 1):
        rows = att.rows[:, token].astype(np.float64)
        expected = scipy.stats.entropy(rows, axis=-1) / np.log(t)  # (N, heads), natural log
        out = attention_entropy(att, token)
        np.testing.assert_allclose(out["entropy_per_head"], expected.mean(0), rtol=1e-5)
        np.testing.assert_allclose(out["entropy_per_image"], expected.mean(1), rtol=1e-5)
        assert out["entropy"] == pytest.approx(expected.mean(), rel=1e-5)
        assert 0 < out["entropy"] < 1


# --------------------------------------------------------------------------- outer ring


def _rows_on(region: np.ndarray, n_prefix: int = 1, heads: int = 2, prefix_mass: float = 0.4) -> np.ndarray:
    """Rows (N, P, heads, T) putting ``prefix_mass`` uniformly on the prefix tokens and the rest
    uniformly on ``region`` (N, h, w) bool of each image."""
    n = len(region)
    flat = region.reshape(n, -1).astype(np.float64)
    patch = flat / flat.sum(1, keepdims=True) * (1 - prefix_mass)
    rows = np.concatenate([np.full((n, n_prefix), prefix_mass / n_prefix), patch], axis=1)
    return np.broadcast_to(rows[:, None, None], (n, n_prefix, heads, rows.shape[1])).astype(np.float32)


H, W, N = 6, 7, 10


def test_ring_attention_planted_and_uniform_control():
    ring = border_mask(H, W)
    share = ring.mean()
    planted = PrefixAttention.from_rows(_rows_on(np.broadcast_to(ring, (N, H, W))), grid=(H, W))
    out = ring_attention(planted)
    assert out["fraction"] == pytest.approx(1.0, abs=1e-6)  # prefix mass does not count
    assert out["enrichment"] == pytest.approx(1 / share, rel=1e-5)
    assert out["share"] == pytest.approx(share) and out["border"].shape == (H, W)
    np.testing.assert_allclose(out["fraction_per_head"], 1.0, atol=1e-6)
    # control: uniform over the patches (with varying prefix mass per image) -> enrichment 1
    rows = np.concatenate([_rows_on(np.ones((N // 2, H, W), bool), prefix_mass=0.1),
                           _rows_on(np.ones((N // 2, H, W), bool), prefix_mass=0.9)])
    out = ring_attention(PrefixAttention.from_rows(rows, grid=(H, W)))
    assert out["enrichment"] == pytest.approx(1.0, abs=1e-5) and out["fraction"] == pytest.approx(share, abs=1e-6)
    # attention on the interior only -> 0
    interior = PrefixAttention.from_rows(_rows_on(np.broadcast_to(~ring, (N, H, W))), grid=(H, W))
    assert ring_attention(interior)["fraction"] == pytest.approx(0.0, abs=1e-7)
    # a half-planted set: half the images on the ring, half uniform
    mixed = np.concatenate([_rows_on(np.broadcast_to(ring, (N // 2, H, W))), _rows_on(np.ones((N // 2, H, W), bool))])
    out = ring_attention(PrefixAttention.from_rows(mixed, grid=(H, W)))
    assert out["fraction"] == pytest.approx((1 + share) / 2, abs=1e-6)


# --------------------------------------------------------------------------- high-norm tokens


def _tokens_with_outliers(seed=0, c=16):
    rng = np.random.default_rng(seed)
    tokens = rng.normal(size=(N, H, W, c)).astype(np.float32)
    where = np.zeros((N, H, W), bool)
    for i in range(N):  # two interior outliers per image, at positions that differ by image
        for r, col in ((1 + i % 4, 2 + i % 3), (4, 1 + i % 5)):
            where[i, r, col] = True
    tokens[where] *= 30
    return tokens, where


def test_high_norm_tokens_are_boundarys_outliers():
    tokens, where = _tokens_with_outliers()
    mask, thr = high_norm_tokens(tokens)
    np.testing.assert_array_equal(mask, where)
    ref = boundary_artifacts(np.zeros((N, H, W), np.int64), tokens)
    assert thr == pytest.approx(ref["outlier_threshold"], rel=1e-12)
    np.testing.assert_array_equal(mask.sum(0), ref["outlier_count_map"])
    norms = np.linalg.norm(tokens, axis=-1)
    np.testing.assert_array_equal(high_norm_tokens(norms=norms)[0], mask)
    with pytest.raises(ValueError, match="exactly one"):
        high_norm_tokens()


def test_high_norm_attention_planted_uniform_and_none():
    tokens, where = _tokens_with_outliers()
    share = where.mean()
    planted = PrefixAttention.from_rows(_rows_on(where), grid=(H, W))
    out = high_norm_attention(planted, tokens)
    assert out["count"] == where.sum() and out["share"] == pytest.approx(share)
    assert out["fraction"] == pytest.approx(1.0, abs=1e-6)
    assert out["enrichment"] == pytest.approx(1 / share, rel=1e-5)
    uniform = PrefixAttention.from_rows(_rows_on(np.ones((N, H, W), bool)), grid=(H, W))
    out = high_norm_attention(uniform, tokens)
    assert out["enrichment"] == pytest.approx(1.0, abs=1e-5)
    # attention on the ring, outliers inside: nothing on them
    assert high_norm_attention(PrefixAttention.from_rows(_rows_on(np.broadcast_to(border_mask(H, W), (N, H, W))),
                                                         grid=(H, W)), tokens)["fraction"] == 0.0
    # no high-norm tokens: NaN, stated
    plain = np.random.default_rng(5).normal(size=(N, H, W, 16)).astype(np.float32)
    out = high_norm_attention(uniform, plain, weights=np.ones((2, N)))
    assert out["count"] == 0 and np.isnan(out["fraction"]) and np.isnan(out["enrichment"])
    assert np.isnan(out["replicates"]["enrichment"]).all()
    with pytest.raises(ValueError, match="cover"):
        high_norm_attention(uniform, tokens[:, :5])


# --------------------------------------------------------------------------- replicates


def test_replicates_all_ones_equal_the_value_and_halves_equal_subsets():
    tokens, _ = _tokens_with_outliers(seed=2)
    rng = np.random.default_rng(7)
    rows = rng.dirichlet(np.full(2 + H * W, 0.3), size=(N, 2, HEADS)).astype(np.float32)
    rows /= rows.sum(-1, keepdims=True)
    att = PrefixAttention.from_rows(rows, grid=(H, W))
    w = np.vstack([half_samples(N, 6, seed=0), np.ones(N)])
    for fn, kwargs, keys in ((attention_entropy, {}, ("entropy",)),
                             (ring_attention, {}, ("fraction", "enrichment")),
                             (high_norm_attention, {"tokens": tokens}, ("fraction", "enrichment"))):
        for token in (0, 1):
            out = fn(att, token=token, weights=w, **kwargs)
            for key in keys:
                reps = out["replicates"][key]
                assert reps.shape == (len(w),)
                assert reps[-1] == pytest.approx(out[key], rel=1e-12), (fn.__name__, key)
                assert np.ptp(reps[:-1]) > 0  # halves differ
            if fn is not high_norm_attention:  # (its threshold is the one of all images)
                keep = w[0].astype(bool)
                sub = fn(PrefixAttention.from_rows(rows[keep], grid=(H, W)), token=token)
                for key in keys:
                    assert out["replicates"][key][0] == pytest.approx(sub[key], rel=1e-12)
    ent = attention_entropy(att, weights=w)
    np.testing.assert_allclose(ent["replicates"]["entropy_per_head"][-1], ent["entropy_per_head"], rtol=1e-12)


def test_entropy_of_near_uniform_float32_rows_stays_in_range():
    """Random-init models attend almost uniformly; float32 rows then sum to 1 only within ~1e-6 and
    the normalised entropy must still lie in [0, 1] (a build's stored value)."""
    rng = np.random.default_rng(0)
    logits = 1e-3 * rng.normal(size=(8, 1, 4, 1 + 14 * 14))
    rows = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    rows = (rows * (1 + 3e-6)).astype(np.float32)  # float32 rows a little off 1, as the model gives them
    ent = attention_entropy(PrefixAttention.from_rows(rows, grid=(14, 14)))
    assert 0.999 < ent["entropy"] <= 1.0
    assert (ent["entropy_per_image"] <= 1.0).all()
