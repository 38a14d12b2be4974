"""The solver as it was before the trust-region rewrite (commit 3b9833b), kept as the benchmarks' baseline.

Not part of the library. Original description:

Minimise the action: a second-order solver for the saddle point (spec B.6, C.1).

The unknowns are U_1, ..., U_L (U_a is eliminated in closed form). The solver moves on Cholesky coordinates
(U = R R^T, log-diagonal), so every iterate is symmetric positive definite, and takes Newton steps with the
exact Hessian: the energy's derivatives come in closed form from `action.energy_derivatives` (no
differentiation through a P x P factorisation), the entropy's from JAX autodiff. Negative curvature far from
the minimum is handled by replacing the Hessian's eigenvalues with their absolute values; a backtracking
Armijo line search guarantees descent. It stops when the largest entry of dS/dU (the gradient with respect to
the symmetric matrices, of the N_max-normalised action) is <= tol, then certifies the minimum by the smallest
eigenvalue of the Hessian in packed upper-triangle coordinates (spec C.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from attnpaths._src.action import action, energy_derivatives, entropy, scalar_order_parameter
from attnpaths._src.checks import as_labels
from attnpaths._src.order import (cholesky_to_order, gp_order, order_to_cholesky, pack_order, symmetrize,
                                  unpack_order)
from attnpaths._src.paths import check_features
from attnpaths._src.spec import Hyper, NetworkSpec


@dataclass(frozen=True, eq=False)
class LegacySaddle:
    """The minimum of the action.

    U: (U_1, ..., U_L), U_l of shape (n_l, n_l); U_1 = U[0] is the (H, H) path-path weight matrix.
    U_a: the scalar readout order parameter (B.5).
    action: S at the minimum (normalised by N_max).
    grad_max: max |dS/dU| at the returned point.
    iterations: Newton iterations taken.
    min_hessian_eigenvalue: smallest eigenvalue of d2S/dp2 in packed upper-triangle coordinates; > 0
      certifies a strict local minimum.
    converged: grad_max <= tol and min_hessian_eigenvalue > 0.
    spec: the network (widths, variances, temperature) it was solved for.
    """

    U: tuple
    U_a: float
    action: float
    grad_max: float
    iterations: int
    min_hessian_eigenvalue: float
    converged: bool
    spec: NetworkSpec

    @property
    def U1(self) -> np.ndarray:
        return self.U[0]


def _sizes(heads: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(np.prod(heads[l:])) for l in range(len(heads)))


def _surrogate_hessian(params, to_order, gE, hE, hyper, heads):
    """Gradient and Hessian of S in coordinates `params`, given the energy's derivatives in U_1.

    S(params) = E(U_1(params)) + S_ent(U(params)). The entropy (small matrices) goes through autodiff; the
    energy's Hessian is chained as J^T hE J plus the curvature of U_1(params) contracted with gE.
    """
    H2 = gE.size

    def surrogate(p):
        Us = to_order(p)
        return entropy(Us, hyper, heads) + jnp.vdot(gE, Us[0])

    grad = jax.grad(surrogate)(params)
    hess = jax.hessian(surrogate)(params)
    J = jax.jacfwd(lambda p: to_order(p)[0].ravel())(params)
    return grad, hess + J.T @ hE.reshape(H2, H2) @ J


@partial(jax.jit, static_argnames=("heads",))
def _newton_system(theta, xi, y, hyper: Hyper, heads):
    sizes = _sizes(heads)
    Us = cholesky_to_order(theta, sizes)
    E, gE, hE = energy_derivatives(Us[0], xi, y, hyper.variances[0], hyper.temperature)
    grad, hess = _surrogate_hessian(theta, lambda p: cholesky_to_order(p, sizes), gE, hE, hyper, heads)
    grad_U = jax.grad(lambda U: entropy([symmetrize(u) for u in U], hyper, heads)
                      + jnp.vdot(gE, symmetrize(U[0])))(Us)
    grad_max = jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in grad_U]))
    n_max = jnp.max(hyper.widths)
    S = E + entropy(Us, hyper, heads)
    return S / n_max, grad / n_max, hess / n_max, grad_max / n_max, (gE, hE)


@partial(jax.jit, static_argnames=("heads",))
def _action_at(theta, xi, y, hyper: Hyper, heads):
    return action(cholesky_to_order(theta, _sizes(heads)), xi, y, hyper, heads)


@partial(jax.jit, static_argnames=("heads",))
def _packed_hessian_from(Us, gE, hE, hyper: Hyper, heads):
    sizes = _sizes(heads)
    _, hess = _surrogate_hessian(pack_order(Us), lambda p: unpack_order(p, sizes), gE, hE, hyper, heads)
    return hess / jnp.max(hyper.widths)


def packed_hessian(Us, xi, y, hyper: Hyper, heads):
    """d2S/dp2 of the normalised action in packed upper-triangle coordinates p (spec C.1)."""
    _, gE, hE = energy_derivatives(Us[0], xi, y, hyper.variances[0], hyper.temperature)
    return _packed_hessian_from(Us, gE, hE, hyper, heads)


def _check_problem(spec: NetworkSpec, xi, y):
    xi = check_features("xi", xi, spec.n_paths)
    y = jnp.asarray(as_labels("y", y, xi.shape[0]))
    return xi, y


def _newton_direction(grad: np.ndarray, hess: np.ndarray, max_step: float) -> np.ndarray:
    lam, vecs = np.linalg.eigh(0.5 * (hess + hess.T))
    floor = 1e-12 * max(1.0, float(np.max(np.abs(lam))))
    step = -vecs @ ((vecs.T @ grad) / np.maximum(np.abs(lam), floor))
    biggest = float(np.max(np.abs(step)))
    return step * (max_step / biggest) if biggest > max_step else step


def solve_saddle(spec: NetworkSpec, xi, y, init: Sequence | None = None, tol: float = 1e-8,
                 max_iter: int = 200, max_step: float = 2.0, raise_on_failure: bool = True,
                 callback: Callable[[int, float, float], None] | None = None) -> LegacySaddle:
    """Minimise the action S(U) (spec B.4) over symmetric positive definite U_1, ..., U_L.

    Args:
      spec: network; its widths, variances and temperature are runtime values (no recompilation).
      xi: (P, N0, H) training path features from `path_features`.
      y: (P,) training labels.
      init: (U_1, ..., U_L) warm start; default the GP values (B.7).
      tol: stop when max |dS/dU| <= tol (normalised action).
      max_iter: Newton iterations allowed.
      max_step: cap on the largest Cholesky-coordinate change per iteration (a trust radius).
      raise_on_failure: raise RuntimeError if not converged or if the Hessian certificate fails.
      callback: called as callback(iteration, action, grad_max) after every iteration.

    Returns:
      Saddle.
    """
    xi, y = _check_problem(spec, xi, y)
    if not (tol > 0 and max_iter >= 0):
        raise ValueError(f"tol must be > 0 and max_iter >= 0; got tol={tol}, max_iter={max_iter}")
    hyper, heads, sizes = spec.hyper(), spec.heads, spec.level_sizes
    theta = jnp.asarray(order_to_cholesky(gp_order(spec) if init is None else init, sizes))
    S, grad, hess, grad_max, energy_terms = _newton_system(theta, xi, y, hyper, heads)
    S, grad, hess, grad_max = (np.asarray(a) for a in (S, grad, hess, grad_max))
    if not np.isfinite(S):
        if spec.temperature == 0:
            raise ValueError("the training kernel K_U is singular at the initial U and temperature T = 0: "
                             "T > 0 is needed (or fewer examples than the kernel's rank)")
        raise FloatingPointError(f"the action is not finite at the initial U (S = {S}); check xi and y")
    iterations = 0
    while grad_max > tol and iterations < max_iter:
        direction = _newton_direction(grad, hess, max_step)
        slope = float(grad @ direction)
        if slope >= 0:  # numerically flat: fall back to steepest descent
            direction, slope = -grad, -float(grad @ grad)
        step, slack = 1.0, 1e-13 * max(1.0, abs(float(S)))
        while step > 1e-12:
            trial = float(_action_at(theta + step * direction, xi, y, hyper, heads))
            if math.isfinite(trial) and trial <= S + 1e-4 * step * slope + slack:
                break
            step *= 0.5
        else:
            break  # no descent possible: reported below as not converged
        theta = theta + step * jnp.asarray(direction)
        S, grad, hess, grad_max, energy_terms = _newton_system(theta, xi, y, hyper, heads)
        S, grad, hess, grad_max = (np.asarray(a) for a in (S, grad, hess, grad_max))
        iterations += 1
        if callback is not None:
            callback(iterations, float(S), float(grad_max))
    Us = [np.asarray(U) for U in cholesky_to_order(theta, sizes)]
    # the certificate reuses the energy derivatives of the last iterate (the returned point)
    certificate = _packed_hessian_from(Us, *energy_terms, hyper, heads)
    min_eig = float(np.linalg.eigvalsh(np.asarray(certificate))[0])
    converged = bool(grad_max <= tol and min_eig > 0)
    result = LegacySaddle(U=tuple(Us), U_a=float(scalar_order_parameter(jnp.asarray(Us[-1]), hyper, heads[-1])),
                    action=float(S), grad_max=float(grad_max), iterations=iterations,
                    min_hessian_eigenvalue=min_eig, converged=converged, spec=spec)
    if raise_on_failure and not converged:
        why = (f"max|dS/dU| = {float(grad_max):.2e} > tol = {tol:.1e} after {iterations} iterations"
               if grad_max > tol else f"the Hessian is not positive definite (smallest eigenvalue {min_eig:.2e})")
        raise RuntimeError(f"the action minimisation did not converge: {why}. Try a warm start (init=...), "
                           "a larger max_iter, or a larger temperature")
    return result


