"""How models and measures are named on the site (from the records' ``measure_info`` with the
site's words, :mod:`.measure_words`: nothing is guessed from a measure's name)."""

from __future__ import annotations

from typing import Any

from ..records import RANDOM_INIT_LABEL, ModelCard

#: Model page sections, in page order; a measure's section comes from ``measure_info``.
SECTIONS = {
    "clusters": "Cluster statistics",
    "positional": "Positional behaviour",
    "evaluation": "Evaluation",
}


def model_label(card: ModelCard) -> str:
    """Display name, carrying the random-init label wherever the model's numbers appear."""
    return f"{card.display_name} ({RANDOM_INIT_LABEL})" if card.is_random_init else card.display_name


def measure_title(info: dict[str, dict[str, Any]], name: str) -> str:
    """Readable title of a measure (``AtlasResults.measure_info``), else its raw name."""
    return str((info.get(name) or {}).get("title") or name)


def measure_definition(info: dict[str, dict[str, Any]], name: str) -> str:
    """One-paragraph definition of a measure, or ""."""
    return str((info.get(name) or {}).get("definition") or "")


def measure_section(info: dict[str, dict[str, Any]], name: str) -> str:
    """Model page section of a measure (``"clusters"`` when the registry does not place it)."""
    section = (info.get(name) or {}).get("section", "")
    return section if section in SECTIONS else "clusters"


def near_identity_blocks(card: ModelCard) -> bool:
    """Whether LayerScale makes every block of this model add almost nothing to the residual stream
    (median |γ| below 1e-3, as random init starts DINOv2 / DINOv3): flat lines across depth."""
    return card.layer_scale is not None and card.layer_scale < 1e-3


def model_notes(card: ModelCard) -> list[tuple[str, str]]:
    """What a reader would otherwise take for a bug in this model's plots, from facts the build
    recorded about the architecture: (title, text) pairs."""
    notes = []
    if card.layer_scale is not None:
        text = (f"Every block scales its attention and MLP outputs by per-channel LayerScale factors γ "
                f"(median |γ| = {card.layer_scale:.2g} in these weights).")
        if near_identity_blocks(card):
            text += (" At this size each block adds almost nothing to the residual stream, so tokens, and every "
                     "measure of them, barely change from block to block: flat lines across depth are what this "
                     "model computes, not a plotting error.")
            if card.is_random_init:
                text += " Random init starts γ this small; pretrained weights have learned γ."
        notes.append(("LayerScale", text))
    if "RoPE" in card.pos_encoding:
        notes.append(("Rotary position embedding (RoPE)", "Queries and keys carry the rotary position embedding "
                      "(applied inside attention, after any q/k norm); tokens and values do not. Queries and keys "
                      "can therefore follow position where tokens do not."))
    notes.append(("Last block", "Tokens of every block, the last included, are the residual stream before the "
                  "model's final norm. The representation tokens_normed is the last block's tokens after it: "
                  "DINOv2's x_norm_patchtokens, what DINO users mean by last-layer features (its layer sweep is "
                  "one point). Queries, keys and values are unaffected."))
    return notes
