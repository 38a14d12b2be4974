"""The matrix-free pieces of the saddle-point solver's Krylov method (`saddle.py`, method 'krylov').

* `hvp`: d2S/dx2 w in the whitened coordinates x (`whitened.py`) without forming the Hessian: the energy's part
  by `action.energy_hvp`, O(D^2 H) from M or O(P^2 D) from W; the entropy's from its `Curvature`, formed once
  per point with the preconditioner (`krylov_parts`): level 1's block in closed form and the exact rows of the
  levels above, O(H^3 + n m) per product (by autodiff of small matrices with one level).
* `preconditioner`: the Hessian's diagonal in those coordinates, O(H^2 N0^2) from the whitened M (O(P D^2 / 2)
  from W: `action.energy_hessian_diagonal`), for the preconditioned Steihaug-Toint step
  (`trust_region.steihaug_step`) and the certificate. Its level blocks:
  the entropy's -N_l ln det U_l has no curvature in x (ln det(I + X + X^2/2) = Tr X + O(X^3)), so the rest of the
  action, linear in U_l except through other levels, gives the quadratic form Tr(C_l X_l^2), C_l =
  L_l^T (dS/dU_l + N_l U_l^-1) L_l, whose diagonal is C_cc at (c, c) and (C_cc + C_dd) / 2 at (c, d); level 1
  adds the energy's exact diagonal (`action.energy_hessian_diagonal`). The curvature a level gets through
  its children (U_l as a parent) and through U_a is left out: a preconditioner need only be close.
* `smallest_eigenvalue`: the certificate, by Lanczos (ARPACK) on C^-1/2 (d2S/dx2) C^-1/2 with C that diagonal:
  congruent to the Hessian, so it has the same number of negative eigenvalues (Sylvester's law of inertia),
  and its spectrum is compressed, so Lanczos needs few products.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse.linalg as spla

from attnpaths._src.action import (ProductOperands, energy_gradient, energy_hessian_diagonal, energy_hvp, entropy,
                                   product_operands, whiten_factors)
from attnpaths._src.order import symmetrize
from attnpaths._src.spec import Hyper
from attnpaths._src.trust_region import lanczos_start
from attnpaths._src.whitened import (_n_tri, _pack_scaled, _retract, _retract_levels, _surrogate, _unpack_scaled,
                                     _upper_rows)

_FLOOR = 0.25  # |diagonal entries| below this fraction of their mean are raised to it: C must be positive, and
# a tiny entry would let a step of small ||.||_C change U by a lot


class Curvature(NamedTuple):
    """The entropic part of d2S/dx2 (of S_ent + <dE/dU_1, U_1>, normalised) at a point with two levels or more,
    once per point: level 1's block is x_1 -> X -> (C X + X C) / 2 (whitened coordinates, `_pack_scaled`) with
    C = L_1^T (dS/dU_1 + N_1 U_1^-1) L_1 (H, H), as `saddle._level1_curvature` has it in closed form; `rows`
    (m, n) are the Hessian's exact rows of the m coordinates of the levels above."""

    C: jnp.ndarray
    rows: jnp.ndarray


@partial(jax.jit, static_argnames=("heads",))
def hvp(Ls, f, hyper: Hyper, heads, w, curvature: Curvature | None = None, operands: ProductOperands | None = None):
    """d2S/dx2 w at x = 0 in the whitened coordinates of the Cholesky factors Ls, without forming the Hessian.

    The energy's part by `action.energy_hvp` (with `operands`, `krylov_parts`' third part, when given); the
    entropy's from `curvature` (`krylov_parts`) when given, O(H^3 + m n), else by forward-over-reverse autodiff
    (several H^3 products per level, ~30 % of a product at 256 paths)."""
    L = Ls[0]
    n1 = _n_tri(L.shape[0])
    norm = jnp.max(hyper.widths)
    s0 = hyper.variances[0]
    X = _unpack_scaled(w[:n1], [L.shape[0]])[0]
    energy = _pack_scaled(symmetrize(L.T @ energy_hvp(f, L @ X @ L.T, s0, operands) @ L))  # J^T hE J w, J w = L X L^T
    if curvature is None:
        x0 = jnp.zeros_like(w)
        surrogate = _surrogate(partial(_retract, Ls), energy_gradient(f, s0), hyper, heads)
        hv = jax.jvp(jax.grad(surrogate), (x0,), (w,))[1]
        return (hv + jnp.concatenate([energy, jnp.zeros_like(w[n1:])])) / norm
    C, rows = curvature
    level1 = _pack_scaled(0.5 * (C @ X + X @ C)) + rows[:, :n1].T @ w[n1:]
    return jnp.concatenate([level1 + energy / norm, rows @ w])


def _packed_diagonal(quadratic: jnp.ndarray, offdiag: jnp.ndarray) -> jnp.ndarray:
    """Upper-triangle entries (row-major) of `offdiag` (n, n), with the diagonal taken from `quadratic` (n,)."""
    n = quadratic.shape[0]
    rows, cols = np.triu_indices(n)
    return jnp.where(jnp.asarray(rows == cols), quadratic[rows], offdiag[rows, cols])


@partial(jax.jit, static_argnames=("heads",))
def _preconditioner_parts(Ls, f, hyper: Hyper, heads):
    """(d1 (n1,), columns (n - n1, n), C (H, H)), normalised: level 1's Hessian diagonal, the Hessian's columns of
    the levels above, whose entries come from the entropy alone (the energy depends on U_1 only), and the matrix
    of level 1's entropic block (`Curvature`)."""
    s0 = hyper.variances[0]
    gE = energy_gradient(f, s0)
    L = Ls[0]
    g = jax.grad(lambda U: entropy([symmetrize(u) for u in U], hyper, heads)
                 + jnp.vdot(gE, symmetrize(U[0])))([L_l @ L_l.T for L_l in Ls])[0]
    C = L.T @ g @ L + hyper.widths[0] * jnp.eye(L.shape[0], dtype=L.dtype)
    c = jnp.diag(C)
    e = energy_hessian_diagonal(whiten_factors(f, L), s0)
    d1 = _packed_diagonal(c + jnp.diag(e), 0.5 * (c[:, None] + c[None, :]) + 2.0 * e)
    surrogate = _surrogate(partial(_retract_levels, Ls), gE, hyper, heads)
    columns = _upper_rows(surrogate, [jnp.zeros(_n_tri(L_l.shape[0]), dtype=L.dtype) for L_l in Ls], 1)
    norm = jnp.max(hyper.widths)
    return d1 / norm, columns / norm, symmetrize(C) / norm


_product_operands = jax.jit(product_operands)


class Preconditioner(NamedTuple):
    """C = [[D, B], [B^T, A]] in the whitened coordinates: D (n1,) level 1's Hessian diagonal (absolute values,
    floored), B (n1, m) and A (m, m) the Hessian's exact coupling to and block of the levels above (m of their
    coordinates), with A's Schur complement A - B^T D^-1 B = V diag(s) V^T made positive the same way; so C is
    symmetric positive definite and C = F F^T with F = [[I, 0], [B^T D^-1, I]] diag(D^1/2, V s^1/2 V^T)."""

    D: np.ndarray
    B: np.ndarray
    V: np.ndarray
    s: np.ndarray

    def solve(self, r: np.ndarray) -> np.ndarray:
        """C^-1 r."""
        n1 = len(self.D)
        r1, r2 = r[:n1], r[n1:]
        z2 = self.V @ ((self.V.T @ (r2 - self.B.T @ (r1 / self.D))) / self.s)
        return np.concatenate([(r1 - self.B @ z2) / self.D, z2])

    def inverse_factor(self, w: np.ndarray, transpose: bool) -> np.ndarray:
        """F^-1 w, or F^-T w if `transpose`."""
        n1 = len(self.D)
        w1, w2 = w[:n1], w[n1:]
        root = lambda u: self.V @ ((self.V.T @ u) / np.sqrt(self.s))  # noqa: E731
        if transpose:
            z2 = root(w2)
            return np.concatenate([(w1 / np.sqrt(self.D)) - self.B @ z2 / self.D, z2])
        return np.concatenate([w1 / np.sqrt(self.D), root(w2 - self.B.T @ (w1 / self.D))])


def krylov_parts(Ls, f, hyper: Hyper, heads) -> tuple[Preconditioner, Curvature | None, ProductOperands | None]:
    """The Krylov method's `Preconditioner` at the point with Cholesky factors Ls and energy factors f, scaled so
    that D has mean 1 (then ||p||_C stays, on average, a relative change of U), the entropy's `Curvature` there
    for `hvp` (None with one level, whose U_1 also enters U_a: `hvp` then differentiates the entropy) and the
    energy's `ProductOperands` for `hvp` (None when f keeps M)."""
    d1, columns, C_1 = _preconditioner_parts(Ls, f, hyper, heads)
    curvature = Curvature(C_1, columns) if len(heads) > 1 else None
    d1, columns = np.asarray(d1), np.asarray(columns)
    n1 = len(d1)
    scale = float(np.mean(np.abs(d1)))
    D = np.maximum(np.abs(d1) / scale, _FLOOR)
    B, A = columns[:, :n1].T / scale, columns[:, n1:] / scale
    s, V = np.linalg.eigh(A - B.T @ (B / D[:, None]))
    s = np.abs(s)
    s = np.maximum(s, _FLOOR)
    return Preconditioner(D, B, V, s), curvature, _product_operands(f)


def preconditioner(Ls, f, hyper: Hyper, heads) -> Preconditioner:
    """`krylov_parts`' preconditioner alone."""
    return krylov_parts(Ls, f, hyper, heads)[0]


def smallest_eigenvalue(product: Callable[[np.ndarray], np.ndarray], C: Preconditioner) -> tuple[float, int]:
    """(smallest eigenvalue of F^-1 B F^-T, products used) for B w = product(w) (n,) -> (n,) symmetric and
    C = F F^T; NaN when Lanczos converges to nothing."""
    n = len(C.D) + len(C.s)
    products = 0

    def matvec(w):
        nonlocal products
        products += 1
        return C.inverse_factor(product(C.inverse_factor(np.ravel(w), transpose=True)), transpose=False)

    op = spla.LinearOperator((n, n), dtype=np.float64, matvec=matvec)
    try:
        lowest = spla.eigsh(op, k=1, which="SA", tol=1e-5, ncv=min(n, 40), maxiter=50 * n, v0=lanczos_start(n),
                            return_eigenvectors=False)[0]
    except spla.ArpackNoConvergence as err:
        lowest = err.eigenvalues[0] if len(err.eigenvalues) else math.nan
    return float(lowest), products
