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

import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from attnpaths._src.kernels import _renormalized_kernel
from attnpaths._src.order import partial_trace
from attnpaths._src.routes import EnergyFactors, ExampleData
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
    # K is square: K.shape[0] or K.shape[1], the same eye
    chol = jnp.linalg.cholesky(K + temperature * jnp.eye(K.shape[0], dtype=K.dtype))
    r = solve_triangular(chol, y, lower=True)
    return 2.0 * jnp.sum(jnp.log(jnp.diag(chol))) + r @ r


def action(Us: Sequence[jnp.ndarray], xi: jnp.ndarray, y: jnp.ndarray, hyper: Hyper,
           heads: tuple[int, ...]) -> jnp.ndarray:
    """S = (E(U_1) + S_ent(U)) / N_max (spec B.4). xi: (P, N0, H) training path features, y: (P,)."""
    K = _renormalized_kernel(Us[0], xi, xi, hyper.variances[0])
    return (energy(K, y, hyper.temperature) + entropy(Us, hyper, heads)) / jnp.max(hyper.widths)


def action_of(Us: Sequence[jnp.ndarray], data, hyper: Hyper, heads: tuple[int, ...]) -> jnp.ndarray:
    """S = (E(U_1) + S_ent(U)) / N_max with E evaluated by the route of `data` (`routes.ExampleData` or
    `routes.GramStatistics`); equal to `action` on the same examples."""
    E = data.energy(Us[0], hyper.variances[0], hyper.temperature)
    return (E + entropy(Us, hyper, heads)) / jnp.max(hyper.widths)


# ---- derivatives of the energy in the entries of U_1, from the factors M, v of either route ----------------
#
# With dK = s0 sum_ab dU_ab xi_a xi_b^T, M_ca = xi_c^T (K + T I)^-1 xi_a (an N0 x N0 block of M) and
# v_c = xi_c^T (K + T I)^-1 y:
#     dE/dU_cd          = s0 [Tr M_cd - v_c . v_d]
#     d2E/dU_cd dU_ab   = s0^2 [-Tr(M_ca M_bd) + v_d^T M_ca v_b + v_c^T M_da v_b]
# and the Hessian applied to a symmetric direction D (H x H), with D~ = D (x) I_N0 and q = M D~ v:
#     (d2E D)_cd        = s0^2 [-sum_i (M D~ M)[(c,i),(d,i)] + q_c . v_d + v_c . q_d]


def energy_gradient(f: EnergyFactors, s0) -> jnp.ndarray:
    """dE/dU_1 (H, H) from the factors of either route."""
    return s0 * (f.trace_M - f.v @ f.v.T)


class ProductOperands(NamedTuple):
    """The example route's W (P, H, N0) in the two layouts `energy_hvp`'s matmuls read without a transpose, formed
    once per point for the many products there: rows (P N0, H), W[p, c, i] at [(p, i), c], and cols = rows^T
    (H, P N0). Two more copies of W: at 256 paths, P = 600, N0 = 32 they take a product from 0.30 to 0.19 s
    (transposing W for every product, and XLA's CPU dot contracting the leading axis of rows, cost the rest)."""

    rows: jnp.ndarray
    cols: jnp.ndarray


def product_operands(f: EnergyFactors) -> ProductOperands | None:
    """`ProductOperands` of f's W; None when f keeps M (the products then read M)."""
    if f.W is None:
        return None
    P, H, n0 = f.W.shape
    rows = jnp.transpose(f.W, (0, 2, 1)).reshape(P * n0, H)
    return ProductOperands(rows, rows.T)


def energy_hvp(f: EnergyFactors, direction: jnp.ndarray, s0, operands: ProductOperands | None = None) -> jnp.ndarray:
    """The energy's Hessian applied to a symmetric direction (H, H) -> (H, H), without forming the Hessian.

    Cost O(D^2 H) with M, O(P^2 D + P N0 H^2) with W (the example route for few examples and many paths).
    operands: `product_operands(f)`, when several products share one point (formed here otherwise).
    """
    Dv = direction @ f.v  # (D~ v)[a, i] = sum_b D_ab v[b, i]
    if f.M is not None:
        MD = jnp.einsum("ciaj,ab->cibj", f.M, direction)  # "ab" or "ba": the direction is symmetric
        traces = jnp.einsum("cibj,bjdi->cd", MD, f.M)  # symmetric in (c, d) (M and D are): "cd" = "dc"
        q = jnp.einsum("ciaj,aj->ci", f.M, Dv)
    else:
        # every product below is one plain 2-D matmul with no operand transposed (XLA's CPU einsums over (P, H,
        # N0) transposed W twice per product: 1.6x slower at 256 paths)
        P, H, n0 = f.W.shape
        W, WT = operands if operands is not None else product_operands(f)
        flat = W.reshape(P, n0 * H)
        Q = (W @ direction).reshape(P, n0 * H) @ flat.T  # W D~ W^T
        traces = WT @ (Q @ flat).reshape(P * n0, H)  # sum_i (W^T Q W)[(c, i), (d, i)]
        Wv = flat @ Dv.T.reshape(-1)  # (W D~ v)_p
        q = (Wv @ flat).reshape(n0, H).T
    return s0 ** 2 * (-traces + q @ f.v.T + f.v @ q.T)


def energy_hessian(f: EnergyFactors, s0) -> jnp.ndarray:
    """d2E/dU_cd dU_ab as an (H, H, H, H) array [c, d, a, b], from M, or from W through the P x P blocks
    W_a W_b^T when the example route kept W (Tr(M_ca M_bd) = Tr(R_ab R_dc), cost O(H^2 P^2 N0 + H^4 P^2))."""
    v = f.v
    if f.M is not None:
        # over the pairs (c, a), (d, b), Tr(M_ca M_bd) is the Gram matrix of the N0 x N0 blocks (one matmul at the
        # machine's rate); v_d^T M_ca v_b and v_c^T M_da v_b are one array and its transpose, from two matmuls
        M = f.M
        H, n0 = v.shape
        blocks = jnp.transpose(M, (0, 2, 1, 3)).reshape(H * H, n0 * n0)
        trace_MM = jnp.transpose((blocks @ blocks.T).reshape(H, H, H, H), (0, 2, 1, 3))  # [c, d, a, b]
        Mv = (M.reshape(H * n0 * H, n0) @ v.T).reshape(H, n0, H, H)  # [c, i, a, b] = (M_ca v_b)_i
        vMv = (v @ jnp.transpose(Mv, (1, 0, 2, 3)).reshape(n0, H ** 3)).reshape(H, H, H, H)  # [d, c, a, b]
        # vMv[d, c, a, b] = v_d^T M_ca v_b, and its (c, d) transpose is v_c^T M_da v_b
        return s0 ** 2 * (jnp.transpose(vMv, (1, 0, 2, 3)) + vMv - trace_MM)
    else:
        W = f.W
        # callers use it on symmetric dU only, so swapping (c, d) or (a, b) in one factor below changes nothing
        R = jnp.einsum("pai,qbi->abpq", W, W)
        trace_MM = jnp.einsum("abpq,cdpq->cdab", R, R)
        q = jnp.einsum("pai,bi->abp", W, v)  # q[a, b] = W_a v_b
        vMv = jnp.einsum("cdp,abp->cdab", q, q)  # v_d^T M_ca v_b
        vMv_swapped = jnp.einsum("dcp,abp->cdab", q, q)  # v_c^T M_da v_b
    return s0 ** 2 * (-trace_MM + vMv + vMv_swapped)


def energy_hessian_pairs(f: EnergyFactors, s0) -> jnp.ndarray:
    """The energy's Hessian on symmetric directions, (n, n) over the pairs c <= d and a <= b (`np.triu_indices(H)`
    order, n = H(H+1)/2): hs[(c,d),(a,b)] = the mean of `energy_hessian`'s h4[c,d,a,b] over the two orders of each
    pair, from M or W, never forming h4 (H^4 entries).

    With B_p = M_cd (c <= d) split into its symmetric and antisymmetric parts S_p, A_p (M_dc = M_cd^T),
    Tr(M_ca M_bd) = <M_ac, M_bd> = <S_p, S_q> + sgn(a, c) sgn(b, d) <A_p, A_q>, p = {a, c}, q = {b, d}: two Gram
    matrices of the n pairs' N0(N0+1)/2 and N0(N0-1)/2 numbers, a quarter of the Gram of all H^2 blocks' N0^2
    entries, and the symmetrised trace term is [<M_ac, M_bd> + <M_ad, M_bc>] / 2. The v terms symmetrise to
    j_cd^T M j_ab / 2 with j_ab = e_a (x) v_b + e_b (x) v_a, from W the Gram of the n vectors W j_ab (P,).
    Cost from W, in multiply-adds: about P n N0^2 for the blocks (`_pair_blocks`) + n^2 (N0^2 + P) for the Grams.
    """
    # the barriers keep XLA from fusing producers into the matmuls' operands and the gathers into the Grams
    # (0.45 -> 0.35 s for this function at 64 paths)
    f = jax.lax.optimization_barrier(f)
    v = f.v
    H, n0 = v.shape
    rows, cols = np.triu_indices(H)
    n = rows.size
    if f.M is not None:
        B = f.M[rows, :, cols, :]
        Mv = (f.M.reshape(H * n0 * H, n0) @ v.T).reshape(H, n0, H * H)  # [c, i, (a, b)] = (M_ca v_b)_i
        MJ = jnp.take(Mv, rows * H + cols, axis=2) + jnp.take(Mv, cols * H + rows, axis=2)  # (M j_ab) at (c, i)
        Z = (v @ jnp.moveaxis(MJ, 1, 0).reshape(n0, H * n)).reshape(H, H, n)  # [d, c, ab] = (e_c (x) v_d)^T M j_ab
        Z = Z.reshape(H * H, n)
        v_part = 0.5 * (jnp.take(Z, rows * H + cols, axis=0) + jnp.take(Z, cols * H + rows, axis=0))
    else:
        B = _pair_blocks(f.W)
        P = f.W.shape[0]
        Wv = (v @ f.W.reshape(P * H, n0).T).reshape(H, P, H)  # [b, p, a] = (W_a v_b)_p
        Wv = jnp.transpose(Wv, (2, 0, 1)).reshape(H * H, P)
        Wj = jnp.take(Wv, rows * H + cols, axis=0) + jnp.take(Wv, cols * H + rows, axis=0)  # (n, P): W j_ab
        v_part = 0.5 * Wj @ Wj.T  # rows contracted on their last axis: XLA's fast CPU dot
    B, v_part = jax.lax.optimization_barrier((B, v_part))
    i, j = np.triu_indices(n0)
    off = i != j
    S = (B[:, i, j] + B[:, j, i]) * jnp.asarray(np.where(off, 0.5 * math.sqrt(2.0), 0.5))
    A = (B[:, i[off], j[off]] - B[:, j[off], i[off]]) * (0.5 * math.sqrt(2.0))
    S, A = jax.lax.optimization_barrier((S, A))
    GS, GA = S @ S.T, A @ A.T
    GS, GA = jax.lax.optimization_barrier((GS, GA))
    G = jnp.stack([GS + GA, GS - GA]).reshape(-1)  # <M_ac, M_bd> when sgn(a, c) sgn(b, d) = +1, and when -1
    c, d = jnp.asarray(rows)[:, None], jnp.asarray(cols)[:, None]
    a, b = jnp.asarray(rows)[None, :], jnp.asarray(cols)[None, :]

    def inner(i, j, k, m):  # <M_ij, M_km>
        flip = ((i > j) != (k > m)).astype(jnp.int32)
        return jnp.take(G, (flip * n + _pair_index(i, j, H)) * n + _pair_index(k, m, H))

    trace = 0.5 * (inner(a, c, b, d) + inner(a, d, b, c))
    return s0 ** 2 * (v_part - trace)


def _pair_index(i, j, H: int):
    """The position of the pair {i, j} in `np.triu_indices(H)` order."""
    lo, hi = jnp.minimum(i, j), jnp.maximum(i, j)
    return lo * (2 * H - lo + 1) // 2 + hi - lo


def _chunk_edges(H: int, n_chunks: int) -> np.ndarray:
    return np.linspace(0, H, min(H, n_chunks) + 1).round().astype(int)


def _pair_blocks(W: jnp.ndarray, n_chunks: int = 4) -> jnp.ndarray:
    """The blocks M_cd = W_c^T W_d for c <= d, (H(H+1)/2, N0, N0) in `np.triu_indices(H)` order, from W (P, H, N0),
    computed for the heads in chunks on and above the diagonal chunk only ((n_chunks + 1) / (2 n_chunks) of M's
    P D^2 products; more chunks cost more in slicing than they save in products on this CPU)."""
    P, H, n0 = W.shape
    edges = _chunk_edges(H, n_chunks)
    out = []
    for c0, c1 in zip(edges[:-1], edges[1:]):
        # an einsum over the 3-D W, not a 2-D W^T W: XLA's CPU dot contracting the leading axis is 2x slower
        B = jnp.einsum("pci,pdj->cdij", W[:, c0:c1], W[:, c0:])
        out += [B[c - c0, c - c0:] for c in range(c0, c1)]
    return jnp.concatenate(out, axis=0)


def energy_derivatives(U1: jnp.ndarray, xi: jnp.ndarray, y: jnp.ndarray, s0, temperature):
    """E(U_1) with its exact gradient (H, H) and Hessian (H, H, H, H) on the example route, from path
    features xi (P, N0, H) and labels y (P,). Returns (E, grad, hess) with hess[c, d, a, b] = d2E/dU_cd dU_ab."""
    P, n0, _ = xi.shape
    data = ExampleData(xi, y, jnp.ones(P, dtype=xi.dtype))
    f = data.factors(U1, s0, temperature, keep_M=P >= n0)
    return f.E, energy_gradient(f, s0), energy_hessian(f, s0)


def whiten_factors(f: EnergyFactors, L: jnp.ndarray) -> EnergyFactors:
    """The factors in the coordinates X of U_1 = L X L^T: M -> (L^T (x) I) M (L (x) I), v -> L^T v, W -> W (L (x) I).

    E is unchanged; `energy_hvp` and `energy_hessian_diagonal` of the result act on X. Cost O(D^2 H) with M,
    O(P D H) with W."""
    v = jnp.einsum("ac,ai->ci", L, f.v)
    M = None if f.M is None else jnp.einsum("ac,aibj,bd->cidj", L, f.M, L)
    W = None if f.W is None else jnp.einsum("pai,ac->pci", f.W, L)
    trace_M = L.T @ f.trace_M @ L
    return EnergyFactors(f.E, v, trace_M, M, W)


def with_M(f: EnergyFactors) -> EnergyFactors:
    """The factors with M = W^T W formed (O(P D^2)) when the example route kept only W; unchanged otherwise.

    The solver's model needs only v and the block traces (O(P D H)), so it keeps W and the dense Hessian, the
    one consumer of M, forms it once per step."""
    if f.M is not None:
        return f
    return f._replace(M=jnp.einsum("pci,paj->ciaj", f.W, f.W), W=None)


def energy_hessian_diagonal(f: EnergyFactors, s0) -> jnp.ndarray:
    """(H, H) the energy's Hessian at (c, d; c, d) symmetrised over the two orders of each pair, i.e. the
    quadratic form of the symmetric direction E_cd + E_dc is 4 x this at (c, d) for c != d (1 x at c = d).

    Cost O(H^2 N0^2) from M; from W, O(P D^2 / 2): the blocks M_cd = W_c^T W_d of the upper block triangle
    (`_paired_block_sums`), never all of M."""
    v = f.v
    if f.M is not None:
        M = f.M
        idx = jnp.arange(v.shape[0])
        M_cc = M[idx, :, idx, :]  # (H, N0, N0) diagonal blocks
        trace_cd_cd = jnp.einsum("cidj,cjdi->cd", M, M)  # Tr(M_cd M_cd)
        crossed = jnp.einsum("ci,dicj,dj->cd", v, M, v)  # v_c^T M_dc v_d
    else:
        M_cc = jnp.einsum("pci,pcj->cij", f.W, f.W)
        trace_cd_cd, crossed = _paired_block_sums(f.W, v)
    trace_cc_dd = jnp.einsum("cij,dji->cd", M_cc, M_cc)  # Tr(M_cc M_dd)
    v_M_v = jnp.einsum("di,cij,dj->cd", v, M_cc, v)  # v_d^T M_cc v_d
    return s0 ** 2 * (-0.5 * (trace_cc_dd + trace_cd_cd) + 0.5 * (v_M_v + v_M_v.T) + 0.5 * (crossed + crossed.T))


def _paired_block_sums(W: jnp.ndarray, v: jnp.ndarray, n_chunks: int = 8) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(Tr(M_cd M_cd), v_c^T M_dc v_d), both (H, H), from W (P, H, N0) and v (H, N0), with M_cd = W_c^T W_d.

    Both are symmetric in (c, d) (M_dc = M_cd^T), so they are computed for the heads in chunks, on and above the
    diagonal chunk only: about (n_chunks + 1) / (2 n_chunks) of the P D^2 products that form M, and blocks of
    (D / n_chunks) x D instead of M's D^2 entries (537 MB at 256 paths, N0 = 32)."""
    P, H, n0 = W.shape
    edges = _chunk_edges(H, n_chunks)
    chunk = np.repeat(np.arange(len(edges) - 1), np.diff(edges))
    trace = jnp.zeros((H, H), W.dtype)
    crossed = jnp.zeros((H, H), W.dtype)
    for c0, c1 in zip(edges[:-1], edges[1:]):
        B = jnp.einsum("pci,pdj->cidj", W[:, c0:c1], W[:, c0:])  # not a 2-D W^T W: see `_pair_blocks`
        trace = trace.at[c0:c1, c0:].set(jnp.einsum("cidj,cjdi->cd", B, B))
        # v_c^T M_dc v_d = sum_ij v_ci M_cd[j, i] v_dj
        crossed = crossed.at[c0:c1, c0:].set(jnp.einsum("cjdi,ci,dj->cd", B, v[c0:c1], v[c0:]))
    upper = jnp.asarray(chunk[:, None] <= chunk[None, :])  # the entries computed; the rest by symmetry
    return jnp.where(upper, trace, trace.T), jnp.where(upper, crossed, crossed.T)
