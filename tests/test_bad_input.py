"""Bad input across the public API: one table of (callable, kwargs, exception, message), each the exact error.

Decisions recorded here (and in the docstrings they test):
- int, bool and float32 arrays are converted to float64 (exactly) and give the float64 result; complex arrays
  are refused, because NumPy would silently drop the imaginary part (`ACCEPTED` below, `checks.py`).
- targets outside +-1 are accepted by the theory and the samplers (the likelihood is Gaussian, so real-valued
  regression is exact) and refused by the classification metrics, where sign accuracy would be meaningless
  (`checks.as_class_labels`).
- empty arrays are refused by name; `NetworkSpec(heads=2)` is one layer of two heads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import attnpaths as ap

RNG = np.random.default_rng(0)
SPEC = ap.NetworkSpec(heads=(2, 3), widths=5.0, temperature=0.1)
X = RNG.normal(size=(12, 5, 4))  # (P, N0, T)
XT = RNG.normal(size=(5, 5, 4))
Y = np.sign(RNG.normal(size=12))
HEADS = [ap.BilinearHeads(RNG.normal(size=(2, 5, 5)) / 5), ap.BilinearHeads(RNG.normal(size=(3, 5, 5)) / 5)]
XI = ap.path_features(SPEC, HEADS, X)  # (12, 5, 6)
XIT = ap.path_features(SPEC, HEADS, XT)  # (5, 5, 6)
OMEGA = [np.asarray(a) for a in ap.attention_matrices(HEADS, X)]  # (12, 2, 4, 4), (12, 3, 4, 4)
# one non-zero feature: the kernel's rank is at most H = 6 < P = 12, so K_U is singular and T = 0 cannot work
# (same shapes as XI, so the solver compiled for XI serves this case too)
SINGULAR = SPEC.replace(temperature=0.0)
XI_SINGULAR = ap.path_features(SINGULAR, HEADS, X * (np.arange(5) == 0)[None, :, None])


@dataclass(frozen=True)
class BrokenHeads:
    """A user head that gets the protocol wrong in a chosen way."""

    n_heads: int
    input_width: int
    bug: str

    def __call__(self, x):
        P, _, T = x.shape
        omega = jnp.full((P, self.n_heads, T, T), 1.0 / T)
        return {"query-major": omega[:, :, :, :-1], "nan": omega.at[0, 0, 0, 0].set(jnp.nan),
                "int": jnp.ones((P, self.n_heads, T, T), dtype=jnp.int32)}[self.bug]


def path_features(**kw):
    args = dict(spec=SPEC, attention=HEADS, x=X)
    return ap.path_features(**{**args, **kw})


def solve(**kw):
    args = dict(spec=SPEC, xi=XI, y=Y)
    return ap.solve_saddle(**{**args, **kw})


def predict(**kw):
    args = dict(spec=SPEC, xi_train=XI, y_train=Y, xi_test=XIT)
    return ap.predict(**{**args, **kw})


def with_nan(a, index=(0, 0, 0)):
    a = np.array(a, dtype=np.float64)
    a[index] = np.nan
    return a


def make_unfitted_predict(**kw):
    return ap.AttentionPathsRegressor(SPEC, HEADS).predict(**kw)


def fit_regressor(**kw):
    # scikit-learn estimators store their parameters untouched and validate them in fit
    return ap.AttentionPathsRegressor(**{**dict(spec=SPEC, attention=HEADS, gp_limit=True), **kw}).fit(X, Y)


def fit_classifier(y):
    return ap.AttentionPathsClassifier(SPEC, HEADS, gp_limit=True).fit(X, y)


def row(fn, kwargs, exc, message, *marks, id=None):
    return pytest.param(fn, kwargs, exc, message, marks=marks, id=id)


H_MSG = "heads must be a positive int or a non-empty sequence of positive ints (H_1, ..., H_L); got "
BAD = [
    # ---- spec ----------------------------------------------------------------------------------------------
    row(ap.NetworkSpec, dict(heads=()), ValueError, H_MSG + "()", id="heads-empty"),
    row(ap.NetworkSpec, dict(heads=(2, 0)), ValueError, H_MSG + "(2, 0)", id="heads-zero"),
    row(ap.NetworkSpec, dict(heads=(2.5,)), ValueError, H_MSG + "(2.5,)", id="heads-float"),
    row(ap.NetworkSpec, dict(heads=True), ValueError, H_MSG + "True", id="heads-bool"),
    row(ap.NetworkSpec, dict(heads=2, widths=0.0), ValueError,
        "widths must be finite and > 0; got (0.0, 0.0)", id="N-zero"),
    row(ap.NetworkSpec, dict(heads=2, widths=-1.0), ValueError,
        "widths must be finite and > 0; got (-1.0, -1.0)", id="N-negative"),
    row(ap.NetworkSpec, dict(heads=2, widths=np.inf), ValueError,
        "widths must be finite and > 0; got (inf, inf) (the infinite-width limit is the GP limit: use "
        "gp_order(spec), or predict without U1)", id="N-inf"),
    row(ap.NetworkSpec, dict(heads=2, widths=(10.0, 10.0, 10.0)), ValueError,
        "widths must be a number or a sequence of length 2; got length 3", id="widths-length"),
    row(ap.NetworkSpec, dict(heads=2, widths="ten"), ValueError,
        "widths must be a number or a sequence of 2 numbers; got 'ten'", id="widths-string"),
    row(ap.NetworkSpec, dict(heads=2, variances=0.0), ValueError,
        "variances must be finite and > 0; got (0.0, 0.0, 0.0)", id="variance-zero"),
    row(ap.NetworkSpec, dict(heads=2, variances=np.nan), ValueError,
        "variances must be finite and > 0; got (nan, nan, nan)", id="variance-nan"),
    row(ap.NetworkSpec, dict(heads=2, temperature=-0.1), ValueError,
        "temperature must be a finite number >= 0; got -0.1", id="T-negative"),
    row(ap.NetworkSpec, dict(heads=2, temperature=np.inf), ValueError,
        "temperature must be a finite number >= 0; got inf", id="T-inf"),
    row(ap.NetworkSpec, dict(heads=2, temperature="hot"), ValueError,
        "temperature must be a finite number >= 0; got 'hot'", id="T-string"),
    row(ap.NetworkSpec, dict(heads=2, readout="cls"), ValueError,
        "readout must be one of ('mean', 'first', 'last') (or average_pooling, first_token, last_token); "
        "got 'cls'", id="readout-unknown"),
    row(ap.NetworkSpec, dict(heads=2, readout=["mean"]), ValueError,
        "readout must be one of ('mean', 'first', 'last') (or average_pooling, first_token, last_token); "
        "got ['mean']", id="readout-list"),
    # ---- heads ---------------------------------------------------------------------------------------------
    row(ap.BilinearHeads, dict(W=np.zeros((2, 3, 4))), ValueError,
        "W must have shape (H_l, N0, N0) with H_l, N0 >= 1; got (2, 3, 4)", id="W-not-square"),
    row(ap.BilinearHeads, dict(W=np.zeros((0, 4, 4))), ValueError,
        "W must have shape (H_l, N0, N0) with H_l, N0 >= 1; got (0, 4, 4)", id="W-empty"),
    row(ap.BilinearHeads, dict(W=np.zeros((4, 4))), ValueError,
        "W must have 3 dimensions; got shape (4, 4)", id="W-2d"),
    row(ap.BilinearHeads, dict(W=with_nan(np.zeros((1, 2, 2)))), ValueError,
        "W contains 1 NaN or infinite entries", id="W-nan"),
    row(ap.BilinearHeads, dict(W=np.zeros((1, 2, 2)), beta=np.inf), ValueError,
        "beta contains 1 NaN or infinite entries", id="beta-inf"),
    row(ap.QKHeads, dict(Q=np.zeros((2, 3, 4)), K=np.zeros((2, 3, 5))), ValueError,
        "Q and K must have the same shape (H_l, G, N0), all >= 1; got Q (2, 3, 4), K (2, 3, 5)", id="QK-mismatch"),
    row(ap.QKHeads, dict(Q=np.ones((1, 2, 2)) * 1j, K=np.ones((1, 2, 2))), ValueError,
        "Q must be real; got a complex array", id="Q-complex"),
    row(ap.GivenAttention, dict(omega=np.zeros((3, 2, 4, 3))), ValueError,
        "omega must have shape (P, H_l, T, T) with P, H_l, T >= 1; got (3, 2, 4, 3)", id="given-not-square"),
    row(ap.make_heads, dict(name="alibi"), ValueError,
        "unknown head type 'alibi'; known: bilinear, qk, given", id="head-type-unknown"),
    row(ap.make_heads, dict(name="bilinear"), ValueError,
        "head type 'bilinear': missing a required argument: 'W'", id="head-type-missing-param"),
    row(ap.make_heads, dict(name="bilinear", W=np.ones((1, 2, 2)), gamma=1.0), ValueError,
        "head type 'bilinear': got an unexpected keyword argument 'gamma'", id="head-type-unknown-param"),
    row(ap.register_heads, dict(name="bilinear", factory=ap.QKHeads), ValueError,
        "head type 'bilinear' is already registered; pass replace=True to override it",
        id="head-type-taken"),
    row(ap.register_heads, dict(name="", factory=ap.QKHeads), ValueError,
        "a head type name must be a non-empty string; got ''", id="head-type-no-name"),
    row(ap.register_heads, dict(name="x", factory=3), ValueError,
        "factory must be callable (e.g. a class); got int", id="head-type-not-callable"),
    # ---- paths ---------------------------------------------------------------------------------------------
    row(path_features, dict(chunk_size=0), ValueError, "chunk_size must be an int >= 1; got 0", id="chunk-0"),
    row(path_features, dict(chunk_size=-3), ValueError, "chunk_size must be an int >= 1; got -3", id="chunk-neg"),
    row(path_features, dict(chunk_size=2.5), ValueError, "chunk_size must be an int >= 1; got 2.5",
        id="chunk-float"),
    row(path_features, dict(x=X[0]), ValueError, "x must have 3 dimensions; got shape (5, 4)", id="x-2d"),
    row(path_features, dict(x=with_nan(X)), ValueError, "x contains 1 NaN or infinite entries", id="x-nan"),
    row(path_features, dict(x=np.where(X > 2.5, np.inf, X)), ValueError,
        f"x contains {np.count_nonzero(X > 2.5)} NaN or infinite entries", id="x-inf"),
    row(path_features, dict(x=X[:0]), ValueError,
        "x must have shape (P, N0, T) with P, N0, T >= 1; got (0, 5, 4)", id="x-empty-P"),
    row(path_features, dict(x=X[:, :, :0]), ValueError,
        "x must have shape (P, N0, T) with P, N0, T >= 1; got (12, 5, 0)", id="x-no-tokens"),
    row(path_features, dict(x=X + 0j), ValueError, "x must be real; got a complex array", id="x-complex"),
    row(path_features, dict(x=[["a"]]), ValueError,
        "x must be a numeric array; got list (could not convert string to float: 'a')", id="x-strings"),
    row(path_features, dict(attention=HEADS[:1]), ValueError,
        "attention has 1 layers but the network has L = 2 (heads = (2, 3))", id="L-mismatch"),
    row(path_features, dict(attention=HEADS[0]), ValueError,
        "attention must be a list with one Heads (BilinearHeads, QKHeads, GivenAttention or your own) per "
        "layer; got BilinearHeads", id="attention-not-list"),
    row(path_features, dict(spec=SPEC.replace(heads=(2, 2))), ValueError,
        "attention[1] has 3 heads but layer 2 of the network has H_2 = 2", id="H-mismatch"),
    row(path_features, dict(x=X[:, :3]), ValueError,
        "attention[0] acts on tokens of width 5 but x has N0 = 3", id="N0-mismatch"),
    row(path_features, dict(attention=[OMEGA[0][:10], OMEGA[1]]), ValueError,
        "attention[0] holds attention for 10 examples but x has P = 12", id="given-P-mismatch"),
    row(path_features, dict(attention=[OMEGA[0][:, :, :3, :3], OMEGA[1]]), ValueError,
        "attention[0] (GivenAttention) returned attention of shape (12, 2, 3, 3); expected "
        "(P, H_l, T_key, T_query) = (12, 2, 4, 4)", id="given-T-mismatch"),
    row(path_features, dict(attention=[OMEGA[0][..., :3], OMEGA[1]]), ValueError,
        "attention[0] must have shape (P, H_l, T, T) with P, H_l, T >= 1; got (12, 2, 4, 3)", id="given-shape"),
    row(path_features, dict(attention=[with_nan(OMEGA[0], (0, 0, 0, 0)), OMEGA[1]]), ValueError,
        "attention[0] contains 1 NaN or infinite entries", id="given-nan"),
    row(path_features, dict(attention=[BrokenHeads(2, 5, "query-major"), HEADS[1]]), ValueError,
        "attention[0] (BrokenHeads) returned attention of shape (12, 2, 4, 3); expected "
        "(P, H_l, T_key, T_query) = (12, 2, 4, 4)", id="user-head-shape"),
    row(path_features, dict(attention=[HEADS[0], BrokenHeads(3, 5, "nan")]), ValueError,
        "attention[1] (BrokenHeads) returned NaN/inf attention: check the head's parameters (e.g. beta and the "
        "scale of W, Q, K)", id="user-head-nan"),
    row(path_features, dict(attention=[BrokenHeads(2, 5, "int"), HEADS[1]]), ValueError,
        "attention[0] (BrokenHeads) returned int32 attention; expected real floating point", id="user-head-int"),
    row(path_features, dict(attention=[ap.BilinearHeads(np.ones((2, 5, 5)), beta=1e308), HEADS[1]]), ValueError,
        "attention[0] (BilinearHeads) returned NaN/inf attention: check the head's parameters (e.g. beta and "
        "the scale of W, Q, K)", id="beta-overflow"),
    # ---- kernels (unvalidated jitted functions today) ------------------------------------------------------
    row(ap.path_kernels, dict(xi_a=XI, xi_b=XIT[:, :3]), ValueError,
        "xi_b has token width N0 = 3 but xi_a has 5",
        id="kernel-N0-mismatch"),
    row(ap.gp_kernel, dict(spec=SPEC, xi_a=XI[..., :4], xi_b=XIT), ValueError,
        "xi_a has 4 paths (last axis) but the network has H = 6",
        id="gp-kernel-H-mismatch"),
    row(ap.renormalized_kernel, dict(U1=np.eye(3), xi_a=XI, xi_b=XIT), ValueError,
        "U1 must have shape (6, 6); got (3, 3)",
        id="kernel-U-shape"),
    # ---- solver --------------------------------------------------------------------------------------------
    row(solve, dict(y=Y[:3]), ValueError, "y has 3 entries but there are 12 examples", id="y-length"),
    row(solve, dict(y=with_nan(Y, 4)), ValueError, "y contains 1 NaN or infinite entries", id="y-nan"),
    row(solve, dict(y=Y[:, None]), ValueError, "y must be a vector of shape (12,); got shape (12, 1)", id="y-2d"),
    row(solve, dict(xi=XI[..., :4]), ValueError, "xi has 4 paths (last axis) but the network has H = 6",
        id="xi-H-mismatch"),
    row(solve, dict(xi=XI[:0], y=Y[:0]), ValueError,
        "xi must have shape (P, N0, H) with P, N0 >= 1; got (0, 5, 6)", id="xi-empty"),
    row(solve, dict(xi=with_nan(XI)), ValueError, "xi contains 1 NaN or infinite entries", id="xi-nan"),
    row(solve, dict(init=[-np.eye(6), np.eye(3)]), ValueError,
        "U_1 must be symmetric positive definite (it is the overlap of path weights); its Cholesky "
        "factorisation failed", id="init-not-spd"),
    row(solve, dict(init=[np.eye(5), np.eye(3)]), ValueError, "U_1 must have shape (6, 6); got (5, 5)",
        id="init-shape"),
    row(solve, dict(init=[np.eye(6)]), ValueError, "init must hold L = 2 matrices (U_1, ..., U_L); got 1", id="init-levels"),
    row(solve, dict(tol=0.0), ValueError, "tol must be a finite number > 0; got 0.0", id="tol-zero"),
    row(solve, dict(tol=float("nan")), ValueError, "tol must be a finite number > 0; got nan", id="tol-nan"),
    row(solve, dict(max_iter=2.5), ValueError, "max_iter must be an int >= 0; got 2.5", id="max-iter-float"),
    row(solve, dict(max_products=0), ValueError, "max_products must be an int >= 1; got 0",
        id="max-products-zero"),
    row(solve, dict(route="fast"), ValueError, "route must be one of ('auto', 'example', 'gram'); got 'fast'",
        id="route-unknown"),
    row(solve, dict(method="newton"), ValueError,
        "method must be one of ('auto', 'dense', 'krylov'); got 'newton'", id="method-unknown"),
    row(ap.solve_saddle, dict(spec=SINGULAR, xi=XI_SINGULAR, y=Y), ValueError,
        "the training kernel K_U is singular at the initial U and temperature T = 0: T > 0 is needed (or fewer "
        "examples than the kernel's rank)", id="T0-singular-solve"),
    row(solve, dict(spec=SPEC.with_width(1e-6), max_iter=3), RuntimeError,
        re.compile(r"did not converge.*width"),
        id="N-to-0-hint"),
    # ---- predictor -----------------------------------------------------------------------------------------
    row(predict, dict(U1=np.eye(3)), ValueError, "U1 must have shape (6, 6); got (3, 3)", id="U1-shape"),
    row(predict, dict(U1=with_nan(np.eye(6), (1, 2))), ValueError, "U1 contains 1 NaN or infinite entries",
        id="U1-nan"),
    row(predict, dict(U1=-10 * np.eye(6)), ValueError,
        "U1 must be symmetric positive semi-definite (it weights the path-path kernels); its smallest eigenvalue "
        "is -10", id="U1-negative"),
    row(predict, dict(xi_test=XIT[:, :3]), ValueError, "xi_test has token width N0 = 3 but xi_train has 5",
        id="xi-test-N0"),
    row(predict, dict(xi_test=XIT[:0]), ValueError,
        "xi_test must have shape (P, N0, H) with P, N0 >= 1; got (0, 5, 6)", id="xi-test-empty"),
    row(predict, dict(temperature=-1.0), ValueError, "temperature must be finite and >= 0; got -1.0",
        id="predict-T-negative"),
    row(ap.predict, dict(spec=SINGULAR, xi_train=XI_SINGULAR, y_train=Y, xi_test=XI_SINGULAR), ValueError,
        "the training kernel K_U is singular at temperature T = 0: T > 0 is needed", id="T0-singular-predict"),
    row(predict, dict(chunk_size=0), ValueError, "chunk_size must be an int >= 1; got 0", id="predict-chunk-0"),
    row(ap.accuracy, dict(mean=np.array([0.3, -0.2]), y=np.array([0.0, 1.0])), ValueError,
        "y must hold class labels -1 or +1; got 0.0 at index 0 (1 entries are not +-1)", id="accuracy-01-labels"),
    row(ap.accuracy, dict(mean=np.array([0.3, -0.2]), y=np.ones(3)), ValueError,
        "y has 3 entries but there are 2 examples", id="accuracy-length"),
    row(ap.bias_error, dict(mean=np.array([0.3, -0.2]), y=np.ones(3)), ValueError,
        "y has 3 entries but there are 2 examples",
        id="bias-error-length"),
    # ---- estimator -----------------------------------------------------------------------------------------
    row(fit_regressor, dict(attention=OMEGA), ValueError,
        "attention[0] must be Heads that compute attention for new inputs (e.g. BilinearHeads, QKHeads); got "
        "ndarray. For attention given per example use path_features / solve_saddle / predict", id="est-arrays"),
    row(fit_regressor, dict(attention=[HEADS[0], ap.GivenAttention(OMEGA[1])]),
        ValueError, "attention[1] must be Heads that compute attention for new inputs (e.g. BilinearHeads, "
        "QKHeads); got GivenAttention. For attention given per example use path_features / solve_saddle / "
        "predict", id="est-given"),
    row(fit_regressor, dict(attention=HEADS[0]), ValueError,
        "attention must be a list with one Heads per layer; got BilinearHeads", id="est-not-list"),
    row(fit_regressor, dict(attention=None), ValueError,
        "attention=None means one uniformly attending head per layer, but spec has heads (2, 3): pass attention, "
        "one Heads per layer", id="est-attention-none"),
    row(fit_regressor, dict(spec=(2, 3)), ValueError, "spec must be a NetworkSpec or None; got tuple",
        id="est-spec"),
    row(fit_regressor, dict(width=0.0, gp_limit=False), ValueError,
        "width must be a number > 0 (inf for the GP limit) or None; got 0.0", id="est-width"),
    row(fit_regressor, dict(width=5.0), ValueError,
        "width=5.0 contradicts gp_limit=True (the infinite-width limit): set width=None or width=inf, or "
        "gp_limit=False", id="est-width-gp"),
    row(fit_regressor, dict(temperature=-1.0), ValueError, "temperature must be a finite number >= 0; got -1.0",
        id="est-temperature"),
    row(fit_regressor, dict(input_shape=(5, 0)), ValueError,
        "input_shape must be None or (N0, T), two ints >= 1; got (5, 0)", id="est-input-shape"),
    row(fit_regressor, dict(input_shape=(4, 5)), ValueError,
        "X has sequences of shape (N0, T) = (5, 4) but input_shape=(4, 5)", id="est-input-shape-mismatch"),
    row(make_unfitted_predict, dict(X=XT), NotFittedError,
        "This AttentionPathsRegressor instance is not fitted yet. Call 'fit' with appropriate arguments before "
        "using this estimator.", id="est-unfitted"),
    row(fit_classifier, dict(y=np.arange(12) % 3), ValueError,
        "Only binary classification is supported. The type of the target is multiclass: y holds 3 classes "
        "[0, 1, 2]", id="est-classifier-3-classes"),
    # ---- analysis ------------------------------------------------------------------------------------------
    row(ap.pc_alignment, dict(K=np.eye(3)[:2], y=Y[:2]), ValueError, "K must be square (P, P); got (2, 3)",
        id="pca-not-square"),
    row(ap.pc_alignment, dict(K=np.eye(3), y=np.zeros(3)), ValueError,
        "y must not be all zero (the overlaps are normalised by |y|)", id="pca-zero-y"),
    row(ap.pc_alignment, dict(K=np.eye(3), y=np.ones(3), n_components=0), ValueError,
        "n_components must be an int >= 1; got 0", id="pca-components"),
    row(ap.head_scores, dict(U1=np.eye(4), heads=(2, 3)), ValueError, "U1 must have shape (6, 6); got (4, 4)",
        id="scores-U-shape"),
    row(ap.head_scores, dict(U1=np.eye(4), heads=(2, 0)), ValueError, H_MSG + "(2, 0)", id="scores-heads"),
    row(ap.head_scores, dict(U1=np.zeros((6, 6)), heads=(2, 3)), ValueError,
        "U1 is zero, so the head scores cannot be normalised; use normalize=False", id="scores-zero-U"),
    row(ap.format_order_parameter, dict(U=np.eye(2), labels=["g"]), ValueError,
        "U must be square with one label per path and order a permutation; got U (2, 2), 1 labels, order [0, 1]",
        id="format-labels"),
    row(ap.format_order_parameter, dict(U=np.eye(2), labels=["g", "d"], digits=-1), ValueError,
        "digits must be an int >= 0; got -1", id="format-digits"),
    # ---- CLI (phase 2, after the experiments branch lands its registries and settings) ---------------------
    # unknown preset, unwritable --out, corrupt results.json, results.json from another version
]


@pytest.mark.parametrize("fn, kwargs, exc, message", BAD)
def test_bad_input_gets_the_documented_error(fn, kwargs, exc, message):
    with pytest.raises(Exception) as info:
        fn(**kwargs)
    assert type(info.value) is exc, f"{type(info.value).__name__}: {info.value}"
    if isinstance(message, re.Pattern):
        assert message.search(str(info.value)), str(info.value)
    else:
        assert str(info.value) == message


def test_the_table_is_large_and_unique():
    ids = [p.id for p in BAD]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)


# ---- input that is accepted: converted exactly, same numbers as float64 -----------------------------------
ACCEPTED = [
    pytest.param(lambda a: ap.path_features(SPEC, HEADS, a), np.round(2 * X).astype(np.int64), id="x-int"),
    pytest.param(lambda a: ap.path_features(SPEC, HEADS, a), X.astype(np.float32), id="x-float32"),
    pytest.param(lambda a: ap.path_features(SPEC, [a, OMEGA[1]], X), OMEGA[0].astype(np.float32),
                 id="attention-float32"),
    pytest.param(lambda a: ap.predict(SPEC, XI, a, XIT).mean, Y.astype(np.int64), id="y-int"),
    pytest.param(lambda a: ap.solve_saddle(SPEC, a, Y).U1, np.asarray(XI, dtype=np.float32), id="xi-float32"),
    pytest.param(lambda a: ap.predict(SPEC, XI, Y, XIT, a).var, np.eye(6, dtype=np.int32), id="U1-int"),
]


@pytest.mark.parametrize("fn, value", ACCEPTED)
def test_int_and_float32_input_is_converted_to_float64(fn, value):
    assert value.dtype != np.float64
    got = fn(value)
    assert np.asarray(got).dtype == np.float64
    np.testing.assert_array_equal(got, fn(value.astype(np.float64)))


def test_real_valued_targets_are_regression_targets():
    # Gaussian likelihood: targets off +-1 are exact GP regression on K_U (here the GP kernel), no warning
    y = 0.5 * Y + 0.2
    K = np.einsum("mip,nip->mn", np.asarray(XI), np.asarray(XI))  # U_GP = I, s0 = 1
    k = np.einsum("mip,nip->mn", np.asarray(XI), np.asarray(XIT))
    want = k.T @ np.linalg.solve(K + SPEC.temperature * np.eye(12), y)
    np.testing.assert_allclose(ap.predict(SPEC, XI, y, XIT).mean, want, rtol=1e-10)


def test_one_layer_spec_from_an_int():
    spec = ap.NetworkSpec(heads=2, widths=10)
    assert spec.heads == (2,) and spec.widths == (10.0, 10.0) and spec.n_paths == 2
    xi = ap.path_features(spec, [HEADS[0]], X)
    assert xi.shape == (12, 5, 2)
