"""The scikit-learn estimators: the estimator contract (scikit-learn's own checks), the model-selection tools a
researcher reaches for, and the numbers against independent computations (textbook / scikit-learn GP regression,
a deep linear network's action written out by hand, the Gaussian predictive's CDF).

scikit-learn's checks all apply and pass: none is marked as an expected failure (check_array_api_input skips
itself unless SCIPY_ARRAY_API is set).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import norm
from sklearn.base import clone
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, DotProduct
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.utils.estimator_checks import parametrize_with_checks

import attnpaths as ap

RNG = np.random.default_rng(3)
P, N0 = 24, 6
X2 = RNG.normal(size=(P, N0))
W_TRUE = RNG.normal(size=N0)
Y_REG = X2 @ W_TRUE / np.sqrt(N0) + 0.1 * RNG.normal(size=P)
X2_TEST = RNG.normal(size=(9, N0))
LABELS = np.where(Y_REG > 0, "up", "down")


@parametrize_with_checks([ap.AttentionPathsRegressor(), ap.AttentionPathsClassifier()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---- model selection --------------------------------------------------------------------------------------
def test_clone_keeps_parameters_and_drops_the_fit():
    spec = ap.NetworkSpec(heads=1, widths=20.0, temperature=0.05)
    est = ap.AttentionPathsRegressor(spec=spec, temperature=0.2, width=8.0).fit(X2, Y_REG)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert copy.spec == spec and not hasattr(copy, "U1_")  # clone deep-copies a non-estimator parameter
    copy.set_params(temperature=0.5)
    assert est.temperature == 0.2 and copy.fit(X2, Y_REG).spec_.temperature == 0.5


def test_cross_val_score_is_the_r2_of_each_fold():
    est = ap.AttentionPathsRegressor(width=10.0, temperature=0.1)
    folds = KFold(3)
    scores = cross_val_score(est, X2, Y_REG, cv=folds)
    by_hand = []
    for train, test in folds.split(X2):
        mean = ap.AttentionPathsRegressor(width=10.0, temperature=0.1).fit(X2[train], Y_REG[train]).predict(X2[test])
        y = Y_REG[test]
        by_hand.append(1.0 - np.sum((y - mean) ** 2) / np.sum((y - y.mean()) ** 2))
    np.testing.assert_allclose(scores, by_hand, rtol=1e-12)
    assert np.all(scores > 0.5)  # the targets are a noisy linear function: a deep linear network fits them


def test_grid_search_over_temperature_and_width():
    grid = {"temperature": [0.01, 1.0, 100.0], "width": [3.0, np.inf]}
    search = GridSearchCV(ap.AttentionPathsRegressor(), grid, cv=KFold(3)).fit(X2, Y_REG)
    assert search.cv_results_["mean_test_score"].shape == (6,)
    # T = 100 drowns 24 examples with noise 0.1 in the prior: far lower R^2 than T = 0.01 or 1
    assert search.best_params_["temperature"] != 100.0
    assert search.best_estimator_.spec_.temperature == search.best_params_["temperature"]
    best_width = search.best_params_["width"]
    assert (search.best_estimator_.saddle_ is None) == np.isinf(best_width)


# ---- against independent computations ---------------------------------------------------------------------
def test_gp_limit_is_sklearn_gaussian_process_regression_with_the_linear_kernel():
    # one token, one head: the GP kernel is s0 s1 sa x.x' / N0 (all variances 1 here)
    est = ap.AttentionPathsRegressor(temperature=0.05, width=np.inf).fit(X2, Y_REG)
    kernel = ConstantKernel(1.0 / N0, "fixed") * DotProduct(sigma_0=0.0, sigma_0_bounds="fixed")
    gpr = GaussianProcessRegressor(kernel, alpha=0.05, optimizer=None).fit(X2, Y_REG)
    mean, std = gpr.predict(X2_TEST, return_std=True)
    dist = est.predict_distribution(X2_TEST)
    np.testing.assert_allclose(dist.mean, mean, rtol=1e-9)
    np.testing.assert_allclose(dist.var, std**2, rtol=1e-7, atol=1e-12)  # no T on the test-test term


def test_uniform_attention_over_sequences_is_gp_regression_on_token_means():
    # attention=None: one head attending uniformly, so the path feature is the mean token / sqrt(N0)
    x = RNG.normal(size=(P, N0, 5))
    xt = RNG.normal(size=(7, N0, 5))
    spec = ap.NetworkSpec(heads=1, variances=(2.0, 0.5, 3.0), temperature=0.2)
    mean = ap.AttentionPathsRegressor(spec=spec, gp_limit=True).fit(x, Y_REG).predict(xt)
    kernel = ConstantKernel(2.0 * 0.5 * 3.0 / N0, "fixed") * DotProduct(sigma_0=0.0, sigma_0_bounds="fixed")
    gpr = GaussianProcessRegressor(kernel, alpha=0.2, optimizer=None).fit(x.mean(axis=2), Y_REG)
    np.testing.assert_allclose(mean, gpr.predict(xt.mean(axis=2)), rtol=1e-9)


def deep_linear_action(log_u, X, y, N, T):
    """S(u, U_a) of the Bayesian deep linear network f = a.V1 V0 x / sqrt(N N N0) (widths N, variances 1),
    written out for one layer of one head (spec B.4 with H = 1): kernel u x.x'/N0, divided by N_max = N."""
    u, ua = np.exp(log_u)
    K = u * X @ X.T / X.shape[1] + T * np.eye(len(y))
    energy = np.linalg.slogdet(K)[1] + y @ np.linalg.solve(K, y)
    entropy = N * (ua - np.log(ua)) + N * (u / ua - np.log(u) + np.log(ua))
    return (energy + entropy) / N


def test_one_token_one_head_is_a_deep_linear_network():
    N, T = 4.0, 0.05
    est = ap.AttentionPathsRegressor(width=N, temperature=T, tol=1e-10).fit(X2, Y_REG)
    best = minimize(deep_linear_action, np.zeros(2), args=(X2, Y_REG, N, T), method="BFGS", options={"gtol": 1e-10})
    u = np.exp(best.x[0])
    assert abs(u - 1.0) > 0.1  # a width this small moves the order parameter away from its GP value 1
    np.testing.assert_allclose(est.U1_, [[u]], rtol=1e-6)
    np.testing.assert_allclose(est.saddle_.action, best.fun, rtol=1e-9)
    K = u * X2 @ X2.T / N0 + T * np.eye(P)
    want = u * X2_TEST @ X2.T / N0 @ np.linalg.solve(K, Y_REG)
    np.testing.assert_allclose(est.predict(X2_TEST), want, rtol=1e-6)


def test_classifier_probability_is_the_gaussian_predictive_cdf():
    T = 0.1
    clf = ap.AttentionPathsClassifier(temperature=T, gp_limit=True).fit(X2, LABELS)
    assert clf.classes_.tolist() == ["down", "up"]
    np.testing.assert_array_equal(clf.y_, np.where(LABELS == "up", 1.0, -1.0))  # classes_[1] is +1
    # textbook GP regression on the +-1 targets with the kernel x.x'/N0
    s = np.where(LABELS == "up", 1.0, -1.0)
    K = X2 @ X2.T / N0 + T * np.eye(P)
    k = X2 @ X2_TEST.T / N0
    mean = k.T @ np.linalg.solve(K, s)
    var = np.sum(X2_TEST**2, axis=1) / N0 - np.einsum("pm,pm->m", k, np.linalg.solve(K, k))
    proba = clf.predict_proba(X2_TEST)
    np.testing.assert_allclose(proba[:, 1], norm.cdf(mean / np.sqrt(var)), rtol=1e-8)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(clf.decision_function(X2_TEST), mean, rtol=1e-9)
    np.testing.assert_array_equal(clf.predict(X2_TEST), np.where(mean > 0, "up", "down"))
    truth = np.where(X2_TEST @ W_TRUE > 0, "up", "down")
    assert clf.score(X2_TEST, truth) == np.mean(np.where(mean > 0, "up", "down") == truth)


def test_top_level_temperature_and_width_take_precedence_over_the_spec():
    spec = ap.NetworkSpec(heads=1, widths=50.0, temperature=1.0)
    est = ap.AttentionPathsRegressor(spec=spec, temperature=0.05, width=4.0).fit(X2, Y_REG)
    ref = ap.AttentionPathsRegressor(spec=spec.replace(temperature=0.05, widths=4.0)).fit(X2, Y_REG)
    assert est.spec_ == ref.spec_ and est.spec is spec
    np.testing.assert_allclose(est.predict(X2_TEST), ref.predict(X2_TEST), rtol=1e-12)
    gp = ap.AttentionPathsRegressor(spec=spec, width=np.inf).fit(X2, Y_REG)
    np.testing.assert_array_equal(gp.predict(X2_TEST),
                                  ap.AttentionPathsRegressor(spec=spec, gp_limit=True).fit(X2, Y_REG).predict(X2_TEST))
    assert gp.saddle_ is None and gp.spec_.temperature == 1.0


def test_flattened_sequences_with_input_shape_equal_the_sequences():
    x = RNG.normal(size=(P, 4, 3))
    xt = RNG.normal(size=(5, 4, 3))
    heads = [ap.BilinearHeads(RNG.normal(size=(2, 4, 4)))]
    spec = ap.NetworkSpec(heads=2, temperature=0.1)
    seq = ap.AttentionPathsRegressor(spec, heads, gp_limit=True).fit(x, Y_REG)
    flat = ap.AttentionPathsRegressor(spec, heads, gp_limit=True, input_shape=(4, 3)).fit(x.reshape(P, 12), Y_REG)
    np.testing.assert_allclose(flat.predict(xt.reshape(5, 12)), seq.predict(xt), rtol=1e-12)
    assert flat.n_features_in_ == 12 and seq.n_features_in_ == 4
    with pytest.raises(ValueError, match=r"X has 12 features but input_shape=\(3, 3\) needs N0 \* T = 9"):
        ap.AttentionPathsRegressor(spec, heads, input_shape=(3, 3)).fit(x.reshape(P, 12), Y_REG)
