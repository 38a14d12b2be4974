"""Path-path kernels and the renormalised kernel (spec B.2, B.7).

With xi_pi = x_pi / sqrt(N0 H) the path features of `paths.path_features` and s_0 the input prior variance:

    C^{pi pi'}(x, x') = (s_0 / N0) x_pi . x'_pi' = s_0 H xi_pi . xi'_pi'          (B.2, "pre-kernels")
    K_U(x, x')        = (1/H) sum_{pi pi'} U_{pi pi'} C^{pi pi'}(x, x')
                      = s_0 sum_{pi pi'} U_{pi pi'} xi_pi(x) . xi_pi'(x')              (B.2)
    K_GP              = K_U at U = U_GP = s_1 ... s_L s_a I                           (B.7)

`renormalized_kernel` never forms the (H, H, P, P') tensor: it contracts the features directly, one matrix
product of (P, N0 H) by (N0 H, P'), so P = 5000 with 16 paths needs only the P x P output.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attnpaths._src.order import gp_order
from attnpaths._src.spec import NetworkSpec


@jax.jit
def path_kernels(xi_a: jnp.ndarray, xi_b: jnp.ndarray, s0=1.0) -> jnp.ndarray:
    """All path-path kernels C^{pi pi'} (spec B.2).

    xi_a: (Pa, N0, H), xi_b: (Pb, N0, H) path features. Returns (H, H, Pa, Pb). Memory H^2 Pa Pb: use
    `renormalized_kernel` for large problems.
    """
    n_paths = xi_a.shape[-1]
    return s0 * n_paths * jnp.einsum("mip,niq->pqmn", xi_a, xi_b)


@jax.jit
def renormalized_kernel(U1: jnp.ndarray, xi_a: jnp.ndarray, xi_b: jnp.ndarray, s0=1.0) -> jnp.ndarray:
    """K_U(x_a, x_b) = s_0 sum_{pi pi'} U_{pi pi'} xi_pi(x_a) . xi_pi'(x_b)  (spec B.2).

    U1: (H, H); xi_a: (Pa, N0, H); xi_b: (Pb, N0, H). Returns (Pa, Pb).
    """
    rotated = xi_b @ U1.T  # rotated[n, i, p] = sum_q U[p, q] xi_b[n, i, q]
    return s0 * xi_a.reshape(xi_a.shape[0], -1) @ rotated.reshape(rotated.shape[0], -1).T


@jax.jit
def kernel_diagonal(U1: jnp.ndarray, xi: jnp.ndarray, s0=1.0) -> jnp.ndarray:
    """diag K_U(x, x) for x in xi (P, N0, H) -> (P,), without forming P x P."""
    return s0 * jnp.einsum("mip,pq,miq->m", xi, U1, xi)


def gp_kernel(spec: NetworkSpec, xi_a, xi_b) -> jnp.ndarray:
    """The infinite-width kernel K_GP = s_0 s_1 ... s_L s_a sum_pi xi_pi . xi'_pi (spec B.7). (Pa, Pb)."""
    return renormalized_kernel(gp_order(spec)[0], jnp.asarray(xi_a), jnp.asarray(xi_b), spec.variances[0])
