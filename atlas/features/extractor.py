"""Exact extraction of block tokens and attention queries / keys / values.

For every requested block ``b``:

* ``tokens``: the output of ``model.blocks[b]`` (the residual stream, before the final norm);
* ``tokens_normed`` (last block only): the last block's output after the model's final norm
  ``model.norm``, i.e. DINOv2's ``x_norm_patchtokens`` / ``x_norm_clstoken`` and timm's
  ``forward_features``;
* ``queries``, ``keys``, ``values``: exactly the tensors the block's attention multiplies,
  i.e. after q/k normalisation and rotary position embedding where the model has them, with
  heads concatenated to one vector per token.

How: timm's attention modules (ViT, EVA / DINOv3, BEiT) all call
``torch.nn.functional.scaled_dot_product_attention`` when ``fused_attn`` is on. While extracting,
that function is wrapped so the q/k/v it receives are recorded for the block being run. This needs
no copy of any model's attention code, so it follows every timm variant (qk-norm, RoPE, q/v
biases, relative position bias) as it is, and ``tests/test_extract.py`` proves it by recomputing
every block's attention output from the recorded q/k/v (``keep_attention_inputs=True``).

The forward pass stops after the last requested block (``forward_intermediates(stop_early=True)``).

Example
-------
>>> import timm, torch
>>> m = timm.create_model("vit_small_patch16_224", depth=2, embed_dim=64, num_heads=2).eval()
>>> ex = TokenExtractor(m, blocks=[1], representations=["tokens", "keys"])
>>> out = ex(torch.randn(1, 3, 224, 224))
>>> out[(1, "keys")].shape   # (batch, prefix + patches, heads * head_dim)
torch.Size([1, 197, 64])
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import LAST_BLOCK_ONLY, block_representations

_ATTN_ROLES = {"queries": 0, "keys": 1, "values": 2}
_local = threading.local()


def _recording_sdpa(original):
    def sdpa(query, key, value, *args, **kwargs):
        slot = getattr(_local, "slot", None)
        if slot is not None:
            slot["qkv"] = (query, key, value)
            slot["attn_mask"] = kwargs.get("attn_mask", args[0] if args else None)
            slot["scale"] = kwargs.get("scale")
            _local.slot = None  # one attention call per block
        return original(query, key, value, *args, **kwargs)

    return sdpa


@contextlib.contextmanager
def _patched_sdpa():
    original = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = _recording_sdpa(original)
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


def _heads_to_tokens(t: torch.Tensor) -> torch.Tensor:
    # (B, heads, N, head_dim) -> (B, N, heads * head_dim)
    b, h, n, d = t.shape
    return t.transpose(1, 2).reshape(b, n, h * d)


class TokenExtractor:
    """Callable that runs ``model`` on a batch and returns the requested block features.

    Parameters
    ----------
    model : timm ViT-like model with ``blocks`` (each with ``attn``) and ``forward_intermediates``.
    blocks : block indices (0-based).
    representations : subset of tokens / keys / queries / values / tokens_normed (the last one is
        produced only when the model's last block is among ``blocks``).
    keep_attention_inputs : also return the raw recorded q/k/v, attention mask and scale per block
        under ``(block, "attention")`` (used by the consistency tests).

    Returns a dict ``{(block, representation): Tensor (B, N_tokens, C)}`` with prefix tokens first.
    """

    def __init__(self, model: nn.Module, blocks: Iterable[int], representations: Iterable[str],
                 keep_attention_inputs: bool = False):
        self.model = model
        self.blocks = sorted(set(int(b) for b in blocks))
        self.representations = list(representations)
        depth = len(model.blocks)
        if not self.blocks or self.blocks[0] < 0 or self.blocks[-1] >= depth:
            raise ValueError(f"blocks must lie in 0..{depth - 1} (got {self.blocks})")
        unknown = set(self.representations) - {"tokens", *_ATTN_ROLES, *LAST_BLOCK_ONLY}
        if unknown:
            raise ValueError(f"unknown representation {sorted(unknown)[0]!r}; use tokens, keys, queries, values "
                             "or tokens_normed")
        self.pairs = block_representations(self.blocks, self.representations, depth)
        self.keep_attention_inputs = keep_attention_inputs
        self._needs_attn = keep_attention_inputs or any(r in _ATTN_ROLES for r in self.representations)

    def __call__(self, x: torch.Tensor) -> dict:
        out: dict = {}
        handles = []

        for b in self.blocks:
            blk = self.model.blocks[b]
            if "tokens" in self.representations:
                handles.append(blk.register_forward_hook(self._store_tokens(out, b)))
            if (b, "tokens_normed") in self.pairs:
                handles.append(blk.register_forward_hook(self._store_normed(out, b)))
            if self._needs_attn:
                attn = blk.attn
                if not hasattr(attn, "fused_attn"):
                    raise TypeError(f"{type(attn).__name__} has no fused attention path; q/k/v extraction is not supported")
                attn.fused_attn = True  # route through scaled_dot_product_attention so it can be recorded
                handles.append(attn.register_forward_pre_hook(self._open_slot(out, b)))
                handles.append(attn.register_forward_hook(self._close_slot(out, b)))
        try:
            with torch.inference_mode(), (_patched_sdpa() if self._needs_attn else contextlib.nullcontext()):
                last = self.blocks[-1]
                self.model.forward_intermediates(x, indices=[last], stop_early=True, intermediates_only=True)
        finally:
            for h in handles:
                h.remove()
            _local.slot = None
        missing = [pair for pair in self.pairs if pair not in out]
        if missing:
            raise RuntimeError(f"extraction produced nothing for {missing[0]}; unsupported attention module")
        return out

    @staticmethod
    def _store_tokens(out, b):
        def hook(_module, _inputs, output):
            out[(b, "tokens")] = output

        return hook

    def _store_normed(self, out, b):
        def hook(_module, _inputs, output):
            out[(b, "tokens_normed")] = self.model.norm(output)

        return hook

    def _open_slot(self, out, b):
        def hook(_module, _inputs):
            _local.slot = {}
            out[(b, "_slot")] = _local.slot

        return hook

    def _close_slot(self, out, b):
        def hook(_module, _inputs, output):
            slot = out.pop((b, "_slot"))
            _local.slot = None
            if "qkv" not in slot:
                raise RuntimeError(f"block {b}: attention did not call scaled_dot_product_attention")
            q, k, v = slot["qkv"]
            for rep, idx in _ATTN_ROLES.items():
                if rep in self.representations:
                    out[(b, rep)] = _heads_to_tokens((q, k, v)[idx])
            if self.keep_attention_inputs:
                out[(b, "attention")] = {"q": q, "k": k, "v": v, "attn_mask": slot["attn_mask"],
                                         "scale": slot["scale"], "output": output}

        return hook
