"""A model against a baseline by the interval of their difference, paired replicate by replicate
(atlas.measures.uncertainty.paired_difference; the flags of atlas.site.honesty).

Planted: images differ a lot in difficulty, which moves the model's and the baseline's numbers
together, and the model is a little better on every image. The two intervals overlap (the overlap
rule says "not above"), the paired difference does not reach 0. Control: no difference at all,
and the paired interval covers 0 at about its level."""

from __future__ import annotations

import numpy as np
import pytest
from test_honest_site import _eval_row

from atlas.measures.uncertainty import (Uncertainty, half_samples, jackknife, paired_difference, quantile,
                                        resampling_id, versus)
from atlas.records import Baseline
from atlas.site.honesty import baseline_flag
from atlas.site import render_site
from atlas.site.measure_words import WORDS
from conftest import make_synthetic_results

SEG = WORDS["seg_miou"].title


def scored(per_image: np.ndarray, weights: np.ndarray, level: float = 0.95) -> Uncertainty:
    """The mean over images and its replicates under ``weights``, as the measures compute them."""
    u = Uncertainty(level, centre="mean")
    u.add(float(per_image.mean()), weights @ per_image / weights.sum(axis=1), *jackknife(weights))
    return u


def shared_difficulty(gap: float, seed: int, n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hard = rng.normal(0.5, 0.15, n)  # how hard each image is, for both
    return hard + gap + rng.normal(0, 0.01, n), hard + rng.normal(0, 0.01, n)


def test_shared_difficulty_cancels_in_the_paired_difference():
    w = half_samples(24, 200, seed=0)
    model, base = (scored(x, w) for x in shared_difficulty(0.03, seed=1))
    (lo, hi), (_, bhi) = model.interval(), base.interval()
    assert lo < bhi  # the intervals overlap: the overlap rule cannot tell them apart
    d = paired_difference(model, base)
    assert d.value == pytest.approx(model.value - base.value)
    dlo, dhi = d.interval()
    assert 0 < dlo < 0.03 < dhi  # the paired difference clears 0 and covers the planted gap
    assert dhi - dlo < 0.25 * (hi - lo)
    # it is the interval of the per-image differences, computed directly
    direct = scored(shared_difficulty(0.03, seed=1)[0] - shared_difficulty(0.03, seed=1)[1], w)
    assert d.interval() == pytest.approx(direct.interval())
    got = versus(model, {"colour": base})["colour"]
    assert (got["lo"], got["hi"], got["value"]) == pytest.approx((dlo, dhi, d.value))
    assert got["lo"] == pytest.approx(got["value"] - quantile(0.95, got["df"]) * got["se"])


def test_no_difference_covers_zero_at_the_level():
    """Control: the same expected score; the paired 95% interval covers 0 in about 95% of draws."""
    w = half_samples(24, 100, seed=0)
    covered = [np.prod(paired_difference(*(scored(x, w) for x in shared_difficulty(0.0, seed=s))).interval()) <= 0
               for s in range(300)]
    assert 0.91 <= np.mean(covered) <= 0.99


def test_seeds_pair_by_position_and_add_their_variances():
    w = half_samples(10, 50, seed=0)
    reps = np.random.default_rng(0).normal(0.5, 0.02, (3, 50))
    model = Uncertainty(centre="mean")
    for s, p in enumerate((0.50, 0.56, 0.53)):
        model.add(p, reps[s] + p, *jackknife(w))
    base = Uncertainty(centre="mean")  # one seed (chance, constant): paired with every seed of the model
    base.add(0.40, reps[0] * 0 + 0.40, *jackknife(w))
    d = paired_difference(model, base)
    assert d.value == pytest.approx(model.value - 0.40) and d.points == pytest.approx([0.10, 0.16, 0.13])
    assert d.interval() == pytest.approx(np.subtract(model.interval(), 0.40))  # a constant moves the interval
    three = Uncertainty(centre="mean")
    for p in (0.40, 0.46, 0.43):
        three.add(p, reps[0] * 0 + p, *jackknife(w))
    assert np.var(paired_difference(model, three).points, ddof=1) == pytest.approx(
        np.var(model.points, ddof=1) + np.var(three.points, ddof=1) - 2 * np.cov(model.points, three.points)[0, 1])
    two = Uncertainty(centre="mean")
    two.add(0.4, reps[0], *jackknife(w))
    two.add(0.4, reps[1], *jackknife(w))
    with pytest.raises(ValueError, match="cannot pair 3 seeds with 2"):
        paired_difference(model, two)
    other = Uncertainty()
    other.add(0.4, reps[0][:20], *jackknife(w[:20]))
    with pytest.raises(ValueError, match="different resamplings"):
        paired_difference(other, base)
    assert versus(model, {"other": other}) is None  # what cannot be paired is left out, not guessed


def test_replicates_of_other_weights_are_not_paired(caplog):
    """As many replicates, but of other halves (another seed of the weights): refused, with a log
    line, where the records name their weights (:func:`resampling_id`)."""
    w, other = half_samples(12, 40, seed=0), half_samples(12, 40, seed=1)
    reps = np.random.default_rng(0).normal(0.5, 0.02, 40)
    a, b = Uncertainty(), Uncertainty()
    a.add(0.5, reps, *jackknife(w), resampling_id(w))
    b.add(0.4, reps - 0.1, *jackknife(other), resampling_id(other))
    with pytest.raises(ValueError, match="different resamplings"):
        paired_difference(a, b)
    with caplog.at_level("WARNING", logger="atlas.measures.uncertainty"):
        assert versus(a, {"colour": b}) is None
    assert "no paired difference from the colour baseline" in caplog.text
    same = Uncertainty()
    same.add(0.4, reps - 0.1, *jackknife(w), resampling_id(w))
    assert paired_difference(a, same).interval() == pytest.approx((0.1, 0.1))
    assert Uncertainty.from_state(same.state()).resamplings == [resampling_id(w)]


def _paired(value: float, se: float, df: int = 30) -> dict:
    half = quantile(0.95, df) * se
    return {"value": value, "lo": value - half, "hi": value + half, "se": se, "df": df}


@pytest.mark.parametrize("paired, kind", [(None, "not above"), (_paired(0.04, 0.01), None),
                                          (_paired(-0.04, 0.01), "below"), (_paired(0.02, 0.015), "not above")])
def test_flags_read_the_paired_difference(paired, kind):
    row = Baseline("seg_miou", "", 0.55, 0.45, 0.65)  # any record with value / lo / hi
    row.versus = None if paired is None else {"colour": paired}
    flag = baseline_flag(row, [Baseline("seg_miou", "colour", 0.51, 0.41, 0.61)])
    assert (flag and flag["kind"]) == kind
    if flag and paired:
        assert f"the paired difference is {paired['value']:.3f} [{paired['lo']:.3f}" in flag["title"]


def test_below_is_widened_for_the_number_of_baselines():
    """A difference just under 0 at 95% is ▼ against one baseline; among five simple baselines the
    interval ▼ reads is at 99% (Bonferroni), and it reaches 0: ≈, not ▼."""
    close = _paired(-0.025, 0.01)  # 95% upper end -0.0046; 99% upper end +0.0025
    row = Baseline("seg_miou", "", 0.50, 0.40, 0.60)
    row.versus = {"colour": close}
    one = [Baseline("seg_miou", "colour", 0.525, 0.43, 0.62)]
    assert baseline_flag(row, one)["kind"] == "below"
    five = one + [Baseline("seg_miou", n, 0.2, 0.1, 0.3) for n in ("chance", "constant", "position",
                                                                   "colour + position")]
    row.versus.update({b.name: _paired(0.3, 0.01) for b in five[1:]})
    flag = baseline_flag(row, five)
    assert flag["kind"] == "not above" and "under 0 but not at the 99% level that ▼ reads for 5 baselines" in flag["title"]
    far = _paired(-0.05, 0.01)  # under 0 at 99% too
    row.versus["colour"] = far
    assert baseline_flag(row, five)["kind"] == "below"


def test_seeds_undefined_on_either_side_are_left_out():
    w = half_samples(10, 50, seed=0)
    reps = np.random.default_rng(1).normal(0.0, 0.02, (3, 50))
    a, b = Uncertainty(centre="mean"), Uncertainty(centre="mean")
    for p, q, r in ((0.5, 0.3, reps[0]), (np.nan, 0.9, reps[1]), (0.7, 0.5, reps[2])):
        a.add(p, r + p, *jackknife(w))
        b.add(q, r * 0.5 + q, *jackknife(w))
    d = paired_difference(a, b)
    assert d.value == pytest.approx(0.2) and d.points == pytest.approx([0.2, 0.2])  # not 0.6 - 0.567
    lo, hi = d.interval()
    assert lo < d.value < hi


def test_replicates_undefined_on_each_side_keep_the_difference_its_interval():
    """8% undefined replicates on each side (each keeps its interval) and on different halves: 16%
    undefined differences. The difference keeps its interval from the replicates both define."""
    w = half_samples(12, 50, seed=0)
    rng = np.random.default_rng(2)
    ra, rb = rng.normal(0.6, 0.02, 50), rng.normal(0.5, 0.02, 50)
    ra[:4], rb[4:8] = np.nan, np.nan
    a, b = Uncertainty(), Uncertainty()
    a.add(0.6, ra, *jackknife(w))
    b.add(0.5, rb, *jackknife(w))
    assert np.isfinite(a.interval()).all() and np.isfinite(b.interval()).all()
    assert np.isfinite(paired_difference(a, b).interval()).all()
    rb[8:12] = np.nan  # 16% on one side: that side has no interval, nor has the difference
    b2 = Uncertainty()
    b2.add(0.5, rb, *jackknife(w))
    assert not np.isfinite(paired_difference(a, b2).interval()).any()


def test_leaderboard_tiers_read_the_paired_difference():
    """Two models on the same images, one a little better on every image: the intervals overlap (one
    tier by overlap), the paired difference does not reach 0 (two tiers). Control: no difference,
    one tier; replicates of other weights: the overlap rule."""
    from atlas.site.leaderboard import rank_tiers, tier_gaps

    w = half_samples(24, 200, seed=0)
    better, worse = (scored(x, w) for x in shared_difficulty(0.03, seed=1))
    rows = [(u.value, *u.interval()) for u in (better, worse)]
    assert rows[1][2] > rows[0][1]  # the intervals overlap
    assert rank_tiers(rows) == [(1, True), (1, True)]
    tiers = rank_tiers(rows, [better, worse])
    assert tiers == [(1, False), (2, False)]
    (gap,) = [g for g in tier_gaps(tiers, [better, worse]) if g]
    assert gap[0] == 0 and gap[1]["lo"] < -0.03 < gap[1]["hi"] < 0  # this one minus the better one
    same = [scored(x, w) for x in shared_difficulty(0.0, seed=1)]
    assert np.prod(paired_difference(*same).interval()) <= 0  # this draw's difference covers 0
    assert rank_tiers([(u.value, *u.interval()) for u in same], same) == [(1, True), (1, True)]
    other = Uncertainty(0.95, centre="mean")
    x = shared_difficulty(0.03, seed=1)[1]
    other.add(float(x.mean()), half_samples(24, 200, seed=9) @ x / 12, *jackknife(w), "other weights")
    better.resamplings = ["these weights"]
    assert rank_tiers(rows, [better, other]) == [(1, True), (1, True)]  # not paired: the intervals overlap


def test_ranks_of_equal_models_hold_family_wise():
    """Ten models of equal skill on the same images: the ranking splits the column (a rank other than
    "1=") in at most about 1 draw in 20, while the highest minus the lowest at 95% alone clears 0 in
    most draws (the order picks the pair). A model planted better on every image is still told apart,
    and the others stay one tier."""
    from atlas.site.leaderboard import rank_tiers, tier_gaps

    w = half_samples(24, 200, seed=0)

    def draw(seed: int, planted: float = 0.0) -> list[Uncertainty]:
        rng = np.random.default_rng(seed)
        hard = rng.normal(0.5, 0.15, 24)  # how hard each image is, for all ten
        us = [scored(hard + rng.normal(0, 0.02, 24) + (planted if i == 0 else 0.0), w) for i in range(10)]
        return sorted(us, key=lambda u: -u.value)

    draws, splits, extremes = 60, 0, 0
    for seed in range(draws):
        us = draw(seed)
        splits += any(t[0] > 1 for t in rank_tiers([(u.value, *u.interval()) for u in us], us))
        extremes += paired_difference(us[0], us[-1]).interval()[0] > 0
    assert splits <= 0.1 * draws and extremes >= 0.4 * draws, (splits, extremes)
    us = draw(0, planted=0.05)
    tiers = rank_tiers([(u.value, *u.interval()) for u in us], us)
    assert tiers == [(1, False)] + [(2, True)] * 9
    gap = tier_gaps(tiers, us)[1][1]  # the runner-up minus the planted one, at 1 - 5% / 45
    plain = paired_difference(us[1], us[0]).interval()
    assert gap["hi"] < 0 and gap["hi"] - gap["lo"] > 1.5 * (plain[1] - plain[0])


def test_a_change_of_input_size_reads_the_paired_difference():
    """The same images at two sizes, every image a little higher at the second: the intervals overlap,
    the paired change does not reach 0. Records without replicates fall back to overlap."""
    from types import SimpleNamespace

    from atlas.records import MeasureRow, row_id
    from atlas.site.resolution import size_change

    w = half_samples(24, 200, seed=0)
    high, low = (scored(x, w) for x in shared_difficulty(0.03, seed=1))
    rows = [MeasureRow(11, 1.0, "tokens", "positional_nce", u.value, None, *u.interval()) for u in (low, high)]
    records = [SimpleNamespace(uncertainties={row_id(r): u.state()}) for r, u in zip(rows, (low, high))]
    d = size_change(records[0], rows[0], records[1], rows[1])
    assert d["paired"] and d["apart"] and 0 < d["lo"] < 0.03 < d["hi"]
    bare = SimpleNamespace(uncertainties={})
    assert size_change(bare, rows[0], bare, rows[1])["apart"] is False  # by overlap: not told apart


def test_a_models_changes_of_input_size_hold_family_wise():
    """Twelve changes of one model where nothing changes (the resolution page's summary): tested at
    the Bonferroni level over them, some row reads "told apart" in at most about 1 draw in 20; each
    at 95% alone, in far more. A change planted on every image is still told apart, paired and by
    widened overlap of intervals that keep their se and df."""
    from types import SimpleNamespace

    from atlas.measures.uncertainty import bonferroni, row_fields
    from atlas.records import MeasureRow, row_id
    from atlas.site.resolution import size_change

    w = half_samples(24, 200, seed=0)
    each = bonferroni(0.95, 12)

    def changes(seed: int, planted: float = 0.0):
        rng = np.random.default_rng(seed)
        out = []
        for i in range(12):
            hard = rng.normal(0.5, 0.15, 24)  # the images' difficulty, shared by both sizes
            low, high = (scored(hard + rng.normal(0, 0.02, 24) + (planted if j else 0.0), w) for j in range(2))
            rows = [MeasureRow(11, 1.0, "tokens", f"m{i}", **row_fields(u)) for u in (low, high)]
            records = [SimpleNamespace(uncertainties={row_id(r): u.state()}) for r, u in zip(rows, (low, high))]
            out.append((records[0], rows[0], records[1], rows[1]))
        return out

    draws = 60
    family = sum(any(size_change(*c, level=each)["apart"] for c in changes(s)) for s in range(draws))
    alone = sum(any(size_change(*c)["apart"] for c in changes(s)) for s in range(draws))
    assert family <= 0.1 * draws and alone >= 0.25 * draws, (family, alone)
    planted = changes(0, planted=0.05)
    assert all(size_change(*c, level=each)["apart"] and size_change(*c, level=each)["paired"] for c in planted)
    bare = SimpleNamespace(uncertainties={})
    a, b = planted[0][1], planted[0][3]
    far = MeasureRow(11, 1.0, "tokens", "m0", b.value + 0.5, lo=b.lo + 0.5, hi=b.hi + 0.5, se=b.se, df=b.df)
    assert size_change(bare, a, bare, far, level=each)["apart"] is True  # by overlap, widened at se and df
    assert size_change(bare, a, bare, b, level=each)["apart"] is False


def test_model_page_clears_a_baseline_its_interval_overlaps(tmp_path):
    docs = tmp_path / "site_src"
    results = make_synthetic_results(docs, comparisons=False)
    m = results.models[0]
    m.baselines.append(Baseline("seg_miou", "colour", 0.54, 0.49, 0.59))  # overlaps 0.55 [0.52, 0.58]
    rows = [r for r in m.measures if r.measure == "seg_miou"]
    for r in rows:  # the difference from every simple baseline, paired: all above 0
        r.versus = {b.name: _paired(r.value - b.value, 0.004) for b in m.baselines if b.measure == "seg_miou"}
    render_site(results, docs)
    assert "atlas-flag" not in _eval_row((docs / "models/dino-vit-s16.md").read_text(encoding="utf-8"),
                                         SEG)
