"""Predictor statistics of the finite-width theory and of the GP limit (spec B.6, B.7).

With K = K_U(train, train) + T I (P x P), k = K_U(train, test) (P x P*) and K** = diag K_U(test, test):

    mean(x*) = Y^T K^-1 k(x*)
    var(x*)  = K**(x*) - k(x*)^T K^-1 k(x*)        (T is NOT added to the test-test term, spec H.4)

The GP limit is the same predictor at U = U_GP (`gp_order`), and any user U (e.g. a U with its off-diagonal
entries removed) goes through the same function.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import erfc

from attnpaths._src.checks import as_class_labels, as_count, as_float_array, as_labels
from attnpaths._src.order import gp_order
from attnpaths._src.paths import check_features
from attnpaths._src.routes import TrainingData, training_data
from attnpaths._src.spec import NetworkSpec


class Prediction(NamedTuple):
    """mean: (P*,) predictor mean; var: (P*,) predictor variance (>= 0 up to rounding)."""

    mean: np.ndarray
    var: np.ndarray


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    # exactly `rows` rows: the last chunk then has the shape of a full one and reuses its executable
    return np.concatenate([a, np.zeros((rows - a.shape[0],) + a.shape[1:], a.dtype)]) if a.shape[0] < rows else a


@jax.jit
def _fit(R, data: TrainingData, s0, T):
    # one executable per route: the data's type is part of the pytree structure jit keys on
    return data.predictor_fit(R, s0, T)


@jax.jit
def _apply(R, data: TrainingData, fit, xi_test, s0, T):
    return data.predictor_apply(R, fit, xi_test, s0, T)


SYMMETRY_RTOL = 1e-8
"""U1 counts as symmetric when max |U1 - U1^T| <= SYMMETRY_RTOL max(1, max |U1|)."""
PSD_RTOL = 1e-10
"""U1 counts as positive semi-definite when its eigenvalues are >= -PSD_RTOL max(1, max |eigenvalue|)."""


def _psd_factor(U1: np.ndarray) -> np.ndarray:
    """R with sym(U1) = R R^T (sym(U1) = (U1 + U1^T) / 2); ValueError unless U1 is symmetric and positive
    semi-definite to the tolerances above, which absorb the rounding of a solver's or a user's U1."""
    asymmetry = float(np.max(np.abs(U1 - U1.T)))
    if asymmetry > SYMMETRY_RTOL * max(1.0, float(np.max(np.abs(U1)))):
        raise ValueError(f"U1 must be symmetric (it weights the path-path kernels); max |U1 - U1^T| is "
                         f"{asymmetry:.3g}")
    lam, V = np.linalg.eigh(0.5 * (U1 + U1.T))
    if lam[0] < -PSD_RTOL * max(1.0, float(np.max(np.abs(lam)))):
        raise ValueError(f"U1 must be symmetric positive semi-definite (it weights the path-path kernels); its "
                         f"smallest eigenvalue is {lam[0]:.3g}")
    return V * np.sqrt(np.clip(lam, 0.0, None))[None, :]


def predict(spec: NetworkSpec, xi_train, y_train, xi_test, U1=None, temperature: float | None = None,
            chunk_size: int = 2048, route: str = "auto") -> Prediction:
    """Predictor mean and variance on test inputs (spec B.6).

    Args:
      spec: the network (s_0 and T are read from it).
      xi_train: (P, N0, H) path features, or the training data in a route's form (`GramStatistics` from
        `gram_statistics`, for P up to 10^6; then y_train is None).
      y_train: (P,) labels.
      xi_test: (P*, N0, H) path features.
      U1: (H, H) symmetric positive semi-definite path-path order parameter (to `SYMMETRY_RTOL` and `PSD_RTOL`;
        its symmetric part is used); default the GP limit U_GP (B.7).
      temperature: override T for the predictor only (the code's `forced_temperature`).
      chunk_size: test examples per chunk (memory P x chunk_size or D x chunk_size).
      route: 'auto' (P x P work when P <= N0 H, else D x D), 'example' or 'gram'; all give the same numbers.

    Returns:
      Prediction(mean (P*,), var (P*,)).
    """
    H = spec.n_paths
    T = spec.temperature if temperature is None else temperature
    if not (isinstance(T, (int, float, np.floating, np.integer)) and np.isfinite(T) and T >= 0):
        raise ValueError(f"temperature must be finite and >= 0; got {T!r}")
    chunk_size = as_count("chunk_size", chunk_size)
    data = training_data(spec.replace(temperature=float(T)), xi_train, y_train, route, ("xi_train", "y_train"))
    xi_test = np.asarray(check_features("xi_test", xi_test, H))
    if xi_test.shape[1] != data.n0:
        raise ValueError(f"xi_test has token width N0 = {xi_test.shape[1]} but xi_train has {data.n0}")
    U1 = gp_order(spec)[0] if U1 is None else as_float_array("U1", U1, shape=(H, H))
    R = jnp.asarray(_psd_factor(np.asarray(U1)))
    s0 = spec.variances[0]
    fit = _fit(R, data, s0, T)
    n_test = xi_test.shape[0]
    chunk = min(chunk_size, n_test)
    means, variances = [], []
    for start in range(0, n_test, chunk):
        block = _pad_rows(xi_test[start:start + chunk], chunk)  # one shape: one compiled executable
        m, v = _apply(R, data, fit, block, s0, T)
        n = min(chunk, n_test - start)
        means.append(np.asarray(m)[:n])
        variances.append(np.asarray(v)[:n])
    mean, var = np.concatenate(means), np.concatenate(variances)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var))):
        if T == 0:
            raise ValueError("the training kernel K_U is singular at temperature T = 0: T > 0 is needed")
        raise ValueError("K_U + T I is not positive definite: U1 must be symmetric positive semi-definite")
    return Prediction(mean, var)


def accuracy(mean, y) -> float:
    """Fraction of test points with sign(mean) == y (labels +-1), the accuracy plotted in the paper."""
    mean = as_float_array("mean", mean, ndim=1)
    y = as_class_labels("y", y, mean.shape[0])
    return float(np.mean(np.sign(mean) == y))


def gaussian_accuracy(prediction: Prediction, y) -> float:
    """Mean of Phi(y mean / std): the probability that a posterior sample has the right sign (spec B.6)."""
    y = as_class_labels("y", y, prediction.mean.shape[0])
    std = np.sqrt(np.maximum(prediction.var, 1e-300))
    return float(np.mean(0.5 * erfc(-y * prediction.mean / (std * np.sqrt(2.0)))))


def bias_error(mean, y) -> float:
    """Mean squared error of the predictor mean."""
    mean = as_float_array("mean", mean, ndim=1)
    return float(np.mean((mean - as_labels("y", y, mean.shape[0])) ** 2))
