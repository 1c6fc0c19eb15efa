"""Shift test: do cluster ids move with the image content or stay with the grid position?

The caller crops every image twice, ``a`` and ``b``, with ``b``'s window ``s`` patches to the
*right* of ``a``'s (:func:`atlas.inputs.geometry.shift_windows`), runs the model on both and
assigns both crops' tokens to the **same** joint centroids. Convention::

    b[:, :, x] shows the content of a[:, :, x + s]      (0 <= x < w - s)

so content-aligned tokens are ``a[..., s:]`` vs ``b[..., :w-s]`` and position-aligned tokens are
``a`` vs ``b`` at the same columns. A content-following representation keeps its cluster ids
under the shift; a position-following one keeps the map where it was on the grid.

Spatially smooth maps agree with a copy of themselves shifted by ``s`` patches, so a purely
content-following map still agrees by grid position about as often as it agrees with itself
``s`` patches away, and a purely position-following map agrees by content just as often. That
*self-agreement at lag s* is therefore the baseline both agreements are measured from (a chance
baseline would call a content-following map on smooth photos only ~0.7 content-following).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .positional import _as_labels

__all__ = ["shift_test", "shift_curve"]


def shift_test(labels_a: Any, labels_b: Any, shift: int) -> dict[str, float]:
    """Agreement of cluster ids aligned by content vs aligned by grid position.

    Parameters
    ----------
    labels_a, labels_b : int array (N, h, w)
        Cluster ids of the two crops (same joint centroids), with
        ``b[:, :, x]`` showing the content of ``a[:, :, x + shift]``.
    shift : int
        Offset in patches, ``0 < |shift| < w``; a negative shift means ``b`` lies to the left
        of ``a`` (equivalent to swapping ``a`` and ``b``).

    Returns
    -------
    dict
        ``content``, ``position``, ``self_agreement``, ``chance``, ``content_fraction``,
        ``content_fraction_adjusted``, ``n_tokens``.

    Notes
    -----
    With ``s = |shift|`` and ``[.]`` the indicator, every agreement is a mean over the same
    ``N * h * (w - s)`` tokens:

    * ``content = mean [a[..., s:] == b[..., :w-s]]`` (same content, different grid columns)
    * ``position = (mean [a[..., s:] == b[..., s:]] + mean [a[..., :w-s] == b[..., :w-s]]) / 2``
      (same grid columns, content ``s`` patches apart; both column windows, so that neither
      crop's tokens are favoured)
    * ``self_agreement = (mean [a[..., s:] == a[..., :w-s]] + mean [b[..., s:] == b[..., :w-s]]) / 2``:
      each map against itself ``s`` patches away. A purely content-following representation has
      ``content = 1`` and ``position = self_agreement``; a purely position-following one has
      ``position = 1`` and ``content = self_agreement``.
    * ``chance = sum_k q_a(k) q_b(k)`` with ``q_a``, ``q_b`` the cluster frequencies over all
      tokens of ``a`` and ``b``: the expected agreement of independently shuffled maps
      (reported for reference).
    * ``content_fraction = content / (content + position)`` (raw, unadjusted)
    * ``content_fraction_adjusted = (1 + (content - position) / (1 - self_agreement)) / 2``,
      clipped to [0, 1]: 1 = purely content-following, 0 = purely position-following. When a
      fraction ``alpha`` of the tokens follows content and the rest position, content =
      ``alpha + (1 - alpha) self`` and position = ``1 - alpha + alpha self``, so it is ``alpha``.
      Maps that follow neither (content = position) give 0.5: read it with the two agreements.
      It is continuous in the agreements, so noise moves it a little; the ratio of the excesses
      over the self-agreement, ``c / (c + q)``, flips between 0 and 1 when both are noise. NaN
      when the self-agreement is 1 (constant maps).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> scene = rng.integers(0, 5, (8, 6, 10))          # content wider than the crops
    >>> a, b = scene[:, :, 0:8], scene[:, :, 2:10]       # b starts 2 patches to the right
    >>> out = shift_test(a, b, 2)
    >>> out["content"], round(out["content_fraction_adjusted"], 2)
    (1.0, 1.0)
    """
    a = _as_labels(labels_a, "labels_a")
    b = _as_labels(labels_b, "labels_b")
    if a.shape != b.shape:
        raise ValueError(f"labels_a {a.shape} and labels_b {b.shape} must have the same shape")
    w = a.shape[2]
    if shift == 0 or abs(shift) >= w:
        raise ValueError(f"shift must satisfy 0 < |shift| < w = {w}; got {shift}")
    if shift < 0:
        a, b = b, a
    s = abs(shift)
    content = float((a[..., s:] == b[..., : w - s]).mean())
    position = float(((a[..., s:] == b[..., s:]).mean() + (a[..., : w - s] == b[..., : w - s]).mean()) / 2)
    self_agreement = float(((a[..., s:] == a[..., : w - s]).mean() + (b[..., s:] == b[..., : w - s]).mean()) / 2)
    k = int(max(a.max(), b.max())) + 1
    qa = np.bincount(a.ravel(), minlength=k) / a.size
    qb = np.bincount(b.ravel(), minlength=k) / b.size
    chance = float(qa @ qb)
    return {
        "content": content,
        "position": position,
        "self_agreement": self_agreement,
        "chance": chance,
        "content_fraction": content / (content + position) if content + position > 0 else float("nan"),
        "content_fraction_adjusted": float(_content_fraction(content, position, self_agreement)),
        "n_tokens": int(a[..., s:].size),
    }


def _content_fraction(content, position, self_agreement):
    """``(1 + (content - position) / (1 - self)) / 2`` in [0, 1], NaN where ``self`` is 1."""
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = 1.0 - np.asarray(self_agreement, np.float64)
        d = (np.asarray(content, np.float64) - position) / np.where(spread > 0, spread, np.nan)
    return np.clip((1.0 + d) / 2.0, 0.0, 1.0)


def _per_image(a: np.ndarray, b: np.ndarray, shift: int) -> np.ndarray:
    """(N, 3) per-image agreements (content, position, self) of :func:`shift_test`."""
    if shift < 0:
        a, b = b, a
    s, w = abs(shift), a.shape[2]
    mean = lambda x: x.reshape(len(x), -1).mean(axis=1)  # noqa: E731
    return np.stack([mean(a[..., s:] == b[..., : w - s]),
                     (mean(a[..., s:] == b[..., s:]) + mean(a[..., : w - s] == b[..., : w - s])) / 2,
                     (mean(a[..., s:] == a[..., : w - s]) + mean(b[..., s:] == b[..., : w - s])) / 2], axis=1)


def shift_curve(pairs: Mapping[int, tuple[Any, Any]], weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """:func:`shift_test` for several shifts (typically ``s = 1 .. 4``).

    Parameters
    ----------
    pairs : mapping shift -> (labels_a, labels_b)
        One crop pair per shift, following the convention of :func:`shift_test`.
    weights : float array (B, N), optional
        Image weights of resampling replicates (0 or 1 for a subset; counts work too): adds ``replicates =
        {"content_fraction_mean": (B,)}`` (all-ones weights give the point estimate).

    Returns
    -------
    dict
        ``shifts`` and, aligned with it, arrays ``content``, ``position``, ``self_agreement``, ``chance``,
        ``content_fraction``, ``content_fraction_adjusted`` (shifts in increasing order); and
        ``content_fraction_mean``, the mean of ``content_fraction_adjusted`` over the shifts
        where it is defined (NaN when it is defined at none), the atlas's headline number.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> scene = rng.integers(0, 5, (8, 6, 12))
    >>> curve = shift_curve({s: (scene[:, :, :8], scene[:, :, s:s + 8]) for s in (1, 2, 3, 4)})
    >>> curve["content"].tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    if not pairs:
        raise ValueError("pairs must hold at least one shift -> (labels_a, labels_b) entry")
    shifts = sorted(pairs)
    rows = [shift_test(*pairs[s], s) for s in shifts]
    keys = ("content", "position", "self_agreement", "chance", "content_fraction", "content_fraction_adjusted")
    out: dict = {"shifts": np.asarray(shifts)}
    out.update({key: np.array([r[key] for r in rows]) for key in keys})
    adjusted = out["content_fraction_adjusted"]
    defined = adjusted[np.isfinite(adjusted)]
    out["content_fraction_mean"] = float(defined.mean()) if len(defined) else float("nan")
    if weights is not None:
        fractions = []
        for s in shifts:
            a, b = (_as_labels(x) for x in pairs[s])
            content, position, self_ = (weights @ _per_image(a, b, s) / weights.sum(1, keepdims=True)).T
            fractions.append(_content_fraction(content, position, self_))
        fractions = np.stack(fractions, axis=1)
        finite = np.isfinite(fractions)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(finite, fractions, 0.0).sum(1) / finite.sum(1)
        out["replicates"] = {"content_fraction_mean": np.where(finite.any(1), mean, np.nan)}
    return out
