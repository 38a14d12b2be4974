"""Exact blocked Gibbs sampling of the network's weight posterior (spec A.7, C.2).

The network output is multilinear in its weight blocks V^(0), V^(1), ..., V^(L), a: with all blocks but one
fixed, f = Phi w is linear in the free block w (no offset), so with the prior w ~ N(0, s I) and the likelihood
y ~ N(Phi w, T I_P) the block's conditional is Gaussian. We draw it by pathwise conditioning (Matheron's rule):

    w0 ~ N(0, s I),  eps ~ N(0, T I_P),
    w = w0 + s Phi^T (s Phi Phi^T + T I_P)^-1 (y - Phi w0 - eps),

which needs one P x P Cholesky factor and never a D x D matrix or the P x D matrix Phi itself.

Structure (derivation in network.py): in path space, with xi (P, N0, H) the path features, every block k has
the form

    f^mu = c_k sum_{h, sigma} u_sigma . W_h Z^mu_{h sigma}                                     (*)

with W (H_b, N_out, N_in) the block, u (S, N_out) the effective weights of the path suffixes sigma above it
(`network.suffix_weights`), Z (P, H_b, S, N_in) what arrives from below, aggregated along every path, and c_k a
normalisation:

    block   W                  u               Z                                c
    V0      V^(0)[None]        w_hat/sqrt(N1)  xi^T (P, 1, H, N0)               1
    V^(l)   V^(l)              u^(l)           X~^(l-1) (P, H_l, S_l, N_l)      1/sqrt(N_l)
    a       a[None, None]      [[1]]           X~^(L) (P, 1, 1, N_a)            1/sqrt(N_a)

where X~^(k) = c_k sum_h W_h Z_{h sigma} (P, S_k, N_{k+1}) is block k's output along each remaining suffix.
So Phi w, Phi^T beta and the Gram Phi Phi^T = c^2 sum_h sum_{sigma sigma'} (u_sigma.u_sigma')(Z_{h sigma}.Z_{h sigma'})
cost O(P H_b S N_in + H_b S N_out N_in) and O(P^2 H_b S N_in). A sweep updates V0, V1, ..., VL, a in turn; the
suffix weights of the upper blocks are computed once at the start (those blocks are not yet updated), the Z of each
block is propagated upwards as the lower blocks are redrawn.

When the data sees fewer than P of a block's weights (r = H_b min(S, N_out) N_in < P, as for the upper blocks at
small width) the same draw is made with r x r algebra (`reduced_update`). The V0 block's Gram comes from the
fixed path Gram xi.xi (`path_gram`). The sampler built on these conditionals, `BlockedGibbs`, is in
blocked_gibbs.py; the cost of a sweep, block by block, is in its docstring and measured in benchmarks/sampler.py.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from attnpaths._src.network import (
    Weights,
    suffix_weights,
)
from attnpaths._src.spec import NetworkSpec


class GibbsState(NamedTuple):
    """State of several independent Gibbs chains.

    weights: `Weights` with a leading chain axis C.
    key: (C, 2) uint32, the PRNG key of every chain.
    sweeps: () int64, sweeps done so far.
    """

    weights: Weights
    key: jnp.ndarray
    sweeps: jnp.ndarray


class LinearBlock(NamedTuple):
    """One weight block seen as a linear map of its weights W (H_b, N_out, N_in) to f (P,), form (*) above.

    u: (S, N_out) effective weights of the path suffixes above the block.
    Z: (P, H_b, S, N_in) inputs arriving at the block along every path.
    c: () normalisation.
    """

    u: jnp.ndarray
    Z: jnp.ndarray
    c: jnp.ndarray


# ---------------------------------------------------------------------------------------------------------------
# a block as a linear map: Phi w, Phi^T beta, Phi Phi^T from the factors (u, Z, c)
# ---------------------------------------------------------------------------------------------------------------


def block_matvec(block: LinearBlock, W: jnp.ndarray) -> jnp.ndarray:
    """Phi w = c sum_{h,sigma} u_sigma . W_h Z_{h sigma}: (P,)."""
    B = jnp.einsum("so,hoi->hsi", block.u, W)
    return block.c * jnp.einsum("hsi,phsi->p", B, block.Z)


def block_rmatvec(block: LinearBlock, beta: jnp.ndarray) -> jnp.ndarray:
    """Phi^T beta = c sum_sigma u_sigma (x) sum_mu beta_mu Z^mu_{h sigma}: (H_b, N_out, N_in)."""
    R = jnp.einsum("p,phsi->hsi", beta, block.Z)
    return block.c * jnp.einsum("so,hsi->hoi", block.u, R)


def block_gram(block: LinearBlock) -> jnp.ndarray:
    """Phi Phi^T = c^2 sum_h sum_{sigma,sigma'} (u_sigma . u_sigma') (Z_{h sigma} . Z_{h sigma'}): (P, P)."""
    uu = block.u @ block.u.T
    Zu = jnp.einsum("st,qhti->qhsi", uu, block.Z)
    P = block.Z.shape[0]
    return block.c ** 2 * (block.Z.reshape(P, -1) @ Zu.reshape(P, -1).T)


def block_output(block: LinearBlock, W: jnp.ndarray) -> jnp.ndarray:
    """What the block passes upwards along every remaining suffix: c sum_h W_h Z_{h sigma}, (P, S, N_out)."""
    return block.c * jnp.einsum("hoi,phsi->pso", W, block.Z)


def matheron_update(block: LinearBlock, w0: jnp.ndarray, eps: jnp.ndarray, y: jnp.ndarray, s, T,
                    gram: jnp.ndarray | None = None) -> jnp.ndarray:
    """w0 + s Phi^T (s Phi Phi^T + T I)^-1 (y - Phi w0 - eps).

    With w0 ~ N(0, s I) and eps ~ N(0, T I) this is an exact draw of the block's Gaussian conditional; with
    w0 = 0, eps = 0 it is the conditional mean. gram: Phi Phi^T if the caller has it cheaper.
    """
    P = y.shape[0]
    K = s * (block_gram(block) if gram is None else gram) + T * jnp.eye(P, dtype=y.dtype)
    chol = jnp.linalg.cholesky(K)
    r = y - block_matvec(block, w0) - eps
    alpha = jax.scipy.linalg.cho_solve((chol, True), r)
    return w0 + s * block_rmatvec(block, alpha)


def reduced_rank(block: LinearBlock) -> int:
    """r = H_b min(S, N_out) N_in: the dimension of a subspace of the block's weights that holds all the data
    sees (the block's (P, D) features have rank <= r; see `reduced_update`); static (from shapes)."""
    S, n_out = block.u.shape
    _, H_b, _, n_in = block.Z.shape
    return H_b * min(S, n_out) * n_in


def reduced_update(block: LinearBlock, w0: jnp.ndarray, eps: jnp.ndarray, y: jnp.ndarray, s, T) -> jnp.ndarray:
    """The same draw as `matheron_update` (same w0, eps, up to rounding) through r x r instead of P x P algebra.

    f = c sum_{h,s} u_s . W_h Z_{hs} sees each W_h only through Q^T W_h, with Q (N_out, S') an orthonormal basis
    of span{u_s} (S' = min(S, N_out)). In the coordinates omega = Q^T W (r = H_b S' N_in numbers) the block is
    f = F omega, F^mu = c sum_s (Q^T u_s) (x) Z^mu_{hs} (P, r), and Matheron's rule in precision form,

        omega = omega0 + (F^T F / T + I / s)^-1 F^T (y - F omega0 - eps) / T,    omega0 = Q^T w0,

    equals s F^T (s F F^T + T I)^-1 (...) (push-through identity); the rest of the block keeps the prior draw:
    W = w0 + Q (omega - omega0). Cost O(P r^2 + r^3 + #W S') instead of O(P^2 H_b S N_in + P^3): the choice
    when r < P (e.g. V1, V2, a at N = 10, P = 100: r = 40, 20, 10).
    """
    S, n_out = block.u.shape
    P, H_b, _, n_in = block.Z.shape
    Q, _ = jnp.linalg.qr(block.u.T)  # (N_out, S')
    ut = block.u @ Q  # (S, S'): u_s in the basis Q
    F = block.c * jnp.einsum("st,phsi->phti", ut, block.Z).reshape(P, -1)
    omega0 = jnp.einsum("ot,hoi->hti", Q, w0).reshape(-1)
    r = F.shape[1]
    chol = jnp.linalg.cholesky(F.T @ F / T + jnp.eye(r, dtype=F.dtype) / s)
    delta = jax.scipy.linalg.cho_solve((chol, True), F.T @ (y - F @ omega0 - eps)) / T
    return w0 + jnp.einsum("ot,hti->hoi", Q, delta.reshape(H_b, -1, n_in))


# ---------------------------------------------------------------------------------------------------------------
# the blocks of a network
# ---------------------------------------------------------------------------------------------------------------


def _as_block_arrays(weights: Weights) -> list[jnp.ndarray]:
    """The blocks in the (H_b, N_out, N_in) form, bottom to top."""
    return [weights.V0[None], *weights.V, weights.a[None, None]]


def _from_block_arrays(blocks: Sequence[jnp.ndarray]) -> Weights:
    return Weights(blocks[0][0], tuple(blocks[1:-1]), blocks[-1][0, 0])


def _next_Z(spec: NetworkSpec, k: int, out: jnp.ndarray) -> jnp.ndarray:
    """Reshape block k's output (P, S_k, N_{k+1}) into block k+1's input (P, H_{k+1}, S_{k+1}, N_{k+1})."""
    P, S, n = out.shape
    H_next = spec.heads[k] if k < spec.n_layers else 1
    return out.reshape(P, H_next, S // H_next, n)


def _first_Z(xi: jnp.ndarray) -> jnp.ndarray:
    """Input of the V0 block: xi (P, N0, H) -> (P, 1, H, N0)."""
    return jnp.transpose(xi, (0, 2, 1))[:, None]


def _suffix_u(spec: NetworkSpec, weights: Weights) -> list[jnp.ndarray]:
    """u for every block, bottom to top (the a block's is [[1]])."""
    return suffix_weights(spec, weights) + [jnp.ones((1, 1), dtype=weights.a.dtype)]


def _norms(spec: NetworkSpec) -> list[float]:
    """c of every block: 1 for V0, 1/sqrt(N_l) for V^(l), 1/sqrt(N_a) for a."""
    widths = spec.widths
    return [1.0] + [1.0 / math.sqrt(widths[l]) for l in range(spec.n_layers)] + [1.0 / math.sqrt(widths[-1])]


def linear_blocks(spec: NetworkSpec, weights: Weights, xi: jnp.ndarray) -> list[LinearBlock]:
    """Every block's linear form (*) with all other blocks at `weights`: [V0, V1, ..., VL, a].

    weights: unbatched `Weights`; xi: (P, N0, H) path features of the P inputs.
    """
    us = _suffix_u(spec, weights)
    cs = _norms(spec)
    Z = _first_Z(xi)
    out = []
    for k, W in enumerate(_as_block_arrays(weights)):
        block = LinearBlock(us[k], Z, jnp.asarray(cs[k], dtype=xi.dtype))
        out.append(block)
        if k <= spec.n_layers:
            Z = _next_Z(spec, k, block_output(block, W))
    return out


def _normal(key, size: int, gate) -> jnp.ndarray:
    """N(0, I_size) drawn inside `lax.cond(gate, ...)` with gate a traced True.

    The cond makes XLA materialise the draw once. Otherwise the CPU compiler fuses the float64 erf_inv of the
    normal transform into each consumer of the draw (Phi w0 and w0 + ...), computing it twice: the draws are
    the largest cost of a sweep at large N (~20 ns per number); at N = 1000 this more than halves a sweep.
    """
    return jax.lax.cond(gate, lambda k: jax.random.normal(k, (size,), dtype=jnp.float64),
                        lambda k: jnp.zeros((size,), dtype=jnp.float64), key)


_PATH_GRAM_MAX = 2 ** 24  # entries of the fixed (H, H, P, P) path Gram worth keeping (128 MB)


def path_gram(xi: jnp.ndarray) -> jnp.ndarray | None:
    """xi_pi^mu . xi_pi'^nu (H, H, P, P), fixed during sampling; None when too large to keep in memory.

    With it the V0 block's Gram is sum_{pi pi'} (u_pi . u_pi') C[pi, pi'] (H^2 P^2 flops) instead of
    O(P^2 H N0) per sweep, the largest cost of a sweep at small width.
    """
    P, _, H = xi.shape
    # a cost switch only: either way the V0 draw is exact (a mutated threshold changes speed, not draws)
    if H * H * P * P > _PATH_GRAM_MAX:
        return None
    return jnp.einsum("mip,niq->pqmn", xi, xi)


def _block_update(block: LinearBlock, w0, eps, y, s, T, C0, reduce: bool) -> jnp.ndarray:
    """The block's conditional draw by the cheaper exact route: the path Gram (V0 with C0), r x r algebra when
    the data sees fewer than P of the block's weights (`reduced_update`), else P x P (`matheron_update`)."""
    # "st" or "ts" below: u u^T is symmetric. reduce=False gives the same draw by P x P algebra (tested).
    if C0 is not None:  # V0: c = 1, Phi Phi^T = sum_{pi pi'} (u_pi . u_pi') C0[pi, pi']: O(H^2 P^2)
        return matheron_update(block, w0, eps, y, s, T, jnp.einsum("st,stpq->pq", block.u @ block.u.T, C0))
    if reduce and reduced_rank(block) < y.shape[0]:
        return reduced_update(block, w0, eps, y, s, T)
    return matheron_update(block, w0, eps, y, s, T)


def _sweep(spec: NetworkSpec, update: tuple[bool, ...], xi, y, key, weights: Weights, gate,
           C0: jnp.ndarray | None, reduce: bool) -> Weights:
    """One systematic sweep V0, V1, ..., VL, a of one chain. gate: a traced True (see `_normal`).
    C0: `path_gram(xi)` or None.

    The noise of the whole sweep is one N(0, I) draw of length sum_k (D_k + P) over the updated blocks, cut in
    order into (w0_k, eps_k) per block (one random-number kernel compiles much faster than 2 (L+2)).
    """
    var = spec.variances
    T = spec.temperature
    P = y.shape[0]
    us = _suffix_u(spec, weights)  # blocks above k are not yet redrawn when block k is
    cs = _norms(spec)
    arrays = _as_block_arrays(weights)
    noise = _normal(key, sum(W.size + P for W, u in zip(arrays, update) if u), gate)
    start = 0
    Z = _first_Z(xi)
    new = []
    for k, W in enumerate(arrays):
        block = LinearBlock(us[k], Z, jnp.asarray(cs[k], dtype=xi.dtype))
        if update[k]:
            w0 = math.sqrt(var[k]) * noise[start:start + W.size].reshape(W.shape)
            eps = math.sqrt(T) * noise[start + W.size:start + W.size + P]
            start += W.size + P
            W = _block_update(block, w0, eps, y, var[k], T, C0 if k == 0 else None, reduce)
        new.append(W)
        if k <= spec.n_layers:
            Z = _next_Z(spec, k, block_output(block, W))
    return _from_block_arrays(new)
