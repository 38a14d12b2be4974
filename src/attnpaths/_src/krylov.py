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
  Its Kronecker form (`krylov_parts(..., kronecker=True)`, `_kronecker_parts`) replaces level 1's exact diagonal
  by the diagonal, in the eigenbasis of A, of the same block with the whitened M replaced by its nearest Kronecker
  product A (x) B (`nearest_kronecker`): O(P H^2 N0) per point instead of O(P H^2 N0^2 / 2) from W, and it
  follows the energy's coupling between paths, which the diagonal ignores (near the minimum at 64 and 256 paths,
  about half the products). The solver uses it after its first interior Steihaug step.
* `smallest_eigenvalue`: the certificate, by Lanczos (ARPACK) on F^-1 (d2S/dx2) F^-T with C = F F^T the
  preconditioner (either form): congruent to the Hessian, so it has the same number of negative eigenvalues
  (Sylvester's law of inertia), and its spectrum is compressed, so Lanczos needs few products.
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
from attnpaths._src.routes import EnergyFactors
from attnpaths._src.spec import Hyper
from attnpaths._src.trust_region import lanczos_start
from attnpaths._src.whitened import (_n_tri, _pack_scaled, _retract, _retract_levels, _surrogate, _unpack_scaled,
                                     _coupled_rows, rotate_packed)

KRONECKER_ITERATIONS = 1  # `nearest_kronecker`'s updates in the solver: 1 and 3 gave 241 and 277 products at 256 paths
# (P = 600, token teacher), 244 and 244 at 64, 215 and 216 at 64 with the path teacher: one is enough
_CERTIFICATE_TOL = 1e-3  # ARPACK's relative residual for the certificate (`smallest_eigenvalue`)
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


def _entropy_parts(Ls, gE, hyper: Hyper, heads, bases=()):
    """(C (H, H), columns (n - n1, n), [coupling (n - n1, n1) per P in `bases`]), un-normalised: the matrix of
    level 1's entropic block (`Curvature`), the Hessian's columns of the levels above, whose entries come from the
    entropy alone (the energy depends on U_1 only), and their level-1 part in the coordinates of P^T U_1 P
    (`whitened._coupled_rows`; P = L_1 Q gives the rotated coordinates Q^T X Q)."""
    L = Ls[0]
    g, upper, couplings = _coupled_rows(
        lambda U1, xs: entropy([U1, *_retract_levels(Ls[1:], xs)], hyper, heads), L @ L.T,
        [jnp.zeros(_n_tri(L_l.shape[0]), dtype=L.dtype) for L_l in Ls[1:]], [L, *bases])
    C = L.T @ (g + gE) @ L + hyper.widths[0] * jnp.eye(L.shape[0], dtype=L.dtype)
    return symmetrize(C), jnp.concatenate([couplings[0], upper], axis=1), couplings[1:]


@partial(jax.jit, static_argnames=("heads",))
def _preconditioner_parts(Ls, f, hyper: Hyper, heads):
    """(d1 (n1,), columns (n - n1, n), C (H, H)), normalised: level 1's Hessian diagonal, the Hessian's columns of
    the levels above and the matrix of level 1's entropic block (`Curvature`)."""
    s0 = hyper.variances[0]
    C, columns, _ = _entropy_parts(Ls, energy_gradient(f, s0), hyper, heads)
    c = jnp.diag(C)
    e = energy_hessian_diagonal(whiten_factors(f, Ls[0]), s0)
    d1 = _packed_diagonal(c + jnp.diag(e), 0.5 * (c[:, None] + c[None, :]) + 2.0 * e)
    norm = jnp.max(hyper.widths)
    return d1 / norm, columns / norm, C / norm


def nearest_kronecker(f: EnergyFactors, iterations: int = KRONECKER_ITERATIONS) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(A (H, H), B (N0, N0)) with ||B||_F = 1 and A (x) B, A_ca B_ij ~ M[(c, i), (a, j)], close to the nearest
    Kronecker product to the energy's M in the Frobenius norm (Van Loan and Pitsianis: the leading singular pair
    of M rearranged as (H^2, N0^2)), by `iterations` alternating updates B <- M(A), A <- M(B) from A = I.

    From M, O(H^2 N0^2) per update; from W (P, H, N0) (M = W^T W, never formed), O(P H^2 N0). M is positive
    semi-definite, so from A = I every A and B are too (no sign to fix)."""
    if f.M is not None:
        to_A = lambda B: jnp.einsum("ciaj,ij->ca", f.M, B)  # noqa: E731
        to_B = lambda A: jnp.einsum("ciaj,ca->ij", f.M, A)  # noqa: E731
    else:
        P, H, n0 = f.W.shape
        rows = jnp.transpose(f.W, (1, 0, 2)).reshape(H, P * n0)  # (H, P N0): A from one A @ B^T product

        def to_A(B):
            return (rows.reshape(H * P, n0) @ B).reshape(H, P * n0) @ rows.T

        def to_B(A):
            return (A @ rows).reshape(H * P, n0).T @ rows.reshape(H * P, n0)

    B = to_B(jnp.eye(f.v.shape[0], dtype=f.v.dtype))
    for _ in range(iterations - 1):
        B = to_B(to_A(B / jnp.linalg.norm(B)))
    B = B / jnp.linalg.norm(B)
    return to_A(B), B


@partial(jax.jit, static_argnames=("heads", "iterations"))
def _kronecker_parts(Ls, f, hyper: Hyper, heads, iterations: int):
    """(k (n1,), columns (n - n1, n), C (H, H), Q (H, H), coupling (n - n1, n1)), normalised: level 1's block of
    the preconditioner in the rotated coordinates R x = pack(Q^T X Q) (`rotate_packed`), diag(k); the Hessian's
    columns of the levels above and C as `_preconditioner_parts`; and the columns' level-1 part in the rotated
    coordinates.

    k is the diagonal, in those coordinates, of the energy's Hessian-vector product with the whitened M replaced
    by its `nearest_kronecker` A (x) B plus the entropy's (C X + X C) / 2:
        K(X) = (C X + X C) / 2 + s0^2 (A X G + G X A - tau A X A),   G = v B v^T, tau = Tr B^2,
    (`action.energy_hvp` with M = A (x) B), with Q the eigenvectors of A (A = Q diag(lam) Q^T), so
        k_cd = (c_c + c_d) / 2 + s0^2 (lam_c g_d + g_c lam_d - tau lam_c lam_d),  c, g = diag(Q^T C Q), diag(Q^T G Q).
    Exact where M is a Kronecker product and C commutes with A; O(H^3) to apply, and made in O(P H^2 N0) per
    update from W, against O(P H^2 N0^2 / 2) for the exact diagonal (`energy_hessian_diagonal`)."""
    s0 = hyper.variances[0]
    fw = whiten_factors(f, Ls[0])
    A, B = nearest_kronecker(fw, iterations)
    lam, Q = jnp.linalg.eigh(A)
    C, columns, (coupling,) = _entropy_parts(Ls, energy_gradient(f, s0), hyper, heads, [Ls[0] @ Q])
    G = fw.v @ B @ fw.v.T
    g, c = jnp.einsum("ai,ab,bi->i", Q, G, Q), jnp.einsum("ai,ab,bi->i", Q, C, Q)
    k = 0.5 * (c[:, None] + c[None, :]) + s0 ** 2 * (jnp.outer(lam, g) + jnp.outer(g, lam)
                                                      - jnp.sum(B * B) * jnp.outer(lam, lam))
    rows, cols = np.triu_indices(Q.shape[0])
    norm = jnp.max(hyper.widths)
    return k[rows, cols] / norm, columns / norm, C / norm, Q, coupling / norm


_product_operands = jax.jit(product_operands)


_rotate = jax.jit(rotate_packed)


class Preconditioner(NamedTuple):
    """C = T^T [[D, B], [B^T, A]] T in the whitened coordinates, T = diag(R, I) with R the rotation of level 1's
    coordinates x_1 -> pack(Q^T X_1 Q) (`whitened.rotate_packed`; R = I when Q is None): D (n1,) level 1's
    Hessian diagonal in those coordinates (absolute values, floored), B (n1, m) and A (m, m) the Hessian's exact
    coupling to and block of the levels above (m of their coordinates), B's rows rotated, with A's Schur complement
    A - B^T D^-1 B = V diag(s) V^T made positive the same way; so C is symmetric positive definite and
    C = F F^T with F = T^T [[I, 0], [B^T D^-1, I]] diag(D^1/2, V s^1/2 V^T)."""

    D: np.ndarray
    B: np.ndarray
    V: np.ndarray
    s: np.ndarray
    Q: np.ndarray | None = None

    def _turn(self, r: np.ndarray, back: bool) -> np.ndarray:
        """T r, or T^T r if `back`."""
        if self.Q is None:
            return r
        n1 = len(self.D)
        return np.concatenate([np.asarray(_rotate(self.Q.T if back else self.Q, r[:n1])), r[n1:]])

    def solve(self, r: np.ndarray) -> np.ndarray:
        """C^-1 r."""
        n1 = len(self.D)
        r = self._turn(r, back=False)
        r1, r2 = r[:n1], r[n1:]
        z2 = self.V @ ((self.V.T @ (r2 - self.B.T @ (r1 / self.D))) / self.s)
        return self._turn(np.concatenate([(r1 - self.B @ z2) / self.D, z2]), back=True)

    def inverse_factor(self, w: np.ndarray, transpose: bool) -> np.ndarray:
        """F^-1 w, or F^-T w if `transpose`."""
        n1 = len(self.D)
        root = lambda u: self.V @ ((self.V.T @ u) / np.sqrt(self.s))  # noqa: E731
        if transpose:
            z2 = root(w[n1:])
            return self._turn(np.concatenate([(w[:n1] / np.sqrt(self.D)) - self.B @ z2 / self.D, z2]), back=True)
        w = self._turn(w, back=False)
        w1, w2 = w[:n1], w[n1:]
        return np.concatenate([w1 / np.sqrt(self.D), root(w2 - self.B.T @ (w1 / self.D))])


def krylov_parts(Ls, f, hyper: Hyper, heads, kronecker: bool = False
                 ) -> tuple[Preconditioner, Curvature | None, ProductOperands | None]:
    """The Krylov method's `Preconditioner` at the point with Cholesky factors Ls and energy factors f, scaled so
    that D has mean 1 (then ||p||_C stays, on average, a relative change of U), the entropy's `Curvature` there
    for `hvp` (None with one level, whose U_1 also enters U_a: `hvp` then differentiates the entropy) and the
    energy's `ProductOperands` for `hvp` (None when f keeps M).

    Level 1's block of the preconditioner is the Hessian's exact diagonal, or with `kronecker` the diagonal in
    the eigenbasis of the nearest Kronecker product's A (`_kronecker_parts`): at 64 and 256 paths it needs about
    half the products near the minimum, but scales the indefinite Hessian far from it worse (the solver switches
    at its first interior step, `saddle.solve_saddle`)."""
    if kronecker:
        d1, columns, C_1, Q, coupling = _kronecker_parts(Ls, f, hyper, heads, KRONECKER_ITERATIONS)
        Q = np.asarray(Q)
    else:
        d1, columns, C_1 = _preconditioner_parts(Ls, f, hyper, heads)
        Q, coupling = None, columns[:, :len(d1)]
    curvature = Curvature(C_1, columns) if len(heads) > 1 else None
    d1, columns, coupling = np.asarray(d1), np.asarray(columns), np.asarray(coupling)
    n1 = len(d1)
    scale = float(np.mean(np.abs(d1)))
    D = np.maximum(np.abs(d1) / scale, _FLOOR)
    B, A = coupling.T / scale, columns[:, n1:] / scale
    s, V = np.linalg.eigh(A - B.T @ (B / D[:, None]))
    s = np.abs(s)
    s = np.maximum(s, _FLOOR)
    return Preconditioner(D, B, V, s, Q), curvature, _product_operands(f)


def preconditioner(Ls, f, hyper: Hyper, heads, kronecker: bool = False) -> Preconditioner:
    """`krylov_parts`' preconditioner alone."""
    return krylov_parts(Ls, f, hyper, heads, kronecker)[0]


def smallest_eigenvalue(product: Callable[[np.ndarray], np.ndarray], C: Preconditioner) -> tuple[float, int]:
    """(smallest eigenvalue of F^-1 B F^-T, products used) for B w = product(w) (n,) -> (n,) symmetric and
    C = F F^T; NaN when Lanczos converges to nothing.

    ARPACK stops when the Ritz pair's residual is below `_CERTIFICATE_TOL` times the Ritz value; the eigenvalue's
    error is of the order of the residual's square over the gap, so 1e-3 gave it to 1e-7 relative at a 64-path
    minimum (against 1e-5: 81 products instead of 121)."""
    n = len(C.D) + len(C.s)
    products = 0

    def matvec(w):
        nonlocal products
        products += 1
        return C.inverse_factor(product(C.inverse_factor(np.ravel(w), transpose=True)), transpose=False)

    op = spla.LinearOperator((n, n), dtype=np.float64, matvec=matvec)
    try:
        lowest = spla.eigsh(op, k=1, which="SA", tol=_CERTIFICATE_TOL, ncv=min(n, 40), maxiter=50 * n,
                            v0=lanczos_start(n), return_eigenvectors=False)[0]
    except spla.ArpackNoConvergence as err:
        lowest = err.eigenvalues[0] if len(err.eigenvalues) else math.nan
    return float(lowest), products
