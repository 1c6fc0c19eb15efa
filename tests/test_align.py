"""Tests of atlas.align: permutation recovery, max-overlap assignment, different K, grids."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics.cluster import contingency_matrix

from atlas.clustering.align import (
    align_chain,
    align_to_reference,
    apply_mapping,
    common_grid,
    contingency,
    resample_labels,
)


def random_labels(k, shape=(6, 8, 8), seed=0):
    return np.random.default_rng(seed).integers(0, k, size=shape)


def test_contingency_matches_sklearn():
    a, b = random_labels(5, seed=1), random_labels(4, seed=2)
    np.testing.assert_array_equal(contingency(a, b, 5, 4), contingency_matrix(a.ravel(), b.ravel()))
    # absent ids still get their (zero) row / column
    assert contingency(np.zeros(4, int), np.zeros(4, int), 3, 2).shape == (3, 2)


@pytest.mark.parametrize("seed", range(3))
def test_known_permutation_is_mapped_back_exactly(seed):
    ref = random_labels(7, seed=seed)
    perm = np.random.default_rng(seed + 10).permutation(7)
    lab = perm[ref]  # same partition, ids shuffled
    mapping = align_to_reference(ref, lab, 7, 7)
    np.testing.assert_array_equal(apply_mapping(lab, mapping), ref)
    np.testing.assert_array_equal(mapping[perm], np.arange(7))


def overlap(cont, mapping):
    """Total overlap of a mapping restricted to matched ids (< n_ref)."""
    n_ref = cont.shape[0]
    return sum(cont[mapping[j], j] for j in range(cont.shape[1]) if mapping[j] < n_ref)


@pytest.mark.parametrize("seed", range(5))
def test_noisy_overlap_matches_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    k = 5
    ref = random_labels(k, seed=seed)
    lab = rng.permutation(k)[ref]
    noise = rng.random(ref.shape) < 0.45  # heavy noise: the assignment is not obvious
    lab[noise] = rng.integers(0, k, noise.sum())
    cont = contingency(ref, lab, k, k)
    mapping = align_to_reference(ref, lab, k, k)
    assert sorted(mapping.tolist()) == list(range(k))  # a permutation
    best = max(sum(cont[p[j], j] for j in range(k)) for p in itertools.permutations(range(k)))
    assert overlap(cont, mapping) == best
    # control: the identity is (for these seeds) worse than the optimum
    assert overlap(cont, np.arange(k)) < best


@pytest.mark.parametrize("n_ref,n", [(3, 5), (5, 3), (4, 4)])
def test_different_k_matches_brute_force_and_stays_one_to_one(n_ref, n):
    rng = np.random.default_rng(n_ref * 10 + n)
    ref = random_labels(n_ref, seed=n)
    lab = random_labels(n, seed=n_ref + 100)
    keep = rng.random(lab.shape) < 0.5
    lab[keep] = (ref % n)[keep]  # some structure, so the optimum is not flat
    cont = contingency(ref, lab, n_ref, n)
    mapping = align_to_reference(ref, lab, n_ref, n)
    assert len(set(mapping.tolist())) == n and mapping.max() < max(n_ref, n)
    m = min(n_ref, n)
    # brute force over injective maps of the smaller side into the larger one
    if n <= n_ref:
        best = max(sum(cont[p[j], j] for j in range(n)) for p in itertools.permutations(range(n_ref), n))
    else:
        best = max(sum(cont[i, p[i]] for i in range(n_ref)) for p in itertools.permutations(range(n), n_ref))
    assert overlap(cont, mapping) == best
    assert (mapping < n_ref).sum() == m


def test_split_cluster_gets_next_free_id():
    ref = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    lab = np.array([2, 2, 1, 1, 0, 0, 0, 0])  # ref cluster 0 split into 2 (first half) and 1
    mapping = align_to_reference(ref, lab, 2, 3)
    # 0 -> ref 1; of {1, 2} (tied overlap 2 each) one takes ref 0, the other the free id 2
    assert mapping[0] == 1
    assert sorted(mapping[1:].tolist()) == [0, 2]
    # unmatched clusters get free ids in ascending order of old id
    ref = np.array([0, 0, 0, 0])
    mapping = align_to_reference(ref, np.array([3, 1, 2, 2]), 1, 4)
    assert mapping.tolist() == [1, 2, 0, 3]


def test_shape_mismatch_is_refused_or_counted_on_the_common_grid():
    with pytest.raises(ValueError, match="resample_labels"):  # other images: refused
        align_to_reference(np.zeros((2, 16, 16), int), np.zeros((3, 14, 14), int), 2, 2)
    with pytest.raises(ValueError, match="resample_labels"):  # flat labellings of other lengths
        align_to_reference(np.zeros(4, int), np.zeros(5, int), 2, 2)
    # other grids of the same images: aligned through their overlap on the common grid
    ref = np.zeros((2, 16, 16), int)
    ref[:, :, 8:] = 1
    lab = np.ones((2, 14, 14), int)
    lab[:, :, 7:] = 0
    assert align_to_reference(ref, lab, 2, 2).tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        align_to_reference(np.array([0, 2]), np.array([0, 1]), 2, 2)


def test_align_chain_follows_a_drifting_sequence():
    rng = np.random.default_rng(0)
    base = random_labels(6, seed=3)
    seq, truth = [], []
    current = base.copy()
    for _ in range(5):
        perm = rng.permutation(6)
        seq.append(perm[current])  # each block: same partition (plus later drift), fresh ids
        truth.append(current.copy())
        flip = rng.random(current.shape) < 0.05  # small drift between neighbouring blocks
        current = current.copy()
        current[flip] = rng.integers(0, 6, flip.sum())
    mappings = align_chain(seq)
    assert len(mappings) == 5
    np.testing.assert_array_equal(mappings[0], np.arange(6))
    first = apply_mapping(seq[0], mappings[0])
    for lab, mapping, t in zip(seq, mappings, truth):
        # ids follow the *first* block's numbering all along the chain
        np.testing.assert_array_equal(apply_mapping(lab, mapping), apply_mapping(t, _relabel(truth[0], first)))


def _relabel(truth0, first):
    """Mapping from truth ids to the first block's ids (the chain's reference numbering)."""
    out = np.zeros(truth0.max() + 1, dtype=int)
    out[truth0.ravel()] = first.ravel()
    return out


def test_align_chain_with_growing_k():
    a = np.array([0, 0, 1, 1, 1, 1])
    b = np.array([2, 2, 0, 0, 1, 1])  # K 2 -> 3: cluster 1 splits
    c = np.array([1, 1, 2, 2, 0, 0])
    maps = align_chain([a, b, c], n_clusters=[2, 3, 3])
    aligned = [apply_mapping(x, m) for x, m in zip([a, b, c], maps)]
    np.testing.assert_array_equal(aligned[1], aligned[2])
    assert aligned[1][0] == 0  # the unchanged cluster keeps its colour
    with pytest.raises(ValueError, match="n_clusters"):
        align_chain([a, b], n_clusters=[2])


def test_resample_integer_factor_replicates_blocks():
    lab = random_labels(9, shape=(3, 4, 5), seed=4)
    up = resample_labels(lab, (12, 15))
    assert up.shape == (3, 12, 15)
    np.testing.assert_array_equal(up, np.repeat(np.repeat(lab, 3, axis=1), 3, axis=2))
    # downsampling back by the same factor is exact
    np.testing.assert_array_equal(resample_labels(up, (4, 5)), lab)


def test_grids_of_patch_14_and_16_overlap_exactly_on_common_grid():
    assert common_grid((16, 16), (14, 14)) == (112, 112)
    a = random_labels(4, shape=(2, 16, 16), seed=5)
    b = random_labels(4, shape=(2, 14, 14), seed=6)
    H, W = common_grid(a.shape[1:], b.shape[1:])
    ua, ub = resample_labels(a, (H, W)), resample_labels(b, (H, W))
    # every 16-grid cell is a 7x7 block, every 14-grid cell an 8x8 block
    np.testing.assert_array_equal(ua, np.repeat(np.repeat(a, 7, 1), 7, 2))
    np.testing.assert_array_equal(ub, np.repeat(np.repeat(b, 8, 1), 8, 2))
    cont = contingency(ua, ub, 4, 4)
    assert cont.sum() == 2 * 112 * 112
    # control: the same partition on both grids is recovered through the common grid
    same = resample_labels(resample_labels(a, (112, 112)), (14, 14))
    perm = np.array([2, 0, 3, 1])
    m = align_to_reference(resample_labels(a, (112, 112)), resample_labels(perm[same], (112, 112)), 4, 4)
    np.testing.assert_array_equal(m[perm], np.arange(4))


def test_resample_validation():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        resample_labels(np.zeros((2, 2), int), (0, 4))
    with pytest.raises(ValueError, match=r"\(\.\.\., h, w\)"):
        resample_labels(np.zeros(4, int), (2, 2))


@pytest.mark.parametrize("grids", [((14, 14), (16, 16)), ((37, 37), (14, 14)), ((4, 6), (6, 4)), ((5, 5), (5, 5))])
def test_grid_contingency_equals_counting_on_the_common_grid(grids):
    """Planted: the overlap counts of two maps on different grids equal those of both maps upsampled
    to their least common grid (the old, memory-hungry way), for every pair of cluster ids."""
    from atlas.clustering.align import common_grid, contingency, grid_contingency, resample_labels

    rng = np.random.default_rng(7)
    a = rng.integers(0, 4, size=(3, *grids[0]))
    b = rng.integers(0, 5, size=(3, *grids[1]))
    grid = common_grid(grids[0], grids[1])
    want = contingency(resample_labels(a, grid), resample_labels(b, grid), 4, 5)
    np.testing.assert_array_equal(grid_contingency(a, b, 4, 5), want)
