"""How models and measures are named on the site (from the records' ``measure_info``, which the
measure registry fills: nothing is guessed from a measure's name)."""

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
