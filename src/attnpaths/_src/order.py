"""The order parameters U_1, ..., U_L and U_a (spec B.3), and their parametrisations.

U_l is (n_l, n_l) with n_l = H_l H_{l+1} ... H_L, indexed by (h_l, ..., h_L) with h_l outermost; U_1 (H x H)
weights the path-path kernels. Two parametrisations of a symmetric positive definite U are used:

* Cholesky: U = R R^T with R lower triangular and diag R = exp(theta_diag): every theta is a valid U
  (the solver moves here, so U can never leave the positive definite cone);
* packed upper triangle (spec C.1): p = U[triu], the coordinates of the Hessian certificate.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from attnpaths._src.spec import NetworkSpec


def gp_order(spec: NetworkSpec) -> tuple[np.ndarray, ...]:
    """Infinite-width order parameters (spec B.3, B.7): U_l = s_a s_L ... s_l I. Returns (U_1, ..., U_L)."""
    v = spec.variances
    out = []
    for l in range(spec.n_layers):
        scale = float(np.prod(v[l + 1 : spec.n_layers + 2]))  # s_l ... s_L s_a (variances[l+1] is s_l)
        out.append(scale * np.eye(spec.level_sizes[l]))
    return tuple(out)


def gp_scalar_order(spec: NetworkSpec) -> float:
    """U_a at infinite width: s_a."""
    return spec.variances[-1]


def symmetrize(U: jnp.ndarray) -> jnp.ndarray:
    return 0.5 * (U + U.T)


def partial_trace(U: jnp.ndarray, n_heads: int) -> jnp.ndarray:
    """Trace over the outer (layer-l head) index: reshape to (h, n, h, n), sum the two h's (spec B.4)."""
    n = U.shape[0] // n_heads
    return jnp.einsum("hahb->ab", U.reshape(n_heads, n, n_heads, n))


# ---- Cholesky coordinates ---------------------------------------------------------------------------------
def _n_tri(n: int) -> int:
    return n * (n + 1) // 2


def cholesky_to_order(theta: jnp.ndarray, sizes: Sequence[int]) -> list[jnp.ndarray]:
    """theta (sum n(n+1)/2,) -> [U_1, ..., U_L], U = R R^T, R lower triangular with exp on the diagonal."""
    out, start = [], 0
    for n in sizes:
        rows, cols = np.tril_indices(n)
        chunk = theta[start : start + _n_tri(n)]
        start += _n_tri(n)
        vals = jnp.where(jnp.asarray(rows == cols), jnp.exp(chunk), chunk)
        R = jnp.zeros((n, n), theta.dtype).at[rows, cols].set(vals)
        out.append(R @ R.T)
    return out


def order_to_cholesky(Us: Sequence, sizes: Sequence[int]) -> np.ndarray:
    """Inverse of `cholesky_to_order`; raises ValueError if some U is not symmetric positive definite."""
    parts = []
    for l, (U, n) in enumerate(zip(Us, sizes)):
        U = np.asarray(U, dtype=np.float64)
        if U.shape != (n, n):
            raise ValueError(f"U_{l + 1} must have shape ({n}, {n}); got {U.shape}")
        if not np.all(np.isfinite(U)):
            raise ValueError(f"U_{l + 1} contains NaN or infinite entries")
        try:
            R = np.linalg.cholesky(0.5 * (U + U.T))
        except np.linalg.LinAlgError:
            raise ValueError(f"U_{l + 1} must be symmetric positive definite (it is the overlap of path "
                             "weights); its Cholesky factorisation failed") from None
        rows, cols = np.tril_indices(n)
        vals = R[rows, cols]
        diag = rows == cols
        vals[diag] = np.log(vals[diag])
        parts.append(vals)
    return np.concatenate(parts)


# ---- packed upper-triangle coordinates (spec C.1) ------------------------------------------------------
def pack_order(Us: Sequence) -> jnp.ndarray:
    """[U_1 (n_1, n_1), ..., U_L] -> (sum n_l (n_l + 1) / 2,): each U's upper triangle, row by row (spec C.1)."""
    return jnp.concatenate([jnp.asarray(U)[np.triu_indices(U.shape[0])] for U in Us])


def unpack_order(p: jnp.ndarray, sizes: Sequence[int]) -> list[jnp.ndarray]:
    """Inverse of `pack_order`: (sum n_l (n_l + 1) / 2,) -> [U_l (n_l, n_l) symmetric] for `sizes` n_1..n_L."""
    out, start = [], 0
    for n in sizes:
        rows, cols = np.triu_indices(n)
        upper = jnp.zeros((n, n), p.dtype).at[rows, cols].set(p[start : start + _n_tri(n)])
        start += _n_tri(n)
        out.append(upper + upper.T - jnp.diag(jnp.diag(upper)))
    return out
