"""The Bayesian network itself: weights, forward pass, prior, likelihood (spec A) and its path form (B.1, B.3).

    x^(0)_t = V^(0) x_t / sqrt(N0)                                              (A.2)
    x^(l)_t = (H_l N_l)^-1/2 sum_h V^(l,h) sum_s x^(l-1)_s Omega^(l,h)_st         (A.4)
    f(x)    = a . x^(L) / sqrt(N_a)                                             (A.6)

with the last layer's attention reduced over queries by the token readout (A.5). Because the values are linear
and the attention is fixed, the same f is a sum over attention paths pi = (h_1, ..., h_L) (spec B.1):

    f(x) = N_1^-1/2 sum_pi w_hat_pi . V^(0) xi_pi,      xi_pi = x_pi / sqrt(N0 H),
    w_hat_pi = a^T V^(L,h_L) ... V^(1,h_1) / sqrt(N_a N_L ... N_2)                (B.3)

(the 1/sqrt(H) = prod_l 1/sqrt(H_l) of the layers is moved into xi). `forward` is the token-level pass;
`path_forward` is the path form, cheaper by a factor ~T_seq; the tests check that they agree.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from attnpaths._src.paths import token_readout
from attnpaths._src.spec import NetworkSpec


class Weights(NamedTuple):
    """All weights of the network (spec A.8). Any leading batch axes (e.g. chains, samples) are allowed.

    V0: (N_1, N0), input projection V^(0).
    V: tuple of L arrays; V[l-1] is (H_l, N_{l+1}, N_l), the values of layer l (N_{L+1} = N_a).
    a: (N_a,), readout.
    """

    V0: jnp.ndarray
    V: tuple
    a: jnp.ndarray


def int_widths(spec: NetworkSpec) -> tuple[int, ...]:
    """(N_1, ..., N_L, N_a) as ints; a network with weights needs whole widths."""
    out = []
    for i, w in enumerate(spec.widths):
        if not float(w).is_integer():
            name = "N_a" if i == spec.n_layers else f"N_{i + 1}"
            raise ValueError(f"a network with weights needs integer widths; spec.widths[{i}] ({name}) = {w}")
        out.append(int(w))
    return tuple(out)


def weight_shapes(spec: NetworkSpec, n0: int) -> Weights:
    """The shape of every block (no batch axes), as a `Weights` of tuples."""
    widths = int_widths(spec)
    V = tuple((h, widths[l + 1], widths[l]) for l, h in enumerate(spec.heads))
    return Weights((widths[0], int(n0)), V, (widths[-1],))


def block_names(spec: NetworkSpec) -> tuple[str, ...]:
    """Names of the weight blocks, bottom to top: 'V0', 'V1', ..., 'VL', 'a'."""
    return ("V0",) + tuple(f"V{l + 1}" for l in range(spec.n_layers)) + ("a",)


def check_weights(spec: NetworkSpec, weights: Weights, n0: int, batch_shape: tuple = ()) -> Weights:
    """Validate the shapes of `weights` against the architecture; return them as float64 jnp arrays."""
    if not isinstance(weights, Weights):
        raise ValueError(f"weights must be a Weights(V0, V, a); got {type(weights).__name__}")
    shapes = weight_shapes(spec, n0)
    if len(weights.V) != spec.n_layers:
        raise ValueError(f"weights.V must hold one array per layer (L = {spec.n_layers}, heads = {spec.heads}); "
                         f"got {len(weights.V)}")
    names = block_names(spec)
    blocks = [weights.V0, *weights.V, weights.a]
    want = [shapes.V0, *shapes.V, shapes.a]
    symbols = ["(N_1, N0)"] + [f"(H_{l + 1}, N_{l + 2}, N_{l + 1})" if l + 1 < spec.n_layers
                               else f"(H_{l + 1}, N_a, N_{l + 1})" for l in range(spec.n_layers)] + ["(N_a,)"]
    out = []
    for name, block, shape, sym in zip(names, blocks, want, symbols):
        got = tuple(np.shape(block))
        full = tuple(batch_shape) + tuple(shape)
        if got != full:
            lead = f"{tuple(batch_shape)} + " if batch_shape else ""
            raise ValueError(f"weight block {name} must have shape {lead}{sym} = {full}; got {got}")
        out.append(jnp.asarray(block, dtype=jnp.float64))
    return Weights(out[0], tuple(out[1:-1]), out[-1])


def sample_prior(spec: NetworkSpec, n0: int, key: jax.Array, batch_shape: tuple = ()) -> Weights:
    """Draw weights from the Gaussian prior of spec A.7: entries N(0, s0), N(0, s_l), N(0, s_a).

    batch_shape: leading axes (e.g. (n_chains,)). Compiled once per spec, n0 and batch_shape.
    """
    int_widths(spec)
    return _sample_prior(spec, int(n0), tuple(int(b) for b in batch_shape), key)


@partial(jax.jit, static_argnums=(0, 1, 2))
def _sample_prior(spec: NetworkSpec, n0: int, batch_shape: tuple, key: jax.Array) -> Weights:
    shapes = weight_shapes(spec, n0)
    shapes = [shapes.V0, *shapes.V, shapes.a]
    sizes = [math.prod(s) for s in shapes]
    z = jax.random.normal(key, tuple(batch_shape) + (sum(sizes),), dtype=jnp.float64)  # one draw: fast compile
    blocks, start = [], 0
    for shape, size, s in zip(shapes, sizes, spec.variances):
        blocks.append(math.sqrt(s) * z[..., start:start + size].reshape(tuple(batch_shape) + tuple(shape)))
        start += size
    return Weights(blocks[0], tuple(blocks[1:-1]), blocks[-1])


def forward(spec: NetworkSpec, weights: Weights, x: jnp.ndarray, attention: Sequence[jnp.ndarray]) -> jnp.ndarray:
    """Token-level forward pass f(x) of spec A.2-A.6.

    Args:
      spec: the network (heads, readout).
      weights: unbatched `Weights`.
      x: (P, N0, T) inputs, tokens as columns.
      attention: per layer (P, H_l, T_key, T_query), softmax already applied
        (`attention_matrices(layers, x)`).

    Returns:
      f: (P,).
    """
    n0 = x.shape[1]
    z = jnp.einsum("ij,bjt->bit", weights.V0, x) / jnp.sqrt(n0)
    L = spec.n_layers
    for l in range(L):
        V = weights.V[l]
        h, n_in = V.shape[0], V.shape[2]
        if l < L - 1:
            z = jnp.einsum("hij,bjs,bhst->bit", V, z, attention[l])
        else:
            omega = token_readout(attention[l], spec.readout)
            z = jnp.einsum("hij,bjs,bhs->bi", V, z, omega)
        z = z / jnp.sqrt(h * n_in)
    return z @ weights.a / jnp.sqrt(weights.a.shape[-1])


def suffix_weights(spec: NetworkSpec, weights: Weights) -> list[jnp.ndarray]:
    """Effective weights of the path suffixes above every block, bottom to top.

    Entry k (k = 0..L) has shape (H_{k+1} ... H_L, N_{k+1}) and is
    u^(k)_sigma = a^T V^(L,h_L) ... V^(k+1,h_{k+1}) / sqrt(N_a N_L ... N_{k+1})
    for the suffix sigma = (h_{k+1}, ..., h_L), flattened with the lower layer's head outermost. Entry L is
    a / sqrt(N_a) (shape (1, N_a)); entry 0 is w_hat / sqrt(N_1) (shape (H, N_1)). With them, block k's share of
    f is linear: f = sum_{h,sigma} u^(k)_sigma . V^(k,h) Z_{h sigma} / sqrt(N_k) (see sampling/gibbs.py).
    """
    a = weights.a
    u = a[None, :] / jnp.sqrt(a.shape[-1])
    out = [u]
    for l in reversed(range(spec.n_layers)):
        V = weights.V[l]  # (H_l, N_out, N_in)
        u = jnp.einsum("hoi,so->hsi", V, u) / jnp.sqrt(V.shape[2])
        u = u.reshape(-1, V.shape[2])
        out.append(u)
    return out[::-1]


def effective_path_weights(spec: NetworkSpec, weights: Weights) -> jnp.ndarray:
    """w_hat_pi = a^T V^(L,h_L) ... V^(1,h_1) / sqrt(N_a N_L ... N_2): (H, N_1), lower-layer head outermost (B.3)."""
    u0 = suffix_weights(spec, weights)[0]
    return u0 * jnp.sqrt(u0.shape[-1])


def path_input_weights(spec: NetworkSpec, weights: Weights) -> jnp.ndarray:
    """v_pi = V^(0)T w_hat_pi / sqrt(N_1): (H, N0), so that f(x) = sum_pi v_pi . xi_pi(x)."""
    u0 = suffix_weights(spec, weights)[0]
    return u0 @ weights.V0


def path_forward(spec: NetworkSpec, weights: Weights, xi: jnp.ndarray) -> jnp.ndarray:
    """f from the path features xi (P, N0, H) (spec B.1): f = sum_pi v_pi . xi_pi, v = `path_input_weights`.

    Equals `forward` on the inputs xi was computed from. Cost O(H #weights + P H N0) instead of O(P T #weights).
    """
    return jnp.einsum("pj,mjp->m", path_input_weights(spec, weights), xi)


def overlap(spec: NetworkSpec, weights: Weights) -> jnp.ndarray:
    """w_hat w_hat^T / N_1 for one set of weights: (H, H). Its posterior mean is U_1 (spec B.3, C.2)."""
    u0 = suffix_weights(spec, weights)[0]
    return u0 @ u0.T


def sampled_order_parameter(spec: NetworkSpec, weights_batch: Weights) -> jnp.ndarray:
    """U_1 = mean over samples of w_hat w_hat^T / N_1 (spec C.2): (H, H). weights_batch has one leading axis."""
    return jax.vmap(lambda w: overlap(spec, w))(weights_batch).mean(axis=0)


def log_prior(spec: NetworkSpec, weights: Weights) -> jnp.ndarray:
    """log p(weights) under the Gaussian priors of spec A.7 (unbatched weights)."""
    var = spec.variances
    blocks = [weights.V0, *weights.V, weights.a]
    total = 0.0
    for block, s in zip(blocks, var):
        total = total - 0.5 * jnp.sum(block ** 2) / s - 0.5 * block.size * math.log(2 * math.pi * s)
    return total


def log_likelihood(spec: NetworkSpec, weights: Weights, x: jnp.ndarray, attention: Sequence[jnp.ndarray],
                   y: jnp.ndarray) -> jnp.ndarray:
    """sum_mu log N(y^mu | f(x^mu), T) (spec A.7). Needs T > 0."""
    T = spec.temperature
    if T <= 0:
        raise ValueError(f"the likelihood needs T > 0; got temperature {T}")
    r = y - forward(spec, weights, x, attention)
    return -0.5 * jnp.sum(r ** 2) / T - 0.5 * r.shape[0] * math.log(2 * math.pi * T)
