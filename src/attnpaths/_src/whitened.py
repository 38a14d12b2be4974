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
    out, start = [], 0
    for n in sizes:
        rows, cols = np.triu_indices(n)
        scale = np.where(rows == cols, 1.0, 1.0 / math.sqrt(2.0))
        upper = jnp.zeros((n, n), x.dtype).at[rows, cols].set(x[start:start + _n_tri(n)] * scale)
        start += _n_tri(n)
        out.append(upper + upper.T - jnp.diag(jnp.diag(upper)))
    return out


def _retract(Ls: Sequence[jnp.ndarray], x: jnp.ndarray) -> list[jnp.ndarray]:
    """U_l(X_l) = L_l (I + X_l + X_l^2/2) L_l^T: positive definite for every x."""
    Xs = _unpack_scaled(x, [L.shape[0] for L in Ls])
    return [L @ (jnp.eye(L.shape[0], dtype=x.dtype) + X + 0.5 * X @ X) @ L.T for L, X in zip(Ls, Xs)]


def _symmetric_block(h4: jnp.ndarray, offdiag: float) -> jnp.ndarray:
    """The quadratic form sum h4[c,d,a,b] Z_cd Z'_ab in upper-triangle coordinates of symmetric Z, Z'.

    Coordinate k = (i <= j) moves Z_ij and Z_ji by `offdiag`/2 each (1 for packed U, 1/sqrt 2 whitened), so the
    block is c_k c_l hs[i_k, j_k, i_l, j_l] with hs the symmetrisation of h4 over (c, d) and (a, b).
    """
    n = h4.shape[0]
    hs = 0.25 * (h4 + h4.transpose(1, 0, 2, 3) + h4.transpose(0, 1, 3, 2) + h4.transpose(1, 0, 3, 2))
    rows, cols = np.triu_indices(n)
    c = jnp.asarray(np.where(rows == cols, 1.0, 2.0 * offdiag))
    return c[:, None] * c[None, :] * hs[rows[:, None], cols[:, None], rows[None, :], cols[None, :]]


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
