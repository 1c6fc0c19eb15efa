"""Shapes of a config's backbones, built on the meta device (no weights, no memory, no forward pass).

Used by ``bench/bench_scale.py`` to project the zoo; usable on its own::

    .venv/bin/python bench/zoo_shapes.py                           # configs/zoo.toml at 224 px and native
    .venv/bin/python bench/zoo_shapes.py --config configs/demo.toml --size 224

Per model: depth, embed dim, heads, patch size, prefix tokens, the patch grid and token count at a
given input size, the (block, representation) pairs the config extracts (sweep blocks and gallery
blocks together, as the atlas extracts them) and the gallery pairs and blocks (what label maps and
pictures are stored for). Everything is read the way the atlas reads it: ``atlas.config``
(``resolve_layers``, ``block_representations``) and the same ``timm.create_model(..., img_size=,
num_classes=0, **overrides)`` call as ``atlas.features.backbones`` (inputs snapped to a multiple of
the patch size as ``atlas.inputs.geometry.snap_to_patch_multiple`` does).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@dataclass
class Shape:
    display_name: str
    timm_name: str
    opt_in: bool
    input_size: tuple[int, int]  # after snapping to the patch size
    native_size: tuple[int, int]  # timm pretrained_cfg input_size
    depth: int
    embed_dim: int
    num_heads: int
    patch_size: int
    prefix_tokens: int
    grid: tuple[int, int]
    params: int
    pairs: int  # (block, representation) pairs extracted: sweep and gallery blocks
    blocks: int  # blocks extracted
    gallery_pairs: int
    gallery_blocks: int

    @property
    def cells(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def tokens(self) -> int:
        return self.prefix_tokens + self.cells

    def as_dict(self) -> dict:
        return {**asdict(self), "cells": self.cells, "tokens": self.tokens}


def _patch(model) -> int:
    ps = model.patch_embed.patch_size
    return int(ps if isinstance(ps, int) else ps[0])


def _snap(size: tuple[int, int], patch: int) -> tuple[int, int]:
    try:
        from atlas.inputs.geometry import snap_to_patch_multiple

        return tuple(int(x) for x in snap_to_patch_multiple(tuple(size), patch))
    except Exception:  # noqa: BLE001 - the helper moved or changed: the rule it documents
        return tuple(max(patch, int(s / patch + 0.5) * patch) for s in size)


def native_size(timm_name: str) -> tuple[int, int]:
    """The input size timm's pretrained config names (``input_size[1:]``); 224 x 224 when it names none."""
    import timm

    cfg = timm.models.get_pretrained_cfg(timm_name)
    size = getattr(cfg, "input_size", None) if cfg is not None else None
    return (int(size[1]), int(size[2])) if size else (224, 224)


def model_shape(spec, features, size: tuple[int, int] | None) -> Shape:
    """``spec`` (an ``atlas.config.Backbone``) at ``size`` (None: its native size), ``features`` the
    config's ``[features]`` section."""
    import timm
    import torch

    from atlas.config import block_representations, resolve_layers

    native = native_size(spec.timm_name)
    with torch.device("meta"):
        probe = timm.create_model(spec.timm_name, pretrained=False, num_classes=0, **spec.overrides)
    patch = _patch(probe)
    input_size = _snap(native if size is None else size, patch)
    with torch.device("meta"):
        model = timm.create_model(spec.timm_name, pretrained=False, num_classes=0, img_size=input_size,
                                  **spec.overrides)
    depth = len(model.blocks)
    sweep = resolve_layers(features.layers, depth)
    gallery = resolve_layers(features.gallery_layers, depth)
    blocks = sorted({*sweep, *gallery})
    reps = list(features.representations)
    grid = (input_size[0] // patch, input_size[1] // patch)
    return Shape(
        display_name=spec.display_name, timm_name=spec.timm_name, opt_in=bool(getattr(spec, "opt_in", False)),
        input_size=input_size, native_size=native, depth=depth, embed_dim=int(model.embed_dim),
        num_heads=int(model.blocks[0].attn.num_heads), patch_size=patch,
        prefix_tokens=int(getattr(model, "num_prefix_tokens", 1)), grid=grid,
        params=int(sum(p.numel() for p in model.parameters())),
        pairs=len(block_representations(blocks, reps, depth)), blocks=len(blocks),
        gallery_pairs=len(block_representations(gallery, reps, depth)), gallery_blocks=len(gallery),
    )


def config_shapes(cfg, size: tuple[int, int] | None) -> list[Shape]:
    """Every backbone of ``cfg`` (opt-in entries included; see ``Shape.opt_in``)."""
    return [model_shape(spec, cfg.features, size) for spec in cfg.backbones]


def main() -> None:
    from atlas.config import load_config

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(REPO / "configs" / "zoo.toml"))
    p.add_argument("--size", type=int, default=None, help="input size in px (default: 224 and native)")
    args = p.parse_args()
    cfg = load_config(args.config)
    for size in ([(args.size, args.size)] if args.size else [(224, 224), None]):
        print(f"\n{'native' if size is None else f'{size[0]} px'}:")
        print(f"{'model':44s} {'px':>5s} {'depth':>5s} {'C':>5s} {'heads':>5s} {'grid':>7s} {'T':>5s} "
              f"{'pairs':>5s} {'gallery':>7s}")
        for s in config_shapes(cfg, size):
            print(f"{s.display_name + (' (opt-in)' if s.opt_in else ''):44s} {s.input_size[0]:5d} {s.depth:5d} "
                  f"{s.embed_dim:5d} {s.num_heads:5d} {s.grid[0]:3d}x{s.grid[1]:<3d} {s.tokens:5d} {s.pairs:5d} "
                  f"{s.gallery_pairs:7d}")


if __name__ == "__main__":
    main()
