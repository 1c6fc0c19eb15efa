"""Intervals for correlated frames (issue 26, items 3 and 5a): the evaluation resamples whole groups
or contiguous frame blocks, and its intervals then cover a planted autocorrelated mean at the
nominal rate where random halves of single frames do not; the value reported is the mean over the
k-means seeds; the Methods record says which split was used."""

from __future__ import annotations

import numpy as np
import pytest
from test_evaluation_protocol import CONFIG, write_dataset

from atlas.config import parse_config
from atlas.measures.segmentation import evaluate_label_maps, score_images
from atlas.measures.uncertainty import (MIN_RESAMPLE_GROUPS, Uncertainty, factor, half_samples, resampling_units,
                                        unit_half_samples)
from atlas.pipeline.evaluation_run import EvaluationRun
from atlas.site.methods import evaluation_words, units_rule


def frames(lengths) -> tuple[list[str], list[str]]:
    """Groups and names of frames in sequences of the given lengths (names in frame order)."""
    groups = [f"seq{g:02d}" for g, m in enumerate(lengths) for _ in range(m)]
    names = [f"seq{g:02d}_{f:04d}" for g, m in enumerate(lengths) for f in range(m)]
    return groups, names


def test_units_are_groups_or_contiguous_blocks_within_groups():
    groups, names = frames((120, 90, 70))
    perm = np.random.default_rng(0).permutation(len(names))  # the order of the images does not matter
    units, rule = resampling_units([groups[i] for i in perm], [names[i] for i in perm])
    units = units[np.argsort(perm)]  # back to frame order
    sizes = np.bincount(units)
    assert rule == {"unit": "frame blocks", "units": len(sizes), "groups": 3}
    assert abs(len(sizes) - np.sqrt(280)) <= 2  # about sqrt(N) blocks
    assert (np.diff(units) >= 0).all()  # contiguous in frame order
    assert all(len({groups[i] for i in np.flatnonzero(units == u)}) == 1 for u in range(len(sizes)))  # no straddle
    assert sizes.min() >= 0.6 * np.sqrt(280) and sizes.max() <= 1.5 * np.sqrt(280)
    groups, names = frames((5,) * MIN_RESAMPLE_GROUPS)
    units, rule = resampling_units(groups, names)
    assert rule == {"unit": "groups", "units": MIN_RESAMPLE_GROUPS, "groups": MIN_RESAMPLE_GROUPS} and (units == np.repeat(np.arange(MIN_RESAMPLE_GROUPS), 5)).all()
    units, rule = resampling_units(names)  # every image its own group: the images, as random halves
    assert rule["unit"] == "images" and np.array_equal(unit_half_samples(units, 7, 3), half_samples(len(names), 7, 3))


def test_unit_halves_keep_whole_units_and_factor_is_r_over_d_in_units():
    units = np.repeat(np.arange(5), [3, 1, 4, 2, 6])
    w = unit_half_samples(units, 4000, seed=1)
    for u in range(5):  # a unit is kept or left out as a whole
        assert (w[:, units == u] == w[:, units == u][:, :1]).all()
    assert set(w[:, np.unique(units, return_index=True)[1]].sum(axis=1)) == {2.0}  # floor(5 / 2) units kept
    assert factor(w) == pytest.approx(2 / 3, rel=0.02)  # r / d in units, from unequal units
    assert factor(unit_half_samples(np.repeat(np.arange(6), 4), 50, 0)) == 1.0  # equal units: exact


def coverage(lengths, phi: float, reps: int = 1000, resamples: int = 100) -> dict[str, float]:
    """How often the 95% interval of the mean over frames covers the true mean (0) of AR(1) frame
    scores, one independent series per sequence: random halves of the frames vs the units."""
    rng = np.random.default_rng(0)
    groups, names = frames(lengths)
    units, _ = resampling_units(groups, names)
    n = len(names)
    hits = {"random halves": 0, "groups or blocks": 0}
    for r in range(reps):
        x = []
        for m in lengths:
            e = rng.normal(size=m) * np.sqrt(1 - phi ** 2)
            a = np.empty(m)
            a[0] = rng.normal()
            for t in range(1, m):
                a[t] = phi * a[t - 1] + e[t]
            x.append(a)
        x = np.concatenate(x)
        for kind, w in (("random halves", half_samples(n, resamples, r)),
                        ("groups or blocks", unit_half_samples(units, resamples, r))):
            u = Uncertainty(0.95)
            u.add(float(x.mean()), (w @ x) / w.sum(axis=1), factor(w))
            lo, hi = u.interval()
            hits[kind] += lo <= 0.0 <= hi
    return {k: v / reps for k, v in hits.items()}


@pytest.mark.parametrize("lengths, phi", [((120, 90, 70), 0.6),  # few long sequences: frame blocks
                                          ((25, 18, 22, 30, 15, 20, 24, 19, 21, 26, 17, 23), 0.9)])  # groups
def test_autocorrelated_frames_are_covered_at_the_nominal_rate(lengths, phi):
    cov = coverage(lengths, phi)
    assert 0.88 <= cov["groups or blocks"] <= 1.0, cov
    assert cov["random halves"] < 0.8, cov  # the old resampling: intervals far too narrow


def test_few_units_are_covered_at_the_nominal_rate_with_the_t_quantile():
    """Planted: independent sequences of 5 frames, 4 or 6 of them (the demo's test sets have 4-6
    units). The variance of U units is known to U - 1 degrees of freedom: the t quantile covers
    the true mean (0) at about 95%; the normal quantile, the control, covered 85% at 4 units."""
    from atlas.measures.uncertainty import jackknife

    rng = np.random.default_rng(0)
    for n_units in (4, 6):
        units = np.repeat(np.arange(n_units), 5)
        hits = {"t": 0, "normal": 0}
        for r in range(600):
            x = np.repeat(rng.normal(size=n_units), 5) + 0.3 * rng.normal(size=units.size)
            w = unit_half_samples(units, 100, r)
            r_over_d, df = jackknife(w)
            assert df == n_units - 1
            for kind, dof in (("t", df), ("normal", None)):
                u = Uncertainty(0.95)
                u.add(float(x.mean()), (w @ x) / w.sum(axis=1), r_over_d, dof)
                lo, hi = u.interval()
                hits[kind] += lo <= 0.0 <= hi
        assert 0.92 <= hits["t"] / 600 <= 0.985, (n_units, hits)
        assert hits["normal"] / 600 < (0.89 if n_units == 4 else 0.93), (n_units, hits)


def test_too_few_units_or_undefined_replicates_give_no_interval():
    from atlas.measures.uncertainty import jackknife

    w = unit_half_samples(np.repeat([0, 1], 5), 20, 0)  # 2 units: each half is one unit
    u = Uncertainty(0.95)
    u.add(0.5, np.array([0.4, 0.6] * 10), *jackknife(w))
    assert np.isnan(u.interval()).all()
    u = Uncertainty(0.95)  # more than 1 in 10 replicates undefined: the defined ones are a selection
    u.add(0.5, np.array([0.4, 0.6] * 8 + [np.nan] * 4), 1.0, 9)
    assert np.isnan(u.interval()).all()
    u = Uncertainty(0.95)
    u.add(0.5, np.array([0.4, 0.6] * 9 + [np.nan] * 2), 1.0, 9)  # 1 in 10: an interval
    assert np.isfinite(u.interval()).all()
    u = Uncertainty(0.95)  # one seed's value undefined: no spread to speak of, not a spread of 0
    u.add(0.5)
    u.add(float("nan"))
    assert u.seed_spread is None


def evaluation(tmp_path, n_seq: int, frames_per_seq: int, extra: str = "") -> EvaluationRun:
    write_dataset(tmp_path, n_seq, frames_per_seq)
    cfg = parse_config(CONFIG.format(root=tmp_path).replace("[uncertainty]", extra + "[uncertainty]"))
    return EvaluationRun.from_config(cfg, [])


def test_a_fallback_split_is_recorded_and_its_intervals_drop_frame_blocks(tmp_path):
    run = evaluation(tmp_path, 2, 30)
    m = run.methods()
    assert m["split_kind"] == "contiguous blocks" and evaluation_words(m)["splits"].startswith("contiguous frame blocks")
    assert set(m["fold_groups"]) == {"selection", "support", "query"} and "seq01" in m["fold_groups"]["query"]
    units, rule = run.resampling["test"]
    assert rule["unit"] == "frame blocks" and m["resampling"]["test"] == {**rule, "images": len(units)}
    assert units_rule(rule) in evaluation_words(m)["intervals"]
    w = run._weights(units, 0)
    assert w.shape == (run.cfg.uncertainty.resamples, len(run.test))
    for u in np.unique(units):  # every replicate keeps or drops a block of frames as a whole
        assert (w[:, units == u] == w[:, units == u][:, :1]).all()
    assert (np.diff(units) >= 0).all()  # blocks are contiguous in frame order


def test_a_split_by_whole_groups_is_recorded(tmp_path):
    m = evaluation(tmp_path, 10, 4).methods()
    assert m["split_kind"] == "groups" and evaluation_words(m)["splits"].startswith("whole groups")
    held = [set(g) for g in m["fold_groups"].values()]
    assert not (held[0] & held[1]) and not (held[1] & held[2]) and not (held[0] & held[2])


def test_stego_methods_say_the_position_embeddings_are_resampled(tmp_path):
    m = evaluation(tmp_path, 10, 4, 'geometry = "stego"\n').methods()
    assert m["geometry"] == "stego"
    assert "position embeddings resampled for 320 px" in evaluation_words(m)["geometry"]


def test_the_reported_value_is_the_mean_over_seeds_not_seed_0(tmp_path):
    """Seed 0 only chooses: its clustering is perfect, seeds 1 and 2 are noise. The row shows their
    mean and the selection value is seed 0's; one seed (a labelling no seed changes) does both."""
    run = evaluation(tmp_path, 10, 4)
    masks = [np.asarray(m) for m in run._masks]
    rng = np.random.default_rng(0)
    labels = {0: masks, 1: [rng.integers(0, 3, m.shape) for m in masks], 2: [rng.integers(0, 3, m.shape) for m in masks]}
    w = run._weights(run.resampling["test"][0], 0)
    seg = run.segmentation(lambda k, seed: labels[seed], masks, [0, 1, 2], w)
    test, selection = [], []
    for seed in (0, 1, 2):
        ev = evaluate_label_maps(labels[seed], masks, 3, 3, run.dataset.ignore_index)
        test.append(score_images(ev["per_image"], "hungarian", run.test, None, ev["unassigned"])["miou"])
        selection.append(score_images(ev["per_image"], "hungarian", run.split.folds["selection"], None,
                                      ev["unassigned"])["miou"])
    u, _, chosen_on = seg["seg_miou"]
    assert test[0] == pytest.approx(1.0) and max(test[1:]) < 0.6
    assert len(u.points) == 2 and u.value == pytest.approx(np.mean(test[1:]))
    assert u.seed_spread == pytest.approx(abs(test[1] - test[2]))
    assert chosen_on == pytest.approx(selection[0]) == pytest.approx(1.0)
    lo, hi = u.interval()
    assert lo < u.value < hi
    one = run.segmentation(lambda k, seed: labels[1], masks, [0], w)["seg_miou"]
    assert one[0].points == [pytest.approx(test[1])] and one[2] == pytest.approx(selection[1])


def test_the_evaluation_chooses_with_a_seed_it_does_not_report(tmp_path):
    """Through the model's protocol: the seeds are the atlas seed, then the configured seeds after it
    (the Methods record says so)."""
    from atlas.pipeline.evaluation_run import evaluation_seeds

    run = evaluation(tmp_path, 10, 4)
    m = run.methods()
    assert evaluation_seeds(run.cfg) == [run.cfg.atlas.seed + j for j in range(run.cfg.uncertainty.seeds + 1)]
    assert m["selection_seed"] == run.cfg.atlas.seed and m["reported_seeds"] == evaluation_seeds(run.cfg)[1:]
    words = evaluation_words(m)
    assert f"mean over the k-means seeds {m['reported_seeds'][0]}..{m['reported_seeds'][-1]}, not over the choosing " \
        "seed" in words["leaderboard"]


def test_frame_order_compares_frame_numbers_as_numbers():
    """Names without zero padding (clip_1 ... clip_20): blocks and the fallback split follow the
    frame numbers, exactly as with padded names, so only block-boundary frames are neighbours."""
    from atlas.inputs.splits import grouped_split

    plain = [f"clip_{i}" for i in range(1, 21)]
    padded = [f"clip_{i:03d}" for i in range(1, 21)]
    perm = np.random.default_rng(0).permutation(20)
    for names in ([plain[i] for i in perm], [padded[i] for i in perm]):
        units, rule = resampling_units(["clip"] * 20, names)
        assert rule["unit"] == "frame blocks"
        by_frame = units[np.argsort([int(n.split("_")[1]) for n in names])]
        assert (np.diff(by_frame) >= 0).all()  # each block a run of consecutive frames
        split = grouped_split(names, {"selection": 0.25, "support": 0.375, "query": 0.375}, r"^(clip)_")
        assert split.kind == "contiguous blocks"
        assert sorted(int(names[i].split("_")[1]) for i in split.folds["selection"]) == [1, 2, 3, 4, 5]


def test_a_group_regex_that_misses_frames_is_logged(caplog):
    """Frames the group key does not match become independent images in the split and the
    intervals: the build says so in one line naming an example. A key that matches every name
    (the control) logs nothing."""
    from atlas.inputs.splits import grouped_split

    names = [f"seq{g}_{i:03d}" for g in "abcd" for i in range(5)] + [f"clip{i}" for i in range(4)]
    shares = {"selection": 0.25, "support": 0.375, "query": 0.375}
    with caplog.at_level("WARNING", logger="atlas.inputs.splits"):
        grouped_split(names[:20], shares, r"^(seq\w)_")
        assert caplog.records == []
        grouped_split(names, shares, r"^(seq\w)_")
    assert len(caplog.records) == 1
    assert "matches 20 of the 24 image names (e.g. 'clip0')" in caplog.records[0].getMessage()
