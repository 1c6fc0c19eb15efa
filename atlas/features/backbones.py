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
import pickle
import re
import struct
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ..config import Backbone, ConfigError, FeaturesSection, block_representations, resolve_layers
from ..files import sha256_file
from ..formatting import byte_size
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


def random_weights_identity(spec: Backbone, seed: int) -> str:
    """The identity of a random-init model's weights: its recipe. ``torch.manual_seed(seed)`` then
    timm's initialisation give the same weights for the same model name, overrides, seed and
    torch and timm versions (tested), so a rebuild knows them without creating the model.

    >>> a = Backbone(display_name="a", timm_name="vit_small_patch16_224", weights="random", training="random")
    >>> random_weights_identity(a, 0) == random_weights_identity(a, 0) != random_weights_identity(a, 1)
    True
    """
    recipe = {"timm_name": spec.timm_name, "overrides": spec.overrides, "seed": int(seed),
              "torch": torch.__version__, "timm": timm.__version__}
    return "random:" + hashlib.sha256(repr(sorted(recipe.items())).encode()).hexdigest()


def weights_identity(spec: Backbone, seed: int = 0) -> str | None:
    """The ``weights_hash`` :func:`load_backbone` will record for ``spec``, found without creating
    the model (a rebuild with nothing changed then loads none): the recipe of random weights, the
    SHA-256 of a checkpoint file or of the cached hub file. None when only a load can tell (hub
    weights not in the cache, a missing checkpoint: the load reports those)."""
    if spec.weights == "random":
        return random_weights_identity(spec, seed)
    if spec.weights == "checkpoint":
        path = Path(spec.checkpoint).expanduser()
        return sha256_file(path) if path.is_file() else None
    cached = cached_hub_file(spec.timm_name)
    return sha256_file(cached) if cached else None


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


def patch_size(model: nn.Module) -> int:
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


_RESAMPLED = re.compile(r"Resized position embedding: [(\[](\d+), (\d+)[)\]] to")


@contextlib.contextmanager
def _recording_resamples(grids: list):
    """Record the grid timm resamples learned position embeddings from while it loads weights
    (``resample_abs_pos_embed`` logs it), so the card says what was done, not what should have been."""
    logger = logging.getLogger("timm.layers.pos_embed")

    class Recorder(logging.Handler):
        def emit(self, record):
            found = _RESAMPLED.search(record.getMessage())
            if found:
                grids.append([int(found.group(1)), int(found.group(2))])

    handler, level, propagate = Recorder(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # recorded on the card; not repeated in the build log
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _create(spec: Backbone, input_size: tuple[int, int], pretrained: bool, resampled: list | None = None,
            **extra) -> nn.Module:
    """timm's model of ``spec`` at ``input_size``; ``resampled`` receives the grid timm resampled
    the weights' position embeddings from, if it did."""
    kwargs = dict(spec.overrides)
    kwargs.update(extra)
    loads: list = []
    with _recording_load_results(loads), _recording_resamples(resampled if resampled is not None else []):
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
        _ = patch_size(probe), probe.blocks[0].attn.num_heads, probe.embed_dim  # what every analysis reads
    except Exception as exc:  # timm's own checks: wrong keyword, impossible sizes
        text = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
        raise UnknownModelError(f"{spec.display_name}: timm cannot build {spec.timm_name} with overrides "
                                f"{dict(spec.overrides)}: {text}; fix its overrides") from None
    return probe


# ---------------------------------------------------------------- checkpoint files

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6: a zip archive holding data.pkl
_PICKLE_PROTOCOL = 0x80  # the legacy torch.save format: a pickle, which opens with its protocol byte
_TORCH_SUFFIXES = (".pth", ".pt", ".bin")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _not_a_checkpoint(spec: Backbone, path: Path, why: str) -> str:
    if path.suffix == ".safetensors":
        what, fix = "a safetensors file", "save its state dict again with safetensors.torch.save_file"
    else:
        what, fix = "a PyTorch checkpoint", "save its state dict again with torch.save, or as .safetensors"
    return f"{spec.display_name}: {path}: not {what} ({why}); {fix}"


#: What the loaders raise on a damaged file (torch's RuntimeErrors are told apart by their text).
_UNREADABLE = (EOFError, pickle.UnpicklingError, struct.error, zipfile.BadZipFile, SafetensorError)
_DAMAGED_TEXT = ("PytorchStreamReader", "unexpected EOF", "corrupted")


def _damaged(exc: BaseException) -> bool:
    """Whether a loader's exception says its file is damaged (not: refused as unsafe, not fitting)."""
    text = str(exc)
    if "weights_only" in text or "Weights only" in text:  # UnsafeCheckpointError's, never "damaged"
        return False
    return isinstance(exc, _UNREADABLE) or (isinstance(exc, RuntimeError) and any(t in text for t in _DAMAGED_TEXT))


def _checkpoint_problem(path: Path) -> str | None:
    """What ``path`` is not, from its header alone (None: it looks like what its suffix says)."""
    with path.open("rb") as f:
        head = f.read(8)
    if not head:
        return "empty file"
    if path.suffix == ".safetensors":
        try:  # parses the 8-byte length and the JSON header, and checks the data covers the file
            with safe_open(str(path), framework="pt"):
                pass
        except _UNREADABLE as exc:
            why = f"its header cannot be read: {_first_line(exc).removeprefix('Error while deserializing header: ')}"
            if head.startswith(_ZIP_MAGIC) or head[0] == _PICKLE_PROTOCOL:
                why += "; it looks like a torch.save checkpoint: name it .pth"
            return why
        return None
    if head.startswith(_ZIP_MAGIC):
        try:  # the central directory only, at the end of the file: a truncated archive has none
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "a truncated or damaged zip archive"
        if not any(name.endswith("data.pkl") for name in names):
            return "a zip archive without the data.pkl of torch.save"
        return None
    if head[0] == _PICKLE_PROTOCOL:
        return None  # the legacy format; weights_only=True reads the rest at load time
    return f"neither the zip archive of torch.save nor a pickle: it starts with {head!r}"


def check_checkpoint_file(spec: Backbone) -> None:
    r"""Raise WeightsUnavailableError, one line naming the file and what it is not, when the
    checkpoint of a ``weights = "checkpoint"`` backbone is not what its suffix says: empty,
    truncated, or another format (a pickle named .safetensors). Reads the header only (safetensors:
    its 8-byte length and JSON header; .pth: zip magic ``PK\x03\x04`` and central directory, or the
    pickle protocol byte ``\x80`` of the legacy format), so the build checks every checkpoint
    before computing any model. Missing files and other suffixes are :func:`load_backbone`'s.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> torch.save({"w": torch.zeros(2)}, folder / "w.safetensors")  # a PyTorch checkpoint, misnamed
    >>> spec = Backbone(display_name="m", timm_name="vit_small_patch16_224", weights="checkpoint",
    ...                 checkpoint=str(folder / "w.safetensors"), training="contrastive")
    >>> try:
    ...     check_checkpoint_file(spec)
    ... except WeightsUnavailableError as exc:
    ...     print(str(exc).replace(str(folder), "F"))
    m: F/w.safetensors: not a safetensors file (its header cannot be read: header too large; it looks like a torch.save checkpoint: name it .pth); save its state dict again with safetensors.torch.save_file
    """
    if spec.weights != "checkpoint":
        return
    path = Path(spec.checkpoint).expanduser()
    if not path.is_file() or path.suffix not in (".safetensors", *_TORCH_SUFFIXES):
        return
    problem = _checkpoint_problem(path)
    if problem:
        raise WeightsUnavailableError(_not_a_checkpoint(spec, path, problem))


# ---------------------------------------------------------------- memory a model needs

#: Share of the available memory a model may plan to use; the rest is left to the process itself
#: (Python, the image set, the feature writer, the CUDA context) and to the estimate's own error.
MEMORY_HEADROOM = 0.9


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a model needs, from its meta-device build (see :func:`estimate_memory`)."""

    params: int  # fp32 parameters and buffers
    per_image: int  # activations of one image of a forward batch (the batch scales them linearly)
    weights_file: int  # the weights file, read whole beside the model while it loads (0: random init)
    batch_size: int
    input_size: tuple[int, int]

    def need(self, batch: int) -> int:
        """Parameters plus the activations of a forward batch of ``batch`` images (no file)."""
        return self.params + batch * self.per_image

    @property
    def activations(self) -> int:
        return self.batch_size * self.per_image


def _mlp_width(block: nn.Module, embed_dim: int) -> int:
    """Features the MLP of ``block`` holds per token: the outputs of all its linear layers (fc1 and
    fc2; both halves of a SwiGLU), or 5 x embed_dim (fc1 = 4 x, fc2) where they cannot be read."""
    mlp = getattr(block, "mlp", None)
    widths = [m.out_features for m in mlp.modules() if isinstance(m, nn.Linear)] if mlp is not None else []
    return sum(widths) or 5 * embed_dim


def activation_bytes_per_image(model: nn.Module, input_size: tuple[int, int], pairs: int) -> int:
    """Upper-ish bytes one image adds to a forward batch of the extraction (fp32 throughout, so
    fp16 / bf16 autocast needs less): with N tokens (prefix + patches), D = embed_dim, H heads,
    M the MLP's width (:func:`_mlp_width`) and ``pairs`` (block, representation) pairs extracted,

    * kept: ``pairs x N x D x 10``: each pair's tensor stays in fp32 until the forward ends (4),
      is then copied to fp16 (2), and up to two earlier batches of it wait to be written (2 x 2);
    * working: ``4 x (N x (6 D + 2 M) + 2 H N^2 + 3 h w)``: one block's residual, norm, q/k/v and
      output, its MLP (input and activation), the attention scores with their softmax (the math
      path of scaled_dot_product_attention materialises them), and the input image.

    The analyses after extraction are not counted: they scale with the image set, not the model.

    >>> import timm
    >>> with torch.device("meta"):
    ...     m = timm.create_model("vit_small_patch16_224", num_classes=0)  # N = 197, D = 384, H = 6
    >>> working = 4 * (197 * (6 * 384 + 2 * 5 * 384) + 2 * 6 * 197**2 + 3 * 224**2)  # fc1 4 D + fc2 D
    >>> activation_bytes_per_image(m, (224, 224), pairs=0) == working
    True
    >>> activation_bytes_per_image(m, (224, 224), pairs=3) == working + 3 * 197 * 384 * 10
    True
    """
    h, w = input_size
    patch = patch_size(model)
    tokens = int(getattr(model, "num_prefix_tokens", 1)) + (h // patch) * (w // patch)
    dim, heads = int(model.embed_dim), int(model.blocks[0].attn.num_heads)
    kept = pairs * tokens * dim * 10
    working = 4 * (tokens * (6 * dim + 2 * _mlp_width(model.blocks[0], dim)) + 2 * heads * tokens**2 + 3 * h * w)
    return kept + working


def _weights_file_size(spec: Backbone) -> int:
    if spec.weights == "checkpoint":
        path = Path(spec.checkpoint).expanduser()
        return path.stat().st_size if path.is_file() else 0
    if spec.weights == "pretrained":
        cached = cached_hub_file(spec.timm_name)
        return cached.stat().st_size if cached is not None else 0
    return 0


def estimate_memory(spec: Backbone, resolution: tuple[int, int], features: FeaturesSection,
                    probe: nn.Module | None = None) -> MemoryEstimate:
    """Memory ``spec`` needs for inputs of ``resolution`` (snapped to its patch size) with the
    extraction settings ``features`` (batch size, layers, representations). Built on the meta
    device, so an absurd size costs nothing: parameters and buffers are counted at 4 bytes each
    (fp32, as timm builds them), activations by :func:`activation_bytes_per_image`. ``probe``:
    :func:`check_backbone`'s build of ``spec``, if at hand (built again only for another input size).

    >>> from atlas.config import Backbone, FeaturesSection
    >>> b = Backbone(display_name="S", timm_name="vit_small_patch16_224", weights="random", training="random")
    >>> est = estimate_memory(b, (224, 224), FeaturesSection(batch_size=8))
    >>> round(est.params / 2**20), round(est.activations / 2**20)   # MiB: ViT-S/16, 22M parameters
    (83, 339)
    """
    model = probe if probe is not None else check_backbone(spec)
    input_size = tuple(snap_to_patch_multiple(tuple(resolution), patch_size(model)))
    built_for = getattr(model.patch_embed, "img_size", None)
    if built_for is None or tuple(built_for) != input_size:  # the position embedding grows with the input
        with torch.device("meta"):
            model = timm.create_model(spec.timm_name, pretrained=False, num_classes=0, img_size=input_size,
                                      **spec.overrides)
    depth = len(model.blocks)
    try:
        blocks = sorted({*resolve_layers(features.layers, depth), *resolve_layers(features.gallery_layers, depth)})
    except ConfigError:  # a block beyond the model's depth: the run names it; count every block here
        blocks = list(range(depth))
    pairs = len(block_representations(blocks, features.representations, depth))
    params = 4 * sum(t.numel() for t in (*model.parameters(), *model.buffers()))
    return MemoryEstimate(params=params, per_image=activation_bytes_per_image(model, input_size, pairs),
                          weights_file=_weights_file_size(spec), batch_size=features.batch_size,
                          input_size=input_size)


def host_available_memory() -> int | None:
    """Bytes of memory this machine can give now: ``MemAvailable`` of /proc/meminfo (Linux), else
    its total physical memory; None where neither can be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def memory_shortfall(spec: Backbone, est: MemoryEstimate, device_type: str, host_free: int | None,
                     device_free: int | None = None) -> str | None:
    """One line saying why ``spec`` cannot run here, with what to do; None when it fits. The rule
    (``est`` from :func:`estimate_memory`), each need within :data:`MEMORY_HEADROOM` (90 %) of what
    is available there:

    * the machine (``host_free``) always holds the fp32 parameters and the weights file read
      beside them (timm builds the model there and loads the file whole, before it moves to a GPU);
    * ``cpu`` / ``mps``: the machine also holds the activations of a whole forward batch
      (``batch_size``: out-of-memory is not recoverable there); the line names the largest batch
      that fits, if one does;
    * ``cuda``: the GPU's free memory (``device_free``) holds the parameters and the activations of
      one image (a larger batch is halved on out-of-memory until it fits).

    Unknown available memory (None) is not checked. What it says for the zoo (224 px, batch 8,
    every block and representation): ViT-S/16 0.4 GiB in all; ViT-g/14 4.2 GiB of parameters +
    5.1 GiB of activations; the 7B DINOv3 25.0 GiB of parameters + 10.3 GiB, so it needs a GPU
    with ~30 GiB free (and a machine with ~28 GiB plus its weights file) or a CPU machine with
    ~40 GiB: never a 24 GiB CPU machine. ViT-g/14 at 518 px takes ~3.6 GiB per image: any batch on
    a 24 GiB GPU (halved to fit), a batch of at most 4 on a 24 GiB CPU machine.

    >>> from atlas.config import Backbone
    >>> b = Backbone(display_name="M", timm_name="vit_small_patch16_224", weights="random", training="random")
    >>> est = MemoryEstimate(params=4 * 2**30, per_image=2**30, weights_file=0, batch_size=8, input_size=(224, 224))
    >>> memory_shortfall(b, est, "cpu", host_free=16 * 2**30) is None    # 12 GiB <= 0.9 x 16 GiB
    True
    >>> print(memory_shortfall(b, est, "cpu", host_free=8 * 2**30))
    M: vit_small_patch16_224 needs about 12.0 GiB (4.0 GiB of fp32 parameters, 8.0 GiB of activations for a batch of 8 at 224x224 px) but this machine has 8.0 GiB available; set [features] batch_size = 3 (or smaller), or use a machine with more memory
    >>> memory_shortfall(b, est, "cuda", host_free=8 * 2**30, device_free=6 * 2**30) is None  # 5 GiB at batch 1
    True
    """
    what = spec.timm_name + (f" with overrides {dict(spec.overrides)}" if spec.overrides else "")
    bigger = ("use smaller overrides (embed_dim, depth) or a machine with more memory" if spec.overrides
              else "use a machine with more memory, or a smaller model")
    at = f"at {est.input_size[0]}x{est.input_size[1]} px"
    parts = [f"{byte_size(est.params, binary=True)} of fp32 parameters"] + (
        [f"{byte_size(est.weights_file, binary=True)} for its weights file"] if est.weights_file else [])

    def refusal(need: int, parts: list[str], where: str, free: int, fix: str) -> str:
        free_text = byte_size(free, binary=True)
        has = f"the GPU has {free_text} free" if where == "gpu" else f"this machine has {free_text} available"
        return f"{spec.display_name}: {what} needs about {byte_size(need, binary=True)} ({', '.join(parts)}) but {has}; {fix}"

    if device_type == "cuda":
        host_need = est.params + est.weights_file
        if host_free is not None and host_need > host_free * MEMORY_HEADROOM:
            return refusal(host_need, parts, "host", host_free, bigger)
        need = est.need(1)
        if device_free is not None and need > device_free * MEMORY_HEADROOM:
            return refusal(need, [parts[0], f"{byte_size(est.per_image, binary=True)} of activations for one image {at}"],
                           "gpu", device_free, bigger.replace("a machine with more memory", "a GPU with more memory"))
        return None
    if host_free is None:
        return None
    need = est.need(est.batch_size) + est.weights_file
    if need <= host_free * MEMORY_HEADROOM:
        return None
    batch = int((host_free * MEMORY_HEADROOM - est.params - est.weights_file) // max(1, est.per_image))
    fix = (f"set [features] batch_size = {batch} (or smaller), or use a machine with more memory"
           if 1 <= batch < est.batch_size else bigger)
    parts.append(f"{byte_size(est.activations, binary=True)} of activations for a batch of {est.batch_size} {at}")
    return refusal(need, parts, "host", host_free, fix)


def memory_problem(spec: Backbone, resolution: tuple[int, int], features: FeaturesSection,
                   device: torch.device, probe: nn.Module | None = None) -> str | None:
    """:func:`memory_shortfall` of ``spec`` on ``device`` with the memory available now (the
    machine's, and a CUDA device's free memory). Allocates nothing: the build asks it of every
    model before computing any (``probe``: as :func:`estimate_memory`)."""
    est = estimate_memory(spec, resolution, features, probe)
    device_free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    return memory_shortfall(spec, est, device.type, host_available_memory(), device_free)


def load_backbone(spec: Backbone, resolution: tuple[int, int], seed: int = 0) -> LoadedBackbone:
    """Create the model of ``spec`` for inputs of ``resolution`` (snapped to its patch size).

    Raises WeightsUnavailableError / UnsafeCheckpointError / UnknownModelError with one-line messages.
    """
    # Patch size first (cheap meta-device build) so the input can be snapped before loading weights.
    probe = check_backbone(spec)
    patch = patch_size(probe)
    input_size = snap_to_patch_multiple(tuple(resolution), patch)
    pretrained_input = list(probe.pretrained_cfg.get("input_size", (3, 0, 0))[1:])
    del probe

    resampled: list = []
    if spec.weights == "random":
        torch.manual_seed(seed)
        # born at the pretrained size, then resampled as pretrained weights are: the same random
        # weights at every resolution of the axis
        born = snap_to_patch_multiple(tuple(pretrained_input), patch) if min(pretrained_input) > 0 else input_size
        model = _create(spec, born, pretrained=False)
        if born != input_size:
            model = _resampled(spec, model, input_size, resampled)
        weights_hash = random_weights_identity(spec, seed)
        provenance = RANDOM_INIT_LABEL
    elif spec.weights == "checkpoint":
        path = Path(spec.checkpoint).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"{spec.display_name}: checkpoint file not found: {path}")
        if path.suffix not in (".safetensors", ".pth", ".pt", ".bin"):
            raise WeightsUnavailableError(f"{spec.display_name}: checkpoint must be .safetensors or .pth (got {path.name})")
        check_checkpoint_file(spec)
        weights_hash = sha256_file(path)
        # timm's file loader reads .pth with weights_only=True and applies the model's checkpoint filter.
        try:
            model = _create(spec, input_size, pretrained=True, resampled=resampled,
                            pretrained_cfg_overlay={"file": str(path)})
        except Exception as exc:
            if not _damaged(exc):  # damage past the header that check_checkpoint_file reads
                raise
            raise WeightsUnavailableError(_not_a_checkpoint(spec, path, _first_line(exc))) from None
        provenance = f"checkpoint {path.name} (sha256 {weights_hash[:16]})"
    else:
        cached = cached_hub_file(spec.timm_name)
        hub_id = _weights_location(spec.timm_name)
        if cached is None and not _hub_reachable():
            raise WeightsUnavailableError(f"{spec.display_name}: weights for {spec.timm_name} are not in the HF cache and the hub cannot be reached")
        model = _create(spec, input_size, pretrained=True, resampled=resampled)
        cached = cached_hub_file(spec.timm_name)
        weights_hash = sha256_file(cached) if cached else state_dict_hash(model)
        revision = cached.parent.name[:12] if cached else "?"
        provenance = f"hf-hub {hub_id} @ {revision} (sha256 {weights_hash[:16]})"

    model.eval().requires_grad_(False)
    card = describe_model(spec, model, input_size, pretrained_input, provenance,
                          position_grid_from=resampled[-1] if resampled else None, requested_size=resolution)
    return LoadedBackbone(spec=spec, model=model, card=card, weights_hash=weights_hash)


def _resampled(spec: Backbone, model: nn.Module, input_size: tuple[int, int], resampled: list) -> nn.Module:
    """``model``'s weights in a model for ``input_size``: its state dict goes through timm's
    checkpoint path, which resamples learned position embeddings as it does for pretrained weights
    (RoPE has nothing to resample: it is evaluated at the new grid)."""
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory(prefix="atlas-weights-") as tmp:
        path = Path(tmp) / "weights.safetensors"
        save_file({k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}, str(path))
        return _create(spec, input_size, pretrained=True, resampled=resampled, pretrained_cfg_overlay={"file": str(path)})


def at_resolution(loaded: LoadedBackbone, resolution: tuple[int, int]) -> LoadedBackbone:
    """The same weights for another input size (snapped to the patch size), position embeddings
    resampled by timm (:func:`_resampled`). Used for the evaluations' own geometry (STEGO's 320 px,
    video frames)."""
    input_size = snap_to_patch_multiple(tuple(resolution), loaded.card.patch_size)
    resampled: list = []
    model = _resampled(loaded.spec, loaded.model, input_size, resampled).eval().requires_grad_(False)
    card = describe_model(loaded.spec, model, input_size, loaded.card.pretrained_input_size, loaded.card.provenance,
                          position_grid_from=resampled[-1] if resampled else None, requested_size=resolution)
    return LoadedBackbone(spec=loaded.spec, model=model, card=card, weights_hash=loaded.weights_hash)


def describe_model(spec: Backbone, model: nn.Module, input_size, pretrained_input, provenance: str,
                   position_grid_from=None, requested_size=None) -> ModelCard:
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
        patch_size=patch_size(model),
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
        requested_size=[int(x) for x in (requested_size if requested_size is not None else input_size)],
        position_grid_from=position_grid_from,
    )
