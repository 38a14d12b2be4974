"""Predictor statistics, analyses, the estimator front door and bad input (spec B.6, D.4, E.6)."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

import attnpaths as ap
from conftest import random_problem


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
    assert scores.labels()[0].startswith("(")


def test_estimator_front_door(problem):
    spec, attention, x, y, xt, yt, xi, xit = problem
    model = ap.AttentionPathsRegressor(spec.with_width(3.0), attention).fit(x, y)
    mean, std = model.predict(xt, return_std=True)
    ref = ap.predict(spec, xi, y, xit, ap.solve_saddle(spec.with_width(3.0), xi, y).U1)
    np.testing.assert_allclose(mean, ref.mean, rtol=1e-10)
    np.testing.assert_allclose(std ** 2, np.maximum(ref.var, 0), rtol=1e-8, atol=1e-14)
    gp = ap.AttentionPathsRegressor(spec, attention, gp_limit=True).fit(x, y)
    np.testing.assert_allclose(gp.predict(xt), ap.predict(spec, xi, y, xit).mean, rtol=1e-12)
    assert 0.0 <= gp.score(xt, yt) <= 1.0


# ---- bad input --------------------------------------------------------------------------------------------
BAD_SPECS = [
    (dict(heads=()), "heads"),
    (dict(heads=(2, 0)), "heads"),
    (dict(heads=(2.5,)), "heads"),
    (dict(heads=(2,), widths=-1.0), "widths"),
    (dict(heads=(2,), widths=(10.0, 10.0, 10.0)), "widths must be a number or a sequence of length 2"),
    (dict(heads=(2,), variances=0.0), "variances"),
    (dict(heads=(2,), variances=float("nan")), "variances"),
    (dict(heads=(2,), temperature=-0.1), "temperature"),
    (dict(heads=(2,), readout="cls"), "readout"),
]


@pytest.mark.parametrize("kwargs, match", BAD_SPECS)
def test_bad_spec(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ap.NetworkSpec(**kwargs)


def test_bad_inputs_name_the_argument(problem):
    spec, attention, x, y, xt, yt, xi, xit = problem
    with pytest.raises(ValueError, match="x must have 3 dimensions"):
        ap.path_features(spec, attention, x[0])
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        ap.path_features(spec, attention, bad)
    with pytest.raises(ValueError, match="attention has 1 layers but the network has L = 2"):
        ap.path_features(spec, attention[:1], x)
    with pytest.raises(ValueError, match=r"attention\[1\] has 3 heads but layer 2 of the network has H_2 = 2"):
        ap.path_features(spec.replace(heads=(2, 2)), attention, x)
    with pytest.raises(ValueError, match="acts on tokens of width"):
        ap.path_features(spec, attention, x[:, :3])
    arrays = [np.zeros((x.shape[0], 2, 4, 3)), np.zeros((x.shape[0], 3, 4, 4))]
    with pytest.raises(ValueError, match=r"attention\[0\] must have shape"):
        ap.path_features(spec, arrays, x)
    with pytest.raises(ValueError, match="W must have shape"):
        ap.BilinearHeads(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="Q and K must have the same shape"):
        ap.QKHeads(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="y has 3 entries but there are 12 examples"):
        ap.solve_saddle(spec, xi, y[:3])
    with pytest.raises(ValueError, match="xi has 4 paths"):
        ap.solve_saddle(spec, xi[..., :4], y)
    with pytest.raises(ValueError, match="U1 must have shape"):
        ap.predict(spec, xi, y, xit, np.eye(3))
    with pytest.raises(ValueError, match="U_1 must be symmetric positive definite"):
        ap.solve_saddle(spec, xi, y, init=[-np.eye(6), np.eye(3)])
    with pytest.raises(ValueError, match="U1 must be symmetric positive semi-definite"):
        ap.predict(spec.replace(temperature=1e-3), xi, y, xit, -10 * np.eye(6))
    with pytest.raises(ValueError, match="unknown head style|must hold BilinearHeads"):
        ap.AttentionPathsRegressor(spec, [np.zeros(3), np.zeros(3)])


def test_zero_temperature_with_singular_kernel_asks_for_T():
    # more examples than kernel rank (N0 * H = 2 * 2 = 4 < P = 12): K is singular
    spec, attention, x, y, xt, yt = random_problem((2,), n0=2, n_train=12, temperature=0.0)
    xi, xit = ap.path_features(spec, attention, x), ap.path_features(spec, attention, xt)
    with pytest.raises(ValueError, match="T > 0 is needed"):
        ap.solve_saddle(spec, xi, y)
    with pytest.raises(ValueError, match="T > 0 is needed"):
        ap.predict(spec, xi, y, xit)


def test_non_convergence_raises_not_returns(problem):
    spec, *_, y, xt, yt, xi, xit = problem
    with pytest.raises(RuntimeError, match="did not converge"):
        ap.solve_saddle(spec.with_width(2.0), xi, y, max_iter=1)
    result = ap.solve_saddle(spec.with_width(2.0), xi, y, max_iter=1, raise_on_failure=False)
    assert not result.converged


def test_float64_is_on():
    assert jnp.zeros(1).dtype == jnp.float64


def test_format_order_parameter_uses_display_order():
    U = np.array([[1.0, 2.0], [2.0, 5.0]])
    text = ap.format_order_parameter(U, ["g", "d"], order=[1, 0])
    lines = text.splitlines()
    assert lines[0].split() == ["d", "g"] and lines[1].split() == ["d", "5.00", "2.00"]
    with pytest.raises(ValueError, match="one label per path"):
        ap.format_order_parameter(U, ["g"])
