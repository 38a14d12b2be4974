"""Whitened coordinates of the saddle-point solver (`saddle.py`, `krylov.py`): at U_l = L_l L_l^T,

    U_l(X_l) = L_l (I + X_l + X_l^2 / 2) L_l^T,          X_l symmetric,

with x packing the upper triangles of all X_l, off-diagonal entries times sqrt 2, so ||x|| = ||X||_F.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from attnpaths._src.action import entropy
from attnpaths._src.order import _n_tri, symmetrize


def _unpack_scaled(x: jnp.ndarray, sizes: Sequence[int]) -> list[jnp.ndarray]:
    """x -> [X_l]: upper triangles (row-major), off-diagonal entries divided by sqrt 2, so ||x|| = sum ||X_l||_F."""
    out = []
    for x_l, n in zip(_split_levels(x, [_n_tri(n) for n in sizes]), sizes):
        rows, cols = np.triu_indices(n)
        scale = np.where(rows == cols, 1.0, 1.0 / math.sqrt(2.0))
        upper = jnp.zeros((n, n), x.dtype).at[rows, cols].set(x_l * scale)
        out.append(upper + upper.T - jnp.diag(jnp.diag(upper)))
    return out


def _pack_scaled(X: jnp.ndarray) -> jnp.ndarray:
    """Inverse of `_unpack_scaled` for one symmetric X (n, n): its upper triangle, off-diagonal entries times sqrt 2.
    Also the pullback of a symmetric cotangent G through `_unpack_scaled`: <G, X(x)> = _pack_scaled(G) . x."""
    rows, cols = np.triu_indices(X.shape[0])
    return X[rows, cols] * jnp.asarray(np.where(rows == cols, 1.0, math.sqrt(2.0)))


def rotate_packed(Q: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """x (..., n (n + 1) / 2), packed symmetric X (`_pack_scaled`), -> the packed Q^T X Q, for Q (n, n).

    With Q orthogonal this is an orthogonal map R of the packed coordinates (it keeps ||X||_F = ||x||), and
    R^T = R^-1 is `rotate_packed(Q.T, .)`. O(n^3) per vector: X from one gather (a scatter per vector, as
    `_unpack_scaled` makes it, took 1.6x as long for 136 vectors at n = 256)."""
    n = Q.shape[0]
    rows, cols = np.triu_indices(n)
    scale = np.where(rows == cols, 1.0, 1.0 / math.sqrt(2.0))
    index = np.zeros((n, n), dtype=np.int64)
    index[rows, cols] = index[cols, rows] = np.arange(rows.size)
    flat = x.reshape(-1, x.shape[-1])
    return congruence_packed(Q, (flat * jnp.asarray(scale))[:, index]).reshape(x.shape)


def congruence_packed(P: jnp.ndarray, X: jnp.ndarray) -> jnp.ndarray:
    """X (m, n, n) symmetric -> (m, n (n + 1) / 2) the packed (`_pack_scaled`) P^T X_k P, for P (n, n): X P as one
    (m n, n) product."""
    n = P.shape[0]
    XP = (X.reshape(-1, n) @ P).reshape(X.shape)
    rows, cols = np.triu_indices(n)
    scale = np.where(rows == cols, 1.0, math.sqrt(2.0))
    return jnp.einsum("ac,mab->mcb", P, XP)[:, rows, cols] * jnp.asarray(scale)


def _retract(Ls: Sequence[jnp.ndarray], x: jnp.ndarray) -> list[jnp.ndarray]:
    """U_l(X_l) = L_l (I + X_l + X_l^2/2) L_l^T: positive definite for every x."""
    return _retract_levels(Ls, _split_levels(x, [_n_tri(L.shape[0]) for L in Ls]))


def _retract_levels(Ls: Sequence[jnp.ndarray], xs: Sequence[jnp.ndarray]) -> list[jnp.ndarray]:
    """`_retract` from the levels' coordinate vectors [x_1 (n_1 (n_1 + 1) / 2,), ..., x_L] apart."""
    Xs = [_unpack_scaled(x, [L.shape[0]])[0] for L, x in zip(Ls, xs)]
    return [L @ (jnp.eye(L.shape[0], dtype=X.dtype) + X + 0.5 * X @ X) @ L.T for L, X in zip(Ls, Xs)]


def _split_levels(x: jnp.ndarray, lengths: Sequence[int]) -> list[jnp.ndarray]:
    """x (sum lengths,) -> its consecutive pieces of the given lengths."""
    ends = np.cumsum([0, *lengths])
    return [x[a:b] for a, b in zip(ends[:-1], ends[1:])]


def _symmetric_block(h4: jnp.ndarray, offdiag: float) -> jnp.ndarray:
    """The quadratic form sum h4[c,d,a,b] Z_cd Z'_ab in upper-triangle coordinates of symmetric Z, Z'.

    Coordinate k = (i <= j) moves Z_ij and Z_ji by `offdiag`/2 each (1 for packed U, 1/sqrt 2 whitened), so the
    block is c_k c_l hs[i_k, j_k, i_l, j_l] with hs the symmetrisation of h4 over (c, d) and (a, b).
    """
    n = h4.shape[0]
    rows, cols = np.triu_indices(n)
    pair, swapped = rows * n + cols, cols * n + rows  # (c, d) and (d, c) in h4 as an (n^2, n^2) matrix
    # row and column takes (contiguous slices) instead of a gather of n^4/4 scattered entries: 3x faster at n = 64
    flat = h4.reshape(n * n, n * n)
    half = jnp.take(flat, pair, axis=0) + jnp.take(flat, swapped, axis=0)
    hs = 0.25 * (jnp.take(half, pair, axis=1) + jnp.take(half, swapped, axis=1))
    return _pair_weights(n, offdiag) * hs


def _pair_weights(n: int, offdiag: float) -> jnp.ndarray:
    """(n(n+1)/2, n(n+1)/2) c_k c_l: the Hessian in upper-triangle coordinates from hs, the second derivative
    symmetrised over the two orders of each pair (`_symmetric_block`, `action.energy_hessian_pairs`)."""
    rows, cols = np.triu_indices(n)
    c = jnp.asarray(np.where(rows == cols, 1.0, 2.0 * offdiag))
    return c[:, None] * c[None, :]


def _sizes(heads: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(np.prod(heads[l:])) for l in range(len(heads)))


def _grad_max(Us, Ls, gE, hyper, heads):
    """(max |dS/dU|, max |L^T dS/dU L|) over the entries of the symmetric matrices (un-normalised).

    The second is the gradient with respect to relative changes of U (U -> L (I + X) L^T): it does not change
    when the features, and with them U, are rescaled, so it stops the solver where the first one, an absolute
    criterion, cannot be met in float64 (e.g. features of scale 1e6)."""
    grad_U = jax.grad(lambda U: entropy([symmetrize(u) for u in U], hyper, heads)
                      + jnp.vdot(gE, symmetrize(U[0])))(list(Us))
    absolute = jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in grad_U]))
    relative = jnp.max(jnp.stack([jnp.max(jnp.abs(L.T @ g @ L)) for g, L in zip(grad_U, Ls)]))
    return jnp.stack([absolute, relative])


def _surrogate(to_order, gE, hyper, heads):
    """S_ent(U(x)) + <gE, U_1(x)>: its gradient is dS/dx; its Hessian is d2S/dx2 minus the energy's J^T hE J."""
    return lambda x: entropy(to_order(x), hyper, heads) + jnp.vdot(gE, to_order(x)[0])


def _product_block(A: jnp.ndarray, B: jnp.ndarray, offdiag: float) -> jnp.ndarray:
    """`_symmetric_block` of h4[c, d, a, b] = A[d, a] B[b, c] (A, B symmetric (n, n)) without forming h4.

    This is the form of level 1's entropic curvature: Tr(C X^2)/2 has h4 = I (x) C in whitened coordinates,
    -N ln det U has h4 = U^-1 (x) N U^-1 in packed ones. O(n^4 / 4) gathers instead of O(n^4) memory twice."""
    rows, cols = np.triu_indices(A.shape[0])
    c, d, a, b = rows[:, None], cols[:, None], rows[None, :], cols[None, :]
    hs = 0.25 * (A[d, a] * B[b, c] + A[c, a] * B[b, d] + A[d, b] * B[a, c] + A[c, b] * B[a, d])
    w = jnp.asarray(np.where(rows == cols, 1.0, 2.0 * offdiag))
    return w[:, None] * w[None, :] * hs


def _dense_hessian(fn, xs0: Sequence[jnp.ndarray], block11: jnp.ndarray) -> jnp.ndarray:
    """The Hessian (n, n) of `fn`, a function of the levels' coordinate vectors [x_1, ..., x_L], at xs0, whose
    leading block, level 1's (n1, n1) or (0, 0), is given (`block11`, in closed form): the other n - n1 rows by
    `_upper_rows`.

    Level 1 has H(H+1)/2 of the n coordinates, the levels above a few (n_2 = (H/H_1)^2): full autodiff
    (`jax.hessian`) spent n such products, ~1.6 s of a 64-path step and most of its compilation."""
    n1 = block11.shape[0]
    rows = _upper_rows(fn, xs0, 1 if n1 else 0)  # (n - n1, n)
    return jnp.concatenate([jnp.concatenate([block11, rows[:, :n1].T], axis=1), rows], axis=0)


def _coupled_rows(fn, U1: jnp.ndarray, xs0: Sequence[jnp.ndarray], bases: Sequence[jnp.ndarray]):
    """For fn(U1, [x_2, ..., x_L]), a function of level 1's matrix and the other levels' coordinate vectors:
    (dfn/dU1 (n, n) at (U1, xs0), rows (m, m) of its Hessian in the m coordinates of levels 2..L, [coupling
    (m, n1) per P in `bases`]), where coupling row j is the packed P^T (d2 fn / dU1 dx_j) P: the Hessian's
    entries between x_j and level 1's whitened coordinates for P = L_1 (U1 = L_1 (I + X + X^2/2) L_1^T, whose
    first order is all a mixed derivative at X = 0 sees), and the same in the rotated ones Q^T X Q for P = L_1 Q.

    One forward-over-reverse product per coordinate, as `_upper_rows`, but level 1 is held as a matrix: the
    whitened pullback, an n x n congruence per row, is done once for all rows as one product (`congruence_packed`),
    not pushed through each row's autodiff (0.59 -> 0.28 s for the 136 rows at 256 paths)."""
    grad = jax.grad(lambda U, xs: fn(symmetrize(U), xs), argnums=(0, 1))
    lengths = [x.shape[0] for x in xs0]
    m = sum(lengths)
    gU = grad(U1, list(xs0))[0]
    if m == 0:
        return gU, jnp.zeros((0, 0), U1.dtype), [jnp.zeros((0, _n_tri(U1.shape[0])), U1.dtype) for _ in bases]

    def row(e):
        G, g = jax.jvp(lambda xs: grad(U1, xs), (list(xs0),), (_split_levels(e, lengths),))[1]
        return G, jnp.concatenate(g)

    Gs, rows = jax.vmap(row)(jnp.eye(m, dtype=U1.dtype))
    return gU, rows, [congruence_packed(P, Gs) for P in bases]


def _upper_rows(fn, xs0: Sequence[jnp.ndarray], first: int) -> jnp.ndarray:
    """The rows (m, n) of the Hessian of `fn` (a function of [x_1, ..., x_L]) at xs0 for the m coordinates of levels
    first+1, ..., L: one forward-over-reverse product per coordinate.

    The levels below are held as constants, not given zero tangents: a zero tangent is still pushed through
    their products, and level 1's are H x H matmuls (the preconditioner's 136 rows at 256 paths: 2.6 s with zero
    tangents, 0.5 s held)."""
    held, free0 = list(xs0[:first]), list(xs0[first:])
    grad = jax.grad(lambda held, free: fn(held + free), argnums=(0, 1))
    lengths = [x.shape[0] for x in free0]

    def row(e):
        g_held, g_free = jax.jvp(lambda free: grad(held, free), (free0,), (_split_levels(e, lengths),))[1]
        return jnp.concatenate([*g_held, *g_free])

    return jax.vmap(row)(jnp.eye(sum(lengths), dtype=xs0[0].dtype))
