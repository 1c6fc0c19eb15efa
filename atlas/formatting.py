"""Numbers as text, the same in highlight sentences, tables and downloads' captions: fixed digits,
never ``-0.00``, ``n/a`` for a missing value."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["byte_size", "fixed", "with_interval"]


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


def level_percent(level: float) -> str:
    """An interval's confidence level as a percentage, never rounded to another level.

    >>> level_percent(0.95), level_percent(0.999), level_percent(0.9)
    ('95%', '99.9%', '90%')
    """
    return f"{float(level) * 100:.10g}%"


def byte_size(n: float, binary: bool = False) -> str:
    """``n`` bytes for a message: decimal units to three significant digits (the units of
    ``[features] memory_gb`` / ``cache_gb`` and the build report), or with ``binary`` powers of
    1024 to one decimal (memory sizes).

    >>> byte_size(12_345_678), byte_size(999), byte_size(3 * 2**30, binary=True), byte_size(512, binary=True)
    ('12.3 MB', '999 bytes', '3.0 GiB', '512 B')
    >>> byte_size(9.6e15, binary=True)
    '8.5 PiB'
    """
    if binary:
        if n < 1024:
            return f"{int(n)} B"
        exp = min(int(math.log(n, 1024)), 5)
        return f"{n / 1024**exp:.1f} {'BKMGTP'[exp]}iB"
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if float(f"{n / scale:.3g}") >= 1:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} bytes"
