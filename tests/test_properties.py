"""Property tests over the public API (hypothesis): random shapes, scales, readouts, head counts and head types.

Every call either returns finite, shape-correct float64 results or raises a documented error: ValueError naming
the argument for bad input, RuntimeError saying what to change when the solver does not converge. Any other
exception type fails the test. The solver properties use two fixed shapes so that they compile twice; values
(widths, temperature, variances, scales, targets) vary freely. Examples are derandomized: the same cases run
on every machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attnpaths as ap

SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


def log_uniform(lo, hi):
    return st.floats(np.log10(lo), np.log10(hi)).map(lambda e: float(10.0 ** e))


@dataclass(frozen=True, eq=False)
class CausalHeads:
    """A user head type (not in the library): uniform attention over keys s <= t (causal averaging)."""

    n_heads: int
    input_width: int

    def __call__(self, x):
        T = x.shape[-1]
        mask = jnp.tril(jnp.ones((T, T))).T  # [key s, query t]: s <= t
        omega = mask / mask.sum(axis=0, keepdims=True)
        return jnp.broadcast_to(omega, (x.shape[0], self.n_heads, T, T))


def make_layer(style, h, n0, rng, beta, x):
    if style == "bilinear":
        return ap.BilinearHeads(rng.normal(size=(h, n0, n0)) / n0, beta=beta)
    if style == "qk":
        return ap.QKHeads(rng.normal(size=(h, 2, n0)), rng.normal(size=(h, 2, n0)))
    if style == "user":
        return CausalHeads(h, n0)
    omega = jax.nn.softmax(jnp.asarray(rng.normal(size=(x.shape[0], h, x.shape[2], x.shape[2]))), axis=-2)
    return ap.GivenAttention(np.asarray(omega))


@st.composite
def networks(draw, heads=None, n_examples=None, n0=None):
    heads = draw(st.sampled_from([(1,), (2,), (3,), (2, 2), (1, 3), (2, 1, 2)])) if heads is None else heads
    # few distinct shapes: every new shape compiles, and compiling dominates the cost of these tests
    P = draw(st.sampled_from([5, 1])) if n_examples is None else n_examples
    n0 = draw(st.sampled_from([3, 1])) if n0 is None else n0
    T = draw(st.sampled_from([4, 1]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    x = draw(log_uniform(1e-3, 1e2)) * rng.normal(size=(P, n0, T))
    beta = draw(log_uniform(1e-2, 1e2))
    styles = draw(st.lists(st.sampled_from(["bilinear", "qk", "given", "user"]), min_size=len(heads),
                           max_size=len(heads)))
    layers = [make_layer(s, h, n0, rng, beta, x) for s, h in zip(styles, heads)]
    spec = ap.NetworkSpec(heads=heads, widths=draw(log_uniform(0.5, 1e4)),
                          variances=draw(log_uniform(0.3, 3.0)), temperature=draw(log_uniform(1e-2, 3.0)),
                          readout=draw(st.sampled_from(["mean", "first", "last"])))
    return spec, layers, x, rng


def names_argument(err: ValueError, *names) -> bool:
    return any(re.search(rf"(^|\W){re.escape(n)}(\W|$)", str(err)) for n in names)


@settings(max_examples=20, **SETTINGS)
@given(networks(), st.sampled_from([1, 2]))
def test_path_features_are_finite_shaped_and_chunk_invariant(network, chunk_size):
    spec, layers, x, _ = network
    xi = ap.path_features(spec, layers, x)
    assert xi.shape == (x.shape[0], x.shape[1], spec.n_paths) and xi.dtype == jnp.float64
    assert bool(jnp.all(jnp.isfinite(xi)))
    np.testing.assert_allclose(ap.path_features(spec, layers, x, chunk_size=chunk_size), xi, rtol=1e-13,
                               atol=1e-300)
    # the same attention given as arrays, processed in chunks, gives the same features
    given = [ap.GivenAttention(omega) for omega in ap.attention_matrices(layers, x)]
    np.testing.assert_allclose(ap.path_features(spec, given, x, chunk_size=chunk_size), xi, rtol=1e-13,
                               atol=1e-300)


@settings(max_examples=12, **SETTINGS)
@given(networks(), st.sampled_from([1, 4]), st.sampled_from([1, 3]))
def test_gp_predictor_is_finite_with_nonnegative_variance(network, n_test, chunk_size):
    spec, layers, x, rng = network
    xi = ap.path_features(spec, layers, x)
    xit = xi[rng.integers(0, x.shape[0], size=n_test)]  # test points drawn from the training inputs
    y = rng.normal(size=x.shape[0])
    pred = ap.predict(spec, xi, y, xit, chunk_size=chunk_size)
    assert pred.mean.shape == pred.var.shape == (n_test,)
    assert np.all(np.isfinite(pred.mean)) and np.all(np.isfinite(pred.var))
    prior = np.asarray(ap.kernel_diagonal(jnp.asarray(ap.gp_order(spec)[0]), xit, spec.variances[0]))
    assert np.all(pred.var >= -1e-9 * (1.0 + prior)) and np.all(pred.var <= prior * (1 + 1e-9) + 1e-300)


@settings(max_examples=12, **SETTINGS)
@given(st.data(), st.booleans())
def test_saddle_converges_or_says_what_to_change(data, class_labels):
    # one shape, the one of the shared `problem` fixture (heads (2, 3), P = 12, N0 = 5): the solver compiles
    # once per shape, and in a full run that compilation is already done
    spec, layers, x, rng = data.draw(networks(heads=(2, 3), n_examples=12, n0=5))
    xi = ap.path_features(spec, layers, x)
    y = np.sign(rng.normal(size=12)) if class_labels else data.draw(log_uniform(0.1, 10.0)) * rng.normal(size=12)
    try:
        saddle = ap.solve_saddle(spec, xi, y, max_iter=40)
    except RuntimeError as err:
        # allowed only where the problem is hard (N < 2: the energy dominates); it must say what to change
        assert min(spec.widths) < 2 and "did not converge" in str(err) and "Try" in str(err), str(err)
        return
    H = spec.n_paths
    assert saddle.converged and min(saddle.grad_max, saddle.relative_grad_max) <= 1e-8
    assert saddle.min_hessian_eigenvalue > 0
    assert [U.shape for U in saddle.U] == [(n, n) for n in spec.level_sizes]
    for U in saddle.U:
        assert np.all(np.isfinite(U)) and np.allclose(U, U.T) and np.linalg.eigvalsh(U).min() > 0
    assert np.isfinite(saddle.U_a) and saddle.U_a > 0 and saddle.U1.shape == (H, H)
    pred = ap.predict(spec, xi, y, xi, saddle.U1)
    assert np.all(np.isfinite(pred.mean)) and np.all(pred.var >= -1e-9)


@settings(max_examples=30, **SETTINGS)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5), st.integers(0, 2 ** 16))
def test_renormalized_kernel_is_symmetric_psd(n_paths, P, n0, seed):
    rng = np.random.default_rng(seed)
    xi = rng.normal(size=(P, n0, n_paths))
    A = rng.normal(size=(n_paths, n_paths))
    K = np.asarray(ap.renormalized_kernel(jnp.asarray(A @ A.T), xi, xi))
    scale = 1.0 + np.abs(K).max()
    np.testing.assert_allclose(K, K.T, atol=1e-12 * scale)
    assert np.linalg.eigvalsh(K).min() > -1e-10 * scale


@settings(max_examples=30, **SETTINGS)
@given(st.sampled_from([(2,), (3,), (2, 2), (1, 3), (2, 3)]), st.integers(0, 2 ** 16))
def test_head_scores_follow_head_relabelling(heads, seed):
    # relabelling the heads of one layer permutes the paths; the head scores move with the heads
    rng = np.random.default_rng(seed)
    H = int(np.prod(heads))
    A = rng.normal(size=(H, H))
    U = A @ A.T
    layer = int(rng.integers(len(heads)))
    perm = rng.permutation(heads[layer])
    idx = np.arange(H).reshape(heads)
    new_idx = np.take(idx, perm, axis=layer).ravel()
    a, b = ap.head_scores(U, heads, normalize=False), ap.head_scores(U[np.ix_(new_idx, new_idx)], heads,
                                                                      normalize=False)
    score_a = {(l, h): s for l, h, s in zip(a.layer, a.head, a.score)}
    score_b = {(l, h): s for l, h, s in zip(b.layer, b.head, b.score)}
    for (l, h), s in score_b.items():
        original = perm[h] if l == layer else h
        assert s == pytest.approx(score_a[(l, original)], rel=1e-12)
    assert ap.head_scores(U, heads).score.max() == 1.0


# ---- bad input, at random: a documented ValueError naming the argument, never another exception type -------
SPEC_ARGS = st.fixed_dictionaries({
    "heads": st.one_of(st.integers(-2, 4), st.lists(st.integers(-1, 3), max_size=3),
                       st.lists(st.floats(0, 3), min_size=1, max_size=2), st.none(), st.text(max_size=2)),
    "widths": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.lists(st.floats(-1, 100), max_size=4),
                        st.text(max_size=2)),
    "variances": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.lists(st.floats(-1, 5),
                                                                                     max_size=5)),
    "temperature": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=2)),
    "readout": st.one_of(st.sampled_from(["mean", "first", "last", "last_token", "cls", ""]), st.none()),
})


@settings(max_examples=200, **SETTINGS)
@given(SPEC_ARGS)
def test_network_spec_is_valid_or_names_the_argument(kwargs):
    try:
        spec = ap.NetworkSpec(**kwargs)
    except ValueError as err:
        assert names_argument(err, *kwargs), str(err)
        return
    assert len(spec.widths) == spec.n_layers + 1 and len(spec.variances) == spec.n_layers + 2
    assert all(np.isfinite(spec.widths)) and min(spec.widths) > 0 and spec.temperature >= 0


def corrupt(rng, a, how):
    a = np.array(a, dtype=np.float64)
    if how == "nan" and a.size:
        a.flat[rng.integers(a.size)] = np.nan
    elif how == "inf" and a.size:
        a.flat[rng.integers(a.size)] = -np.inf
    elif how == "drop-axis":
        a = a[(0,) * min(1, a.ndim)]
    elif how == "extra-axis":
        a = a[..., None]
    elif how == "empty" and a.ndim:
        a = a[:0]
    elif how == "shorter" and a.ndim and a.shape[-1] > 1:
        a = a[..., :-1]
    return a


HOWS = ["nan", "inf", "drop-axis", "extra-axis", "empty", "shorter", "none"]
SPEC = ap.NetworkSpec(heads=(2, 2), widths=4.0, temperature=0.1)
RNG = np.random.default_rng(3)
X = RNG.normal(size=(6, 3, 4))
HEADS = [ap.BilinearHeads(RNG.normal(size=(2, 3, 3))), ap.QKHeads(RNG.normal(size=(2, 2, 3)),
                                                                  RNG.normal(size=(2, 2, 3)))]
XI = np.asarray(ap.path_features(SPEC, HEADS, X))
Y = np.sign(RNG.normal(size=6))
U1 = np.eye(4)


@settings(max_examples=60, **SETTINGS)
@given(st.sampled_from(["x", "omega", "chunk_size"]), st.sampled_from(HOWS), st.integers(-3, 3),
       st.integers(0, 2 ** 16))
def test_path_features_on_corrupted_input(argument, how, chunk_size, seed):
    rng = np.random.default_rng(seed)
    x, attention = X, list(HEADS)
    if argument == "x":
        x = corrupt(rng, X, how)
    elif argument == "omega":
        attention[0] = corrupt(rng, np.asarray(ap.attention_matrices(HEADS[:1], X)[0]), how)
    names = ["chunk_size"] if chunk_size < 1 else {"x": ["x"], "omega": ["attention[0]"], "chunk_size": []}[argument]
    try:
        xi = ap.path_features(SPEC, attention, x, chunk_size=chunk_size)
    except ValueError as err:
        assert names and names_argument(err, *names), str(err)
        return
    assert chunk_size >= 1 and xi.shape == (x.shape[0], x.shape[1], 4) and bool(jnp.all(jnp.isfinite(xi)))


@settings(max_examples=60, **SETTINGS)
@given(st.sampled_from(["xi_train", "y_train", "xi_test", "U1", "temperature"]), st.sampled_from(HOWS),
       st.integers(0, 2 ** 16))
def test_predict_on_corrupted_input(argument, how, seed):
    rng = np.random.default_rng(seed)
    args = dict(spec=SPEC, xi_train=XI, y_train=Y, xi_test=XI[:3], U1=U1)
    if argument == "temperature":
        args["temperature"] = {"nan": np.nan, "inf": np.inf, "empty": -1.0}.get(how, 0.5)
    else:
        args[argument] = corrupt(rng, args[argument], how)
    try:
        pred = ap.predict(**args)
    except ValueError as err:
        # a shorter xi_train may be reported against y_train, which it must match
        assert names_argument(err, argument, "y_train" if argument == "xi_train" else argument), str(err)
        return
    assert pred.mean.shape == pred.var.shape == (args["xi_test"].shape[0],)
    assert np.all(np.isfinite(pred.mean)) and np.all(np.isfinite(pred.var))


@settings(max_examples=40, **SETTINGS)
@given(st.sampled_from(["xi", "y", "init"]), st.sampled_from(HOWS[:-1]), st.integers(0, 2 ** 16))
def test_solve_saddle_on_corrupted_input(argument, how, seed):
    rng = np.random.default_rng(seed)
    args = dict(spec=SPEC, xi=XI, y=Y)
    if argument == "init":
        args["init"] = [corrupt(rng, U1, how), np.eye(2)]
    else:
        args[argument] = corrupt(rng, args[argument], how)
    with pytest.raises(ValueError) as info:
        ap.solve_saddle(**args)
    assert names_argument(info.value, argument, "U_1", "y" if argument == "xi" else argument), str(info.value)
