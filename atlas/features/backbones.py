"""Backbones: timm models with their weights, facts and provenance.

Three weight sources, named in the config:

* ``pretrained``: timm's own pretrained tag, fetched through the Hugging Face hub cache
  (``HF_HUB_OFFLINE=1`` / ``HF_HOME`` are honoured; nothing is downloaded when offline).
* ``checkpoint``: a local ``.safetensors`` file, or a ``.pth`` read with ``weights_only=True``;
  timm's own checkpoint filter remaps keys and resamples position embeddings.
* ``random``: timm's initialisation under the atlas seed. Pages built from it say
  "random init — architecture baseline" everywhere.

Example
-------
>>> from atlas.config import Backbone
>>> b = Backbone(display_name="tiny", timm_name="vit_small_patch16_224", weights="random",
...              training="random", overrides={"depth": 2, "embed_dim": 64, "num_heads": 2})
>>> loaded = load_backbone(b, (224, 224), seed=0)
>>> loaded.card.depth, loaded.card.patch_size, loaded.card.pos_encoding
(2, 16, 'learned absolute')
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from ..config import Backbone
from ..files import sha256_file
from ..inputs.geometry import ResizePolicy, snap_to_patch_multiple
from ..records import RANDOM_INIT_LABEL, ModelCard

log = logging.getLogger(__name__)


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights cannot be had on this machine (offline, not cached, missing file)."""


class UnknownModelError(ValueError):
    """A timm model name that timm does not know, or one timm cannot build with the given overrides."""


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint that ``torch.load(weights_only=True)`` refuses: it needs arbitrary unpickling.
    Never retried with unsafe loading. (Not a WeightsUnavailableError: the weights are there, and
    the advice on filling the HF cache does not apply.)"""


@functools.lru_cache(maxsize=1)
def _all_timm_names() -> tuple[str, ...]:
    return tuple(sorted(set(timm.list_models()) | set(timm.list_pretrained())))


def closest_model_names(name: str, n: int = 3) -> list[str]:
    """The ``n`` timm names closest to ``name`` (architectures and pretrained tags)."""
    names = _all_timm_names()
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.0)
    return close[:n]


def check_model_name(name: str) -> None:
    """Raise UnknownModelError (one line, with the 3 closest names) if timm does not know ``name``."""
    arch, _, tag = name.partition(".")
    known = timm.is_model(arch) and (not tag or name in set(timm.list_pretrained(arch + "*")))
    if not known:
        hint = ", ".join(closest_model_names(name))
        raise UnknownModelError(f"unknown timm model {name!r}; closest names: {hint}")


def state_dict_hash(model: nn.Module) -> str:
    """Hash of every parameter and buffer (names, shapes, bytes): the identity of random weights."""
    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# ---------------------------------------------------------------- pretrained weights on the hub


def _hub_location(timm_name: str) -> tuple[str | None, list[str]]:
    """(HF hub repo id, candidate file names), or (None, []) when timm names no hub weights."""
    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is None or not cfg.hf_hub_id:
        return None, []
    files = [cfg.hf_hub_filename] if getattr(cfg, "hf_hub_filename", None) else ["model.safetensors", "pytorch_model.bin"]
    return cfg.hf_hub_id, files


def _url_cache_file(timm_name: str) -> Path | None:
    """Where timm/torch.hub keeps weights that timm fetches by URL (e.g. I-JEPA), if named."""
    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is None or cfg.hf_hub_id or not cfg.url:
        return None
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)


def cached_hub_file(timm_name: str) -> Path | None:
    """Path of the pretrained weights of ``timm_name`` in the local cache (HF hub or torch hub), if present."""
    from huggingface_hub import try_to_load_from_cache

    url_file = _url_cache_file(timm_name)
    if url_file is not None:
        return url_file if url_file.is_file() else None
    hub_id, files = _hub_location(timm_name)
    for filename in files:
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def _weights_location(timm_name: str) -> str | None:
    hub_id, _ = _hub_location(timm_name)
    if hub_id:
        return hub_id
    url_file = _url_cache_file(timm_name)
    return str(url_file) if url_file else None


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def missing_weights(backbones: list[Backbone]) -> list[tuple[Backbone, str]]:
    """Backbones whose weights cannot be had now, each with a short reason. Raises
    UnknownModelError first for a name timm does not know (not "missing weights")."""
    for b in backbones:
        check_model_name(b.timm_name)
    missing = []
    reachable: bool | None = None
    for b in backbones:
        if b.weights == "random":
            continue
        if b.weights == "checkpoint":
            if not Path(b.checkpoint).expanduser().is_file():
                missing.append((b, f"checkpoint file not found: {b.checkpoint}"))
            continue
        if _weights_location(b.timm_name) is None:
            missing.append((b, "timm names no downloadable weights for this tag; use weights = \"checkpoint\""))
            continue
        if cached_hub_file(b.timm_name) is not None:
            continue
        if reachable is None:
            reachable = _hub_reachable()
        if not reachable:
            missing.append((b, "not cached and offline"))
    return missing


def weights_unavailable_message(backbones: list[Backbone]) -> str | None:
    """One line naming every backbone whose weights cannot be had now, grouped by reason, with
    what to do; None when all are there. Reads only the local caches (and, unless
    ``HF_HUB_OFFLINE=1``, one connection attempt): no model is built, so the answer is fast."""
    missing = missing_weights(backbones)
    if not missing:
        return None
    by_reason: dict[str, list[str]] = {}
    for b, why in missing:
        by_reason.setdefault(why, []).append(b.slug)
    lines = "; ".join(f"{why}: {', '.join(slugs)}" for why, slugs in by_reason.items())
    return f"weights unavailable for {len(missing)} of {len(backbones)} model(s) — {lines}. {weights_help()}"


def download_weights(backbones: list[Backbone]) -> list[str]:
    """Fill the local caches with the pretrained weights of ``backbones`` (needs internet)."""
    done = []
    for b in backbones:
        if b.weights == "pretrained" and cached_hub_file(b.timm_name) is None:
            timm.create_model(b.timm_name, pretrained=True)
            done.append(b.slug)
    return done


def weights_help() -> str:
    return (
        "Provide weights by (a) filling the Hugging Face cache on a machine with internet: "
        "`python scripts/build_atlas.py --download-only` then copy ~/.cache/huggingface (or $HF_HOME) "
        "and ~/.cache/torch/hub here; or (b) setting weights = \"checkpoint\" and "
        "checkpoint = \"path/to/model.safetensors\" in the config; or (c) building the offline "
        "demo instead: python scripts/build_atlas.py --config configs/demo.toml"
    )


# ---------------------------------------------------------------- model facts


def _pos_encoding(model: nn.Module) -> str:
    has_abs = getattr(model, "pos_embed", None) is not None
    has_rope = getattr(model, "rope", None) is not None
    has_rel = any(getattr(getattr(blk, "attn", None), "relative_position_bias_table", None) is not None
                  for blk in getattr(model, "blocks", [])[:1]) or getattr(model, "rel_pos_bias", None) is not None
    kinds = []
    if has_abs:
        kinds.append("learned absolute")
    if has_rope:
        kinds.append("RoPE")
    if has_rel:
        kinds.append("relative position bias")
    return " + ".join(kinds) or "none"


def _layer_scale(model: nn.Module) -> float | None:
    """Median |gamma| of the blocks' LayerScale (timm ``ls1``/``ls2``, EVA ``gamma_1``/``gamma_2``);
    None without LayerScale. Random-init DINOv2/DINOv3 models start at ~1e-5: their blocks barely
    touch the residual stream, so measures stay flat across depth."""
    gammas = [p.detach().abs().flatten() for name, p in model.named_parameters()
              if name.startswith("blocks.") and name.endswith((".ls1.gamma", ".ls2.gamma", ".gamma_1", ".gamma_2"))]
    if not gammas:
        return None
    return float(torch.cat(gammas).median())


def _patch_size(model: nn.Module) -> int:
    ps = model.patch_embed.patch_size
    ps = ps if isinstance(ps, int) else ps[0]
    return int(ps)


@dataclass
class LoadedBackbone:
    spec: Backbone
    model: nn.Module
    card: ModelCard
    weights_hash: str  # content identity of the weights (cache key part)

    @property
    def grid(self) -> tuple[int, int]:
        h, w = self.card.input_size
        return h // self.card.patch_size, w // self.card.patch_size

    @property
    def policy(self) -> ResizePolicy:
        """How every image is brought to this model's input size (cover-resize, centre-crop)."""
        return ResizePolicy(*self.card.input_size)


@contextlib.contextmanager
def _recording_load_results(results: list):
    """Record what ``load_state_dict`` reports while timm loads weights (it loads non-strictly
    when the classifier is dropped, and then only logs missing keys)."""
    original = nn.Module.load_state_dict

    def load_state_dict(self, state_dict, *args, **kwargs):
        out = original(self, state_dict, *args, **kwargs)
        results.append((self, out))
        return out

    nn.Module.load_state_dict = load_state_dict
    try:
        yield
    finally:
        nn.Module.load_state_dict = original


def _refused(spec: Backbone, exc: Exception) -> str:
    found = re.search(r"Unsupported globals?:?\s*([^\s.][^\n]*?)(?:\.\s|\n|$)", str(exc))
    what = f" ({found.group(1).strip()[:120]})" if found else ""
    return (f"{spec.display_name}: checkpoint {spec.checkpoint} holds pickled Python objects{what} that "
            f"torch.load(weights_only=True) refuses, since unpickling them can run arbitrary code; convert it "
            f"to .safetensors where you trust the file (safetensors.torch.save_file on its state dict), "
            f"or build the atlas in that trusted environment")


def _create(spec: Backbone, input_size: tuple[int, int], pretrained: bool, **extra) -> nn.Module:
    kwargs = dict(spec.overrides)
    kwargs.update(extra)
    loads: list = []
    with _recording_load_results(loads):
        try:
            model = timm.create_model(spec.timm_name, pretrained=pretrained, img_size=input_size, num_classes=0, **kwargs)
        except RuntimeError as exc:
            if "weights_only" in str(exc) or "Weights only load failed" in str(exc):
                raise UnsafeCheckpointError(_refused(spec, exc)) from None
            if "state_dict" not in str(exc) and "size mismatch" not in str(exc):
                raise
            lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
            raise WeightsUnavailableError(f"{spec.display_name}: weights do not fit {spec.timm_name}: {lines[-1][:200]}") from None
    if pretrained:
        # A checkpoint that misses backbone weights would leave them silently random: refuse it.
        missing = [k for m, res in loads if m is model for k in res.missing_keys]
        if not loads or missing:
            what = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "") if missing else "nothing loaded"
            raise WeightsUnavailableError(f"{spec.display_name}: weights do not fit {spec.timm_name}: missing {what}")
    return model


def check_backbone(spec: Backbone) -> nn.Module:
    """The architecture of ``spec`` built on the meta device (no memory, no weights): raises
    UnknownModelError, one line, when timm does not know the name or cannot build it with the
    config's overrides. Cheap: the build checks every model this way before computing any."""
    check_model_name(spec.timm_name)
    try:
        with torch.device("meta"):
            probe = timm.create_model(spec.timm_name, pretrained=False, num_classes=0, **spec.overrides)
        _ = _patch_size(probe), probe.blocks[0].attn.num_heads, probe.embed_dim  # what every analysis reads
    except Exception as exc:  # timm's own checks: wrong keyword, impossible sizes
        text = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
        raise UnknownModelError(f"{spec.display_name}: timm cannot build {spec.timm_name} with overrides "
                                f"{dict(spec.overrides)}: {text}; fix its overrides") from None
    return probe


def load_backbone(spec: Backbone, resolution: tuple[int, int], seed: int = 0) -> LoadedBackbone:
    """Create the model of ``spec`` for inputs of ``resolution`` (snapped to its patch size).

    Raises WeightsUnavailableError / UnsafeCheckpointError / UnknownModelError with one-line messages.
    """
    # Patch size first (cheap meta-device build) so the input can be snapped before loading weights.
    probe = check_backbone(spec)
    patch = _patch_size(probe)
    input_size = snap_to_patch_multiple(tuple(resolution), patch)
    pretrained_input = list(probe.pretrained_cfg.get("input_size", (3, 0, 0))[1:])
    del probe

    if spec.weights == "random":
        torch.manual_seed(seed)
        model = _create(spec, input_size, pretrained=False)
        weights_hash = state_dict_hash(model)
        provenance = RANDOM_INIT_LABEL
    elif spec.weights == "checkpoint":
        path = Path(spec.checkpoint).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"{spec.display_name}: checkpoint file not found: {path}")
        if path.suffix not in (".safetensors", ".pth", ".pt", ".bin"):
            raise WeightsUnavailableError(f"{spec.display_name}: checkpoint must be .safetensors or .pth (got {path.name})")
        weights_hash = sha256_file(path)
        # timm's file loader reads .pth with weights_only=True and applies the model's checkpoint filter.
        model = _create(spec, input_size, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
        provenance = f"checkpoint {path.name} (sha256 {weights_hash[:16]})"
    else:
        cached = cached_hub_file(spec.timm_name)
        hub_id = _weights_location(spec.timm_name)
        if cached is None and not _hub_reachable():
            raise WeightsUnavailableError(f"{spec.display_name}: weights for {spec.timm_name} are not in the HF cache and the hub cannot be reached")
        model = _create(spec, input_size, pretrained=True)
        cached = cached_hub_file(spec.timm_name)
        weights_hash = sha256_file(cached) if cached else state_dict_hash(model)
        revision = cached.parent.name[:12] if cached else "?"
        provenance = f"hf-hub {hub_id} @ {revision} (sha256 {weights_hash[:16]})"

    model.eval().requires_grad_(False)
    card = describe_model(spec, model, input_size, pretrained_input, provenance)
    return LoadedBackbone(spec=spec, model=model, card=card, weights_hash=weights_hash)


def at_resolution(loaded: LoadedBackbone, resolution: tuple[int, int]) -> LoadedBackbone:
    """The same weights for another input size (snapped to the patch size): the loaded model's
    state dict goes through timm's checkpoint path, which resamples the position embeddings as it
    does for pretrained weights. Used for STEGO's 320 px evaluation geometry."""
    from safetensors.torch import save_file

    input_size = snap_to_patch_multiple(tuple(resolution), loaded.card.patch_size)
    with tempfile.TemporaryDirectory(prefix="atlas-weights-") as tmp:
        path = Path(tmp) / "weights.safetensors"
        save_file({k: v.detach().contiguous().clone() for k, v in loaded.model.state_dict().items()}, str(path))
        model = _create(loaded.spec, input_size, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    model.eval().requires_grad_(False)
    card = describe_model(loaded.spec, model, input_size, loaded.card.pretrained_input_size, loaded.card.provenance)
    return LoadedBackbone(spec=loaded.spec, model=model, card=card, weights_hash=loaded.weights_hash)


def describe_model(spec: Backbone, model: nn.Module, input_size, pretrained_input, provenance: str) -> ModelCard:
    cfg = model.pretrained_cfg
    n_prefix = int(getattr(model, "num_prefix_tokens", 1 if getattr(model, "cls_token", None) is not None else 0))
    has_cls = getattr(model, "cls_token", None) is not None
    n_reg = int(getattr(model, "num_reg_tokens", n_prefix - int(has_cls)))
    return ModelCard(
        slug=spec.slug,
        display_name=spec.display_name,
        timm_name=spec.timm_name,
        family=spec.family,
        training=spec.training,
        group=spec.group,
        params=sum(p.numel() for p in model.parameters()),
        patch_size=_patch_size(model),
        embed_dim=int(model.embed_dim),
        depth=len(model.blocks),
        num_heads=int(model.blocks[0].attn.num_heads),
        num_prefix_tokens=n_prefix,
        num_registers=n_reg,
        has_cls=has_cls,
        pos_encoding=_pos_encoding(model),
        layer_scale=_layer_scale(model),
        mean=[float(x) for x in cfg.get("mean", (0.485, 0.456, 0.406))],
        std=[float(x) for x in cfg.get("std", (0.229, 0.224, 0.225))],
        input_size=list(input_size),
        pretrained_input_size=[int(x) for x in pretrained_input],
        weights_source=spec.weights,
        provenance=provenance,
        is_random_init=spec.is_random_init,
    )
