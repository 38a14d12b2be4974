"""Gibbs sweeps in the space of the path features: block conditionals at a cost that does not grow with P.

Derivation. Every block's input in form (*) of gibbs.py is the path features carried up by the blocks below. For
block k (H_b heads, S suffixes sigma above it, R = H_1 ... H_{k-1} prefixes rho below it; R = 1 for V0 and V1)

    Z^mu_{h sigma} = sum_rho M_rho xi^mu_{rho h sigma} = M X^mu_{h sigma},

with M = [M_rho]_rho (N_k, R N0) the product of the lower blocks along each prefix (with their c),
M_rho = c_{k-1} V^(k-1, rho_{k-1}) ... c_1 V^(1, rho_1) c_0 V^(0), and X^mu_{h sigma} = [xi^mu_{rho h sigma}]_rho
(R N0) the path features of the paths through head h with suffix sigma, stacked over prefixes: fixed during
sampling. A prefix grows by one head per block, M_{k+1} = c_k [W_h M_k]_h (H_b N_{k+1} N_k R N0 flops), instead
of pushing the P inputs through the block (P S H_b N_{k+1} N_k). For V0, M = I and X = xi; for a, R N0 = H N0.

So the data see W only through Q_u^T W_h Q_M, with Q_u (N_out, S') an orthonormal basis of span{u_sigma} and
Q_M (N_k, m) one of range(M). With u_sigma = Q_u ut_sigma and M = Q_M R_M,

    f^mu = c sum_{h sigma} u_sigma . W_h M X^mu_{h sigma} = F^mu . omega,
    omega_h = Q_u^T W_h Q_M (S', m),      F^mu_{htj} = c sum_sigma ut_{sigma t} (R_M X^mu_{h sigma})_j,

and, as in `gibbs.reduced_update` (Phi = F omega(.) with omega(.) an orthogonal projection; push-through identity),
Matheron's rule for the block is exactly

    W = w0 + Q_u delta_h Q_M^T,    delta = (F^T F / T + I / s)^-1 F^T (y - Phi w0 - eps) / T,

the same draw as the P x P route for the same (w0, eps), up to rounding. F^T F needs no sum over the inputs:

    (F^T F)_{htj,h't'j'} = c^2 sum_{sigma sigma'} ut_{sigma t} ut_{sigma' t'} (R_M Xi_{h sigma,h' sigma'} R_M^T)_{jj'},
    Xi = sum_mu X^mu X^mu^T,

a fixed permutation of the path moments sum_mu xi^mu_{n pi} xi^mu_{n' pi'} ((H N0)^2 numbers, `path_moments`,
computed once); Phi w0 and F^T v cost O(P H N0). Two ways to (Q_M, R_M):
  R N0 < N_k ("factored"): R_M = L^T with L L^T = M^T M (Cholesky) and Q_M = M L^-T (never formed:
      delta_h Q_M^T = (delta_h L^-1) M^T) when every block below is redrawn in the sweep: they are then draws
      of continuous distributions, so M has full column rank almost surely; with a block below held fixed
      (sample_blocks) M may be rank-deficient (e.g. zero weights) and the thin Householder QR M = Q_M R_M is used;
  otherwise ("direct"): Q_M = I, R_M = M (m = N_k); for V0 also M = I.
Cost of a block (multiply-adds, factored): N_k (R N0)^2 (x2 with the QR) + 2 (H_b S')^2 (R N0)^3 + r^3/6 (r = H_b S' m),
and no P^2 or P^3 term. `routes` compares, block by block, this route with the P-space route of gibbs.py (Z = M X
materialised, then `gibbs._block_update`), and the whole sweep with the old one (`gibbs._sweep`), from the shapes.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

from attnpaths._src.network import Weights
from attnpaths._src.sampling.gibbs import (
    LinearBlock,
    _as_block_arrays,
    _block_update,
    _from_block_arrays,
    _norms,
    _normal,
    _suffix_u,
)
from attnpaths._src.spec import NetworkSpec

_MOMENTS_MAX = 2 ** 24  # entries of the fixed path moments (H N0)^2 worth keeping (128 MB)


def moments_fit(H: int, n0: int) -> bool:
    """Whether the path moments (H N0)^2 are small enough to keep (a cost switch only: without them the sweep
    takes the P-space routes, the same draws up to rounding)."""
    return (H * n0) ** 2 <= _MOMENTS_MAX


def path_moments(xi: jnp.ndarray) -> jnp.ndarray:
    """sum_mu xi^mu_{n pi} xi^mu_{n' pi'} as (H, N0, H, N0) from xi (P, N0, H): P (H N0)^2 flops, once."""
    return jnp.einsum("mip,mjq->piqj", xi, xi)


def block_dims(spec: NetworkSpec, k: int) -> tuple[int, int, int]:
    """(H_b, S, R) of block k (0 = V0, ..., L+1 = a): heads, suffixes above, prefixes below."""
    H = math.prod(spec.heads)
    if k == 0:
        return 1, H, 1
    if k == spec.n_layers + 1:
        return 1, 1, H
    H_b, R = spec.heads[k - 1], math.prod(spec.heads[:k - 1])
    return H_b, H // (H_b * R), R


def block_features(xi: jnp.ndarray, dims: tuple[int, int, int]) -> jnp.ndarray:
    """X (P, H_b, S, R N0): the path features of block k's input, X[mu, h, sigma, (rho, n)] = xi[mu, n, rho h sigma]."""
    H_b, S, R = dims
    P, n0, _ = xi.shape
    return jnp.transpose(xi.reshape(P, n0, R, H_b, S), (0, 3, 4, 2, 1)).reshape(P, H_b, S, R * n0)


def block_moments(moments: jnp.ndarray, dims: tuple[int, int, int]) -> jnp.ndarray:
    """Xi = sum_mu X^mu X^mu^T as (H_b, S, R N0, H_b, S, R N0), from `path_moments`."""
    H_b, S, R = dims
    n0 = moments.shape[1]
    m = moments.reshape(R, H_b, S, n0, R, H_b, S, n0)
    return jnp.transpose(m, (1, 2, 0, 3, 5, 6, 4, 7)).reshape(H_b, S, R * n0, H_b, S, R * n0)


def factored_update(u, M, X, Xi, c, w0, eps, y, s, T, full_rank: bool = False) -> jnp.ndarray:
    """The block's conditional draw from the path moments (module docstring), the same as `gibbs.matheron_update`
    for the same w0, eps up to rounding.

    u: (S, N_out) suffix weights; M: (N_k, R N0) the block's input map, or None for the identity (V0); X: (P, H_b,
    S, R N0) `block_features`; Xi: (H_b, S, R N0, H_b, S, R N0) `block_moments`; c: normalisation; w0: (H_b, N_out,
    N_k) prior draw; eps: (P,) noise; y: (P,) targets; s, T: prior variance and temperature. full_rank: M has
    full column rank (see `factored_sweep`), so R_M may come from a Cholesky of M^T M (several times cheaper on
    CPU than a Householder QR); otherwise the QR, exact for any M. Returns W like w0.
    """
    H_b, _, n_k = w0.shape
    Qu, _ = jnp.linalg.qr(u.T)  # (N_out, S')
    ut = u @ Qu  # (S, S')
    factored = M is not None and M.shape[1] < n_k
    if M is None:
        Rm = None
    elif factored and full_rank:
        L = jnp.linalg.cholesky(M.T @ M)
        Rm = L.T  # Q_M = M L^-T, never formed
    elif factored:
        Qm, Rm = jnp.linalg.qr(M)
    else:
        Rm = M
    # suffixes mixed into the S' directions first (S' <= S); every product below is one 2-D matmul, the layouts
    # XLA's CPU backend hands to its fast GEMM (general einsums over 6-D arrays can lower to slow loop nests)
    S, S1, a = ut.shape[0], ut.shape[1], Xi.shape[2]
    K = _mix(ut, Xi.reshape(H_b, S, -1)).reshape(H_b * S1 * a * H_b, S, a)
    K = _mix(ut, K).reshape(H_b, S1, a, H_b, S1, a)
    if Rm is not None:  # K <- (I (x) Rm) K (I (x) Rm)^T
        m = Rm.shape[0]
        K = Rm @ jnp.moveaxis(K, 2, 0).reshape(a, -1)  # (m, H_b, S', H_b, S', a)
        K = (K.reshape(-1, a) @ Rm.T).reshape(m, H_b, S1, H_b, S1, m)
        K = jnp.moveaxis(K, 0, 2)
    r = K.shape[0] * K.shape[1] * K.shape[2]
    K = c ** 2 * K.reshape(r, r)
    B = jnp.einsum("so,hoi->hsi", u, w0)
    if M is not None:
        B = B @ M
    Xf = X.reshape(X.shape[0], -1)
    resid = y - c * (Xf @ B.reshape(-1)) - eps  # y - Phi w0 - eps
    b = c * jnp.einsum("st,hsa->hta", ut, (resid @ Xf).reshape(X.shape[1:]))
    if Rm is not None:
        b = jnp.einsum("ja,hta->htj", Rm, b)
    chol = jnp.linalg.cholesky(K / T + jnp.eye(r, dtype=K.dtype) / s)
    delta = (jax.scipy.linalg.cho_solve((chol, True), b.reshape(-1)) / T).reshape(b.shape)
    if factored and full_rank:  # delta Q_M^T = (delta L^-1) M^T
        flat = delta.reshape(-1, delta.shape[-1])
        delta = (jax.scipy.linalg.solve_triangular(L, flat.T, lower=True, trans="T").T @ M.T).reshape(
            delta.shape[:2] + (n_k,))
    elif factored:
        delta = delta @ Qm.T
    return w0 + jnp.einsum("ot,hti->hoi", Qu, delta)


def _mix(ut, A):
    """sum_sigma ut[sigma, t] A[..., sigma, rest] for A (lead, S, rest) -> (lead, S', rest), as one matmul."""
    lead, S, rest = A.shape
    return (ut.T @ jnp.moveaxis(A, 1, 0).reshape(S, -1)).reshape(ut.shape[1], lead, rest).swapaxes(0, 1)


# ---------------------------------------------------------------------------------------------------------------
# route choice from the shapes (multiply-adds; a cost switch only: every route draws the same numbers up to rounding)
# ---------------------------------------------------------------------------------------------------------------


def _p_route_cost(spec: NetworkSpec, k: int, P: int, n0: int, has_C0: bool, factored_input: bool) -> float:
    """gibbs._block_update's cost (reduce=True), plus materialising Z = M X when the input is carried as M."""
    H_b, S, R = block_dims(spec, k)
    n_in, n_out = _in_out(spec, k, n0)
    cost = P * H_b * S * n_in * R * n0 if factored_input and k > 0 else 0.0
    r = H_b * min(S, n_out) * n_in
    if k == 0 and has_C0:
        return cost + S * S * P * P + P ** 3 / 6
    if r < P:
        return cost + P * r * r + r ** 3 / 6 + P * H_b * S * min(S, n_out) * n_in
    return cost + P * P * H_b * S * n_in + P ** 3 / 6


def _q_route_cost(spec: NetworkSpec, k: int, P: int, n0: int) -> float:
    H_b, S, R = block_dims(spec, k)
    n_in, n_out = _in_out(spec, k, n0)
    a = R * n0
    s1 = min(S, n_out)
    q = H_b * S * a
    factored = k > 0 and a < n_in
    m = a if k == 0 or factored else n_in
    r = H_b * s1 * m
    cost = q * q * s1 + P * q * 2 + r ** 3 / 6
    if k > 0:
        cost += (H_b * s1) ** 2 * (m * a * a + m * m * a)
    if factored:
        cost += 2 * n_in * a * a
    return cost


def _in_out(spec: NetworkSpec, k: int, n0: int) -> tuple[int, int]:
    widths = [int(w) for w in spec.widths]
    n_in = n0 if k == 0 else widths[k - 1]
    n_out = 1 if k == spec.n_layers + 1 else widths[k]
    return n_in, n_out


def routes(spec: NetworkSpec, P: int, n0: int, has_C0: bool, has_moments: bool) -> tuple[str, ...] | None:
    """Per block 'q' (`factored_update`) or 'P' (Z = M X, then gibbs._block_update) for the cheaper of the two;
    None when the old sweep (gibbs._sweep, inputs pushed through every block) is cheaper than both."""
    n_blocks = spec.n_layers + 2
    old = sum(_p_route_cost(spec, k, P, n0, has_C0, False) for k in range(n_blocks))
    old += sum(P * block_dims(spec, k)[1] * block_dims(spec, k)[0] * math.prod(_in_out(spec, k, n0))
               for k in range(n_blocks - 1))
    choice, new = [], 0.0
    for k in range(n_blocks):
        costs = {"P": _p_route_cost(spec, k, P, n0, has_C0, True)}
        if has_moments:
            costs["q"] = _q_route_cost(spec, k, P, n0)
        best = min(costs, key=costs.get)
        choice.append(best)
        new += costs[best]
        if k < n_blocks - 1:
            H_b, _, R = block_dims(spec, k)
            n_in, n_out = _in_out(spec, k, n0)
            new += H_b * n_out * n_in * R * n0 if k > 0 else 0.0
    return tuple(choice) if new < old else None


# ---------------------------------------------------------------------------------------------------------------
# the sweep
# ---------------------------------------------------------------------------------------------------------------


def factored_sweep(spec: NetworkSpec, update: tuple[bool, ...], xi, y, key, weights: Weights, gate,
                   C0, moments, route: Sequence[str]) -> Weights:
    """One sweep V0, V1, ..., a of one chain, like `gibbs._sweep` (same noise, cut the same way; the same draws up to
    rounding) with every block's input carried as M (module docstring). route: `routes(...)`."""
    var = spec.variances
    T = spec.temperature
    P = y.shape[0]
    us = _suffix_u(spec, weights)
    cs = _norms(spec)
    arrays = _as_block_arrays(weights)
    noise = _normal(key, sum(W.size + P for W, u in zip(arrays, update) if u), gate)
    start = 0
    M = None  # the identity: V0's input is xi itself
    new = []
    for k, W in enumerate(arrays):
        dims = block_dims(spec, k)
        X = block_features(xi, dims)
        c = jnp.asarray(cs[k], dtype=xi.dtype)
        if update[k]:
            w0 = math.sqrt(var[k]) * noise[start:start + W.size].reshape(W.shape)
            eps = math.sqrt(T) * noise[start + W.size:start + W.size + P]
            start += W.size + P
            if route[k] == "q":
                W = factored_update(us[k], M, X, block_moments(moments, dims), c, w0, eps, y, var[k], T,
                                    full_rank=all(update[:k]))
            else:
                Z = X if M is None else (X.reshape(-1, M.shape[1]) @ M.T).reshape(X.shape[:3] + (-1,))
                W = _block_update(LinearBlock(us[k], Z, c), w0, eps, y, var[k], T, C0 if k == 0 else None, True)
        new.append(W)
        if k <= spec.n_layers:  # M_{k+1}[:, (rho, h, n)] = c_k W_h M_k[:, (rho, n)]
            H_b, _, R = dims
            WM = W if M is None else (W.reshape(-1, W.shape[2]) @ M).reshape(W.shape[:2] + (-1,))
            n_next, n0 = WM.shape[1], xi.shape[1]
            WM = jnp.transpose(WM.reshape(H_b, n_next, R, n0), (1, 2, 0, 3)).reshape(n_next, R * H_b * n0)
            M = cs[k] * WM
    return _from_block_arrays(new)
