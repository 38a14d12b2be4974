"""The action S(U) = (energy + entropy) / N_max whose minimum gives the order parameters (spec B.4, B.5).

    E(U_1)  = ln det(K_U + T I_P) + Y^T (K_U + T I_P)^-1 Y                                     (B.4)
    S_ent   = N_a [U_a/s_a - ln U_a]
            + N_L [Tr U_L / (s_L U_a) - ln det U_L + H_L ln U_a]
            + sum_{l=L-1..1} N_l [Tr(U_{l+1}^-1 Tr_{h_l} U_l)/s_l - ln det U_l + H_l ln det U_{l+1}]   (B.4)
    U_a     = (-b + sqrt(b^2 + 4 c)) / 2,  b = s_a (H_L N_L/N_a - 1),  c = s_a N_L Tr U_L/(N_a s_L)   (B.5)

Every entropy bracket is the Wishart/KL form Tr((s_l I_{H_l} (x) U_{l+1})^-1 U_l) - ln det U_l
+ ln det(I_{H_l} (x) U_{l+1}) with U_{L+1} = U_a, so one function, `_wishart_term`, computes them all. Widths,
variances and T arrive as arrays (`Hyper`), so a width sweep reuses one compiled function.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from attnpaths._src.kernels import renormalized_kernel
from attnpaths._src.order import partial_trace
from attnpaths._src.spec import Hyper


def _logdet_spd(U: jnp.ndarray) -> jnp.ndarray:
    return 2.0 * jnp.sum(jnp.log(jnp.diag(jnp.linalg.cholesky(U))))


def scalar_order_parameter(U_L: jnp.ndarray, hyper: Hyper, n_heads_last: int) -> jnp.ndarray:
    """U_a in closed form, the positive root of U_a^2 + b U_a - c = 0 (spec B.5)."""
    N_L, N_a = hyper.widths[-2], hyper.widths[-1]
    s_L, s_a = hyper.variances[-2], hyper.variances[-1]
    b = s_a * (n_heads_last * N_L / N_a - 1.0)
    c = s_a * N_L * jnp.trace(U_L) / (N_a * s_L)
    return 0.5 * (-b + jnp.sqrt(b * b + 4.0 * c))


def _wishart_term(U: jnp.ndarray, parent: jnp.ndarray, n_heads: int, variance) -> jnp.ndarray:
    """Tr((I_h (x) parent)^-1 U)/variance - ln det U + h ln det parent (parent SPD, (n/h, n/h))."""
    reduced = partial_trace(U, n_heads)
    return (jnp.trace(jnp.linalg.solve(parent, reduced)) / variance - _logdet_spd(U)
            + n_heads * _logdet_spd(parent))


def entropy(Us: Sequence[jnp.ndarray], hyper: Hyper, heads: tuple[int, ...]) -> jnp.ndarray:
    """Prior (entropic) part of the action, un-normalised (spec B.4). Us = [U_1, ..., U_L]."""
    L = len(heads)
    U_a = scalar_order_parameter(Us[-1], hyper, heads[-1])
    N_a, s_a = hyper.widths[-1], hyper.variances[-1]
    total = N_a * (U_a / s_a - jnp.log(U_a))
    parents = list(Us[1:]) + [U_a.reshape(1, 1)]
    for l in range(L):
        # variances[l + 1] is s_l (variances[0] is the input projection's s_0); widths[l] is N_l.
        total += hyper.widths[l] * _wishart_term(Us[l], parents[l], heads[l], hyper.variances[l + 1])
    return total


def energy(K: jnp.ndarray, y: jnp.ndarray, temperature) -> jnp.ndarray:
    """E = ln det(K + T I) + y^T (K + T I)^-1 y (spec B.4). K (P, P), y (P,). NaN if K + T I is not PD."""
    chol = jnp.linalg.cholesky(K + temperature * jnp.eye(K.shape[0], dtype=K.dtype))
    r = solve_triangular(chol, y, lower=True)
    return 2.0 * jnp.sum(jnp.log(jnp.diag(chol))) + r @ r


def action(Us: Sequence[jnp.ndarray], xi: jnp.ndarray, y: jnp.ndarray, hyper: Hyper,
           heads: tuple[int, ...]) -> jnp.ndarray:
    """S = (E(U_1) + S_ent(U)) / N_max (spec B.4). xi: (P, N0, H) training path features, y: (P,)."""
    K = renormalized_kernel(Us[0], xi, xi, hyper.variances[0])
    return (energy(K, y, hyper.temperature) + entropy(Us, hyper, heads)) / jnp.max(hyper.widths)


def energy_derivatives(U1: jnp.ndarray, xi: jnp.ndarray, y: jnp.ndarray, s0, temperature):
    """E(U_1) with its exact gradient and Hessian in the entries of U_1, without any (H, H, P, P) kernel tensor.

    With A = K_U + T I = L L^T, W_c = L^-1 xi_c (P, N0), r = L^-1 y, M_ca = W_c^T W_a and v_c = W_c^T r:
        dE/dU_cd            = s0 [Tr M_cd - v_c . v_d]
        d2E/dU_cd dU_ab     = s0^2 [-Tr(M_ca M_bd) + v_d^T M_ca v_b + v_c^T M_da v_b]
    computed in feature space (blocks N0 x N0, cost O(P (N0 H)^2 + H^4 N0^2)) when P >= N0, and through the
    P x P products R_ab = W_a W_b^T (Tr(M_ca M_bd) = Tr(R_ab R_dc), cost O(H^2 P^2 N0 + H^4 P^2)) when P < N0.

    Returns (E, grad (H, H), hess (H, H, H, H)) with hess[c, d, a, b] = d2E/dU_cd dU_ab.
    """
    P, n0, H = xi.shape
    K = renormalized_kernel(U1, xi, xi, s0)
    chol = jnp.linalg.cholesky(K + temperature * jnp.eye(P, dtype=K.dtype))
    W = solve_triangular(chol, jnp.transpose(xi, (0, 2, 1)).reshape(P, H * n0), lower=True).reshape(P, H, n0)
    r = solve_triangular(chol, y, lower=True)
    E = 2.0 * jnp.sum(jnp.log(jnp.diag(chol))) + r @ r
    v = jnp.einsum("pai,p->ai", W, r)
    if P < n0:
        R = jnp.einsum("pai,qbi->abpq", W, W)
        trace_M = jnp.einsum("abpp->ab", R)
        trace_MM = jnp.einsum("abpq,cdpq->cdab", R, R)
        q = jnp.einsum("pai,bi->abp", W, v)  # q[a, b] = W_a v_b
        vMv = jnp.einsum("cdp,abp->cdab", q, q)  # v_d^T M_ca v_b
        vMv_swapped = jnp.einsum("dcp,abp->cdab", q, q)  # v_c^T M_da v_b
    else:
        M = jnp.einsum("pci,paj->ciaj", W, W)
        trace_M = jnp.einsum("cidi->cd", M)
        trace_MM = jnp.einsum("ciaj,bjdi->cdab", M, M)
        Mv = jnp.einsum("ciaj,bj->ciab", M, v)  # (M_ca v_b)_i
        vMv = jnp.einsum("di,ciab->cdab", v, Mv)
        vMv_swapped = jnp.einsum("ci,diab->cdab", v, Mv)
    grad = s0 * (trace_M - v @ v.T)
    hess = s0 ** 2 * (-trace_MM + vMv + vMv_swapped)
    return E, grad, hess
