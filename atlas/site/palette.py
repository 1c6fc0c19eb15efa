"""The one qualitative palette used for cluster colours everywhere on the site.

Cluster ``i`` (after canonical ordering and alignment) is always drawn in ``palette(k)[i]``, and
``palette(k)`` is a prefix of ``palette(k + 1)``, so cluster id ``i`` has one colour whatever K is
shown (the clusterings at two K are not aligned, so id ``i`` need not be the same cluster).

Colours come from published colour-vision-deficiency (CVD) friendly qualitative schemes, in this
order (largest clusters get the safest colours):

1. Okabe & Ito (2008), "Color Universal Design", https://jfly.uni-koeln.de/color/ — the 7
   chromatic colours (black moved to the very end: it hides the photo in overlays).
2. Paul Tol (2021), "Colour Schemes", SRON/EPS/TN/09-002, https://personal.sron.nl/~pault/ —
   the "muted", "light", "bright", "vibrant", "dark", "pale" and "high-contrast" schemes.

Candidates were taken in that order and a colour was dropped when it lay within CIEDE2000 8 of a
colour already kept (Tol's schemes share several colours); that gives the 36 fixed colours of
``BASE_HEX``. Honest caveat: no qualitative palette keeps more than about 8-10 colours distinct
for every kind of colour vision; the first 7 (Okabe-Ito) are the safe ones, beyond that the site
relies on cluster boundaries and hover labels as well as colour.

For K > 36 the palette is extended deterministically by greedy farthest-point sampling in CIELAB
over a fixed sRGB grid (each new colour maximises its smallest distance to all colours so far).
Those extra colours are distinct for normal colour vision only.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["BASE_HEX", "palette", "palette_hex"]

BASE_HEX: tuple[str, ...] = (
    # Okabe-Ito (chromatic)
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
    # Tol muted
    "#CC6677", "#332288", "#DDCC77", "#117733", "#88CCEE", "#882255", "#44AA99", "#999933", "#AA4499",
    # Tol light
    "#EE8866", "#FFAABB", "#BBCC33", "#DDDDDD",
    # Tol bright
    "#BBBBBB",
    # Tol vibrant
    "#EE7733", "#EE3377", "#CC3311",
    # Tol dark
    "#222255", "#225555", "#225522", "#666633", "#663333", "#555555",
    # Tol pale
    "#BBCCEE", "#CCEEFF", "#CCDDAA", "#FFCCCC",
    # Tol high-contrast
    "#004488",
    # Okabe-Ito black
    "#000000",
)  # fmt: skip


def palette(k: int) -> np.ndarray:
    """The first ``k`` site colours as a (k, 3) uint8 RGB array.

    Examples
    --------
    >>> palette(3).tolist()
    [[230, 159, 0], [86, 180, 233], [0, 158, 115]]
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be an int >= 0, got {k!r}")
    return _colours(int(k)).copy()


def palette_hex(k: int) -> list[str]:
    """The first ``k`` site colours as ``"#RRGGBB"`` strings (for plotly / CSS).

    Examples
    --------
    >>> palette_hex(2)
    ['#E69F00', '#56B4E9']
    """
    return ["#{:02X}{:02X}{:02X}".format(*rgb) for rgb in palette(k).tolist()]


def _hex_to_rgb(h: str) -> tuple[int, int, int]:
    return int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)


_BASE = np.array([_hex_to_rgb(h) for h in BASE_HEX], dtype=np.uint8)


@lru_cache(maxsize=8)
def _colours(k: int) -> np.ndarray:
    if k <= len(_BASE):
        return _BASE[:k]
    # Only reached for K > 36: greedy max-min extension in CIELAB (CIE76 distance), deterministic.
    from skimage.color import rgb2lab

    levels = np.linspace(0, 255, 12).round().astype(np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    lab_grid = rgb2lab(grid[None].astype(np.float64) / 255)[0]
    out = [tuple(c) for c in _BASE]
    lab_out = rgb2lab(_BASE[None].astype(np.float64) / 255)[0]
    min_d = np.min(np.linalg.norm(lab_grid[:, None] - lab_out[None], axis=2), axis=1)
    while len(out) < k:
        i = int(np.argmax(min_d))  # first maximum: deterministic
        out.append(tuple(grid[i]))
        min_d = np.minimum(min_d, np.linalg.norm(lab_grid - lab_grid[i], axis=1))
    return np.array(out, dtype=np.uint8)
