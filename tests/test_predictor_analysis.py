"""Predictor statistics, analyses, the estimator front door and bad input (spec B.6, D.4, E.6)."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

import attnpaths as ap


def test_predict_with_manipulated_U_and_forced_temperature(problem):
    spec, *_, y, xt, yt, xi, xit = problem
    saddle = ap.solve_saddle(spec.with_width(3.0), xi, y)
    diag_only = np.diag(np.diag(saddle.U1))
    K = spec.variances[0] * np.einsum("mip,pq,niq->mn", np.asarray(xi), diag_only, np.asarray(xi))
    k = spec.variances[0] * np.einsum("mip,pq,niq->mn", np.asarray(xi), diag_only, np.asarray(xit))
    mean = k.T @ np.linalg.solve(K + 0.7 * np.eye(len(y)), y)
    got = ap.predict(spec, xi, y, xit, diag_only, temperature=0.7)
    np.testing.assert_allclose(got.mean, mean, rtol=1e-10)
    assert got.var.min() >= -1e-12


def test_accuracy_metrics():
    assert ap.accuracy(np.array([0.3, -2.0, 1.0, -0.1]), np.array([1, -1, -1, -1])) == 0.75
    pred = ap.Prediction(np.array([1.0, -1.0]), np.array([1e-12, 1e-12]))
    assert ap.gaussian_accuracy(pred, np.array([1.0, 1.0])) == pytest.approx(0.5)
    assert ap.bias_error(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == 0.5
    assert ap.bias_error(np.array([0.5, -2.0]), np.array([1.0, 1.0])) == pytest.approx((0.25 + 9.0) / 2)
    # Phi(y mean / std) against SciPy's normal CDF, with a wrong-signed and a right-signed point
    pred = ap.Prediction(np.array([0.3, -1.2, 2.0]), np.array([0.25, 4.0, 1.0]))
    expected = np.mean(norm.cdf(np.array([1.0, 1.0, -1.0]) * pred.mean / np.sqrt(pred.var)))
    assert ap.gaussian_accuracy(pred, np.array([1.0, 1.0, -1.0])) == pytest.approx(expected, rel=1e-12)


def test_pc_alignment_finds_the_label_direction():
    rng = np.random.default_rng(0)
    y = np.sign(rng.normal(size=20))
    Q, _ = np.linalg.qr(np.column_stack([y, rng.normal(size=(20, 19))]))
    K = Q @ np.diag(np.linspace(10, 1, 20)) @ Q.T  # the top PC is y itself
    al = ap.pc_alignment(K, y, n_components=5)
    assert al.overlaps[0] == pytest.approx(1.0) and np.all(al.overlaps[1:] < 1e-10)
    assert np.all(np.diff(al.eigenvalues) < 0)


def test_head_scores_match_definition():
    rng = np.random.default_rng(1)
    heads = (2, 3)
    U = rng.normal(size=(6, 6))
    U = U + U.T
    scores = ap.head_scores(U, heads, normalize=False)
    paths = list(itertools.product(range(2), range(3)))
    for l, h, s in zip(scores.layer, scores.head, scores.score):
        expected = sum(abs(U[i, j]) for i, p in enumerate(paths) for j, q in enumerate(paths)
                       if p[l] == h or q[l] == h)
        assert s == pytest.approx(expected)
    assert np.all(np.diff(scores.score) >= 0)
    assert ap.head_scores(U, heads).score.max() == 1.0


def test_head_score_labels_follow_the_ascending_scores():
    # diagonal U over the paths (h1, h2) of heads (2, 3), d = 1..6: layer-1 heads score 1+2+3 = 6 and
    # 4+5+6 = 15; layer-2 heads score 1+4 = 5, 2+5 = 7, 3+6 = 9. Labels "(layer)head" are 1-based.
    scores = ap.head_scores(np.diag(np.arange(1.0, 7.0)), (2, 3), normalize=False)
    assert scores.labels() == ["(2)1", "(1)1", "(2)2", "(2)3", "(1)2"]
    np.testing.assert_array_equal(scores.score, [5.0, 6.0, 7.0, 9.0, 15.0])


def test_estimator_front_door(problem):
    spec, attention, x, y, xt, yt, xi, xit = problem
    model = ap.AttentionPathsRegressor(spec.with_width(3.0), attention).fit(x, y)
    ref = ap.predict(spec, xi, y, xit, ap.solve_saddle(spec.with_width(3.0), xi, y).U1)
    mean = model.predict(xt)
    assert isinstance(mean, np.ndarray) and mean.shape == (len(xt),)  # one return type: the mean
    np.testing.assert_allclose(mean, ref.mean, rtol=1e-10)
    dist = model.predict_distribution(xt)
    assert isinstance(dist, ap.Prediction)
    np.testing.assert_allclose(dist.mean, ref.mean, rtol=1e-10)
    np.testing.assert_allclose(dist.var, ref.var, rtol=1e-8, atol=1e-14)
    gp = ap.AttentionPathsRegressor(spec, attention, gp_limit=True).fit(x, y)
    gp_mean = ap.predict(spec, xi, y, xit).mean
    np.testing.assert_allclose(gp.predict(xt), gp_mean, rtol=1e-12)
    # a regressor's score is R^2 of the predictor mean (scikit-learn's contract), written out here
    r2 = 1.0 - np.sum((yt - gp_mean) ** 2) / np.sum((yt - yt.mean()) ** 2)
    np.testing.assert_allclose(gp.score(xt, yt), r2, rtol=1e-12)


# ---- failures (bad input: tests/test_bad_input.py) ------------------------------------------------------
def test_non_convergence_raises_not_returns(problem):
    spec, *_, y, xt, yt, xi, xit = problem
    with pytest.raises(RuntimeError, match=r"did not converge: max\|dS/dU\| = \S+ > tol = 1\.0e-08 after 1 "
                                           r"iterations\. Try a warm start"):
        ap.solve_saddle(spec.with_width(2.0), xi, y, max_iter=1)
    result = ap.solve_saddle(spec.with_width(2.0), xi, y, max_iter=1, raise_on_failure=False)
    assert not result.converged and result.iterations == 1


def test_float64_is_on():
    assert jnp.zeros(1).dtype == jnp.float64


def test_format_order_parameter_uses_display_order():
    U = np.array([[1.0, 2.0], [2.0, 5.0]])
    text = ap.format_order_parameter(U, ["g", "d"], order=[1, 0])
    lines = text.splitlines()
    assert lines[0].split() == ["d", "g"] and lines[1].split() == ["d", "5.00", "2.00"]
    with pytest.raises(ValueError, match="one label per path"):
        ap.format_order_parameter(U, ["g"])


@pytest.mark.parametrize("route", ["example", "gram"])
def test_predict_in_chunks_is_textbook_gp_regression(problem, route):
    """mean = k^T K^-1 y and var = K** - k^T K^-1 k (spec B.6), in NumPy, against predict with a chunk size
    that leaves a padded last chunk (5 test points in chunks of 2), on both routes."""
    spec, *_, y, xt, yt, xi, xit = problem
    spec = spec.replace(variances=[1.6, 1.0, 1.0, 1.0], temperature=0.2)
    A = np.random.default_rng(4).normal(size=(spec.n_paths, spec.n_paths))
    U = A @ A.T / spec.n_paths + 0.1 * np.eye(spec.n_paths)
    a, b = np.asarray(xi), np.asarray(xit)
    K = 1.6 * np.einsum("mip,pq,niq->mn", a, U, a) + 0.2 * np.eye(len(y))
    k = 1.6 * np.einsum("mip,pq,niq->mn", a, U, b)
    Kss = 1.6 * np.einsum("mip,pq,miq->m", b, U, b)
    got = ap.predict(spec, xi, y, xit, U, chunk_size=2, route=route)
    np.testing.assert_allclose(got.mean, k.T @ np.linalg.solve(K, y), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.var, Kss - np.einsum("mn,mn->n", k, np.linalg.solve(K, k)), rtol=1e-8,
                               atol=1e-12)
    # the padded last chunk has the shape of a full one: the whole call used one executable per route
    from attnpaths._src import predictor as predictor_module

    apply = predictor_module._apply  # one jitted function; each route's data type keys its own executables
    # chunks of 4 rows, fewer than the 5 token dimensions, and a last chunk of 3 rows, a shape not seen above
    more = np.concatenate([xit, xit])
    ap.predict(spec, xi, y, more[:4], U, chunk_size=4, route=route)  # one full chunk
    before = apply._cache_size()
    ap.predict(spec, xi, y, more[:7], U, chunk_size=4, route=route)  # a padded last chunk: no new executable
    assert apply._cache_size() == before


def _with_entry(U, i, j, value):
    U = np.array(U, dtype=np.float64)
    U[i, j] += value
    return U


_EYE = np.eye(6)


@pytest.mark.parametrize("U1, accepted", [
    (_with_entry(_EYE, 0, 1, 1e-8), True),           # asymmetry exactly at the tolerance (scale 1)
    (_with_entry(_EYE, 0, 1, 1.5e-8), False),
    (_with_entry(100 * _EYE, 0, 1, 9e-7), True),     # the tolerance scales with max |U1| = 100: 1e-6
    (_with_entry(100 * _EYE, 0, 1, 2e-6), False),
    (np.diag([1, 1, 1, 1, 1, -1e-10]), True),        # eigenvalue exactly at the floor -1e-10 (scale 1)
    (np.diag([1, 1, 1, 1, 1, -0.5e-10]), True),
    (np.diag([1, 1, 1, 1, 1, -2e-10]), False),
    (np.diag([100, 1, 1, 1, 1, -0.5e-8]), True),     # and -1e-8 at max |eigenvalue| = 100
    (np.diag([100, 1, 1, 1, 1, -2e-8]), False),
], ids=["sym-at-tol", "sym-over", "sym-scaled", "sym-scaled-over", "psd-at-tol", "psd-within", "psd-over",
        "psd-scaled", "psd-scaled-over"])
def test_U1_tolerances_are_the_documented_ones(problem, U1, accepted):
    spec, _, _, y, _, _, xi, xit = problem
    if accepted:
        prediction = ap.predict(spec, xi, y, xit, U1)
        assert np.all(np.isfinite(prediction.mean)) and np.all(prediction.var >= 0)
    else:
        what = "symmetric \\(" if U1[0, 1] != U1[1, 0] else "symmetric positive semi-definite"
        with pytest.raises(ValueError, match=f"U1 must be {what}"):
            ap.predict(spec, xi, y, xit, U1)


def test_predictor_uses_the_symmetric_part_of_U1(problem):
    """A U1 asymmetric within the tolerance predicts exactly as its symmetric part (not as one triangle)."""
    spec, _, _, y, _, _, xi, xit = problem
    rng = np.random.default_rng(3)
    A = rng.normal(size=(6, 6))
    U1 = 100 * (A @ A.T / 6 + np.eye(6))
    lopsided = _with_entry(U1, 0, 1, 9e-7)
    symmetric = 0.5 * (lopsided + lopsided.T)
    np.testing.assert_allclose(ap.predict(spec, xi, y, xit, lopsided).mean, ap.predict(spec, xi, y, xit, symmetric).mean,
                               rtol=1e-13, atol=1e-15)
    # one triangle of it differs by 4.5e-7 in one entry: visible at this tolerance
    lower = np.tril(lopsided) + np.tril(lopsided, -1).T
    assert not np.allclose(ap.predict(spec, xi, y, xit, lower).mean, ap.predict(spec, xi, y, xit, symmetric).mean,
                           rtol=1e-13, atol=1e-15)
