"""CKA / debiased CKA / SVCCA sanity properties and the masking variants."""

import numpy as np
import pytest
from PIL import Image
from scipy.stats import ortho_group

from atlas.measures.similarity import (
    VARIANTS,
    debiased_linear_cka,
    linear_cka,
    make_variants,
    similarity_matrix,
    svcca,
)


def _unbiased_hsic_gram(K, L):
    """Song et al. (2012) unbiased HSIC, written directly on n x n Gram matrices."""
    n = len(K)
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    one = np.ones(n)
    return (np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))


@pytest.fixture
def xy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 12))
    return X, rng


def test_cka_self_is_one_and_gram_definition(xy):
    X, rng = xy
    Y = X @ rng.normal(size=(12, 5)) + 0.5 * rng.normal(size=(60, 5))
    assert linear_cka(X, X) == pytest.approx(1.0)
    assert debiased_linear_cka(X, X) == pytest.approx(1.0)
    # linear CKA via centred Gram matrices (Kornblith et al. eq. 3 with HSIC = tr(KHLH))
    H = np.eye(60) - 1 / 60
    K, L = H @ X @ X.T @ H, H @ Y @ Y.T @ H
    ref = np.trace(K @ L) / np.sqrt(np.trace(K @ K) * np.trace(L @ L))
    assert linear_cka(X, Y) == pytest.approx(ref)
    Kr, Lr = X @ X.T, Y @ Y.T  # unbiased HSIC does not need centring
    ref_u = _unbiased_hsic_gram(Kr, Lr) / np.sqrt(_unbiased_hsic_gram(Kr, Kr) * _unbiased_hsic_gram(Lr, Lr))
    assert debiased_linear_cka(X, Y) == pytest.approx(ref_u)


def test_invariances(xy):
    X, rng = xy
    Y = np.tanh(X[:, :6] @ rng.normal(size=(6, 9)))
    Q = ortho_group.rvs(12, random_state=1)
    for fn in (linear_cka, debiased_linear_cka, svcca):
        base = fn(X, Y)
        assert fn(X @ Q, Y) == pytest.approx(base, abs=1e-9), fn.__name__  # orthogonal
        assert fn(7.5 * X, Y) == pytest.approx(base, abs=1e-9), fn.__name__  # isotropic scaling
        assert fn(X + 3.0, Y) == pytest.approx(base, abs=1e-9), fn.__name__  # translation
        assert fn(Y, X) == pytest.approx(base, abs=1e-9), fn.__name__  # symmetry


def test_debiased_cka_near_zero_for_independent_features():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(100, 500)), rng.normal(size=(100, 500))  # n << p
    assert abs(debiased_linear_cka(X, Y)) < 0.05
    assert linear_cka(X, Y) > 0.5  # the biased estimator is far from 0 here: why debias


def test_stored_cka_separates_related_from_unrelated_embeddings_at_the_pipelines_size():
    """The pipeline stores CKA of 16 images of 384+ dimensions, and of halves of them. Planted:
    a noisy linear map of X scores high; control: an unrelated embedding scores about 0, where
    plain linear CKA (the old stored number) put both near 1."""
    from atlas.measures.similarity import debiased_linear_cka_replicates
    from atlas.measures.uncertainty import half_samples

    rng = np.random.default_rng(5)
    X = rng.normal(size=(16, 384)) * np.linspace(3, 0.1, 384)  # a decaying spectrum, as embeddings have
    related = X @ rng.normal(size=(384, 384)) / 20 + 0.3 * rng.normal(size=(16, 384))
    unrelated = rng.normal(size=(16, 384)) * np.linspace(3, 0.1, 384)
    assert linear_cka(X, unrelated) > 0.8  # why the stored number is debiased
    assert debiased_linear_cka(X, related) > 0.5 and abs(debiased_linear_cka(X, unrelated)) < 0.25
    w = half_samples(16, 20, seed=0)
    reps = debiased_linear_cka_replicates(X, unrelated, w)
    assert reps == pytest.approx([debiased_linear_cka(X[r == 1], unrelated[r == 1]) for r in w], abs=1e-12)
    with pytest.raises(ValueError, match="0/1 weights"):
        debiased_linear_cka_replicates(X, unrelated, 2 * w)


def test_svcca_linear_transform_and_independent():
    rng = np.random.default_rng(4)
    Z = rng.normal(size=(400, 5))
    X = Z @ rng.normal(size=(5, 20))  # rank-5 data in 20 dims
    A = rng.normal(size=(20, 20)) + 5 * np.eye(20)  # invertible
    assert svcca(X, X @ A) == pytest.approx(1.0, abs=1e-9)
    Xf = rng.normal(size=(400, 10))  # full rank; the 99 % subspaces differ slightly
    assert svcca(Xf, Xf @ (np.eye(10) + 0.2 * rng.normal(size=(10, 10))), var_kept=0.999) > 0.97
    assert svcca(rng.normal(size=(400, 10)), rng.normal(size=(400, 10))) < 0.2
    # few samples: dims capped at (n - 1) // 2 so independent data do not look identical
    small = svcca(rng.normal(size=(9, 50)), rng.normal(size=(9, 50)))
    forced = svcca(rng.normal(size=(9, 50)), rng.normal(size=(9, 50)), max_dims=8)
    assert small < 0.9 and forced == pytest.approx(1.0)


def test_similarity_matrix(xy):
    X, rng = xy
    emb = {"full": X, "noisy": X + 0.1 * rng.normal(size=X.shape), "other": rng.normal(size=(60, 4))}
    out = similarity_matrix(emb)
    assert set(out) == {"linear_cka", "debiased_cka", "svcca"}
    for M in out.values():
        assert M.shape == (3, 3) and np.allclose(M, M.T) and np.allclose(np.diag(M), 1.0)
        assert M[0, 1] > M[0, 2]
    assert out["linear_cka"][0, 2] == pytest.approx(linear_cka(X, emb["other"]))
    with pytest.raises(ValueError, match="unknown metrics"):
        similarity_matrix(emb, metrics=("cka",))


def test_make_variants():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    fg = np.zeros((40, 60), bool)
    fg[5:15, 10:30] = True
    v = make_variants(arr, fg, seed=1)
    assert tuple(v) == VARIANTS
    mean = np.round(arr.reshape(-1, 3).mean(0)).astype(np.uint8)
    np.testing.assert_array_equal(v["full"], arr)
    np.testing.assert_array_equal(v["foreground_only"][fg], arr[fg])
    assert (v["foreground_only"][~fg] == mean).all()
    assert (v["background_only"][fg] == mean).all()
    np.testing.assert_array_equal(v["background_only"][~fg], arr[~fg])
    changed_c = (v["centre_occluded"] != arr).any(-1)
    changed_r = (v["random_occluded"] != arr).any(-1)
    # centre box: 20 x 30 (sides * sqrt(0.25)) at rows 10..29, cols 15..44
    assert changed_c[10:30, 15:45].mean() > 0.95 and not changed_c[:10].any() and not changed_c[30:].any()
    box_r = np.all(v["random_occluded"] == mean, -1)
    rows, cols = np.flatnonzero(box_r.any(1)), np.flatnonzero(box_r.any(0))
    assert rows[-1] - rows[0] + 1 == 20 and cols[-1] - cols[0] + 1 == 30  # same area as the centre box
    assert changed_r.sum() <= 600
    # deterministic for a seed, different for another
    np.testing.assert_array_equal(make_variants(arr, fg, seed=1)["random_occluded"], v["random_occluded"])
    assert any(not np.array_equal(make_variants(arr, fg, seed=s)["random_occluded"], v["random_occluded"])
               for s in range(2, 6))
    grey = make_variants(Image.fromarray(arr), fg, fill="grey")
    assert isinstance(grey["full"], Image.Image)
    assert (np.array(grey["background_only"])[fg] == 128).all()
    with pytest.raises(ValueError, match="match the image"):
        make_variants(arr, fg[:10], seed=0)
