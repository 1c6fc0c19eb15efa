"""Numbers as text, the same in highlight sentences, tables and downloads' captions: fixed digits,
never ``-0.00``, ``n/a`` for a missing value."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["fixed", "with_interval"]


def fixed(value: Any, digits: int = 2, missing: str = "n/a") -> str:
    """``value`` with ``digits`` decimals; a value that rounds to zero never keeps its minus sign.

    >>> fixed(-0.0004), fixed(0.4567, 3), fixed(None), fixed(float("nan"), missing="—")
    ('0.00', '0.457', 'n/a', '—')
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        return missing
    if not math.isfinite(v):
        return missing
    text = f"{v:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def with_interval(value: Any, lo: Any, hi: Any, digits: int = 2, missing: str = "n/a") -> str:
    """``0.41 [0.38, 0.44]``, or the value alone when the interval is missing.

    >>> with_interval(0.4123, 0.38, 0.441), with_interval(0.5, None, None, 3)
    ('0.41 [0.38, 0.44]', '0.500')
    """
    text = fixed(value, digits, missing)
    if text == missing or lo is None or hi is None or fixed(lo) == "n/a" or fixed(hi) == "n/a":
        return text
    return f"{text} [{fixed(lo, digits)}, {fixed(hi, digits)}]"
