"""Uncertainty of the atlas's numbers: resampling over images, and intervals from it.

Every measure of the atlas is a function of sums over images (cluster counts per position,
per-image confusion matrices, per-image similarity sums). Recomputing it on a subset of the
images is a reweighting of those sums: replicate ``b`` keeps image ``i`` when ``w[b, i] = 1``. The
measure modules compute every replicate from the same sums as the point estimate (with all
weights 1 a replicate *is* the point estimate, tested), so an interval never comes from a second
implementation of the number it qualifies.

The resampling is the delete-d jackknife (Shao & Wu 1989): random halves of the images
(``d = N - floor(N / 2)`` left out, ``resamples`` of them), and leave-one-out (``d = 1``) for the
measures that are means over *pairs* of images. Its variance estimate is
``v = (r / d) * mean_b (theta_b - mean theta)^2`` with ``r = N - d`` images kept, and the interval
is ``value ± t * sqrt(v)``, ``t`` the quantile of Student's t with ``U - 1`` degrees of freedom
(``U`` resampling units: images, groups or frame blocks; :func:`jackknife`). The variance of ``U``
units is known to ``U - 1`` degrees of freedom: with a normal quantile, 4 units covered the true
mean in 87% of repetitions of a planted test at 95%, the t quantile in 97%
(``tests/test_intervals_grouped.py``). Fewer than 3 units give no interval. Unlike the bootstrap it never counts an image twice, which matters for
the chance-corrected scores (adjusted mutual information, the normalised conditional entropy):
duplicated images look like extra agreement, and in a planted test percentile intervals of the
bootstrap covered the true AMI in 18% of repetitions where random halves covered it in 97%.

Images that are not independent (frames of a video, a drive) are resampled in *units* instead
(:func:`resampling_units`, :func:`unit_half_samples`): whole groups (e.g. CamVid's sequence
prefix) when there are at least :data:`MIN_RESAMPLE_GROUPS` of them, otherwise contiguous blocks of
frames in frame order (about ``sqrt(N)`` blocks in all, of about ``sqrt(N)`` frames, never across a
group boundary). Each replicate keeps a random ``floor(U / 2)`` of the ``U`` units, so a replicate
removes whole stretches of correlated frames and the spread of the replicates sees the correlation;
random halves of single frames treat neighbours as independent and give intervals too narrow (in a
planted AR(1) test they covered the true mean in about 60% of repetitions, blocks in about 93%).
The variance is the grouped delete-d jackknife's, ``(r / d)`` in units; :func:`factor` estimates it
from the weights as mean images kept over mean images left out, which equals ``r / d`` in units in
expectation (exactly for equal units).

Where a measure depends on the k-means seed, the interval adds the variance of the value across
seeds to the mean resampling variance (law of total variance), so one interval covers the choice
of images and the clustering's randomness; the seeds' own spread is reported beside it.

A model and a baseline of one protocol are scored on the same images with the same weights, so
their replicates pair up: :func:`paired_difference` gives the interval of the difference from the
replicates' differences, where whatever makes an image hard for both cancels (in a planted test
with shared image difficulty the paired interval is 0.15 times as wide as the model's own, and
with no difference it covers 0 in 96% of 300 draws at 95%; ``tests/test_paired_differences.py``).
Two models on one leaderboard are compared the same way: each keeps the uncertainty of its chosen
number (``ModelResult.uncertainties``).

Example
-------
>>> w = half_samples(5, 4, seed=0)
>>> w.shape, w.sum(axis=1).tolist()
((4, 5), [2.0, 2.0, 2.0, 2.0])
>>> u = Uncertainty(level=0.95)
>>> u.add(0.5, np.array([0.45, 0.55, 0.5, 0.5]), *jackknife(w))
>>> [round(x, 3) for x in u.interval()]
[0.42, 0.58]
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
from scipy.stats import chi2, norm, t

from ..inputs.splits import frame_order

log = logging.getLogger(__name__)

__all__ = ["MIN_RESAMPLE_GROUPS", "half_samples", "resampling_units", "unit_half_samples", "factor",
           "jackknife", "leave_one_out", "Uncertainty", "resampling_id", "quantile", "paired_difference", "versus"]

#: Groups needed to resample whole groups; with fewer, contiguous blocks of frames within the groups.
MIN_RESAMPLE_GROUPS = 10
#: The lower chi-square quantile behind the seeds' term in the degrees of freedom
#: (:meth:`Uncertainty.spread`): the term enters at its 95% upper confidence bound.
SEED_BOUND = 0.05


def half_samples(n: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n)`` 0/1 weights: each row keeps a random ``floor(n / 2)`` of the images."""
    if n < 2 or resamples < 1:
        raise ValueError(f"need n >= 2 images and resamples >= 1, got {n} and {resamples}")
    rng = np.random.default_rng([int(seed), 7919])
    keep = np.argsort(rng.random((resamples, n)), axis=1)[:, : n // 2]
    w = np.zeros((resamples, n))
    np.put_along_axis(w, keep, 1.0, axis=1)
    return w


def resampling_units(groups, names=None) -> tuple[np.ndarray, dict[str, Any]]:
    """The resampling unit of every image (ids ``0..U-1``) and the rule, as ids and numbers.

    Parameters
    ----------
    groups : sequence of str
        Group of every image (e.g. :attr:`atlas.inputs.splits.Split.groups` of the images).
    names : sequence of str, optional
        Image names; within a group, frame order is the order of the names, digit runs compared as
        numbers (:func:`atlas.inputs.splits.frame_order`; default: given order).

    Rule: every image its own group -> the images (independent); at least
    :data:`MIN_RESAMPLE_GROUPS` groups -> the groups; otherwise contiguous blocks: ``B = max(2,
    round(sqrt(N)))`` blocks in all (at most ``N``), each group cut into ``max(1, round(n_g B / N))``
    blocks of near-equal size in frame order, so blocks hold about ``sqrt(N)`` frames and never
    straddle two groups. The rule is ``{"unit": "images" | "groups" | "frame blocks", "units": U,
    "groups": number of groups}`` (the site words it).

    >>> u, rule = resampling_units(["a"] * 9 + ["b"] * 7)
    >>> u.tolist(), rule
    ([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3], {'unit': 'frame blocks', 'units': 4, 'groups': 2})
    >>> resampling_units(list("abc"))[1]
    {'unit': 'images', 'units': 3, 'groups': 3}
    """
    groups = [str(g) for g in groups]
    n = len(groups)
    names = [str(i).zfill(12) for i in range(n)] if names is None else [str(x) for x in names]
    distinct = sorted(set(groups))
    if len(distinct) == n:
        return np.arange(n), {"unit": "images", "units": n, "groups": n}
    if len(distinct) >= MIN_RESAMPLE_GROUPS:
        index = {g: i for i, g in enumerate(distinct)}
        return (np.array([index[g] for g in groups], dtype=np.int64),
                {"unit": "groups", "units": len(distinct), "groups": len(distinct)})
    total = min(n, max(2, int(round(np.sqrt(n)))))
    units = np.empty(n, dtype=np.int64)
    u = 0
    for g in distinct:
        members = sorted((i for i in range(n) if groups[i] == g), key=lambda i: frame_order(names[i]))
        for block in np.array_split(np.array(members), max(1, int(round(len(members) * total / n)))):
            units[block] = u
            u += 1
    return units, {"unit": "frame blocks", "units": u, "groups": len(distinct)}


def unit_half_samples(units, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n)`` 0/1 weights: each row keeps the images of a random ``floor(U / 2)`` of the
    ``U`` units (``units``: unit id of every image, as :func:`resampling_units`). One unit per image
    gives exactly :func:`half_samples`.

    >>> unit_half_samples([0, 0, 1, 1, 2, 2], 3, seed=0).sum(axis=1).tolist()
    [2.0, 2.0, 2.0]
    """
    units = np.asarray(units, dtype=np.int64)
    n_units = int(units.max()) + 1 if units.size else 0
    if n_units < 2 or resamples < 1:
        raise ValueError(f"need >= 2 units and resamples >= 1, got {n_units} and {resamples}")
    return half_samples(n_units, resamples, seed)[:, units]


def factor(weights: np.ndarray) -> float:
    """``r / d`` of delete-d jackknife weights: images kept over images left out, averaged over the
    replicates (the ratio of the means). For images or equal units this is exactly ``r / d``; for
    units of unequal size (groups, frame blocks) it is ``r / d`` in units in expectation (a random
    ``r`` of ``U`` units keeps ``r / U`` of the images on average).

    >>> factor(np.array([[1, 1, 0, 0, 0], [0, 0, 1, 1, 0]]))
    0.6666666666666666
    """
    w = np.asarray(weights, dtype=np.float64)
    kept = float(w.sum(axis=1).mean())
    return kept / (w.shape[1] - kept)


def jackknife(weights: np.ndarray | None) -> tuple[float, int | None]:
    """``(r / d, degrees of freedom)`` of delete-d jackknife weights, the arguments of
    :meth:`Uncertainty.add` after the replicates: :func:`factor`, and ``U - 1`` for the ``U``
    resampling units (images of one unit are kept and left out together, so their columns of the
    weights are equal). ``(1.0, None)`` without weights.

    >>> jackknife(unit_half_samples([0, 0, 1, 1, 2, 2, 3, 3], 50, seed=0))
    (1.0, 3)
    """
    if weights is None:
        return 1.0, None
    w = np.asarray(weights, dtype=np.float64)
    return factor(w), int(np.unique(w.T, axis=0).shape[0]) - 1


def leave_one_out(n: int) -> tuple[float, int]:
    """``(r / d, degrees of freedom)`` of the leave-one-out jackknife over ``n`` images."""
    return n - 1.0, n - 1


class Uncertainty:
    """Collects one number's value and resampling replicates over k-means seeds; gives its interval.

    >>> u = Uncertainty(level=0.9)
    >>> u.add(0.50, np.array([0.45, 0.5, 0.55]), 1.0, 9)   # seed 0: value + replicates (10 units)
    >>> u.add(0.52, np.array([0.5, 0.52, 0.56]), 1.0, 9)   # seed 1
    >>> u.value, round(u.seed_spread, 3), u.interval()[0] < 0.5 < u.interval()[1]
    (0.5, 0.02, True)
    """

    def __init__(self, level: float = 0.95, centre: str = "first"):
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {level}")
        if centre not in ("first", "mean"):
            raise ValueError(f"centre must be 'first' or 'mean', got {centre!r}")
        self.level = level
        self.centre = centre
        self.points: list[float] = []
        self.variances: list[float] = []
        self.dfs: list[int] = []
        # each seed's replicates and r / d as given (None: none), for paired differences
        self.replicates: list[np.ndarray | None] = []
        self.factors: list[float] = []
        self.given_dfs: list[int | None] = []
        self.resamplings: list[str | None] = []

    def add(self, point: float, replicates: np.ndarray | None = None, r_over_d: float = 1.0,
            df: int | None = None, resampling: str | None = None) -> None:
        """One seed's value and (optionally) its delete-d jackknife replicates with ``r / d`` and the
        degrees of freedom of their variance (:func:`jackknife`; None: a normal quantile). A seed
        whose replicates are undefined in more than 1 in 10 gives no variance: the defined ones
        would be a selected part of the halves. ``resampling``: :func:`resampling_id` of the
        weights, for numbers that are paired with others (:func:`paired_difference` refuses
        replicates of two resamplings)."""
        self.points.append(float(point))
        theta = None if replicates is None else np.asarray(replicates, dtype=np.float64).ravel()
        self.replicates.append(theta)
        self.factors.append(float(r_over_d))
        self.given_dfs.append(None if df is None else int(df))
        self.resamplings.append(resampling)
        if theta is not None:
            finite = theta[np.isfinite(theta)]
            if len(finite) >= 2 and len(finite) >= 0.9 * len(theta):
                self.variances.append(float(r_over_d * ((finite - finite.mean()) ** 2).mean()))
                if df is not None:
                    self.dfs.append(int(df))

    @property
    def value(self) -> float:
        """The reported value, and the centre of the interval.

        ``centre="first"`` (the default): the first seed's value (the atlas seed). The atlas's own
        measures use it, because its figures (cluster maps, galleries) show that seed's clustering.
        ``centre="mean"``: the mean over the seeds with a finite value. The evaluation uses it: its
        leaderboard row is the block chosen on the selection images with a seed of its own (the
        atlas seed), whose clustering also covers the test images; so that seed is not among the
        ones it reports (:func:`atlas.pipeline.evaluation_run.evaluation_seeds`).

        >>> u = Uncertainty(centre="mean"); u.add(0.3); u.add(0.5); u.add(float("nan"))
        >>> u.value
        0.4
        """
        if self.centre == "first":
            return self.points[0]
        finite = [p for p in self.points if np.isfinite(p)]
        return float(np.mean(finite)) if finite else float("nan")

    @property
    def seed_spread(self) -> float | None:
        """max - min of the values over seeds (None with one seed or none finite)."""
        finite = [p for p in self.points if np.isfinite(p)]
        return float(max(finite) - min(finite)) if len(finite) > 1 else None

    def interval(self, bounds: tuple[float | None, float | None] = (None, None)) -> tuple[float, float]:
        """``value ± q * se``, ``se^2`` = mean resampling variance + variance of the value over seeds,
        clipped to the measure's possible ``bounds`` (a symmetric interval of a ratio can cross them).
        ``q``: Student's t quantile (:meth:`spread`: the resampling's degrees of freedom, ``U - 1``
        for ``U`` units, combined with the seeds' by Welch-Satterthwaite; the normal quantile when
        none were given); NaN (no interval) below 2 resampling degrees of freedom, i.e. fewer than
        3 units.

        The seeds' term is the variance of the reported value over seeds: one seed's variance for
        ``centre="first"``, that over the number of seeds for ``centre="mean"``; at the default 3
        seeds it is known to 2 degrees of freedom, which :meth:`spread` carries into the quantile."""
        se, df = self.spread()
        if not np.isfinite(se):
            return float("nan"), float("nan")
        return interval_at(self.value, se, df, self.level, bounds)

    def spread(self) -> tuple[float, float | None]:
        """``(se, degrees of freedom)`` behind :meth:`interval` (``se`` NaN where it gives none; df
        None: the normal quantile).

        ``se^2`` = resampling variance (``U - 1`` degrees of freedom) + the seeds' term, from the
        variance ``s^2`` of the value over ``S`` seeds (``S - 1`` degrees of freedom): ``s^2`` for
        one seed's value (``centre="first"``), ``s^2 / S`` for the mean over seeds.

        The degrees of freedom are Welch-Satterthwaite's for that sum, with the seeds' term at its
        95% upper confidence bound (``s^2 (S - 1) / chi2_{S-1}(0.05)``, 19.5 ``s^2`` at 3 seeds).
        Where the seeds vary far more than the images (many images, as in the zoo) the sum is
        known to about ``S - 1`` degrees of freedom: ``U - 1`` under-covers (seeds 10x the images'
        se, 3 seeds: 90% at 95%). Plain Welch-Satterthwaite still under-covers at the levels a
        ranking or a "highest in this atlas" claim widens to, because a seed spread that comes out
        small by chance also buys many degrees of freedom: at 99.89% (10 models' 45 pairs) the
        truth fell outside 0.3-0.5% of the time for 0.11% nominal, the bound keeps it at or below
        nominal at 95% and 99.89% (``tests/test_uncertainty.py``). Where the seeds barely vary
        the bound is still small next to the resampling variance and the degrees of freedom stay
        near ``U - 1``.

        >>> u = Uncertainty()
        >>> for seed_offset in (0.0, 0.3, -0.3):   # seeds that vary far more than the halves
        ...     u.add(0.5 + seed_offset, np.array([0.49, 0.51] * 10) + seed_offset, 1.0, 19)
        >>> se, df = u.spread(); round(df, 2)
        2.0
        """
        finite = [p for p in self.points if np.isfinite(p)]
        df = min(self.dfs) if self.dfs else None
        if not self.variances or not np.isfinite(self.value) or (df is not None and df < 2):
            return float("nan"), df
        resampling = float(np.mean(self.variances))
        seeds = float(np.var(finite, ddof=1)) if len(finite) > 1 else 0.0
        if self.centre == "mean":
            seeds /= len(finite)
        if seeds > 0.0:
            upper = seeds * (len(finite) - 1) / float(chi2.ppf(SEED_BOUND, len(finite) - 1))
            df = satterthwaite([(resampling, df), (upper, len(finite) - 1)])
        return float(np.sqrt(resampling + seeds)), df

    def state(self) -> dict:
        """JSON-able state (the shared baseline store keeps baselines' uncertainties with them):
        :meth:`from_state` gives an equal object."""
        return {"level": self.level, "centre": self.centre, "points": self.points, "factors": self.factors,
                "dfs": self.given_dfs, "resamplings": self.resamplings,
                "replicates": [None if r is None else r.tolist() for r in self.replicates]}

    @classmethod
    def from_state(cls, state: dict) -> "Uncertainty":
        u = cls(state["level"], state["centre"])
        for point, reps, f, df, rs in zip(state["points"], state["replicates"], state["factors"], state["dfs"],
                                          state["resamplings"]):
            u.add(point, None if reps is None else np.asarray(reps, dtype=np.float64), f, df, rs)
        return u


def interval_at(value: float, se: float, df: float | None, level: float,
                bounds: tuple[float | None, float | None] = (None, None)) -> tuple[float, float]:
    """``value ± quantile(level, df) * se``, clipped to ``bounds``: an interval at any level from
    the standard error and degrees of freedom behind another (:meth:`Uncertainty.spread`, or the
    ``se`` / ``df`` a record row keeps).

    >>> [round(x, 3) for x in interval_at(0.5, 0.04, 4.0, 0.995)], interval_at(0.9, 0.1, None, 0.95, (0.0, 1.0))[1]
    ([0.276, 0.724], 1.0)
    """
    half = float(quantile(level, df) * se)
    lo, hi = value - half, value + half
    return (lo if bounds[0] is None else max(lo, bounds[0]), hi if bounds[1] is None else min(hi, bounds[1]))


def bonferroni(level: float, family: int) -> float:
    """The level of each of ``family`` intervals (or tests) so that all hold together at ``level``.

    >>> round(bonferroni(0.95, 6), 5), bonferroni(0.95, 1), bonferroni(0.95, 0)
    (0.99167, 0.95, 0.95)
    """
    return 1.0 - (1.0 - level) / max(1, family)


def satterthwaite(terms: list[tuple[float, float | None]]) -> float | None:
    """Welch-Satterthwaite degrees of freedom of a sum of variance estimates ``[(variance, df)]``
    (df None: known exactly, no term in the denominator); None where no term has any.

    >>> satterthwaite([(1.0, 10), (1.0, 10)]), satterthwaite([(1.0, None), (0.0, 2)])
    (20.0, None)
    """
    denominator = sum(v * v / df for v, df in terms if df is not None and v > 0.0)
    if denominator == 0.0:
        return None
    return float(sum(v for v, _ in terms) ** 2 / denominator)


def resampling_id(weights: np.ndarray | None) -> str | None:
    """A short digest of replicate weights (None without): two numbers' replicates pair up only
    under the same weights.

    >>> resampling_id(half_samples(6, 4, 0)) == resampling_id(half_samples(6, 4, 0)) != resampling_id(half_samples(6, 4, 1))
    True
    """
    if weights is None:
        return None
    w = np.asarray(weights)
    bits = np.packbits(w != 0)  # 0/1 weights: one bit each
    return hashlib.blake2b(repr(w.shape).encode() + bits.tobytes(), digest_size=8).hexdigest()


def quantile(level: float, df: float | None) -> float:
    """The two-sided ``level`` quantile of Student's t at ``df`` degrees of freedom (None: normal).

    >>> round(quantile(0.95, None), 3), round(quantile(0.95, 4), 3)
    (1.96, 2.776)
    """
    return float(norm.ppf(0.5 + level / 2) if df is None else t.ppf(0.5 + level / 2, df))


def paired_difference(a: Uncertainty, b: Uncertainty) -> Uncertainty:
    """``a - b`` with its interval, for two numbers scored on the same images with the same replicate
    weights (a model and a baseline of one protocol): each replicate's difference, so the variance
    is that of the difference, not the sum of the two variances. Images that are hard for both move
    both numbers together; the difference's interval leaves that shared part out, which comparing
    the two intervals by overlap cannot.

    Seeds pair by position; a number of one seed (a baseline the clustering does not touch) pairs
    with every seed of the other. The variance over seeds is then that of the per-seed differences
    (two models clustered with the same seed share its k-means training sample, so their seeds are
    not independent; the differences' variance holds whatever they share). A seed where
    either value is undefined is left out of the difference. Replicates undefined on one side are
    left out of the difference's variance when each side alone keeps its interval (at most 1 in 10
    undefined, :meth:`Uncertainty.add`): two sides at 8% each must not leave the difference without
    one.

    >>> w = half_samples(6, 4, seed=0)
    >>> a, b = Uncertainty(), Uncertainty()
    >>> a.add(0.60, np.array([0.58, 0.62, 0.55, 0.65]), *jackknife(w))
    >>> b.add(0.50, np.array([0.48, 0.52, 0.45, 0.55]), *jackknife(w))
    >>> d = paired_difference(a, b)
    >>> round(d.value, 3), [round(x, 3) for x in d.interval()]  # the shared ups and downs cancel
    (0.1, [0.1, 0.1])
    """
    na, nb = len(a.points), len(b.points)
    n = max(na, nb)
    if not na or not nb or na not in (1, n) or nb not in (1, n):
        raise ValueError(f"cannot pair {na} seeds with {nb}: give both the same number, or one of them one")
    if a.level != b.level:
        raise ValueError(f"cannot pair intervals at levels {a.level} and {b.level}")
    d = Uncertainty(a.level, a.centre)
    for i in range(n):
        ia, ib = i % na, i % nb
        ra, rb = a.replicates[ia], b.replicates[ib]
        ids = (a.resamplings[ia], b.resamplings[ib])
        if ra is not None and rb is not None and (ra.shape != rb.shape or (None not in ids and ids[0] != ids[1])):
            raise ValueError(f"replicates of different resamplings ({ra.size} and {rb.size} replicates, weights "
                             f"{ids[0]} and {ids[1]}) cannot be paired")
        point = a.points[ia] - b.points[ib]
        if not np.isfinite(point):
            continue
        reps = None if ra is None or rb is None else ra - rb
        if reps is not None and all(np.isfinite(r).mean() >= 0.9 for r in (ra, rb)):
            reps = reps[np.isfinite(reps)]
        d.add(point, reps, a.factors[ia], a.given_dfs[ia], ids[0])
    return d


def versus(u: Uncertainty, baselines: dict[str, Uncertainty]) -> dict[str, dict[str, Any]] | None:
    """``{baseline: {"value", "lo", "hi", "se", "df"}}``: ``u`` minus each baseline
    (:func:`paired_difference`), its interval at ``u``'s level, and the ``se`` and degrees of
    freedom behind it (an interval at another level: ``value ± quantile(level, df) * se``, as the
    site's flags take one for several baselines at once). None where none has an interval. A record
    carries it beside the number (``MeasureRow.versus``); the site's flags read it
    (:func:`atlas.site.honesty.baseline_flag`)."""
    out = {}
    for name, b in baselines.items():
        try:
            d = paired_difference(u, b)
        except ValueError as exc:  # not one resampling: no pairing (and no guess)
            log.warning("no paired difference from the %s baseline: %s", name, exc)
            continue
        (lo, hi), (se, df) = d.interval(), d.spread()
        if np.isfinite(lo) and np.isfinite(hi):
            out[name] = {"value": float(d.value), "lo": float(lo), "hi": float(hi), "se": se, "df": df}
    return out or None


def row_fields(u: Uncertainty, bounds: tuple[float | None, float | None] = (None, None),
               seed_spread: bool = True) -> dict:
    """The one uncertainty-to-row helper: ``value``, ``lo``, ``hi`` (interval clipped to ``bounds``;
    None where not finite), ``seed_spread`` (None unless ``seed_spread``) and the ``se`` / ``df``
    behind the interval (:meth:`Uncertainty.spread`; None without an interval) of a record row."""
    lo, hi = u.interval(bounds)
    se, df = u.spread()
    whole = np.isfinite(lo) and np.isfinite(hi)
    return dict(value=u.value, lo=_finite_or_none(lo), hi=_finite_or_none(hi),
                seed_spread=u.seed_spread if seed_spread else None,
                se=_finite_or_none(se) if whole else None, df=float(df) if whole and df is not None else None)


def _finite_or_none(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None
