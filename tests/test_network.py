"""The Bayesian network (spec A) and its path form (B.1, B.3): forward pass, prior, likelihood, order parameter."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import attnpaths  # noqa: F401  (float64)
from attnpaths import NetworkSpec, path_features
from attnpaths._src.network import (
    effective_path_weights,
    forward,
    log_likelihood,
    log_prior,
    overlap,
    path_forward,
    sample_prior,
    sampled_order_parameter,
)

ARCHS = [((1,), "mean"), ((3,), "last"), ((2, 3), "first"), ((2, 2), "last"), ((2, 1, 2), "mean")]


def _problem(heads, readout, P=5, n0=4, T=3, seed=0):
    rng = np.random.default_rng(seed)
    L = len(heads)
    widths = [3 + l for l in range(L)] + [2]
    spec = NetworkSpec(heads, widths=widths, variances=[1.0, 0.5, 2.0, 1.5, 0.7][: L + 2], temperature=0.3,
                       readout=readout)
    x = rng.normal(size=(P, n0, T))
    att = [np.asarray(jax.nn.softmax(jnp.asarray(rng.normal(size=(P, h, T, T))), axis=-2)) for h in heads]
    w = sample_prior(spec, n0, jax.random.PRNGKey(seed))
    return spec, x, att, w


def _w_hat_loop(spec, w):
    """w_hat_pi = a^T V^(L,h_L) ... V^(1,h_1) / sqrt(N_a N_L ... N_2), one path at a time (spec B.3)."""
    V, a = [np.asarray(v) for v in w.V], np.asarray(w.a)
    rows = []
    for path in itertools.product(*[range(h) for h in spec.heads]):  # lower layer outermost
        v = a / math.sqrt(a.shape[0])
        for l in reversed(range(spec.n_layers)):
            v = v @ V[l][path[l]]
            if l > 0:
                v = v / math.sqrt(V[l].shape[2])
        rows.append(v)
    return np.stack(rows)


@pytest.mark.parametrize("heads, readout", ARCHS)
def test_forward_equals_path_decomposition(heads, readout):
    """f(x) = N_1^-1/2 sum_pi w_hat_pi . V0 xi_pi with xi = x_pi / sqrt(N0 H) (spec B.1)."""
    spec, x, att, w = _problem(heads, readout)
    f = np.asarray(forward(spec, w, jnp.asarray(x), [jnp.asarray(a) for a in att]))
    xi = np.asarray(path_features(spec, att, x))  # (P, N0, H)
    w_hat = _w_hat_loop(spec, w)  # (H, N1)
    n1 = w.V0.shape[0]
    ref = np.einsum("pi,ij,mjp->m", w_hat, np.asarray(w.V0), xi) / math.sqrt(n1)
    np.testing.assert_allclose(f, ref, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(np.asarray(path_forward(spec, w, xi)), f, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(np.asarray(effective_path_weights(spec, w)), w_hat, rtol=1e-12, atol=1e-14)


def test_forward_matches_loop_reference():
    """Token-level forward pass against explicit loops over heads and tokens (spec A.2-A.6), 2 layers."""
    spec, x, att, w = _problem((2, 3), "last")
    V0, (V1, V2), a = np.asarray(w.V0), [np.asarray(v) for v in w.V], np.asarray(w.a)
    P, n0, T = x.shape
    out = []
    for mu in range(P):
        z0 = V0 @ x[mu] / math.sqrt(n0)  # (N1, T)
        z1 = np.zeros((V1.shape[1], T))
        for h in range(2):
            for t in range(T):
                for s in range(T):
                    z1[:, t] += V1[h] @ z0[:, s] * att[0][mu, h, s, t]
        z1 /= math.sqrt(2 * V1.shape[2])
        z2 = np.zeros(V2.shape[1])
        for h in range(3):
            for s in range(T):
                z2 += V2[h] @ z1[:, s] * att[1][mu, h, s, T - 1]
        z2 /= math.sqrt(3 * V2.shape[2])
        out.append(a @ z2 / math.sqrt(a.shape[0]))
    f = np.asarray(forward(spec, w, jnp.asarray(x), [jnp.asarray(a_) for a_ in att]))
    np.testing.assert_allclose(f, out, rtol=1e-12)


def test_order_parameter_is_mean_overlap():
    spec, x, att, _ = _problem((2, 2), "mean")
    batch = sample_prior(spec, 4, jax.random.PRNGKey(3), (7,))
    U = np.asarray(sampled_order_parameter(spec, batch))
    ref = np.mean([(lambda wh: wh @ wh.T / wh.shape[1])(_w_hat_loop(spec, jax.tree_util.tree_map(lambda a: a[i],
                                                                                                  batch)))
                   for i in range(7)], axis=0)
    np.testing.assert_allclose(U, ref, rtol=1e-12)
    np.testing.assert_allclose(U, U.T, atol=1e-14)
    assert np.linalg.eigvalsh(U).min() > -1e-12
    one = jax.tree_util.tree_map(lambda a: a[0], batch)
    wh = _w_hat_loop(spec, one)
    np.testing.assert_allclose(np.asarray(overlap(spec, one)), wh @ wh.T / wh.shape[1], rtol=1e-12)


def test_prior_shapes_and_variances():
    spec = NetworkSpec((2, 3), widths=[40, 50, 60], variances=[0.5, 2.0, 1.5, 3.0])
    w = sample_prior(spec, 30, jax.random.PRNGKey(0), (2,))
    assert w.V0.shape == (2, 40, 30)
    assert [v.shape for v in w.V] == [(2, 2, 50, 40), (2, 3, 60, 50)]
    assert w.a.shape == (2, 60)
    for block, s in zip([w.V0, *w.V], [0.5, 2.0, 1.5]):
        assert abs(float(jnp.var(block)) / s - 1) < 0.05
    again = sample_prior(spec, 30, jax.random.PRNGKey(0), (2,))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(w), jax.tree_util.tree_leaves(again)))


def test_log_prior_and_likelihood():
    spec, x, att, w = _problem((2, 2), "last")
    ref = sum(stats.norm.logpdf(np.asarray(b), scale=math.sqrt(s)).sum()
              for b, s in zip([w.V0, *w.V, w.a], spec.variances))
    np.testing.assert_allclose(float(log_prior(spec, w)), ref, rtol=1e-12)
    y = np.sign(np.arange(5) - 2.5)
    f = np.asarray(forward(spec, w, jnp.asarray(x), att))
    ref = stats.norm.logpdf(y, loc=f, scale=math.sqrt(spec.temperature)).sum()
    np.testing.assert_allclose(float(log_likelihood(spec, w, jnp.asarray(x), att, jnp.asarray(y))), ref, rtol=1e-12)


def test_likelihood_needs_positive_temperature():
    spec, x, att, w = _problem((2,), "last")
    with pytest.raises(ValueError, match="T > 0"):
        log_likelihood(spec.replace(temperature=0.0), w, jnp.asarray(x), att, jnp.zeros(5))


def test_non_integer_widths_rejected():
    with pytest.raises(ValueError, match=r"integer widths; spec.widths\[1\] \(N_a\) = 2.5"):
        sample_prior(NetworkSpec((2,), widths=[3, 2.5]), 4, jax.random.PRNGKey(0))
