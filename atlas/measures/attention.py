"""Attention maps of the prefix tokens (CLS, registers) and the numbers read from them.

The DINO figure -- the CLS token's self-attention over the patches, per head -- and, since
"Vision Transformers Need Registers", the same for every register, computed from the queries and
keys the atlas already extracts (:class:`atlas.features.extractor.TokenExtractor`: exactly the q / k
the block's attention multiplies, after q/k-norm and RoPE where the model has them, heads
concatenated, prefix tokens first). There is no second code path through the model: the only
model-specific term that is not inside q / k is an additive bias such as BEiT's relative position
bias, which :func:`attention_bias` reads from the block.

**Attention row.** For image ``i``, prefix token ``p`` and head ``h`` with ``d = C / heads``::

    A[i, p, h, t] = softmax_t( (q[i, p, h] * scale) . k[i, t, h] + bias[h, p, t] ),  t = 0 .. T-1

over ALL ``T = P + h * w`` tokens in the model's order: the ``P`` prefix tokens first (timm:
CLS, then the registers), then the patches row-major. ``scale`` defaults to ``d ** -0.5``: timm's
attention modules call ``scaled_dot_product_attention`` without a scale, whose default that is
(and their non-fused path multiplies by ``attn.scale = head_dim ** -0.5``).

**Normalisation** (:data:`NORMALISATION`): every row sums to 1 over all tokens, prefix included;
a patch map ``maps[i, p, h]`` (the attention mass each patch receives) therefore sums to
``1 - prefix_mass[i, p, h]``, the mass the row puts on prefix tokens (itself included). Maps are
not renormalised; the ring and high-norm measures renormalise over the patches where they say so.

**No prefix tokens** (I-JEPA-style models, ``num_prefix_tokens = 0``): there is no row to show.
:func:`prefix_attention` and :class:`PrefixAttention` raise :class:`NoPrefixTokens` (a
``ValueError``); callers catch it and state that the model has no CLS / register token.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> q_pre, k_pre = rng.normal(size=(2, 3, 1, 8)).astype(np.float32)   # (N, P, C): one CLS
>>> k_pat = rng.normal(size=(3, 4, 4, 8)).astype(np.float32)         # (N, h, w, C)
>>> att = prefix_attention(None, q_pre, k_pat, k_pre, num_heads=2)
>>> att.maps.shape, att.prefix.shape                                  # (N, P, heads, h, w), (N, P, heads, P)
((3, 1, 2, 4, 4), (3, 1, 2, 1))
>>> bool(np.allclose(att.maps.sum(axis=(-2, -1)) + att.prefix_mass, 1.0))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .boundary import border_mask, boundary_artifacts
from .tensors import as_tensor, resolve_device, to_numpy

__all__ = [
    "NORMALISATION",
    "NoPrefixTokens",
    "PrefixAttention",
    "attention_bias",
    "attention_entropy",
    "high_norm_attention",
    "high_norm_tokens",
    "prefix_attention",
    "prefix_token_names",
    "ring_attention",
]

NORMALISATION = (
    "Each attention row is a softmax over all tokens (prefix tokens, then the patches in row-major "
    "order) and sums to 1; a patch map is the row's mass on each patch and sums to 1 minus the mass "
    "the row puts on the prefix tokens (itself included). Maps are not renormalised."
)

_ROW_SUM_TOL = 1e-3  # rows handed to PrefixAttention must sum to 1 within this (float16 inputs included)


class NoPrefixTokens(ValueError):
    """The model has no prefix token (CLS or register), so there is no prefix attention row."""


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class PrefixAttention:
    """Attention rows of every prefix token, split into patch maps and prefix-to-prefix mass.

    Attributes
    ----------
    maps : float32 (N, P, heads, h, w)
        ``maps[i, p, hd, r, c]``: attention of prefix token ``p`` (head ``hd``) on patch ``(r, c)``.
    prefix : float32 (N, P, heads, P)
        ``prefix[i, p, hd, t]``: attention of prefix token ``p`` on prefix token ``t``.
    scale : float or None
        The logit scale used (None for rows built by hand).
    names : tuple of str, optional
        Names of the prefix tokens (e.g. ``("cls", "reg0", ...)``, :func:`prefix_token_names`).
    normalisation : str
        :data:`NORMALISATION`.

    Rows must be non-negative and sum to 1 over all tokens (within 1e-3); P must be >= 1
    (:class:`NoPrefixTokens` otherwise).

    >>> rows = np.full((1, 1, 2, 5), 0.25, np.float32); rows[..., 0] = 0   # 1 + 2 x 2 tokens, none on the CLS
    >>> att = PrefixAttention.from_rows(rows, grid=(2, 2))
    >>> att.maps[0, 0, 0].tolist(), att.prefix_mass.tolist()
    ([[0.25, 0.25], [0.25, 0.25]], [[[0.0, 0.0]]])
    """

    maps: np.ndarray
    prefix: np.ndarray
    scale: float | None = None
    names: tuple[str, ...] | None = None
    normalisation: str = field(default=NORMALISATION)

    def __post_init__(self):
        maps = np.asarray(self.maps, dtype=np.float32)
        prefix = np.asarray(self.prefix, dtype=np.float32)
        if maps.ndim != 5:
            raise ValueError(f"maps must have shape (N, P, heads, h, w); got {maps.shape}")
        n, p, heads, h, w = maps.shape
        if p == 0:
            raise NoPrefixTokens("no prefix tokens (CLS or registers): this model has no prefix attention row")
        if min(n, heads, h, w) < 1:
            raise ValueError(f"maps needs at least one image, head and patch; got {maps.shape}")
        if prefix.shape != (n, p, heads, p):
            raise ValueError(f"prefix must have shape (N, P, heads, P) = {(n, p, heads, p)}; got {prefix.shape}")
        if not (np.isfinite(maps).all() and np.isfinite(prefix).all()):
            raise ValueError("attention contains NaN or inf")
        if maps.min() < 0 or prefix.min() < 0:
            raise ValueError("attention must be non-negative")
        sums = maps.sum(axis=(-2, -1), dtype=np.float64) + prefix.sum(axis=-1, dtype=np.float64)
        worst = float(np.abs(sums - 1.0).max())
        if worst > _ROW_SUM_TOL:
            raise ValueError(f"attention rows must sum to 1 over all tokens (prefix included); off by {worst:.3g}")
        if self.names is not None and len(self.names) != p:
            raise ValueError(f"names must name the {p} prefix tokens; got {len(self.names)}")
        object.__setattr__(self, "maps", maps)
        object.__setattr__(self, "prefix", prefix)
        if self.names is not None:
            object.__setattr__(self, "names", tuple(self.names))

    @classmethod
    def from_rows(cls, rows: Any, grid: tuple[int, int], **kwargs) -> PrefixAttention:
        """From full rows (N, P, heads, T), ``T = P + h * w`` with the P prefix columns first."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 4:
            raise ValueError(f"rows must have shape (N, P, heads, T); got {rows.shape}")
        n, p, heads, t = rows.shape
        h, w = (int(g) for g in grid)
        if t != p + h * w:
            raise ValueError(f"rows have T = {t} tokens; P + h * w = {p} + {h} * {w} = {p + h * w}")
        return cls(maps=rows[..., p:].reshape(n, p, heads, h, w), prefix=rows[..., :p], **kwargs)

    @property
    def num_prefix_tokens(self) -> int:
        return self.maps.shape[1]

    @property
    def num_heads(self) -> int:
        return self.maps.shape[2]

    @property
    def grid(self) -> tuple[int, int]:
        return self.maps.shape[3], self.maps.shape[4]

    @property
    def rows(self) -> np.ndarray:
        """Full rows (N, P, heads, T) in the model's token order (prefix first)."""
        n, p, heads, h, w = self.maps.shape
        return np.concatenate([self.prefix, self.maps.reshape(n, p, heads, h * w)], axis=-1)

    @property
    def prefix_mass(self) -> np.ndarray:
        """(N, P, heads) float64: mass of each row on the prefix tokens (= 1 - its map's sum)."""
        return self.prefix.sum(axis=-1, dtype=np.float64)

    @property
    def head_mean(self) -> np.ndarray:
        """(N, P, h, w): the maps averaged over heads (the DINO figure's mean map)."""
        return self.maps.mean(axis=2)


# --------------------------------------------------------------------------- from a model


def prefix_token_names(model: torch.nn.Module) -> tuple[str, ...]:
    """Names of a timm model's prefix tokens in its token order: ``"cls"`` then ``"reg0"``, ...

    >>> import timm
    >>> m = timm.create_model("vit_small_patch14_reg4_dinov2", depth=1, embed_dim=64, num_heads=2)
    >>> prefix_token_names(m)
    ('cls', 'reg0', 'reg1', 'reg2', 'reg3')
    """
    n_prefix = int(getattr(model, "num_prefix_tokens", 0))
    has_cls = getattr(model, "cls_token", None) is not None
    n_reg = n_prefix - int(has_cls)
    names = (("cls",) if has_cls else ()) + tuple(f"reg{i}" for i in range(n_reg))
    return names


def attention_bias(model: torch.nn.Module, block: int) -> torch.Tensor | None:
    """The additive term block ``block``'s attention puts on its logits beyond ``q . k * scale``.

    * timm BEiT (``timm.models.beit.Attention``): the block's relative position bias plus the
      model's shared one where it has it, as a float32 ``(heads, T, T)`` tensor (T = 1 + h * w).
      In the CLS row it is one learned value for CLS -> CLS and one for CLS -> every patch (per
      head): it moves mass between the CLS and the patches, not between patches;
    * timm ViT (``timm.layers.Attention``), ``AttentionRope`` and EVA / DINOv3
      (``EvaAttention``): None -- their RoPE is already inside the recorded q / k and the atlas
      passes no attention mask;
    * any other attention module: ``TypeError`` (the atlas cannot tell what it adds).

    >>> import timm
    >>> m = timm.create_model("beitv2_base_patch16_224", depth=1, embed_dim=64, num_heads=2)
    >>> attention_bias(m, 0).shape
    torch.Size([2, 197, 197])
    >>> attention_bias(timm.create_model("vit_small_patch16_224", depth=1, embed_dim=64, num_heads=2), 0) is None
    True
    """
    from timm.layers import Attention, AttentionRope
    from timm.models.beit import Attention as BeitAttention
    from timm.models.eva import EvaAttention

    blocks = model.blocks
    if not -len(blocks) <= block < len(blocks):
        raise ValueError(f"block must lie in 0..{len(blocks) - 1}; got {block}")
    attn = blocks[block].attn
    if isinstance(attn, BeitAttention):
        bias = None
        with torch.no_grad():
            if attn.relative_position_bias_table is not None:
                bias = attn._get_rel_pos_bias()[0]  # (1, heads, T, T) -> (heads, T, T)
            shared = getattr(model, "rel_pos_bias", None)
            if shared is not None:
                bias = shared() if bias is None else bias + shared()
        return None if bias is None else bias.detach().float()
    if isinstance(attn, (Attention, AttentionRope, EvaAttention)):
        return None
    raise TypeError(f"{type(attn).__name__}: unknown attention module; cannot tell which bias it adds "
                    "(pass bias= to prefix_attention explicitly)")


# --------------------------------------------------------------------------- computation


def _as_tokens(x: Any, name: str, ndim: int) -> Any:
    arr = x if torch.is_tensor(x) else np.asarray(x)
    if arr.ndim != ndim:
        shape = "(N, h, w, C)" if ndim == 4 else "(N, P, C)"
        raise ValueError(f"{name} must have shape {shape}; got {tuple(arr.shape)}")
    return arr


def prefix_attention(
    q_patches: Any,
    q_prefix: Any,
    k_patches: Any,
    k_prefix: Any,
    num_heads: int,
    scale: float | None = None,
    bias: Any = None,
    *,
    names: Sequence[str] | None = None,
    device: Any = None,
    batch_size: int = 64,
) -> PrefixAttention:
    """Attention rows of every prefix token over all tokens, from extracted queries and keys.

    Parameters
    ----------
    q_patches : float array (N, h, w, C) or None
        Patch queries (as :func:`atlas.features.extract.load_block` returns them). Prefix rows
        need no patch query: only its shape is checked; None is accepted.
    q_prefix : float array (N, P, C)
        Prefix-token queries (CLS, then registers), heads concatenated.
    k_patches, k_prefix : float arrays (N, h, w, C), (N, P, C)
        The keys of the same block.
    num_heads : int
        Heads of the block's attention (``C`` must be a multiple; ``head_dim = C / num_heads``).
    scale : float, optional
        Logit scale; default ``head_dim ** -0.5`` (timm's default, see the module docstring).
    bias : array or tensor, optional
        Additive logit bias broadcastable to ``(heads, T, T)`` (also ``(1 or N, heads, T, T)``;
        ``T = P + h * w``), e.g. :func:`attention_bias`; a boolean mask keeps True entries (as
        ``scaled_dot_product_attention`` does).
    names : prefix-token names, optional (:func:`prefix_token_names`).
    device : torch device or str, optional
        Where the softmax runs (None: where ``k_patches`` is; numpy: the CPU). Float32 throughout.
    batch_size : int
        Images per step (bounds the memory of the logits).

    Returns
    -------
    PrefixAttention
        ``maps`` (N, P, heads, h, w), ``prefix`` (N, P, heads, P), as numpy float32.

    Raises
    ------
    NoPrefixTokens
        When ``P = 0`` (no CLS and no register token).
    """
    k_pat = _as_tokens(k_patches, "k_patches", 4)
    q_pre = _as_tokens(q_prefix, "q_prefix", 3)
    k_pre = _as_tokens(k_prefix, "k_prefix", 3)
    n, h, w, c = (int(s) for s in k_pat.shape)
    if q_patches is not None and tuple(_as_tokens(q_patches, "q_patches", 4).shape) != (n, h, w, c):
        raise ValueError(f"q_patches {tuple(q_patches.shape)} and k_patches {(n, h, w, c)} must have the same shape")
    if tuple(q_pre.shape) != tuple(k_pre.shape) or q_pre.shape[0] != n or q_pre.shape[2] != c:
        raise ValueError(f"q_prefix {tuple(q_pre.shape)} and k_prefix {tuple(k_pre.shape)} must both be "
                         f"(N, P, C) = ({n}, P, {c})")
    p = int(q_pre.shape[1])
    if p == 0:
        raise NoPrefixTokens("no prefix tokens (CLS or registers): this model has no prefix attention row")
    if min(n, h, w) < 1:
        raise ValueError(f"need at least one image and one patch; got k_patches {(n, h, w, c)}")
    if num_heads < 1 or c % num_heads:
        raise ValueError(f"C = {c} is not a multiple of num_heads = {num_heads}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    d = c // num_heads
    scale = float(d ** -0.5 if scale is None else scale)
    t = p + h * w
    dev = resolve_device(device, k_patches)

    bias_rows = None
    if bias is not None:
        b = as_tensor(bias, dev)
        if b.ndim < 2 or b.ndim > 4 or tuple(b.shape[-2:]) != (t, t):
            raise ValueError(f"bias must end in (T, T) = ({t}, {t}) with at most 4 dims; got {tuple(b.shape)}")
        if b.ndim == 4 and b.shape[0] not in (1, n):
            raise ValueError(f"a 4-d bias must be (1 or N, heads, T, T); got {tuple(b.shape)}")
        if b.ndim >= 3 and b.shape[-3] not in (1, num_heads):
            raise ValueError(f"bias has {b.shape[-3]} heads; the attention has {num_heads}")
        b = b[..., :p, :]
        if b.dtype == torch.bool:
            b = torch.zeros(b.shape, device=dev).masked_fill(~b, float("-inf"))
        b = b.float()
        bias_rows = b.reshape((1,) * (4 - b.ndim) + tuple(b.shape))  # (1 or N, 1 or heads, P, T)

    maps = np.empty((n, p, num_heads, h, w), dtype=np.float32)
    prefix = np.empty((n, p, num_heads, p), dtype=np.float32)
    with torch.no_grad():
        for s in range(0, n, batch_size):
            e = min(n, s + batch_size)
            m = e - s
            q = as_tensor(q_pre[s:e], dev, torch.float32)
            k = torch.cat([as_tensor(k_pre[s:e], dev, torch.float32),
                           as_tensor(k_pat[s:e], dev, torch.float32).reshape(m, h * w, c)], dim=1)
            if not (bool(torch.isfinite(q).all()) and bool(torch.isfinite(k).all())):
                raise ValueError("queries or keys contain NaN or inf")
            q = q.reshape(m, p, num_heads, d).transpose(1, 2)  # (m, heads, P, d)
            k = k.reshape(m, t, num_heads, d).transpose(1, 2)  # (m, heads, T, d)
            logits = (q * scale) @ k.transpose(-2, -1)  # (m, heads, P, T): timm's order of operations
            if bias_rows is not None:
                logits = logits + (bias_rows[s:e] if bias_rows.shape[0] == n and n > 1 else bias_rows)
            probs = to_numpy(logits.softmax(dim=-1).transpose(1, 2))  # (m, P, heads, T)
            prefix[s:e] = probs[..., :p]
            maps[s:e] = probs[..., p:].reshape(m, p, num_heads, h, w)
    return PrefixAttention(maps=maps, prefix=prefix, scale=scale, names=None if names is None else tuple(names))


# --------------------------------------------------------------------------- measures


def _as_weights(weights: Any, n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != n:
        raise ValueError(f"weights must have shape (B, N) with N = {n} images; got {w.shape}")
    if not np.isfinite(w).all() or w.min() < 0:
        raise ValueError("weights must be finite and non-negative")
    return w


def _token(attn: PrefixAttention, token: int) -> int:
    if not isinstance(attn, PrefixAttention):
        raise TypeError(f"attn must be a PrefixAttention (prefix_attention's result); got {type(attn).__name__}")
    p = attn.num_prefix_tokens
    if not 0 <= int(token) < p:
        raise ValueError(f"token must be a prefix-token index in 0..{p - 1}; got {token}")
    return int(token)


def _weighted_mean(values: np.ndarray, valid: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_i w_i v_i values_i / sum_i w_i v_i`` per replicate (NaN where no valid image is kept);
    ``values`` (N, ...) -> (B, ...)."""
    w = weights * valid[None, :]
    num = w @ np.where(valid.reshape(-1, *[1] * (values.ndim - 1)), values, 0.0).reshape(len(values), -1)
    den = w.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out.reshape(len(weights), *values.shape[1:])


def attention_entropy(attn: PrefixAttention, token: int = 0, *, weights: np.ndarray | None = None) -> dict[str, Any]:
    """Normalised entropy of a prefix token's attention row, per head: how focused it is.

    Parameters
    ----------
    attn : PrefixAttention
    token : int, default 0
        Prefix-token index; 0 is the CLS token in timm models that have one (CLS comes first).
    weights : float array (B, N), optional
        Image weights of resampling replicates (:func:`atlas.measures.uncertainty.half_samples`):
        adds ``replicates = {"entropy": (B,), "entropy_per_head": (B, heads)}``; all-ones weights
        give the point estimate.

    Returns
    -------
    dict
        ``entropy`` (float: mean over heads), ``entropy_per_head`` (heads,), ``entropy_per_image``
        (N,: head mean) and ``tokens`` (T).

    Notes
    -----
    ``H[i, h] = -sum_t A[i, h, t] ln A[i, h, t] / ln T`` over all ``T`` tokens (prefix included,
    ``0 ln 0 = 0``): 0 = all attention on one token, 1 = uniform over all tokens.
    ``entropy_per_head[h] = mean_i H[i, h]``; ``entropy = mean_h entropy_per_head[h]``.

    >>> att = PrefixAttention.from_rows(np.eye(5, dtype=np.float32)[None, None, [0, 2]], grid=(2, 2))
    >>> attention_entropy(att)["entropy"]
    0.0
    """
    token = _token(attn, token)
    rows = attn.rows[:, token].astype(np.float64)  # (N, heads, T)
    rows /= rows.sum(axis=-1, keepdims=True)  # float32 rows sum to 1 only within ~1e-6
    t = rows.shape[-1]
    logp = np.log(rows, out=np.zeros_like(rows), where=rows > 0)
    # in [0, 1] up to float64 rounding (near-uniform rows land a few ulp above 1)
    ent = np.clip(-(rows * logp).sum(axis=-1) / np.log(t), 0.0, 1.0)  # (N, heads)
    per_head = ent.mean(axis=0)
    out: dict[str, Any] = {
        "entropy": float(per_head.mean()),
        "entropy_per_head": per_head,
        "entropy_per_image": ent.mean(axis=1),
        "tokens": t,
    }
    if weights is not None:
        w = _as_weights(weights, len(ent))
        rep = _weighted_mean(ent, np.ones(len(ent), dtype=bool), w)  # (B, heads)
        out["replicates"] = {"entropy": rep.mean(axis=1), "entropy_per_head": rep}
    return out


def _set_attention(attn: PrefixAttention, token: int, region: np.ndarray, weights: Any) -> dict[str, Any]:
    """Fraction of a prefix token's patch attention (renormalised per image over the patches) on
    ``region`` (N, h, w) bool, and its enrichment over the region's share of patches."""
    maps = attn.maps[:, token].astype(np.float64)  # (N, heads, h, w)
    n, heads = maps.shape[:2]
    flat = maps.reshape(n, heads, -1)
    reg = region.reshape(n, 1, -1)
    share_i = region.reshape(n, -1).mean(axis=1)  # (N,)

    mean_map = flat.mean(axis=1)  # head mean first, then renormalise over patches
    mass = mean_map.sum(axis=1)
    valid = mass > 0  # an image whose row puts no float mass on any patch has no patch distribution
    frac_i = np.where(valid, (mean_map * reg[:, 0]).sum(axis=1) / np.where(valid, mass, 1.0), np.nan)
    mass_h = flat.sum(axis=2)  # (N, heads)
    frac_ih = np.where(mass_h > 0, (flat * reg).sum(axis=2) / np.where(mass_h > 0, mass_h, 1.0), np.nan)

    def ratio(values, ok):
        return float(values[ok].mean()) if ok.any() else float("nan")

    fraction = ratio(frac_i, valid)
    share = ratio(share_i, valid)
    enrichment = fraction / share if share > 0 else float("nan")
    if not share > 0:
        fraction = float("nan")
    per_head = np.array([ratio(frac_ih[:, j], mass_h[:, j] > 0) for j in range(heads)])
    if not share > 0:
        per_head[:] = np.nan
    out: dict[str, Any] = {
        "fraction": fraction,
        "enrichment": enrichment,
        "share": share,
        "fraction_per_head": per_head,
        "fraction_per_image": frac_i,
        "images_used": int(valid.sum()),
    }
    if weights is not None:
        w = _as_weights(weights, n)
        f_b = _weighted_mean(frac_i, valid, w)
        s_b = _weighted_mean(share_i, valid, w)
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = s_b > 0
            out["replicates"] = {"fraction": np.where(ok, f_b, np.nan),
                                 "enrichment": np.where(ok, f_b / np.where(ok, s_b, 1.0), np.nan)}
    return out


def ring_attention(attn: PrefixAttention, token: int = 0, ring: int = 1, *,
                   weights: np.ndarray | None = None) -> dict[str, Any]:
    """How much of a prefix token's patch attention falls on the outer ring of the patch grid.

    Parameters
    ----------
    attn : PrefixAttention
    token : int, default 0
        Prefix-token index (0: CLS where the model has one).
    ring : int, default 1
        Ring width in patches (:func:`atlas.measures.boundary.border_mask`).
    weights : float array (B, N), optional
        Replicate image weights: adds ``replicates = {"fraction": (B,), "enrichment": (B,)}``.

    Returns
    -------
    dict
        ``fraction``, ``enrichment``, ``share`` (the ring's share of patches), ``fraction_per_head``
        (heads,), ``fraction_per_image`` (N,), ``images_used``, ``border`` (h, w) bool.

    Notes
    -----
    Per image the head-mean map is renormalised over the patches, ``a_i = m_i / sum_p m_i(p)``
    (the prefix mass does not count); ``fraction = mean_i sum_{p in ring} a_i(p)``;
    ``enrichment = fraction / share`` with ``share = |ring| / (h * w)``: 1 = no preference (uniform
    attention over the patches gives exactly 1), above 1 = the ring draws attention.
    ``fraction_per_head`` renormalises each head's map instead of the mean map. Images whose row
    puts no (float) mass on any patch are left out (``images_used``).

    >>> rows = np.zeros((1, 1, 1, 1 + 16), np.float32); rows[..., 1:] = 1 / 16   # uniform over 4 x 4 patches
    >>> out = ring_attention(PrefixAttention.from_rows(rows, grid=(4, 4)))
    >>> round(out["fraction"], 6), out["share"], round(out["enrichment"], 6)
    (0.75, 0.75, 1.0)
    """
    token = _token(attn, token)
    h, w = attn.grid
    border = border_mask(h, w, ring)
    out = _set_attention(attn, token, np.broadcast_to(border, (attn.maps.shape[0], h, w)), weights)
    out["border"] = border
    return out


def high_norm_tokens(tokens: Any = None, *, norms: Any = None, outlier_z: float = 5.0,
                     device: Any = None) -> tuple[np.ndarray, float]:
    """High-norm patch tokens exactly as :func:`atlas.measures.boundary.boundary_artifacts` flags them.

    Norms are the L2 norms of the raw patch tokens (float32, as boundary computes them); the
    threshold is boundary's: ``median + outlier_z * 1.4826 * MAD`` over all patch tokens of all
    images (the standard deviation when MAD = 0), taken from :func:`boundary_artifacts` itself.
    Pass ``tokens`` (N, h, w, C) or their ``norms`` (N, h, w).

    Returns the (N, h, w) bool mask ``norms > threshold`` and the threshold.

    >>> x = np.random.default_rng(0).normal(size=(4, 5, 5, 8)).astype(np.float32)
    >>> x[0, 2, 3] *= 30
    >>> mask, thr = high_norm_tokens(x)
    >>> np.argwhere(mask).tolist()
    [[0, 2, 3]]
    """
    if (tokens is None) == (norms is None):
        raise ValueError("pass exactly one of tokens (N, h, w, C) and norms (N, h, w)")
    if tokens is not None:
        t = tokens if torch.is_tensor(tokens) else np.asarray(tokens)
        if t.ndim != 4:
            raise ValueError(f"tokens must have shape (N, h, w, C); got {tuple(t.shape)}")
        x = as_tensor(t, device, torch.float32)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("tokens contain NaN or inf")
        nrm = torch.linalg.vector_norm(x, dim=-1)  # float32, as boundary_artifacts computes them
    else:
        nrm = as_tensor(norms, device, torch.float32)
        if nrm.ndim != 3:
            raise ValueError(f"norms must have shape (N, h, w); got {tuple(nrm.shape)}")
        if not bool(torch.isfinite(nrm).all()) or bool((nrm < 0).any()):
            raise ValueError("norms must be finite and non-negative")
    nrm32 = to_numpy(nrm)
    n, h, w = nrm32.shape
    # boundary's own threshold: the norm of a one-channel token is its absolute value, so handing it
    # the norms as (N, h, w, 1) features reproduces its norms (and so its threshold) exactly
    thr = float(boundary_artifacts(np.zeros((n, h, w), dtype=np.int64), nrm32[..., None],
                                   outlier_z=outlier_z)["outlier_threshold"])
    return nrm32.astype(np.float64) > thr, thr


def high_norm_attention(attn: PrefixAttention, tokens: Any = None, *, norms: Any = None, token: int = 0,
                        outlier_z: float = 5.0, weights: np.ndarray | None = None,
                        device: Any = None) -> dict[str, Any]:
    """How much of a prefix token's patch attention falls on high-norm ("artifact") patch tokens.

    Parameters
    ----------
    attn : PrefixAttention
    tokens : float array (N, h, w, C), optional
        The block's raw patch tokens (representation ``tokens`` of the same block and images);
        or ``norms`` (N, h, w) of them.
    token : int, default 0
        Prefix-token index (0: CLS where the model has one).
    outlier_z : float, default 5.0
        Robust z above which a token is high-norm (:func:`high_norm_tokens`, boundary's rule).
    weights : float array (B, N), optional
        Replicate image weights: adds ``replicates = {"fraction": (B,), "enrichment": (B,)}``; the
        high-norm threshold stays the one of all images (as in boundary).

    Returns
    -------
    dict
        ``fraction``, ``enrichment``, ``share`` (share of patch tokens that are high-norm),
        ``count`` (high-norm tokens), ``threshold``, ``fraction_per_head`` (heads,),
        ``fraction_per_image`` (N,), ``images_used``, ``high_norm`` (N, h, w) bool.

    Notes
    -----
    As :func:`ring_attention` with the image's own high-norm set ``S_i`` for the ring:
    ``fraction = mean_i sum_{p in S_i} a_i(p)``, ``share = mean_i |S_i| / (h * w)``,
    ``enrichment = fraction / share``. With no high-norm token in any image, ``fraction``,
    ``enrichment`` and ``fraction_per_head`` are NaN (there is nothing to attend to); so are
    replicates whose kept images have none.

    >>> rows = np.zeros((1, 1, 1, 1 + 16), np.float32); rows[..., 1:] = 1 / 16   # uniform over 4 x 4 patches
    >>> norms = np.random.default_rng(0).uniform(1, 2, size=(1, 4, 4)); norms[0, 1, 2] = 100.0
    >>> out = high_norm_attention(PrefixAttention.from_rows(rows, grid=(4, 4)), norms=norms)
    >>> out["count"], round(out["enrichment"], 6)
    (1, 1.0)
    """
    token = _token(attn, token)
    mask, thr = high_norm_tokens(tokens, norms=norms, outlier_z=outlier_z, device=device)
    if mask.shape != attn.maps.shape[:1] + attn.maps.shape[3:]:
        raise ValueError(f"tokens / norms cover {mask.shape} (N, h, w); the attention maps "
                         f"{attn.maps.shape[:1] + attn.maps.shape[3:]}")
    out = _set_attention(attn, token, mask, weights)
    out.update(count=int(mask.sum()), threshold=thr, high_norm=mask)
    return out
