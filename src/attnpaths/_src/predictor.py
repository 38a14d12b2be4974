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
from jax.scipy.linalg import solve_triangular
from scipy.special import erfc

from attnpaths._src.checks import as_float_array, as_labels
from attnpaths._src.kernels import kernel_diagonal, renormalized_kernel
from attnpaths._src.order import gp_order
from attnpaths._src.paths import check_features
from attnpaths._src.spec import NetworkSpec


class Prediction(NamedTuple):
    """mean: (P*,) predictor mean; var: (P*,) predictor variance (>= 0 up to rounding)."""

    mean: np.ndarray
    var: np.ndarray


@jax.jit
def _predict(U1, xi_train, y, xi_test, s0, temperature):
    P = xi_train.shape[0]
    K = renormalized_kernel(U1, xi_train, xi_train, s0) + temperature * jnp.eye(P, dtype=xi_train.dtype)
    chol = jnp.linalg.cholesky(K)
    k = renormalized_kernel(U1, xi_train, xi_test, s0)
    Lk = solve_triangular(chol, k, lower=True)
    Ly = solve_triangular(chol, y, lower=True)
    return Lk.T @ Ly, kernel_diagonal(U1, xi_test, s0) - jnp.sum(Lk * Lk, axis=0)


def predict(spec: NetworkSpec, xi_train, y_train, xi_test, U1=None, temperature: float | None = None,
            chunk_size: int = 2048) -> Prediction:
    """Predictor mean and variance on test inputs (spec B.6).

    Args:
      spec: the network (s_0 and T are read from it).
      xi_train: (P, N0, H) and xi_test: (P*, N0, H) path features.
      y_train: (P,) labels.
      U1: (H, H) path-path order parameter; default the GP limit U_GP (B.7).
      temperature: override T for the predictor only (the code's `forced_temperature`).
      chunk_size: test examples per chunk (memory P x chunk_size).

    Returns:
      Prediction(mean (P*,), var (P*,)).
    """
    H = spec.n_paths
    xi_train = check_features("xi_train", xi_train, H)
    xi_test = check_features("xi_test", xi_test, H)
    if xi_test.shape[1] != xi_train.shape[1]:
        raise ValueError(f"xi_test has token width N0 = {xi_test.shape[1]} but xi_train has {xi_train.shape[1]}")
    y = jnp.asarray(as_labels("y_train", y_train, xi_train.shape[0]))
    U1 = gp_order(spec)[0] if U1 is None else as_float_array("U1", U1, shape=(H, H))
    T = spec.temperature if temperature is None else float(temperature)
    if not (np.isfinite(T) and T >= 0):
        raise ValueError(f"temperature must be finite and >= 0; got {T}")
    means, variances = [], []
    for start in range(0, xi_test.shape[0], chunk_size):
        m, v = _predict(jnp.asarray(U1), xi_train, y, xi_test[start:start + chunk_size],
                        spec.variances[0], T)
        means.append(np.asarray(m))
        variances.append(np.asarray(v))
    mean, var = np.concatenate(means), np.concatenate(variances)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var))):
        if T == 0:
            raise ValueError("the training kernel K_U is singular at temperature T = 0: T > 0 is needed")
        raise ValueError("K_U + T I is not positive definite: U1 must be symmetric positive semi-definite")
    return Prediction(mean, var)


def accuracy(mean, y) -> float:
    """Fraction of test points with sign(mean) == y (labels +-1), the accuracy plotted in the paper."""
    mean = np.asarray(mean)
    y = as_labels("y", y, mean.shape[0])
    return float(np.mean(np.sign(mean) == np.sign(y)))


def gaussian_accuracy(prediction: Prediction, y) -> float:
    """Mean of Phi(y mean / std): the probability that a posterior sample has the right sign (spec B.6)."""
    y = as_labels("y", y, prediction.mean.shape[0])
    std = np.sqrt(np.maximum(prediction.var, 1e-300))
    return float(np.mean(0.5 * erfc(-y * prediction.mean / (std * np.sqrt(2.0)))))


def bias_error(mean, y) -> float:
    """Mean squared error of the predictor mean."""
    return float(np.mean((np.asarray(mean) - np.asarray(y)) ** 2))
