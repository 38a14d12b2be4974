"""The energy and the predictor of the finite-width theory by two exact routes (spec B.4, B.6).

With Xi the (P, D) matrix of flattened path features (D = N0 H; row mu is xi^mu with index (pi, i)) and
A = s_0 (U_1 (x) I_N0), the training kernel is K = Xi A Xi^T. It has rank at most D, so everything the theory
needs from the P training examples can be computed in two exact ways:

* the example route (`ExampleData`): factorise the P x P matrix K + T I = L L^T, W = L^-1 Xi, r = L^-1 y.
  Cost per evaluation O(P^2 D + P^3). The right route when P < D.
* the Gram route (`GramStatistics`): the data enter only through G = Xi^T Xi (D x D), b = Xi^T y and y^T y,
  accumulated once over examples (`gram_statistics`, chunked, on every local device). With U_1 = R R^T,
  R~ = R (x) I and the D x D matrices B = s_0 R~^T G R~ and C = B + T I = L_C L_C^T,

      ln det(K + T I)      = ln det C + (P - D) ln T                        (matrix determinant lemma)
      y^T (K + T I)^-1 y   = (y^T y - c^T C^-1 c) / T,   c = sqrt(s_0) R~^T b    (Woodbury)

  No P x P matrix is ever formed: O(P D^2) once per data set, then O(D^3) per evaluation. Needs T > 0.

Both routes are objects with the methods of the `TrainingData` protocol, which is all the solver and the
predictor know of them. Both return the same `EnergyFactors`: E and the two objects every derivative of E is built from,

    M = Xi^T (K + T I)^-1 Xi  (D x D),     v = Xi^T (K + T I)^-1 y  (D,)

(example route: M = W^T W, v = W^T r; Gram route: M = R~^-T C^-1 R~^T G, v = R~^-T C^-1 R~^T b, which follow
from (T I + G A)^-1 = R~^-T C^-1 R~^T). The derivatives themselves are in `action.py`. The example route keeps
W instead of M when M (D^2 entries) would be the larger object, so the Hessian-vector products stay in example
space for many paths and few examples.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular

from attnpaths._src.checks import as_labels
from attnpaths._src.kernels import _kernel_diagonal, _renormalized_kernel
from attnpaths._src.paths import check_features

ROUTES = ("auto", "example", "gram")


class EnergyFactors(NamedTuple):
    """E and the factors of its derivatives at one U_1 (see the module docstring).

    E: () the energy ln det(K + T I) + y^T (K + T I)^-1 y.
    v: (H, N0) Xi^T (K + T I)^-1 y, indexed (path, token-width).
    trace_M: (H, H) the block traces sum_i M[(c, i), (d, i)].
    M: (H, N0, H, N0) or None.
    W: (P, H, N0) L^-1 Xi or None (the example route without M).
    """

    E: jnp.ndarray
    v: jnp.ndarray
    trace_M: jnp.ndarray
    M: jnp.ndarray | None
    W: jnp.ndarray | None


class TrainingData(Protocol):
    """What the solver and the predictor need of a training set; `ExampleData` and `GramStatistics` are the two.

    route: 'example' or 'gram'. n0, n_paths: the token width N0 and the number of paths H.
    """

    route: str

    @property
    def n0(self) -> int: ...

    @property
    def n_paths(self) -> int: ...

    def energy(self, U1, s0, T) -> jnp.ndarray:
        """E = ln det(K_U + T I) + y^T (K_U + T I)^-1 y (spec B.4), traceable."""

    def factors(self, U1, s0, T, keep_M: bool) -> EnergyFactors:
        """E and the factors of its derivatives at U1 (H, H), traceable."""

    def keeps_M(self, dense: bool) -> bool:
        """Whether `factors` should keep M (D x D) rather than W (P x D): the smaller for the solver's method."""

    def singular_at_zero_temperature(self) -> bool:
        """Whether K_U is singular for every U, so that T = 0 is impossible."""

    def predictor_fit(self, R, s0, T):
        """The predictor's training-set solve at U1 = R R^T (spec B.6), a pytree for `predictor_apply`."""

    def predictor_apply(self, R, fit, xi_test, s0, T) -> tuple[jnp.ndarray, jnp.ndarray]:
        """(mean (P*,), var (P*,)) of the predictor on test path features xi_test (P*, N0, H)."""


def _example_bucket(P: int) -> int:
    """Number of rows the example route pads P to, so that nearby P share one compiled executable.

    Multiples of 32 up to 256, then 8 sizes per octave (at most 12.5% padding). Padded rows have zero features,
    y = 0 and a unit diagonal, so they change neither E nor any derivative.
    """
    if P <= 256:
        return 32 * math.ceil(P / 32)
    step = 2 ** (int(math.floor(math.log2(P))) - 3)
    return step * math.ceil(P / step)


class ExampleData(NamedTuple):
    """Training data for the example route: path features and labels, padded to `_example_bucket(P)` rows.

    xi: (P_pad, N0, H); y: (P_pad,); mask: (P_pad,) 1 for real examples, 0 for padding.
    """

    xi: jnp.ndarray
    y: jnp.ndarray
    mask: jnp.ndarray
    route = "example"

    @property
    def n_examples(self) -> int:
        return int(np.sum(np.asarray(self.mask)))

    @property
    def n0(self) -> int:
        return int(self.xi.shape[1])

    @property
    def n_paths(self) -> int:
        return int(self.xi.shape[2])

    def kernel_plus_noise(self, U1, s0, T) -> jnp.ndarray:
        """K_U + T I on the real rows, the identity on the padded ones: (P_pad, P_pad)."""
        P = self.xi.shape[0]
        flat = self.xi.reshape(P, -1)
        rotated = (self.xi @ U1.T).reshape(P, -1)
        K = s0 * flat @ rotated.T
        return K + jnp.diag(T * self.mask + (1.0 - self.mask))

    def energy(self, U1, s0, T) -> jnp.ndarray:
        chol = jnp.linalg.cholesky(self.kernel_plus_noise(U1, s0, T))
        r = solve_triangular(chol, self.y, lower=True)
        return 2.0 * jnp.sum(jnp.log(jnp.diag(chol))) + r @ r

    def factors(self, U1, s0, T, keep_M: bool) -> EnergyFactors:
        P, n0, H = self.xi.shape
        chol = jnp.linalg.cholesky(self.kernel_plus_noise(U1, s0, T))
        Xi = jnp.transpose(self.xi, (0, 2, 1)).reshape(P, H * n0)
        W = solve_triangular(chol, Xi, lower=True).reshape(P, H, n0)
        r = solve_triangular(chol, self.y, lower=True)
        E = 2.0 * jnp.sum(jnp.log(jnp.diag(chol))) + r @ r
        v = jnp.einsum("pai,p->ai", W, r)
        # as one 2-D Gram over the rows (c, (p, i)): XLA's einsum over (p, i) ran at 1/3 of this (11 -> 4 ms at the
        # one-shot size)
        rows = jnp.transpose(W, (1, 0, 2)).reshape(H, -1)
        trace_M = rows @ rows.T
        if keep_M:
            M = jnp.einsum("pci,paj->ciaj", W, W)
            return EnergyFactors(E, v, trace_M, M, None)
        return EnergyFactors(E, v, trace_M, None, W)

    def keeps_M(self, dense: bool) -> bool:
        P, n0, H = self.xi.shape
        # krylov: a Hessian-vector product costs ~2 D^2 H from M, ~2 P^2 D + 2 P D H from W
        return n0 <= P if dense else H * n0 * H <= P * (P + H)

    def singular_at_zero_temperature(self) -> bool:
        return self.n_examples > self.n0 * self.n_paths

    def predictor_fit(self, R, s0, T):
        return _example_fit(R, self, s0, T)

    def predictor_apply(self, R, fit, xi_test, s0, T):
        return _example_apply(R, self, fit, xi_test, s0)


class GramStatistics(NamedTuple):
    """Sufficient statistics of a training set for the Gram route.

    gram: (H, N0, H, N0) G = Xi^T Xi, i.e. sum_mu xi^mu_{i, pi} xi^mu_{j, pi'} at [pi, i, pi', j].
    xty: (H, N0) Xi^T y.
    yty: () y^T y.
    n_examples: () P, as a float64 array (so that P is traced and never recompiles).
    """

    gram: jnp.ndarray
    xty: jnp.ndarray
    yty: jnp.ndarray
    n_examples: jnp.ndarray
    route = "gram"

    @property
    def n0(self) -> int:
        return int(self.gram.shape[1])

    @property
    def n_paths(self) -> int:
        return int(self.gram.shape[0])

    def _solve(self, U1, s0, T):
        H, n0 = self.xty.shape
        D = H * n0
        R = jnp.linalg.cholesky(U1)
        # R~^T G R~ over the path indices: [a, i, b, j] = sum_pq R[p, a] G[p, i, q, j] R[q, b]
        B = s0 * jnp.einsum("pa,piqj,qb->aibj", R, self.gram, R).reshape(D, D)
        chol = jnp.linalg.cholesky(B + T * jnp.eye(D, dtype=B.dtype))
        Rtb = jnp.einsum("pa,pi->ai", R, self.xty).reshape(D)
        return R, chol, Rtb

    def energy(self, U1, s0, T) -> jnp.ndarray:
        D = self.xty.size
        _, chol, Rtb = self._solve(U1, s0, T)
        w = solve_triangular(chol, jnp.sqrt(s0) * Rtb, lower=True)
        return (2.0 * jnp.sum(jnp.log(jnp.diag(chol))) + (self.n_examples - D) * jnp.log(T)
                + (self.yty - w @ w) / T)

    def factors(self, U1, s0, T, keep_M: bool = True) -> EnergyFactors:
        H, n0 = self.xty.shape
        D = H * n0
        R, chol, Rtb = self._solve(U1, s0, T)
        w = solve_triangular(chol, jnp.sqrt(s0) * Rtb, lower=True)
        E = (2.0 * jnp.sum(jnp.log(jnp.diag(chol))) + (self.n_examples - D) * jnp.log(T)
             + (self.yty - w @ w) / T)
        RtG = jnp.einsum("pa,piqj->aiqj", R, self.gram).reshape(D, D)
        Z = cho_solve((chol, True), jnp.concatenate([RtG, Rtb[:, None]], axis=1)).reshape(H, n0, D + 1)
        # R~^-T on the path axis: solve R^T z = .
        Z = solve_triangular(R.T, Z.reshape(H, n0 * (D + 1)), lower=False).reshape(H, n0, D + 1)
        M = Z[..., :D].reshape(D, D)
        M = (0.5 * (M + M.T)).reshape(H, n0, H, n0)
        v = Z[..., D]
        return EnergyFactors(E, v, jnp.einsum("cidi->cd", M), M, None)

    def keeps_M(self, dense: bool) -> bool:
        # the factors are D x D whatever the flag
        return True

    def singular_at_zero_temperature(self) -> bool:
        # the route is chosen for P > D, and its formulas divide by T
        return True

    def predictor_fit(self, R, s0, T):
        return _gram_fit(R, self, s0, T)

    def predictor_apply(self, R, fit, xi_test, s0, T):
        return _gram_apply(R, self, fit, xi_test, s0, T)


# ---- the predictor's solves (spec B.6), one pair per route ------------------------------------------------
def _example_fit(R, data: ExampleData, s0, T):
    """Example route: the Cholesky factor of K + T I (P x P) and L^-1 y."""
    U1 = R @ R.T
    chol = jnp.linalg.cholesky(data.kernel_plus_noise(U1, s0, T))
    return chol, solve_triangular(chol, data.y, lower=True)


def _example_apply(R, data: ExampleData, fit, xi_test, s0):
    chol, Ly = fit
    U1 = R @ R.T
    k = _renormalized_kernel(U1, data.xi, xi_test, s0)
    Lk = solve_triangular(chol, k, lower=True)
    return Lk.T @ Ly, _kernel_diagonal(U1, xi_test, s0) - jnp.sum(Lk * Lk, axis=0)


def _gram_fit(R, stats: GramStatistics, s0, T):
    """Gram route: with R~ = R (x) I, C = s0 R~^T G R~ + T I = L_C L_C^T (D x D) and the mean weights
    a = s0 R~ C^-1 R~^T b, so that mean(x*) = xi* . a and var(x*) = T s0 ||L_C^-1 R~^T xi*||^2."""
    H, n0 = stats.xty.shape
    D = H * n0
    B = s0 * jnp.einsum("pa,piqj,qb->aibj", R, stats.gram, R).reshape(D, D)
    chol = jnp.linalg.cholesky(B + T * jnp.eye(D, dtype=B.dtype))
    Rtb = jnp.einsum("pa,pi->ai", R, stats.xty).reshape(D)
    a = s0 * R @ cho_solve((chol, True), Rtb).reshape(H, n0)
    return chol, a


def _gram_apply(R, stats: GramStatistics, fit, xi_test, s0, T):
    chol, a = fit
    mean = jnp.einsum("mip,pi->m", xi_test, a)
    rotated = jnp.einsum("mip,pa->mai", xi_test, R).reshape(xi_test.shape[0], -1)  # (R~^T xi*)^T
    z = solve_triangular(chol, rotated.T, lower=True)
    return mean, T * s0 * jnp.sum(z * z, axis=0)


@jax.jit
def gram_from_features(xi, y) -> GramStatistics:
    """`GramStatistics` of path features xi (P, N0, H) and labels y (P,) held in memory."""
    return GramStatistics(jnp.einsum("mip,mjq->piqj", xi, xi), jnp.einsum("mip,m->pi", xi, y), y @ y,
                          jnp.asarray(xi.shape[0], dtype=jnp.float64))


def example_data(xi, y) -> ExampleData:
    """`ExampleData` of path features xi (P, N0, H) and labels y (P,), padded to the example route's bucket."""
    xi = np.asarray(xi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    P = xi.shape[0]
    pad = _example_bucket(P) - P
    mask = np.concatenate([np.ones(P), np.zeros(pad)])
    xi = np.concatenate([xi, np.zeros((pad,) + xi.shape[1:])])
    return ExampleData(jnp.asarray(xi), jnp.asarray(np.concatenate([y, np.zeros(pad)])), jnp.asarray(mask))


def choose_route(n_examples: int, feature_width: int, route: str = "auto") -> str:
    """'gram' when P > D = N0 H (its D x D work is then the cheaper), else 'example'; `route` forces one."""
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}; got {route!r}")
    if route != "auto":
        return route
    return "gram" if n_examples > feature_width else "example"


def training_data(spec, xi, y=None, route: str = "auto", names: tuple[str, str] = ("xi", "y")) -> TrainingData:
    """The training set in the representation of `route`: `ExampleData` or `GramStatistics`.

    Args:
      spec: the network (its number of paths and temperature are checked).
      xi: (P, N0, H) path features, or an `ExampleData` / `GramStatistics` already built (then y is None).
      y: (P,) labels.
      route: 'auto' (the cheaper: 'gram' when P > N0 H), 'example' or 'gram'.
      names: the caller's names of xi and y, for error messages.
    """
    if isinstance(xi, (ExampleData, GramStatistics)):
        if y is not None:
            raise ValueError(f"{names[1]} must be None when the training data is given as "
                             "ExampleData/GramStatistics")
        data = xi
        if data.n_paths != spec.n_paths:
            raise ValueError(f"the training data has {data.n_paths} paths but the network has H = "
                             f"{spec.n_paths}")
        if route not in ROUTES:
            raise ValueError(f"route must be one of {ROUTES}; got {route!r}")
        wanted = {"example": ExampleData, "gram": GramStatistics}.get(route)
        if wanted is not None and data.route != route:
            raise ValueError(f"route={route!r} needs {wanted.__name__}; got {type(data).__name__} (build the "
                             "training data with that route)")
    else:
        if y is None:
            raise ValueError(f"{names[1]} (the (P,) training labels) is required with path features {names[0]}")
        xi = check_features(names[0], xi, spec.n_paths)
        y = jnp.asarray(as_labels(names[1], y, xi.shape[0]))
        chosen = choose_route(xi.shape[0], xi.shape[1] * xi.shape[2], route)
        data = gram_from_features(xi, y) if chosen == "gram" else example_data(xi, y)
    check_temperature_for(spec.temperature, data)
    return data


def check_temperature_for(T: float, data) -> None:
    """T = 0 is only possible when K_U can be non-singular, i.e. P <= D on the example route."""
    if T > 0:
        return
    D = data.n0 * data.n_paths
    P = int(np.asarray(data.n_examples))
    if data.singular_at_zero_temperature():
        raise ValueError(f"temperature T = 0 needs a non-singular training kernel, but K_U has rank at most "
                         f"N0 H = {D} < P = {P}: it is singular, so T > 0 is needed")

